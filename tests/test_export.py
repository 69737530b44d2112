"""export: the DCD time step, the topology PDB (CONECT bonds, segids, box) and PDBs shared between formats."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mdforecast import Store, export, ingest
from mdforecast.errors import InputError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def water_store(tmp_path) -> Store:
    """The shipped 60-water example (segid A, bonds from its PDB), frames 100 ps apart."""
    ingest([EXAMPLES / "water.xtc"], tmp_path / "w.zarr", topology=EXAMPLES / "water.pdb", dt_ps=100.0)
    return Store.open(tmp_path / "w.zarr")


def test_dcd_keeps_the_time_step_and_the_pdb_carries_bonds_segids_and_box(water_store, tmp_path):
    import MDAnalysis as mda

    export(water_store, tmp_path / "o.dcd", stop=5, stride=2)  # three frames: 0, 2, 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u = mda.Universe(str(tmp_path / "o.pdb"), str(tmp_path / "o.dcd"))
        assert u.trajectory.n_frames == 3 and u.trajectory.dt == pytest.approx(200.0, rel=1e-6)
    topology = water_store.topology
    pdb = (tmp_path / "o.pdb").read_text().splitlines()
    assert sum(line.startswith("CONECT") for line in pdb) > 0 and len(u.bonds) == len(topology.bonds)
    assert list(u.atoms.segids) == list(topology.segids)
    cryst = next(line for line in pdb if line.startswith("CRYST1")).split()
    assert [float(x) for x in cryst[1:7]] == pytest.approx([12.5, 12.5, 12.5, 90, 90, 90])
    np.testing.assert_allclose(u.dimensions, [12.5, 12.5, 12.5, 90, 90, 90], atol=1e-3)


def test_a_second_format_of_the_same_frames_shares_the_pdb(water_store, tmp_path):
    first = export(water_store, tmp_path / "o.xtc", stop=5)
    before = (tmp_path / "o.pdb").read_bytes()
    second = export(water_store, tmp_path / "o.dcd", stop=5)
    assert first.topology == second.topology and (tmp_path / "o.pdb").read_bytes() == before
    with pytest.raises(InputError, match="another topology or first frame; pass --force"):
        export(water_store, tmp_path / "o.trr", start=3)
    assert not (tmp_path / "o.trr").exists() and (tmp_path / "o.pdb").read_bytes() == before
    export(water_store, tmp_path / "o.trr", start=3, force=True)
    assert (tmp_path / "o.pdb").read_bytes() != before
