"""``mdforecast export``: a stored trajectory out to any format MDAnalysis writes, plus a PDB topology."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .mdio import _READ_ERRORS, _first_line, quiet, select_atoms
from .pbc import dimensions_from_box
from .progress import progress_bar
from .store import Store

__all__ = ["export", "ExportResult"]


@dataclasses.dataclass(frozen=True)
class ExportResult:
    """Files :func:`export` wrote and what they hold."""

    output: str
    topology: str
    trajectory: str
    frames: int
    atoms: int

    def summary(self) -> str:
        return (f"exported {self.frames} frames × {self.atoms} atoms of {self.trajectory} to {self.output} "
                f"(topology {self.topology})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _writer(path: Path, fmt: str, n_atoms: int, n_frames: int, dt_ps: float | None):
    """An MDAnalysis writer; ``dt_ps``: time between written frames, ps, for formats that store one (DCD)."""
    import MDAnalysis as mda

    options = {"multiframe": True} if fmt == "PDB" and n_frames > 1 else {}
    if fmt == "PDB":
        options["bonds"] = "all"
    if fmt == "DCD" and dt_ps is not None:  # a DCD holds one time step, not a time per frame
        options["dt"] = dt_ps
    try:
        return mda.Writer(str(path), n_atoms=n_atoms, format=fmt, **options)
    except (TypeError, ValueError) as err:
        raise InputError(f"cannot write format '{fmt}': MDAnalysis has no writer for it; "
                         "use e.g. .xtc, .trr, .dcd, .nc, .pdb, .gro or .xyz") from err
    except ImportError as err:
        raise InputError(f"writing '{fmt}' needs an extra package ({err.name}); pip install {err.name}") from err


def _check_written(path: Path, fmt: str, n_atoms: int, n_frames: int, output: Path) -> None:
    """Read the written file back and refuse it unless it holds all ``n_frames`` frames (some C writers, DCD's,
    drop frames silently when the disk fills up)."""
    from MDAnalysis.coordinates.base import SingleFrameReaderBase
    from MDAnalysis.coordinates.core import get_reader_for

    try:
        with quiet():
            reader = get_reader_for(str(path), format=fmt)(str(path), n_atoms=n_atoms)
            found = n_frames if isinstance(reader, SingleFrameReaderBase) else reader.n_frames  # GRO: reads one
            reader.close()
    except _READ_ERRORS as err:
        raise InputError(f"{output} was written but cannot be read back ({_first_line(err)}); the disk may be full: "
                         "free space or write elsewhere with -o (nothing was written)") from err
    if found != n_frames:
        raise InputError(f"only {found} of {n_frames} frames reached {output}; the disk is probably full: free space "
                         "or write elsewhere with -o (nothing was written)")


def _check_topology(partial: Path, path: Path, force: bool) -> None:
    """Refuse to replace an existing topology PDB ``path`` by a different one (``partial``) without ``force``;
    an identical one stays (another format of the same frames shares it)."""
    if not partial.exists() or not path.exists() or force:
        return
    if partial.read_bytes() == path.read_bytes():
        partial.unlink()
        return
    raise InputError(f"{path} already exists and holds another topology or first frame; pass --force to replace "
                     "it, or choose another -o")


def export(store: str | os.PathLike | Store, output: str | os.PathLike, *, trajectory: str | None = None,
           select: str = "all", start: int | None = None, stop: int | None = None, stride: int | None = None,
           force: bool = False, progress: bool = False) -> ExportResult:
    """Write frames ``start:stop:stride`` of ``trajectory`` to ``output`` (format from its extension).

    A PDB topology (bonds as CONECT records, segids, and the first written frame) is written next to it as
    ``output`` with the suffix ``.pdb``, so VMD, PyMOL, nglview and ``mdforecast ingest OUTPUT --top TOPOLOGY``
    read it back; a PDB already there that is byte for byte the same (the same frames in another format) is
    kept, any other needs ``force``. Positions are the stored, unwrapped ones; each frame keeps its box, time,
    step and velocities (where the format holds them; a DCD keeps the time step, ``dt_ps`` × ``stride``).
    Files appear only when complete.
    """
    store = store if isinstance(store, Store) else Store.open(store)
    traj = store.trajectory(trajectory)
    output = Path(output)
    topology_path = output.with_suffix(".pdb")
    fmt = output.suffix.lstrip(".").upper()
    if not fmt:
        raise InputError(f"{output} has no extension; name the format with one, e.g. {output}.xtc")
    if output.exists() and not force:
        raise InputError(f"{output} already exists; pass --force to replace it")
    if not output.parent.is_dir():
        raise InputError(f"directory {output.parent} does not exist; create it first")
    if stride is not None and stride < 1:
        raise InputError(f"--stride must be a positive number of frames, got {stride}")
    frames = range(*slice(start, stop, stride).indices(traj.n_frames))
    if len(frames) == 0:
        raise InputError(f"no frames of {traj.name} ({traj.n_frames} frames) in {start}:{stop}:{stride}; "
                         "choose a range inside the trajectory")

    universe = store.topology.to_universe()
    with quiet():
        atoms = select_atoms(universe, select, store.path)
        if traj.has_velocities:
            universe.trajectory.ts.has_velocities = True
    tmp = {path: path.with_name(f".{path.name}.partial-{os.getpid()}") for path in (output, topology_path)}
    block = traj.frames_per_chunk * max(1, frames.step)
    try:
        dt_ps = None if traj.dt_ps is None else traj.dt_ps * frames.step
        with _writer(tmp[output], fmt, atoms.n_atoms, len(frames), dt_ps) as writer, \
                progress_bar(f"export {traj.name}", len(frames), enabled=progress) as bar, quiet():
            for lo in range(frames.start, frames.stop, block):
                hi = min(lo + block, frames.stop)
                positions = traj.positions(lo, hi, frames.step)
                velocities = traj.velocities(lo, hi, frames.step) if traj.has_velocities else None
                boxes = traj.boxes(lo, hi, frames.step)
                # frame by frame: three frames of edges (3, 3) would read as one box of vectors
                dims = None if boxes is None else np.stack([dimensions_from_box(box) for box in boxes])
                times, steps = traj.times(lo, hi, frames.step), traj.steps(lo, hi, frames.step)
                for i in range(len(positions)):
                    ts = universe.trajectory.ts
                    ts.positions = positions[i]
                    if velocities is not None:
                        ts.velocities = velocities[i]
                    ts.dimensions = None if dims is None else dims[i]
                    ts.time, ts.data["step"] = float(times[i]), int(steps[i])
                    if lo == frames.start and i == 0 and fmt != "PDB":
                        atoms.write(str(tmp[topology_path]), file_format="PDB", bonds="all")
                    writer.write(atoms)
                    bar.advance()
        _check_written(tmp[output], fmt, atoms.n_atoms, len(frames), output)
        _check_topology(tmp[topology_path], topology_path, force)
        for path, partial in tmp.items():
            if partial.exists():
                os.replace(partial, path)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EFBIG):
            raise InputError(f"disk full while writing {output}; free space or write elsewhere with -o "
                             "(nothing was written)") from err
        raise InputError(f"cannot write {output} ({err.strerror or err}): the disk may be full or the directory "
                         "unwritable; free space, check permissions or write elsewhere with -o (nothing was written)") from err
    finally:
        for partial in tmp.values():
            partial.unlink(missing_ok=True)
    return ExportResult(output=str(output), topology=str(topology_path), trajectory=traj.name,
                        frames=len(frames), atoms=atoms.n_atoms)
