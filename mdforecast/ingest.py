"""``mdforecast ingest``: any MDAnalysis-readable trajectory into a store, streamed, unwrapped.

Each trajectory file becomes one trajectory of the store. Frames are read and written a chunk at a time, so
memory stays bounded whatever the trajectory's length. XTC frames are decoded in a child process
(:class:`mdforecast.mdio.XTCFrames`): corrupt compressed coordinates can crash xdrfile's decoder, which then
ends in a one-line error naming the frame instead of killing ingest; the child also checks and unwraps each
block while this process writes the one before, and it starts before the store is set up. With a periodic box, every frame is
unwrapped by molecule (:class:`mdforecast.pbc.Unwrapper`): each molecule's reference atom follows the
minimum-image step from the frame before, and its other atoms are placed around it along its bonds (from the
topology, or guessed), so molecules are whole in every stored frame, in any triclinic box.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import InputError
from .mdio import (XTCFrames, XTCIndex, box_shape, check_xtc, guess_bonds, molecules, open_universe, quiet, read_error,
                   select_atoms, stored_boxes, time_step)
from .pbc import Unwrapper, box_vectors, dimensions_from_box, image_distance
from .progress import progress_bar
from .provenance import sha256
from .store import Store, frames_per_chunk, writing
from .topology import Topology

__all__ = ["ingest", "IngestResult"]


@dataclasses.dataclass(frozen=True)
class IngestResult:
    """What :func:`ingest` wrote: the store, its atoms and, per trajectory, name and frame count; ``warnings``
    are one-line notes about the input (frames saved too sparsely to unwrap, a dropped incomplete frame)."""

    store: str
    n_atoms: int
    trajectories: dict[str, int]
    seconds: float
    warnings: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        frames = sum(self.trajectories.values())
        return (f"ingested {len(self.trajectories)} trajectory(ies), {frames} frames × {self.n_atoms} atoms "
                f"into {self.store} in {self.seconds:.1f} s")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _default_names(paths: Sequence[Path], taken: Sequence[str]) -> list[str]:
    names, used = [], set(taken)
    for path in paths:
        base = name = path.name.split(".")[0] or "trajectory"
        k = 1
        while name in used:
            name, k = f"{base}-{k}", k + 1
        used.add(name)
        names.append(name)
    return names


def ingest(trajectories: Sequence[str | Path], output: str | Path, *, topology: str | Path | None = None,
           select: str = "all", start: int | None = None, stop: int | None = None, stride: int | None = None,
           names: Sequence[str] | None = None, append: bool = False, force: bool = False, unwrap: bool = True,
           fmt: str | None = None, dt_ps: float | None = None, progress: bool = False) -> IngestResult:
    """Read trajectory files into the store ``output``; one stored trajectory per file.

    Args:
        trajectories: files MDAnalysis reads (XTC, TRR, DCD, NetCDF, H5MD, LAMMPS, GRO, PDB, XYZ, …).
        output: the store, a local path or a URL zarr accepts.
        topology: a topology file (PDB, GRO, PSF, PRMTOP, TPR, …); default: each trajectory file itself.
        select: MDAnalysis selection of the atoms to keep (default all).
        start, stop, stride: the frames to keep, as a Python slice.
        names: one name per trajectory (default: the file name without extensions).
        append: add to an existing store of the same system. force: replace an existing store.
        unwrap: make molecules whole in every frame and remove periodic jumps (default True). With
            ``stride > 1`` the skipped frames are read too, so molecules are followed across box faces.
            Unwrapping assumes no molecule moves half the periodic image distance between consecutive frames
            of the file; a warning says when steps come near that (frames saved too sparsely).
        fmt: the trajectory format when the extension does not say it (MDAnalysis format name).
        dt_ps: time between consecutive frames of the file, ps; overrides what the file records. Default:
            the file's; a file that records none is stored with ``dt_ps`` unknown (``null``) and NaN times.
        progress: show a progress bar on stderr.

    Returns:
        An :class:`IngestResult`. Nothing is written if anything fails (Ctrl-C included).
    """
    began = time.perf_counter()
    paths = [Path(p) for p in trajectories]
    if not paths:
        raise InputError("no trajectory given; pass one or more trajectory files")
    if append and force:
        raise InputError("--append and --force contradict each other; pass one of them")
    if stride is not None and stride < 1:
        raise InputError(f"--stride must be a positive number of frames, got {stride}")
    if dt_ps is not None and not (np.isfinite(dt_ps) and dt_ps > 0):
        raise InputError(f"--dt must be a positive time between frames in ps, got {dt_ps}")
    if names is not None and len(names) != len(paths):
        raise InputError(f"{len(names)} --name for {len(paths)} trajectories; give one name per trajectory file")

    notes: list[str] = []
    xtcs: dict[Path, XTCIndex] = {}
    for path in paths:  # before MDAnalysis decodes them: xdrfile crashes on garbled frame headers
        if (fmt or path.suffix.lstrip(".")).upper() == "XTC" and path.is_file():
            xtcs[path] = check_xtc(path)
            notes.extend([xtcs[path].note] if xtcs[path].note else [])
            if hasattr(os, "fork"):  # MDAnalysis decodes frames 0 and 1 on opening the file: try them first
                index = xtcs[path]
                for _, part in XTCFrames(path, range(min(2, len(index.offsets))), offsets=None, atoms=None,
                                         n_atoms=index.n_atoms, size=2):
                    _check_block(part["position"], part["frame"], index.bounds, path)
    universes = [open_universe(path, topology, fmt) for path in paths]
    guessed = [guess_bonds(u) for u in universes if unwrap and u.dimensions is not None]
    selections = [select_atoms(u, select, path) for u, path in zip(universes, paths)]
    top = Topology.from_atomgroup(selections[0])
    for atoms, path in zip(selections[1:], paths[1:]):
        if not Topology.from_atomgroup(atoms).same_system(top):
            raise InputError(f"{path} holds a different system than {paths[0]}; ingest it into its own store")
    top_source = Path(topology) if topology is not None else paths[0]
    attrs = {"topology_source": {"path": str(top_source.resolve()), "sha256": sha256(top_source)},
             "bonds_guessed": any(guessed), "selection": select,
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}

    mode = "append" if append else "overwrite" if force else "create"
    written: dict[str, int] = {}

    def plan(k: int) -> _OneFile:
        return _OneFile(universes[k], selections[k], paths[k], slice(start, stop, stride), unwrap=unwrap,
                        dt_ps=dt_ps, xtc=xtcs.get(paths[k]), frames_per_chunk=frames_per_chunk(top.n_atoms))

    first = plan(0)  # an XTC's decoding process starts now: it decodes while the store is set up
    try:
        with writing(output, topology=top, attrs=attrs, mode=mode) as store:
            added: list[str] = []
            try:
                names = list(names) if names is not None else _default_names(paths, store.trajectory_names)
                for k, name in enumerate(names):
                    written[name] = (first if k == 0 else plan(k)).write(store, name, notes=notes, progress=progress)
                    added.append(name)
            except BaseException:
                if append:  # roll back what this call added to an existing store
                    store.remove_trajectories(added)
                raise
    finally:
        first.close()
    return IngestResult(store=str(output), n_atoms=top.n_atoms, trajectories=written,
                        seconds=time.perf_counter() - began, warnings=notes)


#: warn when more than this fraction of the molecules' steps is long (see :attr:`Unwrapper.long_steps`)
_SPARSE_FRACTION = 1e-4


class _OneFile:
    """One trajectory file on its way into the store: planned (and, for an XTC, its decoding process started)
    on creation, written by :meth:`write`.

    ``xtc``: what an XTC file's frame headers declare (:func:`check_xtc`), else ``None``. Frames of an XTC are
    decoded only in a child process (:class:`XTCFrames`), never here: corrupt ones can crash the decoder.
    """

    def __init__(self, universe, atoms, path: Path, frames: slice, *, unwrap: bool, dt_ps: float | None,
                 xtc: XTCIndex | None, frames_per_chunk: int) -> None:
        reader = universe.trajectory
        # an XTC's incomplete last frame counts in MDAnalysis' n_frames (its iteration then stops before it)
        total = reader.n_frames if xtc is None else min(reader.n_frames, len(xtc.offsets))
        keep = range(*frames.indices(total))
        if len(keep) == 0:
            raise InputError(f"no frames of {path} ({total} frames) fall in --start/--stop/--stride "
                             f"{frames.start}:{frames.stop}:{frames.step}; choose a range inside the file")
        file_dt = dt_ps if dt_ps is not None else time_step(reader) if xtc is None else xtc.dt_ps
        if xtc is None:
            with quiet():
                first = reader[keep.start]
            dimensions, velocities = first.dimensions, first.has_velocities
        else:  # from the frame's header: MDAnalysis would decode it here
            box = xtc.boxes[keep.start]
            dimensions, velocities = dimensions_from_box(box) if box.any() else None, False
        shape = box_shape(dimensions)
        unwrap = unwrap and shape is not None
        # unwrapping must see every frame to follow molecules across faces; otherwise read only the kept ones
        visit = range(keep.start, keep.stop, 1) if unwrap else keep
        attrs = {"source": str(path.resolve()), "dt_ps": None if file_dt is None else file_dt * keep.step,
                 "unwrapped": unwrap, "frames": {"start": keep.start, "stop": keep.stop, "stride": keep.step}}
        # the atoms read: with unwrapping, whole molecules of the selection (placed along their bonds)
        needed, bonds, chosen = molecules(universe, atoms) if unwrap else (atoms.indices, None, None)
        unwrapper = Unwrapper(len(needed), bonds) if unwrap else None
        subset = chosen is not None and len(chosen) < len(needed)
        # the time of each frame: as the file records it, NaN when it records none, or frame × --dt
        clock = "file" if dt_ps is None and file_dt is not None else "none" if file_dt is None else "given"
        bounds = None if xtc is None else xtc.bounds

        def prepare(part: dict[str, np.ndarray]) -> None:
            """Check, box and unwrap a block of frames in place, where it is decoded (an XTC's: in the decoding
            process, while this one writes the block before)."""
            index, positions = part["frame"], part["position"]
            _check_block(positions, index, bounds, path)
            if shape is not None:
                part["stored_box"][:] = stored_boxes(part["dimensions"], shape, index, path)
            if unwrap:
                before = unwrapper.long_steps
                positions[:] = unwrapper.update(positions, part["stored_box"])
                part["long_steps"][:] = 0
                part["long_steps"][0] = unwrapper.long_steps - before

        fields = {"dimensions": ((6,), np.float64), "stored_box": (shape, np.float32)} if shape is not None else {}
        fields.update({"long_steps": ((), np.int64)} if unwrap else {})
        size = frames_per_chunk
        subset_read = None if len(needed) == universe.atoms.n_atoms else needed
        if xtc is not None and hasattr(os, "fork"):  # XTC: decoded and prepared in a child process (XTCFrames)
            decoder = XTCFrames(path, visit, offsets=xtc.offsets, atoms=subset_read, n_atoms=universe.atoms.n_atoms,
                                size=size, fields=fields, prepare=_with_dimensions(prepare, shape is not None))
            decoder.start()
            frames = iter(decoder)
        else:
            decoder = None
            block = {"frame": np.empty(size, np.int64), "position": np.empty((size, len(needed), 3), np.float32),
                     "time": np.empty(size), "step": np.empty(size, np.int64),
                     **({"velocity": np.empty((size, atoms.n_atoms, 3), np.float32)} if velocities else {}),
                     **{key: np.full((size, *shape_), np.nan if key == "dimensions" else 0, dtype)
                        for key, (shape_, dtype) in fields.items()}}
            frames = _timestep_blocks(reader, visit, block, subset_read, atoms.indices if velocities else None,
                                      prepare, path)

        def write(store: Store, name: str, notes: list[str], progress: bool) -> int:
            checksum = _Checksum(path)  # read while frames are written
            long_steps = 0
            with store.add_trajectory(name, velocities=velocities, box=shape, attrs=attrs,
                                      expected_frames=len(keep)) as writer, \
                    progress_bar(f"ingest {name}", len(visit), enabled=progress) as bar, quiet():
                for n, part in frames:
                    index, positions = part["frame"], part["position"]
                    if clock == "none":
                        part["time"][:] = np.nan
                    elif clock == "given":
                        part["time"][:] = index * dt_ps
                    if subset:
                        positions = positions[:, chosen]
                    boxes = part["stored_box"] if shape is not None else None
                    long_steps += int(part["long_steps"].sum()) if unwrap else 0
                    kept = slice(None) if keep.step == 1 else (index - keep.start) % keep.step == 0
                    writer.append(positions[kept], part["time"][kept], part["step"][kept],
                                  part["velocity"][kept] if velocities else None,
                                  boxes[kept] if boxes is not None else None)
                    bar.advance(n)
                writer.set_attrs(sha256=checksum.result())
            n_steps = (len(visit) - 1) * len(unwrapper.roots) if unwrap else 0  # each molecule, each frame but the first
            if unwrap and long_steps > _SPARSE_FRACTION * n_steps:
                limit = Unwrapper.LONG_STEP * float(image_distance(box_vectors(dimensions)))
                notes.append(f"{path}: {long_steps / n_steps:.2%} of the molecules' steps between "
                             f"consecutive frames are longer than {limit:.1f} Å (0.4 of the distance to the nearest periodic "
                             "image): the file is probably saved too sparsely to unwrap reliably, so some box crossings may "
                             "be missed and diffusion under-counted; save frames more often, or pass --no-unwrap if the "
                             "file is already unwrapped")
            return writer.n_frames

        self._decoder, self._write = decoder, write

    def write(self, store: Store, name: str, *, notes: list[str], progress: bool) -> int:
        """Stream the file into ``store`` as trajectory ``name``; one-line warnings about it go to ``notes``."""
        try:
            return self._write(store, name, notes, progress)
        finally:
            self.close()

    def close(self) -> None:
        """End the decoding process, if any (writing does; call it when the file will not be written)."""
        if self._decoder is not None:
            self._decoder.close()


class _Checksum:
    """The SHA-256 of a file, computed in a thread (hashlib releases the GIL) while the caller works on."""

    def __init__(self, path: Path) -> None:
        self._value: str | OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(path,), name="mdforecast-sha256", daemon=True)
        self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._value = sha256(path)
        except OSError as err:  # raised by result()
            self._value = err

    def result(self) -> str:
        self._thread.join()
        if isinstance(self._value, OSError):
            raise self._value
        return self._value


def _check_block(positions: np.ndarray, index: np.ndarray, bounds: np.ndarray | None, path: Path) -> None:
    """Refuse decoded positions ``(T, M, 3)`` Å of frames ``index`` ``(T,)`` that are NaN, infinite or absurd,
    or (XTC, ``bounds`` ``(F, 2, 3)`` Å) outside the range each frame's header declares."""
    # per axis, over each frame's atoms: x, y, z made contiguous first (numpy reduces a trailing axis of 3,
    # or a strided one, several times more slowly)
    by_axis = np.ascontiguousarray(positions.transpose(0, 2, 1))
    low, high = by_axis.min(axis=2), by_axis.max(axis=2)
    sane = (low > -1e7).all(axis=1) & (high < 1e7).all(axis=1)  # NaN: False
    if not sane.all():
        bad = int(index[~sane][0])
        raise InputError(f"frame {bad} of {path} has NaN, infinite or absurd (beyond 10^7 Å) coordinates; "
                         f"cut it off with --stop {bad} or repair the file")
    if bounds is None:
        return
    outside = ((low < bounds[index, 0] - 0.01) | (high > bounds[index, 1] + 0.01)).any(axis=1)
    if outside.any():
        bad = int(index[outside][0])
        raise InputError(f"frame {bad} of {path} decodes to coordinates outside the range its header "
                         f"declares: its compressed data are corrupt; cut it off with --stop {bad} or repair the file")


def _timestep_blocks(reader, visit: range, block: dict, subset: np.ndarray | None,
                     velocity_atoms: np.ndarray | None, prepare, path: Path):
    """Fill ``block`` from MDAnalysis timesteps of frames ``visit``, a chunk at a time, and ``prepare`` it; yields
    the frames filled and views of them.

    ``subset``: the atoms to read (default all); ``velocity_atoms``: those whose velocities to read, or None.
    Box rows (``dimensions``, when the block has them) of frames without a box stay NaN. Raises
    :func:`~mdforecast.mdio.read_error` (naming ``path``) when the reader fails.
    """
    size, n, frame = len(block["frame"]), 0, visit.start
    boxes = "dimensions" in block
    try:
        for ts in reader[visit.start:visit.stop:visit.step]:
            frame = block["frame"][n] = ts.frame
            if subset is None:
                block["position"][n] = ts.positions
            else:
                np.take(ts.positions, subset, axis=0, out=block["position"][n])
            if velocity_atoms is not None:
                np.take(ts.velocities, velocity_atoms, axis=0, out=block["velocity"][n])
            if boxes and ts.dimensions is not None:
                block["dimensions"][n] = ts.dimensions
            block["time"][n] = ts.time
            block["step"][n] = ts.data.get("step", frame)
            n += 1
            if n == size:
                yield n, _prepared(block, n, prepare)
                n = 0
                if boxes:
                    block["dimensions"].fill(np.nan)
    except (OSError, EOFError) as err:
        raise read_error(path, frame, err) from err
    if n:
        yield n, _prepared(block, n, prepare)


def _prepared(block: dict, n: int, prepare) -> dict:
    part = {key: value[:n] for key, value in block.items()}
    prepare(part)
    return part


def _with_dimensions(prepare, boxes: bool):
    """``prepare`` for blocks decoded by :class:`XTCFrames`, which hold box vectors: first fills their
    ``dimensions`` as MDAnalysis would (converting one box once while it stays the same, as in NVT)."""
    last = None

    def run(part: dict[str, np.ndarray]) -> None:
        nonlocal last
        if boxes:
            vectors = part["box"]
            if last is not None and (vectors == last[0]).all():  # the same box: convert it once
                part["dimensions"][:] = last[1]
            else:
                part["dimensions"][:] = dimensions_from_box(vectors)
                last = (vectors[-1].copy(), part["dimensions"][-1].copy()) if (vectors == vectors[-1]).all() else None
        prepare(part)

    return run
