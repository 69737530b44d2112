"""Hostile inputs across every command: each case exits 1 (or 2 for a usage error, 130 when interrupted)
with one line on stderr and no traceback, and leaves the working directory exactly as it found it: nothing
lost, nothing changed, nothing (partial store, lock file, empty run directory) left behind."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import functools
import hashlib
import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import zarr

from mdsystems import waters
from synth import argon, make_store, random_walk

from mdforecast import ingest, predict
from mdforecast.model import DominoConfig
from mdforecast.training import TrainOptions

#: a tiny model for the training cases (they are refused before it trains)
TINY = {"observe": 16, "horizon": 24, "strides": [6, 1], "features": 8, "vectors": 4, "encoder_layers": 1,
        "radial": 4, "steps": 2, "lags": [1, 4], "context": 16, "epochs": 1, "batch": 4, "samples_per_epoch": 8}


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root`` (links not followed): its kind and content hash or link target. MDAnalysis'
    caches of XTC frame offsets (``.NAME_offsets.npz``), written by any read, are not ours and left out."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            if "_offsets." in name:
                continue
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return out


class Workspace:
    """Files a case needs, made on first use in the test's directory."""

    def __init__(self, root: Path, monkeypatch) -> None:
        self.root, self.monkeypatch = root, monkeypatch

    def __truediv__(self, name: str) -> Path:
        return self.root / name

    @functools.cached_property
    def store(self) -> Path:
        """Argon in a 20 Å box: training trajectory ``a``, test trajectory ``b``, 60 frames each."""
        make_store(self / "s.zarr", argon(6), {"a": random_walk(60, 6, seed=1), "b": random_walk(60, 6, seed=2)},
                   box=20.0, split=(["a"], ["b"]))
        return self / "s.zarr"

    @functools.cached_property
    def forecast(self) -> Path:
        predict(self.store, "persistence", self / "f.zarr", observe=20)
        return self / "f.zarr"

    @functools.cached_property
    def md(self) -> tuple[Path, Path]:
        """A wrapped DCD of 4 waters and its PDB topology."""
        return waters().write(self / "w.dcd", wrap=True, topology=self / "w.pdb"), self / "w.pdb"

    @functools.cached_property
    def water_store(self) -> Path:
        traj, top = self.md
        ingest([traj], self / "w.zarr", topology=top)
        return self / "w.zarr"

    def chunk(self, store: Path, trajectory: str) -> Path:
        return store / "trajectories" / trajectory / "particles/all/position/value/c/0/0/0"

    def edit_attrs(self, store: Path, **changes) -> Path:
        meta = json.loads((store / "zarr.json").read_text())
        meta["attributes"]["mdforecast"].update(changes)
        (store / "zarr.json").write_text(json.dumps(meta))
        return store

    def user_dir(self) -> Path:
        (self / "mydir").mkdir()
        (self / "mydir" / "notes.txt").write_text("a week of notes\n")
        return self / "mydir"

    def hold_lock(self, target: Path) -> None:
        """Lock ``target`` as a concurrent writer would (the lock is released when the test ends)."""
        fd = os.open(target.with_name(f".{target.name}.lock"), os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.monkeypatch.setattr(self, "_lock_fd", fd, raising=False)

    def config(self, **options) -> Path:
        lines = [f"{k} = {json.dumps(v)}" for k, v in {**TINY, **options}.items()]
        (self / "c.toml").write_text("\n".join(lines) + "\n")
        return self / "c.toml"

    def signal_during(self, cls, method: str, signum: int) -> None:
        """``cls.method`` sends ``signum`` to this process (as ``kill`` would), then does its work."""
        original = getattr(cls, method)

        def send(*args, **kwargs):
            os.kill(os.getpid(), signum)
            return original(*args, **kwargs)

        self.monkeypatch.setattr(cls, method, send)


def _ingest(ws, *extra):
    traj, top = ws.md
    return ["ingest", traj, "--top", top, "-q", *extra]


def _predict(ws, *extra):
    return ["predict", ws.store, "-m", "persistence", "--observe", "20", "-q", *extra]


def _train(ws, store=None, *extra):
    return ["train", store or ws.store, "-o", ws / "run", "-q", "--device", "cpu", *extra]


def _denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


def _read_only(ws):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only directories; 'output-unwritable' covers the refusal")
    (ws / "ro").mkdir()
    (ws / "ro").chmod(0o555)
    return _ingest(ws, "-o", ws / "ro" / "s.zarr")


def _linked_trajectories(ws):
    store = ws.water_store
    shutil.move(store / "trajectories", ws / "elsewhere")
    os.symlink(ws / "elsewhere", store / "trajectories")
    return _ingest(ws, "-o", store, "--append", "--name", "second")


def _another_simulation(ws):
    make_store(ws / "other.zarr", argon(6), {"a": random_walk(60, 6, seed=7), "b": random_walk(60, 6, seed=8)},
               box=20.0, split=(["a"], ["b"]))
    return ["evaluate", ws.forecast, "--truth", ws / "other.zarr", "-q"]


def _nan_store(ws):
    positions = random_walk(60, 6, seed=1)
    positions[5, 2] = np.nan
    make_store(ws / "nan.zarr", argon(6), {"a": positions, "b": random_walk(60, 6, seed=2)}, box=20.0,
               split=(["a"], ["b"]))
    return _train(ws, ws / "nan.zarr", "--config", ws.config())


def _box(ws, dimensions):
    system = dataclasses.replace(waters(), dimensions=np.array(dimensions, dtype=np.float32))
    system.write(ws / "box.dcd", topology=ws / "box.pdb")
    return ["ingest", ws / "box.dcd", "--top", ws / "box.pdb", "-o", ws / "box.zarr", "-q"]


def _pickled_state(ws):
    store = ws.store
    (ws / "run").mkdir()
    config = DominoConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY.items()
                             if k in {f.name for f in dataclasses.fields(DominoConfig)}}, kind_field="elements")
    options = TrainOptions(**{k: v for k, v in TINY.items() if k in {f.name for f in dataclasses.fields(TrainOptions)}})
    (ws / "run" / "state.json").write_text(json.dumps({
        "format": "mdforecast-train-state", "format_version": 1, "param_groups": [], "epoch": 1, "history": [],
        "best": None, "model_options": config.to_dict(), "train_options": dataclasses.asdict(options), "init": None}))
    (ws / "run" / "state.safetensors").write_bytes(pickle.dumps({"os.system": "echo pwned"}))
    return _train(ws, store, "--resume")


def _escaping_weights(ws):
    (ws / "run").mkdir()
    (ws / "run" / "model.json").write_text(json.dumps({"format": "mdforecast-model", "format_version": 1,
                                                       "weights": "../../etc/passwd", "weights_sha256": "0" * 64}))
    return ["predict", ws.store, "-m", ws / "run", "-o", ws / "out.zarr", "-q"]


def _full_disk(ws, writer: str, method):
    from MDAnalysis.coordinates import DCD, XTC

    cls = {"XTC": XTC.XTCWriter, "DCD": DCD.DCDWriter}[writer]
    ws.monkeypatch.setattr(cls, "_write_next_frame", method(cls._write_next_frame))
    return ["export", ws.store, "-o", ws / f"out.{writer.lower()}", "-q"]


def _enospc(original):
    def write(self, ag):
        raise OSError(errno.ENOSPC, "No space left on device")
    return write


def _drops_frames(original):  # libdcd ignores a failed fwrite: frames past the full disk vanish silently
    def write(self, ag):
        self.written = getattr(self, "written", 0) + 1
        if self.written <= 3:
            original(self, ag)
    return write


def _v2_group(ws, attrs):
    group = zarr.open_group(str(ws / "v2.zarr"), mode="w", zarr_format=2)
    group.attrs.update(attrs)
    return ["info", ws / "v2.zarr"]


def _foreign_group(ws):
    group = zarr.open_group(str(ws / "foreign.zarr"), mode="w")
    group.create_array("x", shape=(4,), dtype="f4")[:] = 1
    return ["predict", ws / "foreign.zarr", "-m", "persistence", "-o", ws / "out.zarr"]


def _garble(path: Path, truncate: bool = False) -> None:
    data = bytearray(path.read_bytes())
    if truncate:
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _kill(ws, what: str, signum: int):
    from mdforecast.forecasters.baselines import Persistence
    from mdforecast.store import TrajectoryWriter

    if what == "predict":
        ws.signal_during(Persistence, "predict", signum)
        return _predict(ws, "-o", ws / "out.zarr")
    if what == "ingest":
        ws.signal_during(TrajectoryWriter, "append", signum)
        return _ingest(ws, "-o", ws / "out.zarr")
    if what == "append":
        store = ws.water_store
        ws.signal_during(TrajectoryWriter, "append", signum)
        return _ingest(ws, "-o", store, "--append", "--name", "second")
    from MDAnalysis.coordinates.XTC import XTCWriter

    ws.signal_during(XTCWriter, "_write_next_frame", signum)
    return ["export", ws.store, "-o", ws / "out.xtc", "-q"]


def _train_interrupted(ws):
    import mdforecast.training

    def interrupted(run, epoch, bar):
        raise KeyboardInterrupt

    ws.monkeypatch.setattr(mdforecast.training, "_epoch", interrupted)
    return _train(ws, None, "--config", ws.config())


def _chunk_case(ws, command: str, damage: str):
    """Damage a chunk of the truth's test trajectory (or, for ``evaluate-forecast``, of the forecast)."""
    forecast = ws.forecast if command.startswith("evaluate") else None
    target = ws.chunk(forecast, "b") if command == "evaluate-forecast" else ws.chunk(ws.store, "b")
    if damage == "deleted":
        target.unlink()
    else:
        _garble(target, truncate=damage == "truncated")
    if command == "predict":
        return _predict(ws, "-o", ws / "out.zarr")
    if command == "export":
        return ["export", ws.store, "--trajectory", "b", "-o", ws / "out.dcd", "-q"]
    return ["evaluate", forecast, "-q"]


def _legacy(ws, damage: str):
    """A store written before chunk checksums (the shipped ala2 sample with its test trajectory's positions
    rewritten without the crc32c codec, as stores were written then), one position chunk damaged."""
    import json

    import zarr

    import mdforecast.pretrained

    shutil.copytree(Path(mdforecast.pretrained.__file__).parent / "ala2" / "truth.zarr", ws / "old.zarr")
    array = ws / "old.zarr/trajectories/traj2/particles/all/position/value"
    data = zarr.open_array(array, mode="r")[:]
    meta = json.loads((array / "zarr.json").read_text())
    meta["codecs"] = [c for c in meta["codecs"] if c["name"] != "crc32c"]
    shutil.rmtree(array)
    array.mkdir()
    (array / "zarr.json").write_text(json.dumps(meta))
    zarr.open_array(array, mode="r+")[:] = data
    chunk = array / "c/1/0/0"
    if damage == "deleted":
        chunk.unlink()
    else:
        _garble(chunk, truncate=True)
    return ["export", ws / "old.zarr", "-o", ws / "out.dcd", "-q"]


#: case → (what it runs, given the workspace; expected exit code; what the one line must say)
CASES = {
    # --force replaces only what is recognisably ours
    "force-onto-user-directory-ingest": (lambda ws: _ingest(ws, "-o", ws.user_dir(), "--force"), 1, ["did not write"]),
    "force-onto-user-directory-predict": (lambda ws: _predict(ws, "-o", ws.user_dir(), "--force"), 1,
                                          ["did not write"]),
    "force-onto-store-holding-user-file": (
        lambda ws: (ws.water_store.joinpath("notes.txt").write_text("mine"),
                    _ingest(ws, "-o", ws.water_store, "--force"))[1], 1, ["notes.txt"]),
    "force-onto-file": (lambda ws: (ws.root.joinpath("x.txt").write_text("data"),
                                    _ingest(ws, "-o", ws / "x.txt", "--force"))[1], 1, ["is a file"]),
    "force-onto-symlink-ingest": (lambda ws: (os.symlink(ws.water_store, ws / "link.zarr"),
                                              _ingest(ws, "-o", ws / "link.zarr", "--force"))[1], 1, ["symbolic link"]),
    "force-onto-symlink-predict": (lambda ws: (os.symlink(ws.forecast, ws / "link.zarr"),
                                               _predict(ws, "-o", ws / "link.zarr", "--force"))[1], 1,
                                   ["symbolic link"]),
    "predict-output-is-file": (lambda ws: (ws.root.joinpath("x.txt").write_text("data"),
                                           _predict(ws, "-o", ws / "x.txt"))[1], 1, ["already exists"]),
    "predict-force-output-is-file": (lambda ws: (ws.root.joinpath("x.txt").write_text("data"),
                                                 _predict(ws, "-o", ws / "x.txt", "--force"))[1], 1, ["is a file"]),
    # output paths
    "output-dot": (lambda ws: (ws.monkeypatch.chdir(ws.root), _ingest(ws, "-o", "."))[1], 1, ["not a store"]),
    "output-dot-force": (lambda ws: (ws.monkeypatch.chdir(ws.root), _ingest(ws, "-o", ".", "--force"))[1], 1,
                         ["not a store"]),
    "output-parent-is-file": (lambda ws: (ws.root.joinpath("x.txt").write_text("data"),
                                          _ingest(ws, "-o", ws / "x.txt" / "s.zarr"))[1], 1, ["cannot write"]),
    "predict-parent-is-file": (lambda ws: (ws.root.joinpath("x.txt").write_text("data"),
                                           _predict(ws, "-o", ws / "x.txt" / "f.zarr"))[1], 1, ["cannot write"]),
    "output-unwritable": (lambda ws: (ws.monkeypatch.setattr("mdforecast.store.Store._create", _denied),
                                      _ingest(ws, "-o", ws / "out.zarr"))[1], 1, ["cannot write", "Permission denied"]),
    "output-directory-read-only": (_read_only, 1, ["cannot write"]),
    # concurrent writers
    "append-while-another-appends": (lambda ws: (ws.hold_lock(ws.water_store),
                                                 _ingest(ws, "-o", ws.water_store, "--append", "--name", "x"))[1],
                                     1, ["another mdforecast process"]),
    "ingest-force-while-another-writes": (lambda ws: (ws.hold_lock(ws.water_store),
                                                      _ingest(ws, "-o", ws.water_store, "--force"))[1],
                                          1, ["another mdforecast process"]),
    "predict-to-an-output-being-written": (lambda ws: (ws.hold_lock(ws / "out.zarr"),
                                                       _predict(ws, "-o", ws / "out.zarr"))[1],
                                           1, ["another mdforecast process"]),
    # links out of a store
    "append-into-store-with-linked-trajectories": (_linked_trajectories, 1, ["symbolic link"]),
    # damaged stores
    "format-version-string": (lambda ws: ["info", ws.edit_attrs(ws.store, format_version="1")], 1,
                              ["damaged attributes"]),
    "format-version-null": (lambda ws: ["export", ws.edit_attrs(ws.store, format_version=None), "-o",
                                        ws / "out.dcd"], 1, ["damaged attributes"]),
    "trajectories-not-a-list": (lambda ws: ["info", ws.edit_attrs(ws.store, trajectories="a")], 1,
                                ["damaged attributes"]),
    "zarr-v2-group": (lambda ws: _v2_group(ws, {}), 1, ["not an mdforecast store"]),
    "zarr-v2-group-with-our-attributes": (lambda ws: _v2_group(ws, {"mdforecast": {"format_version": 1,
                                                                                   "trajectories": []}}),
                                          1, ["zarr v2 group", "not an mdforecast store"]),
    "foreign-zarr-group": (_foreign_group, 1, ["not an mdforecast store"]),
    "listed-trajectory-missing": (lambda ws: (shutil.rmtree(ws.store / "trajectories" / "b"),
                                              _predict(ws, "-o", ws / "out.zarr"))[1], 1, ["'b'", "no data"]),
    "listed-trajectory-missing-info": (lambda ws: (shutil.rmtree(ws.store / "trajectories" / "a"),
                                                   ["info", ws.store])[1], 1, ["'a'", "no data"]),
    "chunk-deleted-predict": (lambda ws: _chunk_case(ws, "predict", "deleted"), 1, ["'b'", "missing"]),
    "chunk-deleted-export": (lambda ws: _chunk_case(ws, "export", "deleted"), 1, ["'b'", "missing"]),
    "chunk-deleted-evaluate-truth": (lambda ws: _chunk_case(ws, "evaluate", "deleted"), 1, ["'b'", "missing"]),
    "chunk-deleted-evaluate-forecast": (lambda ws: _chunk_case(ws, "evaluate-forecast", "deleted"), 1,
                                        ["'b'", "f.zarr", "missing"]),
    "chunk-garbled-predict": (lambda ws: _chunk_case(ws, "predict", "garbled"), 1, ["'b'", "damaged"]),
    "chunk-garbled-evaluate-forecast": (lambda ws: _chunk_case(ws, "evaluate-forecast", "garbled"), 1,
                                        ["'b'", "damaged"]),
    "chunk-truncated-predict": (lambda ws: _chunk_case(ws, "predict", "truncated"), 1, ["'b'", "damaged"]),
    "chunk-truncated-export": (lambda ws: _chunk_case(ws, "export", "truncated"), 1, ["'b'", "damaged"]),
    "legacy-store-chunk-truncated": (lambda ws: _legacy(ws, "truncated"), 1, ["'traj2'", "truncated or garbled"]),
    "legacy-store-chunk-deleted": (lambda ws: _legacy(ws, "deleted"), 1, ["'traj2'", "missing"]),
    # ingest input
    "xtc-given-as-topology": (lambda ws: ["ingest", ws.md[0], "--top", waters().write(ws / "t.xtc"), "-o",
                                          ws / "out.zarr"], 1, ["t.xtc"]),
    "ingest-stride-negative": (lambda ws: _ingest(ws, "-o", ws / "out.zarr", "--stride", "-1"), 1, ["--stride"]),
    "ingest-stride-1e30": (lambda ws: _ingest(ws, "-o", ws / "out.zarr", "--stride", "1e30"), 2, []),
    "box-of-a-thousandth-angstrom": (lambda ws: _box(ws, [0.001, 0.001, 0.001, 90, 90, 90]), 1, ["degenerate box"]),
    "box-of-zero-volume": (lambda ws: _box(ws, [9.0, 0.0, 9.0, 90, 90, 90]), 1, ["degenerate box"]),
    # export
    "export-stride-0": (lambda ws: ["export", ws.store, "-o", ws / "out.dcd", "--stride", "0"], 1, ["--stride"]),
    "export-stride-negative": (lambda ws: ["export", ws.store, "-o", ws / "out.dcd", "--stride", "-1"], 1,
                               ["--stride"]),
    "export-full-disk-xtc": (lambda ws: _full_disk(ws, "XTC", _enospc), 1, ["disk full"]),
    "export-full-disk-dcd-drops-frames": (lambda ws: _full_disk(ws, "DCD", _drops_frames), 1,
                                          ["only 3 of 60 frames"]),
    # predict and evaluate
    "predict-until-1e12": (lambda ws: _predict(ws, "-o", ws / "out.zarr", "--until", "1e12"), 1, ["--until"]),
    "predict-times-range-1e12": (lambda ws: _predict(ws, "-o", ws / "out.zarr", "--times", "20:1e12"), 1,
                                 ["--times"]),
    "evaluate-truth-of-another-simulation": (_another_simulation, 1, ["observed frames", "differ"]),
    # training and model files
    "train-on-nan": (_nan_store, 1, ["NaN", "'a'"]),
    "train-output-is-file": (lambda ws: (ws.root.joinpath("run").write_text("x"),
                                         _train(ws, None, "--config", ws.config()))[1], 1, ["is a file"]),
    "train-resume-corrupt-state": (lambda ws: ((ws / "run").mkdir(), (ws / "run" / "state.json").write_text("{oops"),
                                               _train(ws, None, "--resume"))[2], 1, ["state.json"]),
    "train-resume-pickle-as-state": (_pickled_state, 1, ["state.safetensors"]),
    "config-steps-1e9": (lambda ws: _train(ws, None, "--config", ws.config(steps=1e9)), 1, ["steps"]),
    "config-features-1e9": (lambda ws: _train(ws, None, "--config", ws.config(features=10**9)), 1, ["features"]),
    "config-samples-per-epoch-1e9": (lambda ws: _train(ws, None, "--config", ws.config(samples_per_epoch=10**9)), 1,
                                     ["samples_per_epoch"]),
    "model-weights-outside-run-directory": (_escaping_weights, 1, ["outside its directory"]),
    # interrupted: nothing written, nothing left
    "sigterm-mid-predict": (lambda ws: _kill(ws, "predict", signal.SIGTERM), 130, ["interrupted"]),
    "sigterm-mid-ingest": (lambda ws: _kill(ws, "ingest", signal.SIGTERM), 130, ["interrupted"]),
    "sigterm-mid-append": (lambda ws: _kill(ws, "append", signal.SIGTERM), 130, ["interrupted"]),
    "sigterm-mid-export": (lambda ws: _kill(ws, "export", signal.SIGTERM), 130, ["interrupted"]),
    "sigint-mid-predict": (lambda ws: _kill(ws, "predict", signal.SIGINT), 130, ["interrupted"]),
    "sigint-before-first-epoch": (_train_interrupted, 130, ["interrupted"]),
}


@pytest.fixture
def foreground_sigint():
    """Ctrl-C as a foreground process receives it: KeyboardInterrupt. A test runner started in the background
    of a non-interactive shell (``pytest &``, ``nohup``-less batch scripts) inherits SIGINT *ignored*, and Python
    leaves an inherited ignore in place, so a SIGINT sent to the test process would vanish and the command run
    to the end (exit 0): the 'sigint' case would test the shell, not mdforecast."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.usefixtures("foreground_sigint")
def test_hostile_input_is_refused_in_one_line_and_changes_nothing(case, cli, tmp_path, monkeypatch):
    make, expected, needles = CASES[case]
    argv = make(Workspace(tmp_path, monkeypatch))
    before = snapshot(tmp_path)
    code, _, err = cli(*argv)
    assert "Traceback" not in err, err
    if expected == 1:
        cli.assert_one_line_error(code, err, *needles)
    else:
        assert code == expected, err
        if expected == 130:
            assert len(err.strip().splitlines()) == 1, err
            assert all(needle in err for needle in needles), err
    assert snapshot(tmp_path) == before


def test_sigterm_while_force_swaps_the_store_in_loses_nothing(cli, tmp_path, monkeypatch):
    """The signal is held until the new store is in place and the old one removed: never a half-renamed pair."""
    import mdforecast.store

    ws = Workspace(tmp_path, monkeypatch)
    old = ws.forecast
    replace = os.replace

    def signalled_replace(source, target, **kwargs):  # the signal arrives as the old store is moved aside
        if Path(source) == old:
            os.kill(os.getpid(), signal.SIGTERM)
        replace(source, target, **kwargs)

    monkeypatch.setattr(mdforecast.store.os, "replace", signalled_replace)
    code, _, err = cli(*_predict(ws, "-o", old, "--force", "--until", "30"))
    assert code == 130 and "Traceback" not in err
    assert mdforecast.store.Store.open(old).trajectory("b").n_frames == 10  # the new forecast, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.zarr", "s.zarr"]
