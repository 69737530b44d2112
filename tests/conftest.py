"""Fixtures shared by the top-level tests (helpers live in ``mdsystems``, importable from every test file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdsystems import System, waters


@pytest.fixture
def water_system() -> System:
    return waters()


@pytest.fixture
def water_files(tmp_path, water_system) -> tuple[Path, Path, System]:
    """A DCD trajectory of ``water_system`` written wrapped per atom, and its PDB topology."""
    top = tmp_path / "top.pdb"
    traj = water_system.write(tmp_path / "traj.dcd", wrap=True, topology=top)
    return traj, top, water_system
