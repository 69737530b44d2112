"""``mdforecast datasets make``: a benchmark dataset into a store, resumable trajectory by trajectory.

The store is created empty first (topology and protocol in its attributes); every trajectory is committed
the moment it is finished, so a killed run loses only the trajectories in progress, and running the same
command again skips the committed ones. Only this (parent) process writes the store: with ``workers > 1``
each trajectory runs in its own process, pinned to a core on CPU platforms, and writes its frames to a
scratch directory beside the store that the parent then commits. The scratch directory also marks the store
as busy, so two runs cannot write the same store at once.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import InputError, MDForecastError, StoreError
from ..guards import process_alive
from ..progress import progress_bar
from ..store import Store, is_remote, writing
from . import simulation
from .simulation import Job
from .spec import SystemSpec
from .systems import SYSTEMS

__all__ = ["make", "MakeResult", "trajectory_names"]

_FRAMES_PER_SCRATCH_FILE = 256


@dataclasses.dataclass(frozen=True)
class MakeResult:
    """What :func:`make` did: the trajectories it simulated now and those the store already had."""

    store: str
    system: str
    n_atoms: int
    platform: str
    frames: int
    made: list[str]
    skipped: list[str]
    split: dict[str, list[str]] | None
    seconds: float

    def summary(self) -> str:
        if not self.made:
            return f"nothing to do: {self.store} already holds all {len(self.skipped)} trajectories of {self.system}"
        again = f" ({len(self.skipped)} were already there)" if self.skipped else ""
        return (f"simulated {len(self.made)} trajectories of {self.system} ({self.n_atoms} atoms, {self.frames} "
                f"frames each, OpenMM {self.platform}) into {self.store} in {self.seconds:.0f} s{again}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def trajectory_names(spec: SystemSpec, trajectories: int, twins: int) -> tuple[list[str], list[str], dict]:
    """Train names, test names and ``{twin name: test name}`` for a dataset of ``trajectories``."""
    names = [f"traj{i}" for i in range(trajectories)]
    n_test = spec.n_test(trajectories)
    test = names[trajectories - n_test:]
    twin_of = {f"{name}-twin{k}": name for name in test for k in range(1, twins + 1)}
    return names[:trajectories - n_test], test, twin_of


def _check(trajectories: int, frames: int, seed: int, twins: int, workers: int, equilibration_ps) -> None:
    for flag, value, least in (("--trajectories", trajectories, 2), ("--frames", frames, 5), ("--seed", seed, 0),
                               ("--twins", twins, 0), ("--workers", workers, 1)):
        if not isinstance(value, (int, np.integer)) or value < least:
            hint = " (one train and one test trajectory)" if flag == "--trajectories" else ""
            raise InputError(f"{flag} must be an integer ≥ {least}{hint}, got {value!r}")
    if equilibration_ps is not None and not equilibration_ps >= 0:
        raise InputError(f"equilibration_ps must be ≥ 0 ps, got {equilibration_ps!r}")


def _open_store(output: str, spec: SystemSpec, dataset: dict) -> Store:
    """Create the empty store, or open an existing one made with the same options."""
    if _exists(output):
        store = Store.open(output, "r+")
        recorded = store.attrs.get("dataset")
        if not isinstance(recorded, dict):
            raise StoreError(f"{output} exists and was not written by `mdforecast datasets make`; pick another -o")
        differ = [f"{key} {recorded.get(key)!r} (this run: {value!r})" for key, value in dataset.items()
                  if recorded.get(key) != value]
        if differ:
            raise StoreError(f"{output} was made with different options: {'; '.join(differ)}; rerun with the same "
                             "options to resume it, or write a new store with another -o")
        return store
    topology = spec.build(np.random.default_rng(dataset["seed"])).topology
    attrs = {"dataset": dataset, "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with writing(output, topology=topology, attrs=attrs, mode="create"):
        pass
    return Store.open(output, "r+")


def _exists(output: str) -> bool:
    if not is_remote(output):
        return Path(output).exists()
    try:
        Store.open(output)
    except StoreError:
        return False
    return True


@contextlib.contextmanager
def _scratch(output: str):
    """A scratch directory beside a local store (in the temp dir for a URL); refuses a store in use."""
    if is_remote(output):
        path = Path(tempfile.mkdtemp(prefix="mdforecast-make-"))
    else:
        target = Path(output).resolve()
        if not target.parent.is_dir():
            raise InputError(f"directory {target.parent} does not exist; create it or choose another -o")
        for other in target.parent.glob(f".{target.name}.make-*"):
            pid = int(other.name.rsplit("-", 1)[1]) if other.name.rsplit("-", 1)[1].isdigit() else 0
            if pid and pid != os.getpid() and process_alive(pid):
                raise StoreError(f"another `datasets make` (pid {pid}) is writing {output}; wait for it to finish, "
                                 f"or if none is running delete {other}")
            shutil.rmtree(other, ignore_errors=True)  # left by a killed run
        path = target.with_name(f".{target.name}.make-{os.getpid()}")
        path.mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def make(name: str, output: str | os.PathLike, *, trajectories: int | None = None, frames: int | None = None,
         seed: int = 0, platform: str = "auto", twins: int = 0, workers: int = 1, progress: bool = False,
         equilibration_ps: float | None = None) -> MakeResult:
    """Simulate benchmark system ``name`` into the store ``output`` (PROTOCOL.md), or resume doing so.

    Args:
        name: a key of :data:`mdforecast.datasets.SYSTEMS` (``lj``, ``tip3p``, ``tip4p``, ``ala2``).
        output: the store (local path or URL). If it exists it must come from the same options: its
            committed trajectories are kept and only the missing ones are simulated.
        trajectories, frames: per the protocol by default (8 × 10,000; ala2 3 × 10,000). The last
            ``n_test`` trajectories (3 of 8, 1 of 3; the same proportion otherwise) form the test split.
        seed: trajectory i draws its initial state and thermostat noise from ``seed + i``.
        platform: ``auto`` (the system's fastest usable platform), ``Reference``, ``CPU``, ``CUDA``, ``OpenCL``.
        twins: continuations of each test trajectory from its last observed frame (``frames // 5 − 1``),
            stored as ``trajN-twinK`` with frames ``frames // 5 …`` and attributes ``twin_of``,
            ``first_frame``. More twins can be added later by rerunning with a larger ``--twins``.
        workers: trajectories simulated at once, each in its own process (one per CPU core, or a few
            per GPU).
        progress: a progress bar on stderr (frames/s, ETA) and one line per finished trajectory.
        equilibration_ps: override the protocol's equilibration before frame 0 (for quick tests).
    """
    began = time.perf_counter()
    if name not in SYSTEMS:
        raise InputError(f"unknown system {name!r}; choose one of {', '.join(SYSTEMS)}")
    spec = SYSTEMS[name]
    trajectories = spec.trajectories if trajectories is None else trajectories
    frames = spec.frames if frames is None else frames
    _check(trajectories, frames, seed, twins, workers, equilibration_ps)
    platform = simulation.resolve_platform(spec, platform)
    output = str(output)
    npt, nvt = spec.equilibration_steps(equilibration_ps)
    dataset = {"system": spec.name, "trajectories": trajectories, "frames": frames, "seed": seed,
               "observed_frames": frames // 5, "equilibration_ps": (npt + nvt) * spec.timestep_ps,
               "protocol": spec.protocol()}
    train, test, twin_of = trajectory_names(spec, trajectories, twins)
    index = {n: i for i, n in enumerate(train + test)}
    with _scratch(output) as scratch:
        store = _open_store(output, spec, dataset)
        done = set(store.trajectory_names)
        ready = collections.deque(Job(spec.name, n, seed + index[n], frames, platform, equilibration_ps,
                                      capture_frame=frames // 5 - 1 if n in test else None)
                                  for n in test + train if n not in done)  # test first: their twins start early
        waiting = collections.defaultdict(list)  # test trajectory → its twins, until its restart state exists
        for twin, parent in twin_of.items():
            if twin not in done:
                waiting[parent].append(Job(spec.name, twin, seed + index[parent], frames - frames // 5, platform,
                                           twin=int(twin.rsplit("twin", 1)[1]), first_frame=frames // 5))

        def start_twins(parent: str, restart) -> None:
            """Queue ``parent``'s twins from its restart state ahead of the trajectories left: the longest chain
            (test trajectory → twin) starts first."""
            ready.extendleft(reversed([dataclasses.replace(j, restart=restart) for j in waiting.pop(parent, [])]))

        for parent in [p for p in waiting if p in done]:
            restart = store.trajectory(parent).attrs.get("restart")
            if restart is None:
                raise StoreError(f"{parent} in {output} has no saved state to start twins from; "
                                 "make a new store with --twins")
            start_twins(parent, restart["state"])
        total = sum(j.frames for j in ready) + sum(j.frames for js in waiting.values() for j in js)
        base = {"dt_ps": spec.frame_ps, "unwrapped": True, "system": spec.name,
                "source": f"mdforecast datasets make {spec.name}",
                "velocity_time": "half a step behind the positions" if spec.stochastic else "same as the positions"}
        made: list[str] = []

        def commit(job: Job, fill, started: float) -> None:
            """Write one trajectory: ``fill(writer)`` appends its frames and returns its attributes."""
            role = {"split": "test" if job.name in test else "train"}
            if job.twin:
                role = {"split": "twin", "twin_of": twin_of[job.name], "twin": job.twin, "first_frame": job.first_frame}
            with store.add_trajectory(job.name, velocities=True, box=(3,) if spec.periodic else None,
                                      attrs={**base, **role}) as writer:
                attrs = fill(writer)
                writer.set_attrs(**attrs)
            made.append(job.name)
            if "restart" in attrs:  # its twins can start now
                start_twins(job.name, attrs["restart"]["state"])
            if progress:
                seconds = time.perf_counter() - started
                print(f"{job.name}: {writer.n_frames} frames committed to {output} after {seconds:.0f} s "
                      f"({writer.n_frames / seconds:.1f} frames/s)", file=sys.stderr)

        with progress_bar(f"{spec.name} on {platform}", total, enabled=progress) as bar:
            if workers == 1:
                while ready:
                    job = ready.popleft()
                    commit(job, lambda writer, job=job: simulation.run(job, writer.append, bar.advance),
                           time.perf_counter())
            else:
                _run_workers(ready, commit, bar, scratch=scratch, workers=workers,
                             pin=platform in ("CPU", "Reference"))
        if all(n in store.trajectory_names for n in train + test):
            store.set_split(train, test)
        platforms = sorted(set(store.attrs.get("platforms", [])) | ({platform} if made else set()))
        store.update_attrs(platforms=platforms, openmm_version=simulation.openmm_version(),
                           twins=max(twins, store.attrs.get("twins", 0)))
    skipped = [n for n in store.trajectory_names if n not in made]
    return MakeResult(store=output, system=spec.name, n_atoms=store.topology.n_atoms, platform=platform,
                      frames=frames, made=made, skipped=skipped, split=store.split,
                      seconds=time.perf_counter() - began)


class _ScratchFiles:
    """A sink that writes frames to numbered ``.npz`` files of a directory (worker side)."""

    def __init__(self, directory: Path) -> None:
        self.directory, self._buffer, self._count = directory, [], 0

    def __call__(self, positions, times, steps, velocities, boxes) -> None:
        self._buffer.append((positions, times, steps, velocities, boxes))
        if len(self._buffer) >= _FRAMES_PER_SCRATCH_FILE:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        arrays = {key: np.concatenate([frame[i] for frame in self._buffer])
                  for i, key in enumerate(("positions", "times", "steps", "velocities", "boxes"))
                  if self._buffer[0][i] is not None}
        np.savez(self.directory / f"{self._count:06d}.npz", **arrays)
        self._buffer, self._count = [], self._count + 1

    @staticmethod
    def copy(directory: Path, writer) -> dict:
        """Append the frames of ``directory`` to a trajectory writer; return the worker's attributes."""
        for path in sorted(directory.glob("*.npz")):
            with np.load(path) as data:
                writer.append(data["positions"], data["times"], data["steps"], data["velocities"],
                              data["boxes"] if "boxes" in data else None)
        return json.loads((directory / "attrs.json").read_text())


def _worker(job: Job, directory: str, core: int | None, progress, parent: int) -> None:
    """Entry point of a worker process: simulate ``job`` into ``directory``, then write ``attrs.json``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which terminates the workers
    if core is not None:
        os.sched_setaffinity(0, {core})
    directory = Path(directory)

    def tick(n: int) -> None:
        if os.getppid() != parent:  # the parent was killed: stop, its scratch directory is gone anyway
            os._exit(1)
        progress.put(n)

    sink = _ScratchFiles(directory)
    try:
        attrs = simulation.run(job, sink, tick)
    except MDForecastError as err:
        (directory / "error.txt").write_text(str(err))
        sys.exit(1)
    sink.flush()
    (directory / "attrs.tmp").write_text(json.dumps(attrs))
    os.replace(directory / "attrs.tmp", directory / "attrs.json")


def _run_workers(ready, commit, bar, *, scratch: Path, workers: int, pin: bool) -> None:
    """Simulate up to ``workers`` jobs at once in spawned processes (pinned one per core with ``pin``, when
    there are enough cores); commit each as it finishes."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    cores = sorted(os.sched_getaffinity(0))
    pin = pin and workers <= len(cores)
    running: dict[int, tuple] = {}  # slot → (process, job, directory, start time)
    try:
        while ready or running:
            for slot in range(workers):
                if slot not in running and ready:
                    job = ready.popleft()
                    directory = scratch / job.name
                    directory.mkdir()
                    process = context.Process(target=_worker, daemon=True, name=f"mdforecast-{job.name}",
                                              args=(job, str(directory), cores[slot] if pin else None, queue,
                                                    os.getpid()))
                    process.start()
                    running[slot] = (process, job, directory, time.perf_counter())
            _drain(queue, bar, timeout=0.2)
            for slot, (process, job, directory, started) in list(running.items()):
                if process.is_alive():
                    continue
                process.join()
                _drain(queue, bar, timeout=0)
                del running[slot]
                if not (directory / "attrs.json").exists():
                    error = directory / "error.txt"
                    if error.exists():
                        raise MDForecastError(error.read_text())
                    raise MDForecastError(f"the worker simulating {job.name} died (exit code {process.exitcode}); "
                                          "run the same command again to resume")
                commit(job, lambda writer, d=directory: _ScratchFiles.copy(d, writer), started)
                shutil.rmtree(directory)
    finally:
        for process, *_ in running.values():
            process.terminate()
        for process, *_ in running.values():
            process.join()


def _drain(queue, bar, *, timeout: float) -> None:
    """Advance the progress bar by the frames workers reported."""
    import queue as queues

    try:
        bar.advance(queue.get(timeout=timeout) if timeout else queue.get_nowait())
        while True:
            bar.advance(queue.get_nowait())
    except queues.Empty:
        pass
