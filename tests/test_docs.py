"""The documented zarr-only reading recipe runs against a real store."""

import re
from pathlib import Path

from mdforecast import ingest

ROOT = Path(__file__).resolve().parent.parent


def test_store_format_snippet_reads_a_store_with_zarr_alone(water_files, tmp_path, monkeypatch):
    traj, top, system = water_files
    ingest([traj], tmp_path / "water.zarr", topology=top)
    text = (ROOT / "docs" / "store-format.md").read_text()
    snippet = re.findall(r"```python\n(.*?)```", text, re.S)[-1]
    assert "import mdforecast" not in snippet
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(snippet.replace("[100:120]", "[2:10]"), namespace)
    assert namespace["positions"].shape == (8, system.n_atoms, 3)
    assert namespace["boxes"].shape == (8, 3)
    assert list(namespace["atom_names"][:3]) == ["OW", "HW1", "HW2"]
