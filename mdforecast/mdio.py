"""Reading and writing MD files through MDAnalysis, with mdforecast's errors at the boundary.

MDAnalysis does the format work (its registry of readers and writers is the one list of formats); this
module turns its many exception types and warnings into one-line :class:`InputError` messages.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from pathlib import Path

import numpy as np

from .errors import InputError
from .pbc import box_vectors, is_orthorhombic

__all__ = ["open_universe", "select_atoms", "stored_boxes", "box_shape", "guess_bonds", "whole_positions", "quiet"]

#: what MDAnalysis raises for unreadable, truncated or unsupported files
_READ_ERRORS = (ValueError, TypeError, OSError, EOFError, KeyError, IndexError, RuntimeError,
                NotImplementedError, AttributeError)


@contextlib.contextmanager
def quiet():
    """Silence MDAnalysis' warnings (guessed attributes, missing chain IDs, …) inside the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0].strip() if text else type(err).__name__


def _require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} not found; check the path")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a file; give the path of a {what} file")
    return path


def open_universe(trajectory: str | Path, topology: str | Path | None = None, fmt: str | None = None):
    """An MDAnalysis ``Universe`` of ``trajectory`` (with ``topology`` when given), or a clear InputError.

    ``fmt`` names the trajectory format when its extension does not (e.g. ``LAMMPS`` for a LAMMPS DCD,
    ``LAMMPSDUMP`` for a ``.dump`` file); default: from the extension.
    """
    import MDAnalysis as mda

    trajectory = _require_file(trajectory, "trajectory")
    top = _require_file(topology, "topology") if topology is not None else trajectory
    with quiet():
        try:
            universe = mda.Universe(str(top), **({"format": fmt} if fmt and topology is None else {}))
        except _READ_ERRORS as err:
            hint = "give a topology MDAnalysis reads (PDB, GRO, PSF, PRMTOP, TPR, …) with --top"
            if topology is None:
                hint = "this file has no topology; " + hint
            raise InputError(f"cannot read topology {top}: {_first_line(err)}; {hint}") from err
        if topology is not None:
            try:
                universe.load_new(str(trajectory), format=fmt)
            except _READ_ERRORS as err:
                message = str(err)
                if "same number of atoms" in message:
                    found = re.search(r"Number of atoms (\d+)", message.split("Trajectory", 1)[-1])
                    count = f"{found.group(1)} atoms" if found else "a different number of atoms"
                    raise InputError(f"trajectory {trajectory} has {count} but topology {top} has "
                                     f"{universe.atoms.n_atoms}; use the topology the trajectory was written with") from err
                if "Unknown coordinate trajectory format" in message:
                    raise InputError(f"cannot read {trajectory}: unknown trajectory format "
                                     f"'{fmt or trajectory.suffix.lstrip('.')}'; name it with --format (e.g. XTC, TRR, "
                                     "DCD, NCDF, H5MD, LAMMPS, LAMMPSDUMP, GRO, PDB, XYZ) or convert the file") from err
                raise InputError(f"cannot read trajectory {trajectory}: {_first_line(err)}; "
                                 "the file may be truncated or corrupt") from err
    if universe.trajectory.n_frames == 0:
        raise InputError(f"trajectory {trajectory} has zero frames; check the file")
    return universe


def select_atoms(universe, selection: str, source: str | Path):
    """``universe.select_atoms(selection)``, refusing bad syntax and empty results."""
    from MDAnalysis.exceptions import SelectionError

    with quiet():
        try:
            atoms = universe.select_atoms(selection)
        except (SelectionError, *_READ_ERRORS) as err:
            raise InputError(f"invalid selection {selection!r}: {_first_line(err)}; "
                             "see https://docs.mdanalysis.org/stable/documentation_pages/selections.html") from err
    if atoms.n_atoms == 0:
        raise InputError(f"selection {selection!r} matches no atoms of {source}; check atom and residue names "
                         "with `mdforecast info` or the topology")
    return atoms


def box_shape(dimensions) -> tuple[int, ...] | None:
    """How a box is stored: ``(3,)`` edges for orthorhombic, ``(3, 3)`` vectors for triclinic, ``None`` for none."""
    if dimensions is None or not np.any(np.asarray(dimensions[:3]) > 0):
        return None
    return (3,) if is_orthorhombic(dimensions) else (3, 3)


def stored_boxes(dimensions: np.ndarray, shape: tuple[int, ...], frames: np.ndarray, source: str | Path) -> np.ndarray:
    """Boxes of a block of frames in the stored ``shape``, Å, from MDAnalysis ``dimensions`` ``(T, 6)``.

    NaN rows mark frames without a box. Refuses a box that vanishes or turns triclinic mid-trajectory.
    """
    vanished = ~(np.nan_to_num(dimensions[:, :3]) > 0).any(axis=1)
    if vanished.any():
        raise InputError(f"frame {frames[vanished][0]} of {source} has no box while earlier frames had one; "
                         "ingest with --no-unwrap or split the file where the box disappears")
    if shape == (3,):
        skewed = ~np.all(np.abs(dimensions[:, 3:6] - 90.0) < 1e-3, axis=1)
        if skewed.any():
            raise InputError(f"frame {frames[skewed][0]} of {source} has a triclinic box while earlier frames "
                             "were orthorhombic; split the file at that frame and ingest the parts separately")
        return dimensions[:, :3].astype(np.float32)
    return box_vectors(dimensions).astype(np.float32)


def guess_bonds(universe) -> bool:
    """Give ``universe`` bonds guessed from distances in its current frame (minimum image) if it has none.

    Returns True when bonds were guessed, False when the topology had them or none could be guessed (unknown
    atom types: molecules are then not made whole).
    """
    if hasattr(universe, "bonds") and len(universe.bonds):
        return False
    with quiet():
        try:
            universe.guess_TopologyAttrs(to_guess=["bonds"], box=universe.dimensions)
        except (ValueError, KeyError, TypeError):
            return False
    return bool(len(universe.bonds))


def whole_positions(universe, atoms) -> np.ndarray:
    """Positions of ``atoms`` in the current frame with each bonded molecule made whole, Å."""
    if not hasattr(universe, "bonds") or not len(universe.bonds):
        return atoms.positions
    with quiet():
        return universe.atoms.unwrap(compound="fragments", reference=None, inplace=False)[atoms.indices]
