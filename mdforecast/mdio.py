"""Reading and writing MD files through MDAnalysis, with mdforecast's errors at the boundary.

MDAnalysis does the format work (its registry of readers and writers is the one list of formats); this
module turns its many exception types and warnings into one-line :class:`InputError` messages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import math
import mmap
import os
import re
import signal
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .errors import InputError
from .pbc import box_vectors, is_orthorhombic

__all__ = ["MIN_BOX_EDGE", "open_universe", "read_error", "select_atoms", "select_indices", "stored_boxes", "box_shape", "guess_bonds", "molecules", "time_step",
           "check_xtc", "XTCIndex", "XTCFrames", "quiet"]

#: the shortest box edge ingest accepts, Å (no periodic system is smaller; PDB's 1 Å placeholder box is
#: read by MDAnalysis as no box)
MIN_BOX_EDGE = 1.0
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


def read_error(path: str | Path, frame: int, cause) -> InputError:
    """The one-line error for a trajectory the reader could not read at ``frame`` (``cause``: its error)."""
    return InputError(f"cannot read {path} at frame {frame}: {cause}; the file may be truncated, try --stop {frame}")


def _require_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} {path} not found; check the path")
    if not path.is_file():
        raise InputError(f"{what} {path} is not a file; give the path of a {what} file")
    return path


def _format_of(path: Path) -> str | None:
    """MDAnalysis' format name for ``path`` from its extension, or None (MDAnalysis then guesses and reports).

    Naming it skips MDAnalysis' format hints, which import OpenMM (tens of ms) to test whether a file name is
    an OpenMM object."""
    from MDAnalysis.lib.util import guess_format

    try:
        return guess_format(str(path))
    except ValueError:
        return None


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
            top_format = _format_of(top)
            universe = mda.Universe(str(top), topology_format=top_format,
                                    format=fmt if fmt and topology is None else top_format)
        except _READ_ERRORS as err:
            hint = "give a topology MDAnalysis reads (PDB, GRO, PSF, PRMTOP, TPR, …) with --top"
            if topology is None:
                hint = "this file has no topology; " + hint
            raise InputError(f"cannot read topology {top}: {_first_line(err)}; {hint}") from err
        if topology is not None:
            try:
                universe.load_new(str(trajectory), format=fmt or _format_of(trajectory))
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
    if not hasattr(universe.atoms, "resids"):
        raise InputError(f"{top} holds coordinates but no topology (atom names, residues); pass the "
                         "topology it was written with: --top FILE (PDB, GRO, PSF, PRMTOP, TPR, …)")
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


def select_indices(topology, selection: str, source: str | Path) -> np.ndarray:
    """Indices ``(M,)`` int64, increasing, of the atoms of ``topology`` (a :class:`~mdforecast.topology.Topology`)
    that the MDAnalysis ``selection`` matches; one-line :class:`InputError` for bad syntax or no match."""
    return np.asarray(select_atoms(topology.to_universe(), selection, source).indices, dtype=np.int64)


def box_shape(dimensions) -> tuple[int, ...] | None:
    """How a box is stored: ``(3,)`` edges for orthorhombic, ``(3, 3)`` vectors for triclinic, ``None`` for none."""
    if dimensions is None or not np.any(np.asarray(dimensions[:3]) > 0):
        return None
    return (3,) if is_orthorhombic(dimensions) else (3, 3)


def stored_boxes(dimensions: np.ndarray, shape: tuple[int, ...], frames: np.ndarray, source: str | Path) -> np.ndarray:
    """Boxes of a block of frames in the stored ``shape``, Å, from MDAnalysis ``dimensions`` ``(T, 6)``.

    NaN rows mark frames without a box. Refuses a box that vanishes or turns triclinic mid-trajectory, and a
    degenerate one: an edge shorter than :data:`MIN_BOX_EDGE` Å, or vectors that span no volume.
    """
    vanished = ~(np.nan_to_num(dimensions[:, :3]) > 0).any(axis=1)
    if vanished.any():
        raise InputError(f"frame {frames[vanished][0]} of {source} has no box while earlier frames had one; "
                         "ingest with --no-unwrap or split the file where the box disappears")
    small = ~(dimensions[:, :3] >= MIN_BOX_EDGE).all(axis=1)  # NaN: small
    if small.any():
        raise InputError(f"frame {frames[small][0]} of {source} has a degenerate box (edges "
                         f"{np.round(dimensions[small][0][:3], 4).tolist()} Å; each must be at least {MIN_BOX_EDGE:g} Å), "
                         "which would fold positions wrongly; repair the box in the file")
    if shape == (3,):
        skewed = ~np.all(np.abs(dimensions[:, 3:6] - 90.0) < 1e-3, axis=1)
        if skewed.any():
            raise InputError(f"frame {frames[skewed][0]} of {source} has a triclinic box while earlier frames "
                             "were orthorhombic; split the file at that frame and ingest the parts separately")
        return dimensions[:, :3].astype(np.float32)
    vectors = box_vectors(dimensions)
    flat = ~(np.abs(np.linalg.det(vectors)) > 1e-6 * np.prod(dimensions[:, :3], axis=1))
    if flat.any():
        raise InputError(f"frame {frames[flat][0]} of {source} has a flat box (angles {dimensions[flat][0][3:]} make "
                         "its vectors coplanar); repair the box or ingest with --no-unwrap")
    return vectors.astype(np.float32)


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


def molecules(universe, atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The atoms to unwrap so that the molecules of ``atoms`` come out whole, and their bonds.

    Returns the universe indices of every atom of a bonded fragment that ``atoms`` touches ``(M,)``, the bonds
    among them renumbered to positions in that list ``(B, 2)``, and where ``atoms`` sit in it ``(n,)``. A
    selection of some atoms of a molecule (``name CA``) is thus placed by the bonds through the others.
    """
    if not hasattr(universe, "bonds") or not len(universe.bonds):
        return atoms.indices, np.zeros((0, 2), dtype=np.int64), np.arange(atoms.n_atoms)
    if atoms.n_atoms == universe.atoms.n_atoms:  # every atom (indices 0..N-1): no fragment search needed
        return atoms.indices, np.asarray(universe.bonds.indices, dtype=np.int64), np.arange(atoms.n_atoms)
    with quiet():
        fragment = np.asarray(universe.atoms.fragindices)
    needed = np.flatnonzero(np.isin(fragment, fragment[atoms.indices]))
    renumber = np.full(universe.atoms.n_atoms, -1)
    renumber[needed] = np.arange(len(needed))
    bonds = renumber[np.asarray(universe.bonds.indices, dtype=np.int64)]
    return needed, bonds[(bonds >= 0).all(axis=1)], renumber[atoms.indices]


def time_step(reader) -> float | None:
    """The time between frames of ``reader`` in ps as the file records it, or ``None`` when it records none
    (MDAnalysis then assumes 1 ps and warns) or a step that is not positive."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dt = float(reader.dt)
    if any("no dt information" in str(w.message) for w in caught) or not np.isfinite(dt) or dt <= 0:
        return None
    return dt


_XTC_HEADER = struct.Struct(">iiif9fi")  # magic, natoms, step, time, box (nm), natoms: 56 bytes
_XTC_COORDS = struct.Struct(">f3i3iii")  # precision, minint, maxint, smallidx, compressed bytes: 36 bytes
_XTC_FRAME = struct.Struct(_XTC_HEADER.format + _XTC_COORDS.format.lstrip(">"))  # both: 92 bytes
_XTC_WALK = struct.Struct(">ii44xi32xi")  # magic, natoms, natoms again, compressed bytes: what finds the next frame
_XTC_DTYPE = np.dtype([("magic", ">i4"), ("natoms", ">i4"), ("step", ">i4"), ("time", ">f4"), ("box", ">f4", 9),
                       ("natoms_again", ">i4"), ("precision", ">f4"), ("minint", ">i4", 3), ("maxint", ">i4", 3),
                       ("smallidx", ">i4"), ("nbytes", ">i4")])  # _XTC_FRAME as a numpy record
_XTC_MAGIC, _XTC_SMALLIDX = 1995, range(9, 73)  # smallidx indexes xdrfile's table of 73 magic integers


@dataclasses.dataclass(frozen=True)
class XTCIndex:
    """What the frame headers of an XTC file declare, per complete frame (F frames): ``offsets`` ``(F,)`` int64
    bytes, ``times`` ``(F,)`` float64 ps, ``boxes`` ``(F, 3, 3)`` float64 Å (vectors as rows; zeros: no box),
    ``bounds`` ``(F, 2, 3)`` float64 Å (lowest and highest x, y, z; infinite for uncompressed frames of ≤ 9
    atoms), ``n_atoms``, and ``note``: a one-line warning when the file ends in an incomplete frame, else None."""

    offsets: np.ndarray
    times: np.ndarray
    boxes: np.ndarray
    bounds: np.ndarray
    n_atoms: int
    note: str | None

    @property
    def dt_ps(self) -> float | None:
        """Time between the first two frames, ps (as MDAnalysis reports it), or None when not positive."""
        if len(self.times) < 2:
            return None
        dt = float(self.times[1] - self.times[0])
        return dt if np.isfinite(dt) and dt > 0 else None


def check_xtc(path: str | Path) -> XTCIndex:
    """Walk the frame headers of an XTC file before anything decodes it (about a µs per frame).

    xdrfile's C decoder trusts these headers: a garbled one can kill the process (SIGFPE, heap corruption).
    Raises :class:`InputError` at the first frame whose header is not XTC or holds impossible values (an atom
    count unlike the first frame's, non-finite or absurd box or time, impossible compression parameters).
    Returns the :class:`XTCIndex`: where each complete frame starts, its time, box and the coordinate range
    it declares (against which decoded coordinates can be checked). Garbled compressed coordinates behind a
    valid header pass; decode them with :class:`XTCFrames`, which survives the decoder's crash.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:  # nothing to walk (and nothing to map); MDAnalysis reports the empty file
        return XTCIndex(np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 3, 3)), np.zeros((0, 2, 3)), 0, None)
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        n_atoms = _XTC_HEADER.unpack_from(data)[1] if size >= _XTC_HEADER.size else 0
        # fast walk: only what finds the next frame is checked here (magic number, atom counts, compressed
        # size); the other header values of all frames are checked at once below
        starts, offset = [], 0
        if n_atoms > 9:
            walk, limit = _XTC_WALK.unpack_from, 16 * n_atoms + 64
            while offset + _XTC_FRAME.size <= size:
                magic, natoms, natoms_again, nbytes = walk(data, offset)
                end = offset + _XTC_FRAME.size + (nbytes + 3) // 4 * 4
                if magic != _XTC_MAGIC or natoms != n_atoms or natoms_again != n_atoms or not 0 <= nbytes <= limit \
                        or end > size:
                    break  # the careful walk below names what is wrong
                starts.append(offset)
                offset = end
        starts = np.array(starts, dtype=np.int64)
        raw = np.frombuffer(data, np.uint8)[starts[:, None] + np.arange(_XTC_FRAME.size)]
        header = raw.view(_XTC_DTYPE)[:, 0]
        time, box = header["time"].astype(np.float64), header["box"].astype(np.float64)
        precision, smallidx = header["precision"].astype(np.float64), header["smallidx"]
        low, high = header["minint"].astype(np.float64), header["maxint"].astype(np.float64)
        values = np.concatenate([time[:, None], box], axis=1)
        ok = (np.isfinite(values) & (values < 1e6) & (values > -1e6)).all(axis=1) & np.isfinite(precision) \
            & (precision > 0) & (smallidx >= _XTC_SMALLIDX.start) & (smallidx < _XTC_SMALLIDX.stop) \
            & ((high - low >= 0) & (high - low < 2**31 - 1)).all(axis=1)
        if not ok.all():  # the careful walk of the first such frame raises the error naming it
            first = int(np.argmin(ok))
            _check_xtc_frame(path, data, int(starts[first]), first, n_atoms)
        scale = 10.0 / precision[:, None]
        rows = [np.concatenate([starts[:, None], time[:, None], box, low * scale, high * scale], axis=1)]
        note = None
        while offset < size:  # careful walk: frames of ≤ 9 atoms, the frame the fast walk stopped at, the end
            length, row = _check_xtc_frame(path, data, offset, len(starts) + len(rows) - 1, n_atoms)
            if row is None:
                note = (f"{path} ends in an incomplete frame ({size - offset} bytes from byte {offset}); it was "
                        f"dropped and the {len(starts) + len(rows) - 1} complete frames were read")
                break
            rows.append(np.array([row], dtype=np.float64))
            offset += length
    table = np.concatenate(rows)
    return XTCIndex(offsets=table[:, 0].astype(np.int64), times=table[:, 1], boxes=10.0 * table[:, 2:11].reshape(-1, 3, 3),
                    bounds=table[:, 11:].reshape(-1, 2, 3), n_atoms=n_atoms, note=note)


def _check_xtc_frame(path: Path, data, offset: int, frame: int, n_atoms: int) -> tuple[int, list | None]:
    """Check the header of frame ``frame`` of XTC file ``path`` (mapped as ``data``) at byte ``offset`` against
    the first frame's atom count ``n_atoms``. Returns the frame's length in bytes and its row: offset, time
    (ps), box (9 values, nm), lowest and highest x, y, z (Å); the row is None when the file ends inside the
    frame. Raises :class:`InputError` naming the frame."""

    def bad(what: str) -> InputError:
        return InputError(f"{path} is not a valid XTC file: frame {frame} (byte {offset}) {what}; the file "
                          f"is corrupt; repair it or cut it off before with --stop {frame}")

    raw = data[offset:offset + _XTC_FRAME.size]
    if len(raw) < _XTC_HEADER.size:
        return len(raw), None
    magic, natoms, _, time, *box, natoms_again = _XTC_HEADER.unpack_from(raw)
    if magic != _XTC_MAGIC:
        raise bad(f"does not start with the XTC magic number {_XTC_MAGIC} (found {magic})")
    if natoms != n_atoms or natoms_again != n_atoms or n_atoms <= 0:
        raise bad(f"has {natoms} atoms where frame 0 has {n_atoms}")
    if not (math.isfinite(time + sum(box)) and max(time, *box) < 1e6 and min(time, *box) > -1e6):
        raise bad(f"has a non-finite or absurd time or box ({time} ps, box {box} nm)")
    if natoms <= 9:  # stored uncompressed
        length, limits = _XTC_HEADER.size + 12 * natoms, [-math.inf] * 3 + [math.inf] * 3
    elif len(raw) < _XTC_FRAME.size:
        return len(raw) + 1, None
    else:
        precision, x0, y0, z0, x1, y1, z1, smallidx, nbytes = _XTC_COORDS.unpack_from(raw, _XTC_HEADER.size)
        if not (math.isfinite(precision) and precision > 0) or smallidx not in _XTC_SMALLIDX \
                or not (0 <= x1 - x0 < 2**31 - 1 and 0 <= y1 - y0 < 2**31 - 1 and 0 <= z1 - z0 < 2**31 - 1) \
                or not 0 <= nbytes <= 16 * natoms + 64:
            raise bad("has impossible compression parameters")
        scale = 10.0 / precision
        length, limits = len(raw) + (nbytes + 3) // 4 * 4, [x0 * scale, y0 * scale, z0 * scale,
                                                             x1 * scale, y1 * scale, z1 * scale]
    if offset + length > len(data):
        return length, None
    return length, [offset, time, *box, *limits]


class XTCFrames:
    """Decodes frames of an XTC file in a forked child process, a block at a time, into shared memory.

    xdrfile's C decoder trusts the compressed coordinates: corrupt ones behind a valid header can kill the
    process (SIGFPE, SIGSEGV) where no Python code can catch it. Here only the child dies, and the caller gets
    an :class:`InputError` naming the file and the frame. The child also decodes (and ``prepare``\ s) the next
    block while the caller works on the last one: two cores share the work. Iterate once; every block is
    reused once the iteration moves on.

    Args:
        path: the XTC file. frames: the frames to decode, increasing (a range).
        offsets: byte offset of every frame (:attr:`XTCIndex.offsets`); needed unless ``frames`` starts at 0.
        atoms: the atom indices to keep ``(M,)``, or ``None`` for all. size: frames per block.
        fields: more per-frame arrays in each block, name to (shape of a frame's value, dtype), for ``prepare``.
        prepare: called in the child with each decoded block (the dict yielded below) before it is handed over;
            it may change the block in place (e.g. unwrap positions) and fill ``fields``. An
            :class:`InputError` it raises reaches the caller with its message.

    Yields ``n`` and the block, a dict of views of its first ``n`` frames: ``frame`` ``(n,)`` int64,
    ``position`` ``(n, M, 3)`` float32 Å, ``box`` ``(n, 3, 3)`` float32 Å (box vectors as rows; zeros without a
    box), ``time`` ``(n,)`` float64 ps, ``step`` ``(n,)`` int64, and ``fields``.
    """

    #: blocks in shared memory: one the caller holds, one being decoded, the others ready (decoding runs
    #: ahead while the caller sets up, or waits for its disk)
    SLOTS = 8
    # (slot, frames) ready; (-1, 0) done; (-2, frame) read error, (-3, frame) prepare's InputError, (-4, frame)
    # another error of prepare's: text follows
    _MESSAGE = struct.Struct("=qq")

    def __init__(self, path: str | Path, frames: range, *, offsets: np.ndarray | None, atoms: np.ndarray | None,
                 n_atoms: int, size: int, fields: dict[str, tuple[tuple[int, ...], type]] | None = None,
                 prepare: Callable[[dict[str, np.ndarray]], None] | None = None) -> None:
        self.path, self.frames, self.offsets, self.atoms, self.size = Path(path), frames, offsets, atoms, size
        self.n_atoms, self.prepare = n_atoms, prepare
        self._child: tuple[int, int, int] | None = None  # the decoding process and the pipes to it, once started
        width = n_atoms if atoms is None else len(atoms)
        self._fields = {"frame": ((), np.int64), "position": ((width, 3), np.float32),
                        "box": ((3, 3), np.float32), "time": ((), np.float64), "step": ((), np.int64),
                        **(fields or {})}
        slot_bytes = sum(size * int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                         for shape, dtype in self._fields.values())
        # shared between parent and child (an anonymous mapping is MAP_SHARED); 8 bytes first: the frame being decoded
        self._memory = mmap.mmap(-1, 8 + self.SLOTS * slot_bytes)
        self._current = np.frombuffer(self._memory, np.int64, 1)
        self._slots, at = [], 8
        for _ in range(self.SLOTS):
            slot = {}
            for key, (shape, dtype) in self._fields.items():
                count = size * int(np.prod(shape, dtype=np.int64))
                slot[key] = np.frombuffer(self._memory, dtype, count, at).reshape((size,) + shape)
                at += count * np.dtype(dtype).itemsize
            self._slots.append(slot)

    def start(self) -> None:
        """Fork the decoding process now (iterating does it otherwise), so that it decodes ahead while the
        caller does other work; :meth:`close` ends it if the iteration never runs."""
        if self._child is not None:
            return
        from MDAnalysis.lib.formats.libmdaxdr import XTCFile  # imported here, once: the child inherits it

        ready_r, ready_w = os.pipe()
        free_r, free_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: decode, report, never return into the caller's code
            code = 0
            try:
                os.close(ready_r)
                os.close(free_w)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which ends the child
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                faulthandler.disable()  # the C library's dying words are not for the user
                os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
                self._decode(XTCFile, ready_w, free_r)
            except BaseException:  # noqa: BLE001  (the parent reports the exit status; a traceback would be noise)
                code = 1
            finally:
                os._exit(code)
        os.close(ready_w)
        os.close(free_r)
        self._child = (pid, ready_r, free_w)

    def close(self) -> None:
        """End the decoding process (killing it if it still runs) and close the pipes to it."""
        if self._child is not None:
            pid, ready_r, free_w = self._child
            self._child = None
            os.close(ready_r)
            os.close(free_w)
            _end(pid)

    def __iter__(self):
        self.start()
        pid, ready_r, free_w = self._child
        try:
            while True:
                message = _read_exactly(ready_r, self._MESSAGE.size)
                if len(message) < self._MESSAGE.size:
                    raise self._died(pid)
                slot, count = self._MESSAGE.unpack(message)
                if slot == -1:
                    return
                if slot < -1:
                    text = _read_exactly(ready_r, 4096).decode("utf-8", "replace")
                    if slot == -3:
                        raise InputError(text)
                    if slot == -4:
                        raise RuntimeError(f"preparing frames of {self.path} near frame {count} failed: {text}")
                    raise read_error(self.path, count, text)
                yield count, {key: value[:count] for key, value in self._slots[slot].items()}
                with contextlib.suppress(BrokenPipeError):  # not after the child's last block: it has exited
                    os.write(free_w, struct.pack("=q", slot))
        finally:
            self.close()

    def _decode(self, XTCFile, ready_w: int, free_r: int) -> None:  # noqa: N803  (MDAnalysis' class)
        """The child's loop: decode into free slots, report each full one; a read error is reported as text."""
        free, frame = list(range(self.SLOTS)), self.frames.start
        try:
            xdr = XTCFile(str(self.path))
            if self.offsets is not None:
                xdr.set_offsets(self.offsets)
            scratch = np.empty((self.n_atoms, 3), np.float32) if self.atoms is not None else None
            slot_id = free.pop(0)
            slot, n = self._slots[slot_id], 0
            if self.frames.start:
                xdr.seek(self.frames.start)
            for frame in self.frames:
                self._current[0] = frame
                if self.frames.step > 1 and frame != self.frames.start:
                    xdr.seek(frame)
                if scratch is None:
                    record = xdr.read_direct_x(slot["position"][n])
                else:
                    record = xdr.read_direct_x(scratch)
                    np.take(scratch, self.atoms, axis=0, out=slot["position"][n])
                slot["frame"][n], slot["time"][n], slot["step"][n] = frame, record.time, record.step
                slot["box"][n] = record.box
                n += 1
                if n == self.size or frame == self.frames[-1]:
                    slot["position"][:n] *= np.float32(10.0)  # nm to Å, as MDAnalysis scales (float32)
                    slot["box"][:n] *= np.float32(10.0)
                    if self.prepare is not None:
                        try:
                            self.prepare({key: value[:n] for key, value in slot.items()})
                        except InputError as err:
                            os.write(ready_w, self._MESSAGE.pack(-3, frame) + str(err).encode()[:4096])
                            return
                        except Exception as err:  # noqa: BLE001  (a bug: the caller raises it with its text)
                            os.write(ready_w, self._MESSAGE.pack(-4, frame)
                                     + f"{type(err).__name__}: {err}".encode()[:4096])
                            return
                    os.write(ready_w, self._MESSAGE.pack(slot_id, n))
                    if frame != self.frames[-1]:
                        if not free:  # wait for the parent to hand a block back (it has exited if it never does)
                            free.append(struct.unpack("=q", _read_exactly(free_r, 8, required=True))[0])
                        slot_id = free.pop(0)
                        slot, n = self._slots[slot_id], 0
        except (OSError, EOFError, ValueError) as err:
            os.write(ready_w, self._MESSAGE.pack(-2, frame) + str(err).encode()[:4096])
            return
        os.write(ready_w, self._MESSAGE.pack(-1, 0))

    def _died(self, pid: int) -> InputError:
        """The error for a child that stopped without reporting: killed by a signal while decoding a frame."""
        _, status = os.waitpid(pid, 0)
        frame = int(self._current[0])
        if not os.WIFSIGNALED(status):
            return InputError(f"the process decoding {self.path} stopped at frame {frame} without a reason (exit "
                              f"status {os.waitstatus_to_exitcode(status)}); try again, or cut the file off with "
                              f"--stop {frame}")
        return InputError(f"frame {frame} of {self.path} crashed MDAnalysis' XTC decoder "
                          f"({signal.Signals(os.WTERMSIG(status)).name}): its compressed coordinates are corrupt; cut "
                          f"it off with --stop {frame} or repair the file")


def _read_exactly(fd: int, size: int, *, required: bool = False) -> bytes:
    """``size`` bytes from the pipe ``fd``; fewer only at its end, which raises :class:`EOFError` if ``required``."""
    data = b""
    while len(data) < size:
        more = os.read(fd, size - len(data))
        if not more:
            if required:
                raise EOFError("the other end of the pipe went away")
            break
        data += more
    return data


def _end(pid: int) -> None:
    """Make sure the child ``pid`` has ended (killing it if it still runs) and reap it."""
    try:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:  # already reaped (_died)
        pass
