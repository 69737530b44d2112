"""Fixtures shared by every test. Helpers to import live beside this file: ``mdsystems`` (synthetic systems
written to MD files), ``synth`` (synthetic stores) and ``oscillators`` (a tiny learnable system).

Tests marked ``slow`` (end to end: simulations, multi-process training) take most of the suite's time;
``pytest -m "not slow"`` skips them for a quick run (CI runs all).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mdsystems import System, waters


class Cli:
    """Runs ``mdforecast`` in-process: ``cli("predict", store, "-m", "persistence")`` → ``(code, out, err)``;
    ``cli.code(...)`` → the exit code, leaving the output to the test's own ``capsys``/``capsysbinary``."""

    def __init__(self, capture) -> None:
        self._capture = capture

    def __call__(self, *argv) -> tuple[int, str, str]:
        code = self.code(*argv)
        out, err = self._capture.readouterr()
        return code, out, err

    @staticmethod
    def code(*argv) -> int:
        from mdforecast.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in argv])
        return exit_info.value.code

    @staticmethod
    def assert_one_line_error(code: int, err: str, *needles: str) -> None:
        """Exit 1 and one ``error: …`` line on stderr holding every needle, no traceback."""
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
        assert "Traceback" not in err
        for needle in needles:
            assert needle in lines[0], (needle, lines[0])


@pytest.fixture
def cli(request) -> Cli:
    """The runner, capturing with the test's ``capsysbinary`` when it asks for one, else ``capsys``."""
    return Cli(request.getfixturevalue("capsysbinary" if "capsysbinary" in request.fixturenames else "capsys"))


@pytest.fixture
def water_system() -> System:
    return waters()


@pytest.fixture
def water_files(tmp_path, water_system) -> tuple[Path, Path, System]:
    """A DCD trajectory of ``water_system`` written wrapped per atom, and its PDB topology."""
    top = tmp_path / "top.pdb"
    traj = water_system.write(tmp_path / "traj.dcd", wrap=True, topology=top)
    return traj, top, water_system


@pytest.fixture(scope="session")
def osc_store(tmp_path_factory) -> str:
    """3 training + 1 test trajectory of 12 oscillators (``oscillators``), 200 frames, box 20 Å."""
    import torch

    from oscillators import make_store

    torch.set_num_threads(1)  # tiny tensors: one thread is fastest, and the test machine's 2 cores are shared
    return make_store(tmp_path_factory.mktemp("osc") / "osc.zarr", n_traj=4, n_frames=200, test=1)
