"""`datasets make`: the store it writes, twins, reproducibility, resuming after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from mdforecast import Store
from mdforecast.datasets import make, simulation
from mdforecast.errors import InputError, StoreError

QUICK = {"trajectories": 2, "frames": 10, "equilibration_ps": 0.2}


def same_store(a: Store, b: Store) -> None:
    """Frame-for-frame equality of two stores' trajectories, splits and trajectory attributes."""
    assert sorted(a.trajectory_names) == sorted(b.trajectory_names) and a.split == b.split
    for name in a.trajectory_names:
        x, y = a.trajectory(name), b.trajectory(name)
        for read in ("positions", "velocities", "boxes", "times", "steps"):
            np.testing.assert_array_equal(getattr(x, read)(), getattr(y, read)(), err_msg=f"{name} {read}")
        assert x.attrs == y.attrs


def test_store_holds_split_protocol_and_twins(tmp_path):
    result = make("lj", tmp_path / "lj.zarr", twins=2, **QUICK)
    store = Store.open(tmp_path / "lj.zarr")
    # test trajectories first, each followed by its twins (the longest chain starts first)
    assert result.made == ["traj1", "traj1-twin1", "traj1-twin2", "traj0"] and not result.skipped
    assert store.split == {"train": ["traj0"], "test": ["traj1"]}
    dataset = store.attrs["dataset"]
    assert dataset | {"protocol": None} == {"system": "lj", "trajectories": 2, "frames": 10, "seed": 0,
                                            "observed_frames": 2, "equilibration_ps": 0.2, "protocol": None}
    assert dataset["protocol"]["steps_per_frame"] == 50 and dataset["protocol"]["temperature_k"] == 100.0
    assert store.attrs["platforms"] == ["CPU"] and store.attrs["openmm_version"] == simulation.openmm_version()
    truth = store.trajectory("traj1")
    assert truth.n_frames == 10 and truth.has_velocities and truth.attrs["seed"] == 1
    assert truth.attrs["restart"]["frame"] == 1 and "restart" not in store.trajectory("traj0").attrs
    for k in (1, 2):
        twin = store.trajectory(f"traj1-twin{k}")
        assert twin.attrs["twin_of"] == "traj1" and twin.attrs["first_frame"] == 2 and twin.n_frames == 8
        np.testing.assert_allclose(twin.times(), truth.times(2))
        np.testing.assert_array_equal(twin.steps(), truth.steps(2))
        gap = np.abs(twin.positions() - truth.positions(2)).max(axis=(1, 2))
        assert 0 < gap[0] < 1e-3  # a 1e-6 Å perturbation one frame before …
        assert gap[-1] > gap[0]  # … that grows
    twin1, twin2 = (store.trajectory(f"traj1-twin{k}").positions() for k in (1, 2))
    assert not np.array_equal(twin1, twin2)


def test_ala2_twins_get_fresh_langevin_noise(tmp_path):
    make("ala2", tmp_path / "a.zarr", trajectories=2, frames=5, equilibration_ps=0.5, twins=1)
    store = Store.open(tmp_path / "a.zarr")
    truth, twin = store.trajectory("traj1"), store.trajectory("traj1-twin1")
    assert truth.boxes() is None and "fresh Langevin noise" in twin.attrs["perturbation"]
    assert twin.attrs["first_frame"] == 1 and twin.n_frames == 4
    np.testing.assert_array_equal(twin.steps(), truth.steps(1))
    assert not np.array_equal(twin.positions(), truth.positions(1))


@pytest.mark.slow
def test_same_seed_same_frames_also_with_workers(tmp_path):
    """tip3p (PME) on the CPU platform: two runs, one inline and one in two worker processes, are identical."""
    options = {"trajectories": 2, "frames": 5, "equilibration_ps": 0.1, "twins": 1}
    make("tip3p", tmp_path / "a.zarr", **options)
    result = make("tip3p", tmp_path / "b.zarr", workers=2, **options)
    assert sorted(result.made) == ["traj0", "traj1", "traj1-twin1"]
    a = Store.open(tmp_path / "a.zarr")
    same_store(a, Store.open(tmp_path / "b.zarr"))
    assert not np.array_equal(a.trajectory("traj0").positions(), a.trajectory("traj1").positions())
    assert not list(tmp_path.glob(".*make-*"))  # scratch directories are cleaned up


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    make("lj", tmp_path / "whole.zarr", twins=1, **QUICK)
    original = simulation.run

    def interrupted(job, sink, on_frames=None):
        if job.name == "traj1-twin1":  # the kill arrives mid-way through the twin (run right after traj1)
            def dying(*frame):
                sink(*frame)
                raise KeyboardInterrupt
            return original(job, dying, on_frames)
        return original(job, sink, on_frames)

    monkeypatch.setattr(simulation, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make("lj", tmp_path / "resumed.zarr", twins=1, **QUICK)
    assert Store.open(tmp_path / "resumed.zarr").trajectory_names == ["traj1"]
    monkeypatch.setattr(simulation, "run", original)
    result = make("lj", tmp_path / "resumed.zarr", twins=1, **QUICK)  # the twin restarts from the stored state
    assert result.made == ["traj1-twin1", "traj0"] and result.skipped == ["traj1"]
    same_store(Store.open(tmp_path / "whole.zarr"), Store.open(tmp_path / "resumed.zarr"))
    assert make("lj", tmp_path / "resumed.zarr", twins=1, **QUICK).made == []


@pytest.mark.slow
def test_killed_cli_run_resumes(tmp_path):
    """SIGKILL during the second trajectory: the first (the test one, simulated first) stays as it was, the
    same command finishes the store."""
    store = tmp_path / "k.zarr"
    command = [sys.executable, "-m", "mdforecast", "datasets", "make", "ala2", "-o", str(store), "--trajectories", "2",
               "--frames", "100", "-q"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not committed(store):
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed = Store.open(store)
    assert killed.trajectory_names == ["traj1"] and killed.split is None
    first = killed.trajectory("traj1").positions()
    assert list(tmp_path.glob(".*make-*"))  # the killed run's scratch directory …
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0 and "simulated 1 trajectories" in done.stdout and "1 were already there" in done.stdout
    store = Store.open(store)
    assert store.split == {"train": ["traj0"], "test": ["traj1"]} and store.trajectory("traj0").n_frames == 100
    np.testing.assert_array_equal(store.trajectory("traj1").positions(), first)
    assert not list(tmp_path.glob(".*make-*"))  # … is gone after the resumed run


def committed(path) -> list[str]:
    """The committed trajectories of a store another process is writing (none while unreadable)."""
    try:
        return Store.open(path).trajectory_names
    except StoreError:  # not created yet, or its attributes caught mid-write
        return []


def test_more_twins_later_and_option_mismatch(tmp_path):
    path = tmp_path / "lj.zarr"
    make("lj", path, **QUICK)
    result = make("lj", path, twins=1, **QUICK)
    assert result.made == ["traj1-twin1"] and Store.open(path).attrs["twins"] == 1
    with pytest.raises(StoreError, match=r"frames 10 \(this run: 12\).*same options.*another -o"):
        make("lj", path, **{**QUICK, "frames": 12})
    with pytest.raises(StoreError, match="system 'lj' \\(this run: 'tip3p'\\)"):
        make("tip3p", path, **QUICK)


@pytest.mark.parametrize("argv, needle", [
    (["datasets", "make", "argon"], "unknown system 'argon'; choose one of lj, tip3p, tip4p, ala2"),
    (["datasets", "make", "lj", "--platform", "CUDA"], "OpenMM platform CUDA cannot run here"),
    (["datasets", "make", "lj", "--platform", "GPU"], "unknown platform 'GPU'; choose one of auto, Reference"),
    (["datasets", "make", "lj", "--frames", "0"], "--frames must be an integer ≥ 5"),
    (["datasets", "make", "lj", "--trajectories", "1"], "--trajectories must be an integer ≥ 2"),
    (["datasets", "make", "lj", "--workers", "0"], "--workers must be an integer ≥ 1"),
    (["datasets", "make", "lj", "--twins", "-1"], "--twins must be an integer ≥ 0"),
])
def test_cli_bad_input_is_one_line_and_writes_nothing(cli, argv, needle, tmp_path):
    code, out, err = cli(*argv, "-o", str(tmp_path / "s.zarr"))
    assert code == 1 and out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert needle in err
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_store_not_made_by_datasets(cli, tmp_path, water_files):
    from mdforecast import ingest

    traj, top, _ = water_files
    ingest([traj], tmp_path / "w.zarr", topology=top)
    code, _, err = cli("datasets", "make", "tip3p", "-o", str(tmp_path / "w.zarr"))
    assert code == 1 and "not written by `mdforecast datasets make`" in err


def test_cli_make_prints_the_result(cli, tmp_path):
    code, out, _ = cli("datasets", "make", "ala2", "-o", str(tmp_path / "a.zarr"), "--frames", "5",
                           "--trajectories", "2", "--json", "-q")
    result = json.loads(out)
    assert code == 0 and result["made"] == ["traj1", "traj0"] and result["platform"] == "Reference"
    code, out, _ = cli("datasets", "make", "ala2", "-o", str(tmp_path / "a.zarr"), "--frames", "5",
                           "--trajectories", "2", "-q")
    assert code == 0 and out.startswith("nothing to do")
    with pytest.raises(InputError):
        make("ala2", tmp_path / "b.zarr", equilibration_ps=-1)
