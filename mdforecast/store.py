"""The trajectory store: the only module that touches zarr.

A store is a zarr v3 group (a local directory or any URL zarr/fsspec accepts) holding one system: one
topology and one or more trajectories, each in the H5MD layout (see ``docs/store-format.md``)::

    STORE/                                   attrs: mdforecast {format_version, units, trajectories, split, ...}
      topology/{names, resnames, resids, types, elements, segids, masses, charges, bonds}
      trajectories/NAME/                     attrs: mdforecast {dt_ps, unwrapped, source, sha256, ...}
        particles/all/position/value         (frames, atoms, 3) float32, Å
        particles/all/position/step          (frames,) int64
        particles/all/position/time          (frames,) float64, ps
        particles/all/position/frame         (frames,) float64   (optional: frame index each frame stands for)
        particles/all/velocity/value         (frames, atoms, 3) float32, Å/ps   (optional)
        particles/all/box/edges/value        (frames, 3) or (frames, 3, 3) float32, Å   (optional)

Arrays are chunked along frames (about 1 MiB per chunk) and compressed, so reading a window of frames reads
few chunks and never the whole trajectory. A trajectory becomes visible only when it is committed (listed in
the root attributes); a new local store is written under a temporary name and renamed at the end. A local store's
files are written without zarr (:class:`_LocalNodes`: the same files zarr writes), a URL's through zarr.

Damage is refused, never read as data: every chunk carries a CRC-32C checksum (stores written before it have
none), a trajectory whose chunks are missing cannot be opened, and local writers hold a lock file
``.NAME.lock`` next to the store, so a second writer is refused instead of interleaving.

Shapes use T frames, N atoms.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import queue
import shutil
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .version import __version__
from .errors import FormatVersionError, InputError, StoreError
from .guards import check_replaceable, locked, os_errors, process_alive, refuse_links, signals_deferred
from .topology import Topology


def _import_on_first_use(name: str):
    """Module ``name``, executed on first attribute access (importlib's LazyLoader): zarr takes about 0.2 s
    to import, which ``import mdforecast`` does not pay, nor does writing a new local store (ingest), whose
    files :class:`_LocalNodes` writes itself; reading a store imports it."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


zarr = _import_on_first_use("zarr")

__all__ = ["FORMAT_VERSION", "UNITS", "Store", "Trajectory", "TrajectoryWriter", "writing"]

#: version of the on-disk layout; a reader refuses stores with a larger number
FORMAT_VERSION = 1
#: the units of every stored quantity (MDAnalysis base units)
UNITS = {"length": "angstrom", "time": "ps", "velocity": "angstrom/ps", "mass": "u", "charge": "e"}
_CHUNK_BYTES = 1 << 20
#: chunks a TrajectoryWriter queues for its writing thread before append() waits
_PENDING = 2
_ATTRS = "mdforecast"
_PARTICLES = "particles/all"


def is_remote(path: str | os.PathLike) -> bool:
    """True for URLs (``s3://…``, ``memory://…``); False for local paths."""
    return "://" in str(path)


#: Blosc's settings for every trajectory array: lz4 with byte shuffle is fast enough to keep up with XTC decoding
_BLOSC = {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "blocksize": 0}


@functools.cache
def _compressors() -> tuple:
    """Blosc (:data:`_BLOSC`) and a CRC-32C checksum: the codecs of every trajectory array (as zarr objects).
    The checksum is verified before blosc sees a chunk."""
    return zarr.codecs.BloscCodec(**_BLOSC), zarr.codecs.Crc32cCodec()


def _codecs(array: zarr.Array) -> list[type]:
    """The types of a zarr v3 array's codecs (Blosc, and CRC-32C in stores written since checksums)."""
    return [type(c) for c in getattr(array.metadata, "codecs", ())]


def frames_per_chunk(n_atoms: int) -> int:
    """Frames per stored chunk of positions of ``n_atoms`` atoms (about 1 MiB, at most 1024 frames)."""
    return int(np.clip(_CHUNK_BYTES // max(1, n_atoms * 12), 1, 1024))


class Trajectory:
    """A read-only view of one stored trajectory. Nothing is loaded until asked for.

    Frame arguments follow Python slices: ``positions(start, stop, stride)`` returns frames
    ``start:stop:stride`` as ``(T, N, 3)`` float32 Å, reading only the chunks that hold them.
    """

    def __init__(self, name: str, group: zarr.Group, atoms: np.ndarray | None = None, store: str = "") -> None:
        self.name = name
        self._group = group
        self._where = f"trajectory {name!r}" + (f" of {store}" if store else "")
        try:
            self._particles = group[_PARTICLES]
            self._position = self._particles["position/value"]
        except KeyError as err:
            raise StoreError(f"{self._where} has no positions: the store is damaged; restore it from a backup or "
                             "re-create it") from err
        self._atoms = atoms  # indices of the atoms this view shows (Store.subset), None: all
        self._check_chunks()

    def _check_chunks(self) -> None:
        """Refuse a trajectory with missing chunks (zarr would read them as zeros). Value arrays are checked
        in every store; steps, times and frame indices where written with checksums (their chunks are all
        stored; earlier stores skipped chunks of zeros)."""
        arrays = [("position/value", self._position)]
        arrays += [(path, self._particles[path]) for path in ("position/step", "position/time", "position/frame",
                                                              "velocity/value", "box/edges/value")
                   if path in self._particles]
        for path, arr in arrays:
            if not (path.endswith("value") or zarr.codecs.Crc32cCodec in _codecs(arr)):
                continue
            missing = arr.nchunks - arr.nchunks_initialized
            if missing > 0:
                raise StoreError(f"{self._where} is damaged: {missing} of the {arr.nchunks} chunks of {path} are "
                                 "missing; restore the store from a backup or re-create it")

    def __repr__(self) -> str:
        return f"Trajectory({self.name!r}, frames={self.n_frames}, atoms={self.n_atoms})"

    @property
    def attrs(self) -> dict:
        """Provenance and settings of this trajectory (``dt_ps``, ``unwrapped``, ``source``, …)."""
        return dict(self._group.attrs.get(_ATTRS, {}))

    @property
    def n_frames(self) -> int:
        return self._position.shape[0]

    @property
    def dt_ps(self) -> float | None:
        """Time between stored frames, ps; ``None`` when unknown (the source recorded no time step)."""
        value = self.attrs.get("dt_ps")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    @property
    def n_atoms(self) -> int:
        return self._position.shape[1] if self._atoms is None else len(self._atoms)

    @property
    def has_velocities(self) -> bool:
        return "velocity" in self._particles

    @property
    def has_box(self) -> bool:
        return "box" in self._particles

    def _read(self, array: zarr.Array, start: int | None, stop: int | None, stride: int | None) -> np.ndarray:
        codecs = _codecs(array)
        if zarr.codecs.BloscCodec in codecs and zarr.codecs.Crc32cCodec not in codecs:
            self._check_blosc_sizes(array, range(*slice(start, stop, stride).indices(array.shape[0])))
        try:
            return np.asarray(array[slice(start, stop, stride)])
        except (ValueError, RuntimeError) as err:  # a checksum mismatch, or a chunk blosc cannot decode
            raise StoreError(f"{self._where} is damaged: a chunk of {array.path.split(_PARTICLES + '/')[-1]} "
                             f"cannot be read ({str(err).splitlines()[0][:80]}); restore the store from a backup "
                             "or re-create it") from err

    def _check_blosc_sizes(self, array: zarr.Array, rows: range) -> None:
        """Stores written before checksums: refuse a local chunk whose size differs from the size its blosc header
        records (blosc's decoder crashes the process on a truncated chunk). A chunk garbled in place passes."""
        if not isinstance(array.store, zarr.storage.LocalStore) or not len(rows):
            return
        per_chunk, zeros = array.chunks[0], (0,) * (array.ndim - 1)
        for index in range(min(rows[0], rows[-1]) // per_chunk, max(rows[0], rows[-1]) // per_chunk + 1):
            path = Path(array.store.root) / array.path / array.metadata.encode_chunk_key((index, *zeros))
            try:
                with open(path, "rb") as handle:
                    header = handle.read(16)
                    size = os.fstat(handle.fileno()).st_size
            except FileNotFoundError:
                continue  # never written (all fill value) in these stores; value arrays are checked on opening
            if len(header) < 16 or int.from_bytes(header[12:16], "little") != size:
                raise StoreError(f"{self._where} is damaged: chunk {index} of "
                                 f"{array.path.split(_PARTICLES + '/')[-1]} is truncated or garbled; restore the "
                                 "store from a backup or re-create it")

    def _read_atoms(self, array: zarr.Array, start: int | None, stop: int | None, stride: int | None) -> np.ndarray:
        data = self._read(array, start, stop, stride)
        return data if self._atoms is None else data[:, self._atoms]

    def positions(self, start: int | None = None, stop: int | None = None, stride: int | None = None) -> np.ndarray:
        """Unwrapped positions ``(T, N, 3)`` float32, Å."""
        return self._read_atoms(self._position, start, stop, stride)

    def velocities(self, start: int | None = None, stop: int | None = None, stride: int | None = None) -> np.ndarray:
        """Velocities ``(T, N, 3)`` float32, Å/ps; raises :class:`InputError` when the trajectory has none."""
        if not self.has_velocities:
            raise InputError(f"trajectory {self.name!r} has no velocities; ingest a file that stores them (TRR, H5MD, NetCDF)")
        return self._read_atoms(self._particles["velocity/value"], start, stop, stride)

    def boxes(self, start: int | None = None, stop: int | None = None, stride: int | None = None) -> np.ndarray | None:
        """Box per frame: edges ``(T, 3)`` or vectors ``(T, 3, 3)`` float32, Å; ``None`` without a box."""
        if not self.has_box:
            return None
        return self._read(self._particles["box/edges/value"], start, stop, stride)

    def times(self, start: int | None = None, stop: int | None = None, stride: int | None = None) -> np.ndarray:
        """Time of each frame ``(T,)`` float64, ps."""
        return self._read(self._particles["position/time"], start, stop, stride)

    def steps(self, start: int | None = None, stop: int | None = None, stride: int | None = None) -> np.ndarray:
        """Integration step of each frame ``(T,)`` int64."""
        return self._read(self._particles["position/step"], start, stop, stride)

    def frame_index(self, start: int | None = None, stop: int | None = None, stride: int | None = None) -> np.ndarray:
        """The frame index each stored frame stands for ``(T,)`` float64.

        Forecasts store it (the truth trajectory's frame times they answer, possibly non-integer); for
        other trajectories it is the position in the store, ``0, 1, 2, …``.
        """
        if self.indexed:
            return self._read(self._particles["position/frame"], start, stop, stride)
        return np.arange(self.n_frames, dtype=np.float64)[slice(start, stop, stride)]

    @property
    def indexed(self) -> bool:
        """Whether stored frames record the frame index they stand for (forecasts, sampled truths)."""
        return "frame" in self._particles["position"]

    @property
    def span(self) -> int:
        """Frames the trajectory covers: one past its last frame index (``n_frames`` unless it is a sample)."""
        if not self.indexed or not self.n_frames:
            return self.n_frames
        return int(np.floor(self.frame_index(self.n_frames - 1)[0])) + 1

    @functools.cached_property
    def _frames(self) -> np.ndarray:
        """Every stored frame's index, read once (``rows_of`` is called block by block while scoring)."""
        return self.frame_index()

    def rows_of(self, frames: np.ndarray) -> np.ndarray:
        """Stored row ``(K,)`` int64 of each trajectory frame in ``frames``, −1 where it holds no such frame
        (non-integer times, frames outside it, or frames a sampled trajectory left out)."""
        frames = np.asarray(frames, dtype=np.float64)
        if not self.indexed:
            ok = (frames == np.round(frames)) & (frames >= 0) & (frames < self.n_frames)
            return np.where(ok, frames, -1).astype(np.int64)
        index = self._frames  # sorted: a forecast or a sample is written in time order
        if not len(index):
            return np.full(frames.shape, -1, np.int64)
        rows = np.minimum(np.searchsorted(index, frames), len(index) - 1)
        return np.where(index[rows] == frames, rows, -1).astype(np.int64)

    @property
    def frames_per_chunk(self) -> int:
        return self._position.chunks[0]


class TrajectoryWriter:
    """Appends frames to a new trajectory, one chunk at a time; visible only after :meth:`commit`.

    Use through :meth:`Store.add_trajectory` as a context manager: leaving the block normally commits,
    an exception (Ctrl-C included) deletes what was written. Chunks are compressed and written by a thread
    while the caller prepares the next ones; a write error surfaces at the next append or at commit.
    """

    def __init__(self, store: "Store", name: str, *, velocities: bool, box: tuple[int, ...] | None, attrs: dict,
                 frame_index: bool = False, expected_frames: int = 0) -> None:
        self._store, self.name = store, name
        self._nodes, self._path = nodes, path = store._nodes, f"trajectories/{name}"
        nodes.delete(path)  # an uncommitted leftover of a killed run, if any
        nodes.group(path, {_ATTRS: attrs})
        n_atoms = store.topology.n_atoms
        chunk = frames_per_chunk(n_atoms)
        # per-frame arrays without an atom axis (steps, times, boxes: at most 72 bytes a frame) hold a whole
        # multiple of that many frames per chunk, at most about 1 MiB: a few files per trajectory, not hundreds
        small = chunk * max(1, _CHUNK_BYTES // 72 // chunk)
        particles = f"{path}/{_PARTICLES}"

        def array(where: str, shape: tuple[int, ...], dtype, unit: str | None):
            frames = chunk if len(shape) == 2 and shape[0] == n_atoms else small
            # every chunk stored (a gap is damage)
            return nodes.array(f"{particles}/{where}", shape=(expected_frames,) + shape, chunks=(frames,) + shape,
                               dtype=dtype, trajectory=True, attrs={"unit": unit} if unit else {})

        self._arrays = {"position": array("position/value", (n_atoms, 3), "float32", "angstrom"),
                        "step": array("position/step", (), "int64", None),
                        "time": array("position/time", (), "float64", "ps")}
        if frame_index:
            self._arrays["frame"] = array("position/frame", (), "float64", None)
        if velocities:
            self._arrays["velocity"] = array("velocity/value", (n_atoms, 3), "float32", "angstrom ps-1")
        if box is not None:
            nodes.group(f"{particles}/box", {"dimension": 3, "boundary": ["periodic"] * 3})
            self._arrays["box"] = array("box/edges/value", box, "float32", "angstrom")
        self._chunk = chunk
        # appended frames not yet handed to the writing thread, per array; each array gets whole chunks of its
        # own (the last one at commit), so every chunk is written once
        self._held: dict[str, list[np.ndarray]] = {k: [] for k in self._arrays}
        self._handed = dict.fromkeys(self._arrays, 0)  # frames handed to the writing thread, per array
        self._appended = 0
        self._positions_digest = hashlib.sha256()  # of the positions written, float32 little-endian, in frame order
        # compression and writes run in a thread (blosc and CRC-32C release the GIL) while the caller
        # produces the next chunk; at most _PENDING chunks wait, so memory stays bounded
        self._pending: queue.Queue = queue.Queue(maxsize=_PENDING)
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None
        self._cancelled = False

    @property
    def n_frames(self) -> int:
        """Frames written (or queued for writing) so far: whole chunks until :meth:`commit`, then all."""
        return self._handed["position"]

    @property
    def _buffered(self) -> int:
        """Frames appended but held until they fill a chunk."""
        return self._appended - self.n_frames

    def append(self, positions: np.ndarray, times: np.ndarray, steps: np.ndarray,
               velocities: np.ndarray | None = None, boxes: np.ndarray | None = None,
               frames: np.ndarray | None = None) -> None:
        """Add frames: positions ``(T, N, 3)`` Å, times ``(T,)`` ps, steps ``(T,)``, and, when the trajectory
        has them, velocities ``(T, N, 3)`` Å/ps, boxes ``(T, 3)``/``(T, 3, 3)`` Å, frame indices ``(T,)``."""
        given = {"position": positions, "time": times, "step": steps, "velocity": velocities, "box": boxes,
                 "frame": frames}
        for key in self._arrays:
            if given[key] is None:
                raise ValueError(f"this trajectory stores {key}; append() needs it")
            self._held[key].append(np.array(given[key], dtype=self._arrays[key].dtype))  # copy: readers reuse buffers
        self._appended += len(positions)
        if self._buffered >= self._chunk:
            self._flush()

    def _flush(self, last: bool = False) -> None:
        """Hand every array's held frames that fill whole chunks of its own (all of them with ``last``) to the
        writing thread, which waits while :data:`_PENDING` blocks are queued."""
        self._check_failed()
        blocks: dict[tuple[int, int], dict[str, np.ndarray]] = {}
        for key, arr in self._arrays.items():
            lo, chunk = self._handed[key], arr.chunks[0]
            hi = self._appended if last else lo + (self._appended - lo) // chunk * chunk
            if hi > lo:
                parts = self._held[key]
                held = parts[0] if len(parts) == 1 else np.concatenate(parts)
                blocks.setdefault((lo, hi), {})[key] = held[:hi - lo]
                self._held[key] = [held[hi - lo:]] if hi < self._appended else []
                self._handed[key] = hi
        for (lo, hi), block in blocks.items():
            self._put(block, lo, hi)

    def _put(self, blocks: dict[str, np.ndarray], lo: int, hi: int) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=f"mdforecast-write-{self.name}", daemon=True)
            self._thread.start()
        self._pending.put((blocks, lo, hi))

    def _work(self) -> None:
        """The writing thread: writes queued chunks in order until ``None``; the first error stops writing."""
        while (item := self._pending.get()) is not None:
            if self._failed is None and not self._cancelled:
                try:
                    self._write(*item)
                except BaseException as err:  # reported to the caller by _check_failed
                    self._failed = err

    def _drain(self) -> None:
        """Wait until every queued chunk is written (or skipped, once cancelled) and stop the writing thread."""
        if self._thread is not None:
            self._pending.put(None)
            self._thread.join()
            self._thread = None

    def _check_failed(self) -> None:
        """Raise, as a one-line :class:`StoreError`, the error that stopped the writing thread."""
        err = self._failed
        if err is None:
            return
        if isinstance(err, OSError):
            if err.errno == errno.ENOSPC:
                raise StoreError(f"disk full while writing {self._store.path}; free space or write elsewhere "
                                 "with -o") from err
            raise StoreError(f"cannot write {self._store.path}: {err}; check the path and permissions") from err
        raise err

    @property
    def frames_per_chunk(self) -> int:
        """Frames per stored chunk: append blocks of this size for the fewest writes."""
        return self._chunk

    def _write(self, blocks: dict[str, np.ndarray], lo: int, hi: int) -> None:
        """Write frames [lo, hi) of the arrays in ``blocks`` (whole chunks of each, the last one possibly its
        edge): the only place frames reach the disk."""
        for key, values in blocks.items():
            arr = self._arrays[key]
            if hi > arr.shape[0]:  # more frames than expected: grow (appends arrive in order)
                arr.resize(hi)
            arr.write(lo, values)
        if "position" in blocks:  # blocks are written in frame order
            self._positions_digest.update(np.ascontiguousarray(blocks["position"], dtype="<f4").data)

    def set_attrs(self, **attrs) -> None:
        """Add provenance to the trajectory's attributes (e.g. ``sha256`` known only at the end)."""
        self._nodes.update_attrs(self._path, {_ATTRS: {**self._nodes.attrs(self._path)[_ATTRS], **attrs}})

    def commit(self) -> None:
        """Write the last frames and make the trajectory visible in the store."""
        self._flush(last=True)
        self._drain()
        self._check_failed()
        if self.n_frames == 0:
            raise InputError(f"trajectory {self.name!r} has no frames; check --start/--stop/--stride and the file")
        for arr in self._arrays.values():
            if arr.shape[0] != self.n_frames:  # fewer frames than expected
                arr.resize(self.n_frames)
        self.set_attrs(positions_sha256=self._positions_digest.hexdigest())  # the data, whatever its source
        names = self._store.trajectory_names
        self._store._set_attrs(trajectories=names + [self.name])

    def abort(self) -> None:
        """Delete everything written for this trajectory (chunks still queued are not written)."""
        self._cancelled = True
        self._drain()
        self._nodes.delete(self._path)


class _ZarrNodes:
    """Creates and updates a store's groups and arrays through zarr's API (stores at URLs). Paths are relative
    to the store's root group ``""``; arrays are those of :class:`_LocalNodes`."""

    def __init__(self, store: "Store") -> None:
        self._store = store

    @property
    def _root(self) -> zarr.Group:
        return self._store._group

    def _node(self, path: str):
        return self._root[path] if path else self._root

    def attrs(self, path: str) -> dict:
        return dict(self._node(path).attrs)

    def group(self, path: str, attrs: dict) -> None:
        (self._root.require_group(path) if path else self._root).attrs.update(attrs)

    def update_attrs(self, path: str, attrs: dict) -> None:
        self._node(path).attrs.update(attrs)

    def array(self, path: str, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype, trajectory: bool,
              attrs: dict) -> "_ZarrArray":
        options = {"compressors": _compressors(), "config": {"write_empty_chunks": True}} if trajectory else {}
        array = self._root.create_array(path, shape=shape, chunks=chunks, dtype=dtype, **options)
        if attrs:
            array.attrs.update(attrs)
        return _ZarrArray(array)

    def delete(self, path: str) -> None:
        parent, _, name = path.rpartition("/")
        if name in self._node(parent):
            del self._node(parent)[name]


class _ZarrArray:
    """An array being written through zarr; see :class:`_LocalArray`."""

    def __init__(self, array: zarr.Array) -> None:
        self._array, self.dtype, self.chunks = array, array.dtype, array.chunks

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    def resize(self, frames: int) -> None:
        self._array.resize((frames,) + self._array.shape[1:])

    def write(self, lo: int, values: np.ndarray) -> None:
        self._array[lo:lo + len(values)] = values


class _LocalNodes:
    """Creates and updates a local store's groups and arrays as zarr v3 files, without zarr: a ``zarr.json``
    per node and a file per chunk, the documents and bytes that :class:`_ZarrNodes` has zarr write
    (``tests/test_store.py`` compares them file by file). Importing zarr and going through its asynchronous
    machinery cost about 0.3 s of CPU per new store (half the time plain MDAnalysis takes to read 2,000
    frames); this costs milliseconds. Metadata is replaced atomically (a temporary file renamed), as zarr
    does; a chunk file is written in place: a trajectory is visible only once committed, and an aborted one
    is deleted whole."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _file(self, path: str) -> Path:
        return self._root / path / "zarr.json"

    def attrs(self, path: str) -> dict:
        return json.loads(self._file(path).read_bytes())["attributes"]

    def _put(self, path: str, document: dict) -> None:
        """Write ``document`` as the ``zarr.json`` of node ``path``, and an empty group for every parent that has
        none (zarr creates those implicitly)."""
        parts = path.split("/") if path else []
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if not self._file(parent).is_file():
                self._put(parent, _group_document({}))
        file = self._file(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_name(f".zarr.json.partial-{os.getpid()}-{threading.get_ident()}")
        partial.write_bytes(json.dumps(document, indent=2, allow_nan=True, default=_json_value).encode())
        os.replace(partial, file)

    def group(self, path: str, attrs: dict) -> None:
        self._put(path, _group_document(attrs))

    def update_attrs(self, path: str, attrs: dict) -> None:
        document = json.loads(self._file(path).read_bytes())
        document["attributes"].update(attrs)
        self._put(path, document)

    def array(self, path: str, *, shape: tuple[int, ...], chunks: tuple[int, ...], dtype, trajectory: bool,
              attrs: dict) -> "_LocalArray":
        """A new array: ``trajectory`` arrays are compressed with :data:`_BLOSC` and checksummed, and store
        every chunk; others (the topology's) get zarr's defaults: zstd, and no chunk that holds only the fill
        value. ``dtype`` ``str`` stores strings."""
        strings = dtype is str
        dtype = np.dtype(object if strings else dtype)
        serializer = ({"name": "vlen-utf8", "configuration": {}} if strings else
                      {"name": "bytes", "configuration": {"endian": "little"}})
        codecs = [serializer] + ([{"name": "blosc", "configuration": {"typesize": dtype.itemsize, **_BLOSC}},
                                  {"name": "crc32c"}] if trajectory else
                                 [{"name": "zstd", "configuration": {"level": 0, "checksum": False}}])
        fill = "" if strings else False if dtype.kind == "b" else 0.0 if dtype.kind in "fc" else 0
        document = {"shape": list(shape), "data_type": "string" if strings else dtype.name,
                    "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
                    "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
                    "fill_value": fill, "codecs": codecs, "attributes": attrs, "zarr_format": 3,
                    "node_type": "array", "storage_transformers": []}
        self._put(path, document)
        return _LocalArray(self, path, document, dtype, all_chunks=trajectory)

    def delete(self, path: str) -> None:
        shutil.rmtree(self._root / path, ignore_errors=True)


def _group_document(attrs: dict) -> dict:
    return {"attributes": attrs, "zarr_format": 3, "node_type": "group"}


def _json_value(value):
    """JSON for the numpy values attributes may hold (as zarr converts them)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} cannot be stored as an attribute")


class _LocalArray:
    """An array of a local store (:class:`_LocalNodes`): writes chunks as its codecs say. Chunks are along the
    first axis; an edge chunk is stored at the full chunk shape, padded with the fill value, as zarr does."""

    def __init__(self, nodes: _LocalNodes, path: str, document: dict, dtype: np.dtype, all_chunks: bool) -> None:
        self._nodes, self._path, self._document, self.dtype = nodes, path, document, dtype
        self._directory = nodes._root / path
        self.chunks = tuple(document["chunk_grid"]["configuration"]["chunk_shape"])
        self._fill, self._all_chunks = document["fill_value"], all_chunks
        self._encode = _encoder(document["codecs"], dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._document["shape"])

    def resize(self, frames: int) -> None:
        """Change the length of the first axis (chunks beyond it are never written: appends come in order)."""
        self._document["shape"][0] = frames
        self._nodes._put(self._path, self._document)

    def write(self, lo: int, values: np.ndarray) -> None:
        """Write ``values`` as the rows from ``lo`` on, a multiple of the chunk length: whole chunks, the last of
        which may be the array's edge."""
        chunk = self.chunks[0]
        if not values.size:
            return
        for start in range(0, len(values), chunk):
            part = values[start:start + chunk]
            if len(part) < chunk:
                part = np.concatenate([part, np.full((chunk - len(part),) + part.shape[1:], self._fill, part.dtype)])
            if not self._all_chunks and (part == self._fill).all():  # zarr's default: no chunk of fill values
                continue
            key = "/".join(["c", str((lo + start) // chunk)] + ["0"] * (len(self.chunks) - 1))
            path = self._directory / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self._encode(part))


def _encoder(codecs: list[dict], dtype: np.dtype):
    """The function encoding a chunk ``(chunk shape)`` of ``dtype`` into its stored bytes, as the zarr v3
    ``codecs`` documents of :meth:`_LocalNodes.array` say (zarr encodes them with the same numcodecs)."""
    import google_crc32c
    from numcodecs import Blosc, VLenUTF8, Zstd

    steps = []
    for codec in codecs:
        name, config = codec["name"], codec.get("configuration", {})
        if name == "bytes":
            little = dtype.newbyteorder("<")
            steps.append(lambda a: np.ascontiguousarray(a, dtype=little).reshape(-1).view(np.uint8))
        elif name == "vlen-utf8":
            steps.append(lambda a: VLenUTF8().encode(np.asarray(a, dtype=object).reshape(-1)))
        elif name == "blosc":
            shuffle = {"noshuffle": Blosc.NOSHUFFLE, "shuffle": Blosc.SHUFFLE, "bitshuffle": Blosc.BITSHUFFLE}
            steps.append(Blosc(cname=config["cname"], clevel=config["clevel"], shuffle=shuffle[config["shuffle"]],
                               blocksize=config["blocksize"], typesize=config["typesize"]).encode)
        elif name == "zstd":
            steps.append(Zstd(level=config["level"], checksum=config["checksum"]).encode)
        elif name == "crc32c":
            steps.append(lambda b: (packed := bytes(b)) + google_crc32c.value(packed).to_bytes(4, "little"))
        else:
            raise ValueError(f"no encoder for the zarr codec {name!r}")

    def encode(values: np.ndarray) -> bytes:
        for step in steps:
            values = step(values)
        return bytes(values)

    return encode


class Store:
    """One system's topology and trajectories in a zarr v3 group. Open with :meth:`open` or :func:`writing`."""

    def __init__(self, group: zarr.Group | None, path: str, atoms: np.ndarray | None = None, *, mode: str = "r",
                 topology: Topology | None = None) -> None:
        self._opened = group  # None: opened (in ``mode``) when first read through zarr
        self._mode = mode
        self.path = path
        self._topology = topology
        self._atoms = atoms  # indices of the atoms this view shows (subset), None: all
        # what writes (and reads the attributes of) groups and arrays: files for a local store, zarr for a URL
        self._nodes = _ZarrNodes(self) if is_remote(path) else _LocalNodes(Path(path))

    @property
    def _group(self) -> zarr.Group:
        if self._opened is None:
            self._opened = zarr.open_group(store=self.path, mode=self._mode)
        return self._opened

    def __repr__(self) -> str:
        return f"Store({self.path!r}, atoms={self.topology.n_atoms}, trajectories={self.trajectory_names})"

    @classmethod
    def open(cls, path: str | os.PathLike, mode: str = "r") -> "Store":
        """Open an existing store (``mode`` ``'r'`` or ``'r+'``); clear errors for anything else."""
        path = str(path)
        if not is_remote(path) and not Path(path).exists():
            raise StoreError(f"store {path} does not exist; create it with `mdforecast ingest TRAJ --top TOP -o {path}`")
        try:
            group = zarr.open_group(store=path, mode=mode)
        except (FileNotFoundError, ValueError, KeyError, TypeError, zarr.errors.GroupNotFoundError) as err:
            raise StoreError(f"{path} is not a readable mdforecast store ({err}); re-create it with `mdforecast ingest`") from err
        if group.metadata.zarr_format != 3:  # mdforecast reads and writes a local store's zarr.json files itself
            raise StoreError(f"{path} is a zarr v{group.metadata.zarr_format} group, not an mdforecast store (zarr v3); "
                             "create one with `mdforecast ingest`")
        attrs = group.attrs.get(_ATTRS)
        if not isinstance(attrs, dict) or "format_version" not in attrs:
            raise StoreError(f"{path} is a zarr group but not an mdforecast store; create one with `mdforecast ingest`")
        version, names = attrs["format_version"], attrs.get("trajectories")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1 or not isinstance(names, list):
            raise StoreError(f"store {path} has damaged attributes (format_version {version!r}, trajectories "
                             f"{type(names).__name__}); restore it from a backup or re-create it with `mdforecast ingest`")
        if "topology" not in group or "trajectories" not in group:
            raise StoreError(f"store {path} lacks its topology or trajectories group; restore it from a backup or "
                             "re-create it with `mdforecast ingest`")
        if version > FORMAT_VERSION:
            raise FormatVersionError(
                f"store {path} has format version {attrs['format_version']}, newer than this mdforecast "
                f"({__version__}) reads ({FORMAT_VERSION}); upgrade: pip install -U mdforecast")
        return cls(group, path, mode=mode)

    @classmethod
    def _create(cls, path: str, topology: Topology, attrs: dict) -> "Store":
        """A new store at ``path`` (a local one: a directory that does not exist) holding ``topology``."""
        if is_remote(path):
            store = cls(zarr.open_group(store=path, mode="w"), path, mode="r+", topology=topology)
        else:
            Path(path).mkdir()
            store = cls(None, path, mode="r+", topology=topology)
        nodes = store._nodes
        nodes.group("", {"h5md": {"version": [1, 1], "creator": {"name": "mdforecast", "version": __version__}},
                         _ATTRS: {"format_version": FORMAT_VERSION, "mdforecast_version": __version__,
                                  "units": UNITS, "trajectories": [], "split": None, **attrs}})
        nodes.group("topology", {"n_atoms": topology.n_atoms})
        for name, values in topology.fields().items():
            values = np.asarray(values)
            strings = values.dtype.kind in "UT"  # fixed-width or (read back from a store) variable-width
            nodes.array(f"topology/{name}", shape=values.shape, chunks=values.shape,
                        dtype=str if strings else values.dtype, trajectory=False, attrs={}).write(0, values)
        nodes.group("trajectories", {})
        return store

    # -- metadata ---------------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        """Store-level attributes: ``format_version``, ``units``, ``split``, provenance."""
        return dict(self._nodes.attrs("")[_ATTRS])

    def _set_attrs(self, **attrs) -> None:
        self._writable()
        self._nodes.update_attrs("", {_ATTRS: {**self.attrs, **attrs}})

    def update_attrs(self, **attrs) -> None:
        """Merge ``attrs`` into the store-level attributes (reserved keys are refused)."""
        reserved = {"format_version", "trajectories", "units"} & set(attrs)
        if reserved:
            raise ValueError(f"{sorted(reserved)} are managed by the store")
        self._set_attrs(**attrs)

    @property
    def topology(self) -> Topology:
        if self._topology is None:
            top = self._group["topology"]
            self._topology = Topology(**{name: np.asarray(arr[...]) for name, arr in top.arrays()})
            if self._atoms is not None:
                self._topology = self._topology.subset(self._atoms)
        return self._topology

    def subset(self, atoms: np.ndarray) -> "Store":
        """A read-only view of atoms ``atoms`` ``(M,)`` (indices, increasing) of this store: its topology and
        every trajectory's positions and velocities show those atoms only; boxes, times and attributes are
        the store's. Writing through the view is refused."""
        atoms = np.asarray(atoms, dtype=np.int64)
        if self._atoms is not None:
            atoms = self._atoms[atoms]
        if not len(atoms) or (np.diff(atoms) <= 0).any() or atoms[0] < 0 or atoms[-1] >= self._n_stored_atoms:
            raise InputError(f"an atom subset must be increasing indices below {self._n_stored_atoms}")
        return Store(self._opened, self.path, atoms, mode=self._mode)

    @property
    def _n_stored_atoms(self) -> int:
        return self._group["topology"]["names"].shape[0]

    def _writable(self) -> None:
        if self._atoms is not None:
            raise StoreError(f"a subset view of {self.path} is read-only; write to the store itself")
        if self._mode == "r":
            raise StoreError(f"store {self.path} was opened read-only; open it with mode='r+' to change it")

    @property
    def split(self) -> dict[str, list[str]] | None:
        """``{'train': [...], 'test': [...]}`` trajectory names, or ``None`` when unknown."""
        return self.attrs.get("split")

    def set_split(self, train: list[str], test: list[str]) -> None:
        unknown = (set(train) | set(test)) - set(self.trajectory_names)
        if unknown:
            raise InputError(f"split names unknown trajectories {sorted(unknown)}; the store has {self.trajectory_names}")
        self._set_attrs(split={"train": list(train), "test": list(test)})

    # -- trajectories -----------------------------------------------------------------------------------
    @property
    def trajectory_names(self) -> list[str]:
        """Committed trajectories, in the order they were added."""
        return list(self.attrs["trajectories"])

    def trajectory(self, name: str | None = None) -> Trajectory:
        """The trajectory ``name`` (default: the first one)."""
        names = self.trajectory_names
        if not names:
            raise StoreError(f"store {self.path} has no trajectories; add one with `mdforecast ingest --append`")
        name = names[0] if name is None else name
        if name not in names:
            raise InputError(f"store {self.path} has no trajectory {name!r}; it has {', '.join(names)}")
        try:
            group = self._group["trajectories"][name]
        except KeyError as err:
            raise StoreError(f"store {self.path} lists trajectory {name!r} but holds no data for it: the store is "
                             "damaged; restore it from a backup or re-create it") from err
        return Trajectory(name, group, self._atoms, self.path)

    def remove_trajectories(self, names: Sequence[str]) -> None:
        """Delete trajectories ``names`` from the store (unlisted first, then their data)."""
        self._set_attrs(trajectories=[n for n in self.trajectory_names if n not in set(names)])
        for name in names:
            self._nodes.delete(f"trajectories/{name}")

    def __iter__(self) -> Iterator[Trajectory]:
        return (self.trajectory(name) for name in self.trajectory_names)

    @contextlib.contextmanager
    def add_trajectory(self, name: str, *, velocities: bool, box: tuple[int, ...] | None,
                       attrs: dict | None = None, frame_index: bool = False,
                       expected_frames: int = 0) -> Iterator[TrajectoryWriter]:
        """Write a new trajectory: committed when the block ends normally, deleted if it raises.

        ``box`` is ``(3,)`` for edges, ``(3, 3)`` for box vectors, ``None`` without a box. With
        ``frame_index`` every appended frame also records the (real-valued) frame index it stands for.
        ``expected_frames`` pre-sizes the arrays when the frame count is known (faster; more frames still
        fit, fewer are trimmed at commit).
        """
        self._writable()
        if name in self.trajectory_names:
            raise StoreError(f"store {self.path} already has a trajectory {name!r}; pick another --name")
        if not name or "/" in name or name.startswith("."):
            raise InputError(f"invalid trajectory name {name!r}; use letters, digits, '-' and '_'")
        writer = TrajectoryWriter(self, name, velocities=velocities, box=box, attrs=attrs or {},
                                  frame_index=frame_index, expected_frames=expected_frames)
        try:
            yield writer
            writer.commit()
        except BaseException:
            writer.abort()
            raise


@contextlib.contextmanager
def writing(path: str | os.PathLike, *, topology: Topology, attrs: dict | None = None,
            mode: str = "create") -> Iterator[Store]:
    """Open a store for writing; nothing half-written remains if the block raises (Ctrl-C included).

    ``mode``: ``'create'`` (refuse an existing path), ``'overwrite'`` (replace it at the end; only a store
    mdforecast wrote, never another directory, file or link) or ``'append'`` (add trajectories to an existing
    store of the same system). A new local store is built under a temporary name next to ``path`` and renamed
    into place when the block succeeds. A local writer holds ``.NAME.lock`` next to ``path``: a second writer
    of the same store is refused. Temporary stores ``.NAME.partial-PID`` of writers that no longer run (killed
    outright) are removed.
    """
    path = str(path)
    if mode not in ("create", "overwrite", "append"):
        raise ValueError(f"mode must be 'create', 'overwrite' or 'append', got {mode!r}")
    if is_remote(path):
        with _writing_remote(path, topology, attrs or {}, mode) as store:
            yield store
        return
    target = Path(path)
    if target.name in ("", ".", ".."):
        raise InputError(f"-o {path} names a directory, not a store; give a new store path like {path}/out.zarr")
    with locked(target):
        exists = target.exists() or target.is_symlink()
        if mode == "append":
            if not exists:
                raise StoreError(f"cannot append: store {path} does not exist; drop --append to create it")
            store = Store.open(path, mode="r+")
            refuse_links(target)
            _check_same_system(store, topology)
            yield store
            return
        if exists and mode == "create":
            raise StoreError(f"{path} already exists; pass --force to replace it or --append to add to it")
        if exists:
            check_replaceable(target)
        tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
        _remove_stale_partials(target)
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with os_errors(path):
                store = Store._create(str(tmp), topology, attrs or {})
            yield store
            with os_errors(path), signals_deferred():
                if exists:
                    old = target.with_name(f".{target.name}.old-{os.getpid()}")
                    os.replace(target, old)
                    os.replace(tmp, target)
                    shutil.rmtree(old)
                else:
                    os.replace(tmp, target)
            store.__init__(None, path, topology=store.topology)  # the renamed store, opened when read
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_stale_partials(target: Path) -> None:
    """Delete ``.NAME.partial-PID`` folders next to ``target`` whose writer ``PID`` no longer runs (a process killed
    before it could clean up, e.g. by SIGKILL or a power cut). Called under the writer's lock."""
    prefix = f".{target.name}.partial-"
    try:
        names = [name for name in os.listdir(target.parent) if name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):]
        if pid.isdigit() and not process_alive(int(pid)) and not (target.parent / name).is_symlink():
            shutil.rmtree(target.parent / name, ignore_errors=True)


@contextlib.contextmanager
def _writing_remote(path: str, topology: Topology, attrs: dict, mode: str) -> Iterator[Store]:
    """:func:`writing` for a URL: no temporary name, no lock; a failed new store is left an empty group."""
    exists = _remote_exists(path)
    if mode == "append":
        if not exists:
            raise StoreError(f"cannot append: store {path} does not exist; drop --append to create it")
        store = Store.open(path, mode="r+")
        _check_same_system(store, topology)
        yield store
        return
    if exists and mode == "create":
        raise StoreError(f"{path} already exists; pass --force to replace it or --append to add to it")
    store = Store._create(path, topology, attrs)
    try:
        yield store
    except BaseException:
        zarr.open_group(store=path, mode="w")  # leave an empty group, not a partial store
        raise


def _check_same_system(store: Store, topology: Topology) -> None:
    if not store.topology.same_system(topology):
        raise InputError(f"cannot append: the trajectory's system ({topology.n_atoms} atoms, "
                         f"{topology.composition()}) differs from store {store.path}'s ({store.topology.n_atoms} "
                         f"atoms, {store.topology.composition()}); write it to a new store with -o")


def _remote_exists(path: str) -> bool:
    try:
        zarr.open_group(store=path, mode="r")
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return False
    return True
