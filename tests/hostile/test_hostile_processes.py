"""Hostile conditions that need real processes: a file-size limit standing in for a full disk, and two
writers appending to one store at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from synth import argon, make_store, random_walk
from mdsystems import waters

from mdforecast import Store, ingest


def run(args: list[str], cwd, *, file_limit: int | None = None, start: bool = False):
    """``mdforecast ARGS`` in a new process; ``file_limit`` bytes caps every file it writes (a full disk: writes
    past it fail with EFBIG)."""
    code = textwrap.dedent(f"""
        import resource, signal, sys
        if {file_limit!r} is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, ({file_limit!r}, {file_limit!r}))
        from mdforecast.cli import main
        main(sys.argv[1:])
    """)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", code, *map(str, args)]
    if start:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("fmt", ["dcd", "xtc"])
def test_export_to_a_full_disk_is_reported_and_leaves_nothing(fmt, tmp_path):
    make_store(tmp_path / "s.zarr", argon(6), {"a": random_walk(600, 6)}, box=20.0)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run(["export", "s.zarr", "-o", f"o.{fmt}"], tmp_path, file_limit=8000)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert ("only 50 of 600 frames" if fmt == "dcd" else "disk may be full") in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.slow
def test_concurrent_appends_each_either_land_whole_or_are_refused(tmp_path):
    system = waters(n_frames=400)
    traj = system.write(tmp_path / "w.dcd", wrap=True, topology=tmp_path / "w.pdb")
    ingest([traj], tmp_path / "s.zarr", topology=tmp_path / "w.pdb", names=["first"])
    writers = [run(["ingest", "w.dcd", "--top", "w.pdb", "-o", "s.zarr", "--append", "--name", name, "-q"], tmp_path,
                   start=True) for name in ("x", "y")]
    results = {name: (p.wait(), p.stderr.read()) for name, p in zip(("x", "y"), writers)}
    for p in writers:
        p.stdout.close()
        p.stderr.close()
    store = Store.open(tmp_path / "s.zarr")
    landed = [name for name, (code, _) in results.items() if code == 0]
    assert store.trajectory_names == ["first", *sorted(landed, key=store.trajectory_names.index)]
    assert all(store.trajectory(name).n_frames == 400 for name in store.trajectory_names)
    assert sorted(store._group["trajectories"].group_keys()) == sorted(store.trajectory_names)
    for name, (code, err) in results.items():
        assert code == 0 or (code == 1 and "another mdforecast process" in err and err.count("\n") == 1), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.zarr", "w.dcd", "w.pdb"]
