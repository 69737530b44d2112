"""Bad input: one line on stderr naming the problem and the fix, a non-zero exit, nothing half-written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mdsystems import System, waters
from mdforecast import Store, ingest


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "partial" in p.name or p.suffix == ".zarr")


def test_ingest_prints_summary_and_json(cli, water_files, tmp_path):
    traj, top, system = water_files
    code, out, _ = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "s.zarr"), "-q")
    assert code == 0 and out.startswith("ingested 1 trajectory(ies), 12 frames × 12 atoms")
    code, out, _ = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "s.zarr"), "--force",
                       "--json", "-q", "--name", "first")
    assert code == 0 and json.loads(out)["trajectories"] == {"first": 12}
    code, out, _ = cli("info", str(tmp_path / "s.zarr"), "--json")
    summary = json.loads(out)
    assert summary["atoms"] == 12 and summary["composition"] == "SOL×4" and summary["frames"] == 12
    assert summary["trajectories"][0]["box"] == pytest.approx([9.0, 9.0, 9.0])
    code, out, _ = cli("info", str(tmp_path / "s.zarr"))
    assert code == 0 and "first" in out and "SOL×4" in out


@pytest.mark.parametrize("case", ["missing", "directory", "garbage", "unknown-format", "atom-count", "selection",
                                  "bad-selection", "zero-frames", "stride", "no-topology", "garbled-xtc"])
def test_ingest_bad_input(cli, case, water_files, tmp_path):
    traj, top, system = water_files
    args = {"missing": [str(tmp_path / "nope.xtc"), "--top", str(top)],
            "directory": [str(tmp_path), "--top", str(top)],
            "garbage": [str(tmp_path / "bad.xtc"), "--top", str(top)],
            "unknown-format": [str(tmp_path / "t.foo"), "--top", str(top)],
            "atom-count": [str(waters(n_waters=5).write(tmp_path / "five.dcd")), "--top", str(top)],
            "selection": [str(traj), "--top", str(top), "--select", "name ZZ"],
            "bad-selection": [str(traj), "--top", str(top), "--select", "name ("],
            "zero-frames": [str(traj), "--top", str(top), "--start", "50"],
            "stride": [str(traj), "--top", str(top), "--stride", "0"],
            "no-topology": [str(traj)],
            "garbled-xtc": [str(tmp_path / "garbled.xtc"), "--top", str(top)]}[case]
    (tmp_path / "bad.xtc").write_bytes(b"\0" * 64)
    (tmp_path / "t.foo").write_text("not a trajectory\n")
    xtc = bytearray(system.write(tmp_path / "w.xtc").read_bytes())
    xtc[200:260] = b"\xff" * 60  # frame 1's header and coordinates overwritten
    (tmp_path / "w.xtc").unlink()
    (tmp_path / "garbled.xtc").write_bytes(bytes(xtc))
    needles = {"missing": ["not found"], "directory": ["not a file"], "garbage": ["bad.xtc"],
               "unknown-format": ["unknown trajectory format 'foo'", "--format"], "atom-count": ["15 atoms", "12"],
               "selection": ["matches no atoms"], "bad-selection": ["invalid selection"],
               "zero-frames": ["no frames"], "stride": ["--stride"], "no-topology": ["no topology", "--top"],
               "garbled-xtc": ["not a valid XTC file", "frame 1"]}[case]
    code, out, err = cli("ingest", *args, "-o", str(tmp_path / "s.zarr"))
    cli.assert_one_line_error(code, err, *needles)
    assert out == "" and leftovers(tmp_path) == []


def test_ingest_warnings_are_one_line_each_and_dt_sets_the_time_step(cli, tmp_path):
    from mdsystems import sparse_waters

    top = tmp_path / "top.pdb"
    path = sparse_waters("dodecahedron", n_frames=6, step=0.45, npt=0.0).write(tmp_path / "w.dcd", wrap=True,
                                                                               topology=top)
    code, out, err = cli("ingest", str(path), "--top", str(top), "-o", str(tmp_path / "s.zarr"), "-q",
                         "--dt", "100")
    assert code == 0 and out.startswith("ingested 1 trajectory(ies)")
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "too sparsely" in lines[0]
    assert Store.open(tmp_path / "s.zarr").trajectory().dt_ps == 100.0


def test_nan_coordinates_are_refused_and_nothing_is_written(cli, tmp_path):
    system = waters(n_frames=6)
    system.positions[4, 2, 1] = np.nan
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "nan.dcd", topology=top)
    code, _, err = cli("ingest", str(path), "--top", str(top), "-o", str(tmp_path / "s.zarr"))
    cli.assert_one_line_error(code, err, "frame 4", "NaN", "--stop 4")
    assert leftovers(tmp_path) == []


def test_existing_output_needs_force_or_append(cli, water_files, tmp_path):
    traj, top, _ = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    before = Store.open(tmp_path / "s.zarr").trajectory().positions()
    code, _, err = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "s.zarr"))
    cli.assert_one_line_error(code, err, "already exists", "--force", "--append")
    np.testing.assert_array_equal(Store.open(tmp_path / "s.zarr").trajectory().positions(), before)
    code, _, err = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "s.zarr"), "--append",
                       "--name", "traj")
    cli.assert_one_line_error(code, err, "already has a trajectory 'traj'", "--name")
    code, out, _ = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "s.zarr"), "--append")
    assert code == 0 and Store.open(tmp_path / "s.zarr").trajectory_names == ["traj", "traj-1"]
    code, _, err = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "new.zarr"), "--append")
    cli.assert_one_line_error(code, err, "does not exist", "drop --append")


def test_appending_another_system_is_refused(cli, water_files, tmp_path):
    traj, top, _ = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    argon = System(positions=np.zeros((3, 2, 3), np.float32) + [[1, 1, 1], [4, 4, 4]], dimensions=None,
                   names=["AR", "AR"], resnames=["AR", "AR"], resids=[1, 2], bonds=[])
    other = argon.write(tmp_path / "ar.pdb", multiframe=True)
    code, _, err = cli("ingest", str(other), "-o", str(tmp_path / "s.zarr"), "--append")
    cli.assert_one_line_error(code, err, "differs from store", "new store")
    assert Store.open(tmp_path / "s.zarr").trajectory_names == ["traj"]


def test_newer_store_format_is_refused(cli, water_files, tmp_path):
    import zarr

    traj, top, _ = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    group.attrs["mdforecast"] = {**group.attrs["mdforecast"], "format_version": 99}
    code, _, err = cli("info", str(tmp_path / "s.zarr"))
    cli.assert_one_line_error(code, err, "format version 99", "pip install -U mdforecast")


def test_not_a_store(cli, tmp_path):
    import zarr

    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    code, _, err = cli("info", str(tmp_path / "plain.zarr"))
    cli.assert_one_line_error(code, err, "not an mdforecast store")
    code, _, err = cli("info", str(tmp_path / "missing.zarr"))
    cli.assert_one_line_error(code, err, "does not exist", "mdforecast ingest")


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(errno.ENOSPC, "No space left on device")])
@pytest.mark.parametrize("mode", ["create", "append"])
def test_interrupt_or_full_disk_mid_write_leaves_nothing(cli, failure, mode, water_files, tmp_path, monkeypatch):
    from mdforecast.store import TrajectoryWriter

    traj, top, _ = water_files
    if mode == "append":
        ingest([traj], tmp_path / "s.zarr", topology=top, names=["kept"])
    def failing_write(self, blocks, lo, hi):  # the disk write, in the writer's background thread
        raise failure

    monkeypatch.setattr(TrajectoryWriter, "_write", failing_write)
    extra = ["--append"] if mode == "append" else []
    code, out, err = cli("ingest", str(traj), "--top", str(top), "-o", str(tmp_path / "s.zarr"), *extra)
    if failure is KeyboardInterrupt:
        assert code == 130 and "interrupted" in err
    else:
        cli.assert_one_line_error(code, err, "disk full", "-o")
    if mode == "create":
        assert leftovers(tmp_path) == []
    else:
        store = Store.open(tmp_path / "s.zarr")
        assert store.trajectory_names == ["kept"]
        assert sorted(store._group["trajectories"].group_keys()) == ["kept"]


def test_export_bad_input(cli, water_files, tmp_path):
    traj, top, _ = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    store = str(tmp_path / "s.zarr")
    cases = [(["-o", str(tmp_path / "o.abc")], ["cannot write format 'ABC'"]),
             (["-o", str(tmp_path / "noext")], ["no extension"]),
             (["-o", str(tmp_path / "o.dcd"), "--trajectory", "zz"], ["no trajectory 'zz'", "traj"]),
             (["-o", str(tmp_path / "o.dcd"), "--start", "40"], ["no frames"]),
             (["-o", str(tmp_path / "nodir" / "o.dcd")], ["does not exist"])]
    for args, needles in cases:
        code, _, err = cli("export", store, *args)
        cli.assert_one_line_error(code, err, *needles)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("o.", ".o", "noext"))) == []
    code, _, _ = cli("export", store, "-o", str(tmp_path / "o.dcd"))
    assert code == 0
    code, _, err = cli("export", store, "-o", str(tmp_path / "o.dcd"))
    cli.assert_one_line_error(code, err, "already exists", "--force")


def test_usage_error_exits_2(cli):
    code, _, err = cli("ingest")
    assert code == 2 and "Traceback" not in err


def test_console_script_runs(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "mdforecast", "--version"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.startswith("mdforecast ")
    done = subprocess.run([sys.executable, "-m", "mdforecast", "info", str(tmp_path / "x.zarr")],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_box_turning_triclinic_mid_trajectory_is_refused(cli, tmp_path):
    import MDAnalysis as mda

    system = waters(n_frames=6)
    top = tmp_path / "top.pdb"
    system.write(tmp_path / "ok.dcd", topology=top)
    universe = mda.Universe(str(top), str(tmp_path / "ok.dcd"))
    with mda.Writer(str(tmp_path / "skew.dcd"), universe.atoms.n_atoms) as writer:
        for ts in universe.trajectory:
            ts.dimensions = [9, 9, 9, 90, 90, 70 if ts.frame >= 3 else 90]
            writer.write(universe.atoms)
    code, _, err = cli("ingest", str(tmp_path / "skew.dcd"), "--top", str(top), "-o", str(tmp_path / "s.zarr"))
    cli.assert_one_line_error(code, err, "frame 3", "triclinic", "split the file")
    assert leftovers(tmp_path) == []
