"""Corrupt XTC files: garbled compressed coordinates behind valid frame headers, which can kill MDAnalysis' C
decoder (SIGFPE, SIGSEGV), and leftovers of ingests that were killed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mdsystems import WATER, System

N_WATERS, N_FRAMES, GARBLED_FRAME = 258, 6, 3


def _frame_offsets(data: bytes) -> list[int]:
    """Byte offset of each frame of an XTC file: a 92-byte header, then its compressed coordinates."""
    offsets = [0]
    while offsets[-1] < len(data):
        offsets.append(offsets[-1] + 92 + (int.from_bytes(data[offsets[-1] + 88:offsets[-1] + 92], "big") + 3) // 4 * 4)
    return offsets


@pytest.fixture(scope="module")
def garbled_xtcs(tmp_path_factory):
    """An XTC of 258 waters (6 frames) and its PDB topology, and 12 copies whose frame 3 has the first 16 bytes
    of its compressed coordinates replaced by random bytes (seeds 0-11), headers intact: ``(top, [paths])``."""
    root = tmp_path_factory.mktemp("garbled")
    rng = np.random.default_rng(0)
    centres = rng.uniform(2.0, 18.0, (N_WATERS, 3)) + rng.normal(0, 0.2, (N_FRAMES, 1, 3)).cumsum(axis=0)
    positions = (centres[:, :, None, :] + WATER).reshape(N_FRAMES, 3 * N_WATERS, 3)
    system = System(positions=positions, dimensions=np.array([20.0, 20.0, 20.0, 90.0, 90.0, 90.0]),
                    names=["OW", "HW1", "HW2"] * N_WATERS, resnames=["SOL"] * (3 * N_WATERS),
                    resids=np.repeat(np.arange(1, N_WATERS + 1), 3).tolist(),
                    bonds=[(3 * i, 3 * i + k) for i in range(N_WATERS) for k in (1, 2)])
    top = root / "top.pdb"
    data = system.write(root / "w.xtc", wrap=True, topology=top).read_bytes()
    offsets = _frame_offsets(data)
    paths = []
    for seed in range(12):
        garbled = bytearray(data)
        start = offsets[GARBLED_FRAME] + 92
        garbled[start:start + 16] = np.random.default_rng(seed).integers(0, 256, 16, dtype=np.uint8).tobytes()
        paths.append(root / f"garbled{seed}.xtc")
        paths[-1].write_bytes(bytes(garbled))
    return top, paths


def _ours(root) -> list[str]:
    """What is in ``root``, less MDAnalysis' caches of XTC frame offsets (``.NAME_offsets.npz`` and its lock)."""
    return sorted(name for name in os.listdir(root) if "_offsets." not in name)


def test_garbled_compressed_coordinates_give_one_line_and_leave_nothing(garbled_xtcs, cli):
    top, paths = garbled_xtcs
    before = _ours(top.parent)
    messages = []
    for path in paths:
        code, _, err = cli("ingest", path, "--top", top, "-o", top.parent / "out.zarr", "-q")
        cli.assert_one_line_error(code, err, str(path), "--stop")
        # the garbled frame, or (the decoder's memory corrupted by it, which varies from run to run) a later one
        assert GARBLED_FRAME <= int(re.search(r"--stop (\d+)", err).group(1)) < N_FRAMES, err
        assert _ours(top.parent) == before, path  # no store, no .out.zarr.partial-PID, no lock file
        messages.append(err)
    # some of these kill the decoder (SIGFPE), the others decode outside the range their headers declare
    assert any("crashed MDAnalysis' XTC decoder" in m for m in messages), messages
    assert any("outside the range its header declares" in m for m in messages), messages


def test_garbled_frames_past_stop_are_not_read(garbled_xtcs, tmp_path):
    from mdforecast import Store, ingest

    top, paths = garbled_xtcs
    result = ingest([paths[0]], tmp_path / "s.zarr", topology=top, stop=GARBLED_FRAME)
    assert result.trajectories == {"garbled0": GARBLED_FRAME}
    oh = np.linalg.norm(np.diff(Store.open(tmp_path / "s.zarr").trajectory().positions()[:, :2], axis=1), axis=-1)
    np.testing.assert_allclose(oh, 0.9572, atol=0.02)  # molecules whole: XTC precision 0.01 Å per coordinate


def test_a_killed_writers_partial_store_is_removed_by_the_next_ingest(garbled_xtcs, tmp_path):
    from mdforecast import ingest

    top, paths = garbled_xtcs
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".s.zarr.partial-{int(gone.stdout)}"  # that process has exited
    (dead / "trajectories").mkdir(parents=True)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = tmp_path / f".s.zarr.partial-{alive.pid}"
        running.mkdir()
        ingest([paths[0]], tmp_path / "s.zarr", topology=top, stop=2)
        assert not dead.exists() and running.is_dir()  # a running process's folder is left alone
    finally:
        alive.kill()
        alive.wait()
