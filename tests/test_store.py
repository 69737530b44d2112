"""The store: layout, chunking along frames, windows, atomic commits, URLs, the zarr-only reading recipe."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from mdforecast.errors import InputError, StoreError
from mdforecast.store import FORMAT_VERSION, Store, writing
from mdforecast.topology import Topology


def topology(n: int = 5) -> Topology:
    return Topology(names=np.array(["AR"] * n), resnames=np.array(["AR"] * n), resids=np.arange(1, n + 1),
                    masses=np.full(n, 39.948))


def fill(store: Store, name: str, frames: int, n: int = 5, **options) -> np.ndarray:
    positions = np.random.default_rng(len(name)).normal(size=(frames, n, 3)).astype(np.float32)
    with store.add_trajectory(name, velocities=False, box=(3,), **options) as writer:
        for start in range(0, frames, 7):  # uneven appends
            stop = min(start + 7, frames)
            writer.append(positions[start:stop], np.arange(start, stop) * 0.1, np.arange(start, stop) * 50,
                          boxes=np.full((stop - start, 3), 20.0), **({"frames": np.arange(start, stop) + 0.5}
                                                                      if options.get("frame_index") else {}))
    return positions


def test_layout_units_and_windows(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology(), attrs={"note": "x"}) as store:
        positions = fill(store, "a", 3000)
    store = Store.open(tmp_path / "s.zarr")
    traj = store.trajectory("a")
    np.testing.assert_array_equal(traj.positions(1234, 1250), positions[1234:1250])
    np.testing.assert_array_equal(traj.positions(10, 100, 9), positions[10:100:9])
    np.testing.assert_allclose(traj.times(2, 4), [0.2, 0.3])
    np.testing.assert_array_equal(traj.frame_index(5, 8), [5, 6, 7])
    assert store.attrs["format_version"] == FORMAT_VERSION and store.attrs["note"] == "x"
    assert store.attrs["units"]["length"] == "angstrom"
    # chunked along frames only: a 20-frame window touches at most two chunks
    raw = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["trajectories/a/particles/all/position/value"]
    assert raw.chunks[1:] == (5, 3) and 20 <= raw.chunks[0] < 3000
    assert raw.attrs["unit"] == "angstrom"
    np.testing.assert_allclose(store.topology.masses, 39.948)


def test_writer_flushes_chunk_by_chunk(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        with store.add_trajectory("a", velocities=False, box=None) as writer:
            chunk = writer.frames_per_chunk
            for i in range(chunk + 3):
                writer.append(np.zeros((1, 5, 3)), [i * 0.1], [i])
                # memory stays bounded: never more than one chunk waits in memory
                assert writer._buffered <= chunk
            assert writer.n_frames == chunk  # one full chunk already on disk
    assert Store.open(tmp_path / "s.zarr").trajectory().n_frames == chunk + 3


def test_whole_chunks_written_directly_are_the_bytes_zarr_writes(tmp_path):
    # positions and velocities go straight to their chunk files (no zarr machinery): byte for byte what zarr
    # itself writes for the same values and codecs, and read back as zarr's own
    from mdforecast.store import _ChunkWriter, _compressors

    n = 774  # 112 frames of 12 × 774 bytes per 1 MiB chunk: 3 whole chunks and a partial one
    positions = np.cumsum(np.random.default_rng(1).normal(size=(400, n, 3)), axis=0).astype(np.float32)
    with writing(tmp_path / "s.zarr", topology=topology(n)) as store:
        with store.add_trajectory("a", velocities=True, box=None, expected_frames=400) as writer:
            assert set(writer._direct) == {"position", "velocity"}
            for start in range(0, 400, 50):
                part = slice(start, start + 50)
                writer.append(positions[part], np.arange(400)[part] * 0.1, np.arange(400)[part],
                              velocities=-positions[part])
    ours = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["trajectories/a/particles/all/position/value"]
    theirs = zarr.open_group(str(tmp_path / "z.zarr"), mode="w").create_array(
        "p", shape=ours.shape, chunks=ours.chunks, dtype="float32", compressors=_compressors())
    theirs[...] = positions
    chunk = ours.chunks[0]
    assert chunk == 112 and _ChunkWriter.of(theirs) is not None
    for index in range(4):
        key = ours.metadata.encode_chunk_key((index, 0, 0))
        assert (tmp_path / "s.zarr" / ours.path / key).read_bytes() == (tmp_path / "z.zarr" / "p" / key).read_bytes()
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    np.testing.assert_array_equal(traj.positions(), positions)
    np.testing.assert_array_equal(traj.velocities(100, 300), -positions[100:300])


def test_a_chunk_the_writing_thread_fails_to_write_ends_the_store_in_one_line(tmp_path, monkeypatch):
    import errno

    from mdforecast.store import TrajectoryWriter

    written, write = [], TrajectoryWriter._write

    def disk_fills_up(self, blocks, lo, hi):  # runs in the writing thread
        written.append(lo)
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, blocks, lo, hi)

    monkeypatch.setattr(TrajectoryWriter, "_write", disk_fills_up)
    with pytest.raises(StoreError, match="disk full while writing") as failure:
        with writing(tmp_path / "s.zarr", topology=topology()) as store:
            fill(store, "a", 5000)  # 1024 frames per chunk: 5 chunks
    assert "\n" not in str(failure.value)
    assert len(written) == 2  # nothing written after the failure
    assert list(tmp_path.iterdir()) == []  # neither the store nor its temporary copy


def test_frame_index_and_split(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        fill(store, "a", 10)
        fill(store, "b", 10, frame_index=True)
        store.set_split(train=["a"], test=["b"])
        with pytest.raises(InputError, match="unknown trajectories"):
            store.set_split(train=["a"], test=["zz"])
    store = Store.open(tmp_path / "s.zarr")
    np.testing.assert_allclose(store.trajectory("b").frame_index(0, 3), [0.5, 1.5, 2.5])
    assert store.split == {"train": ["a"], "test": ["b"]}
    assert [t.name for t in store] == ["a", "b"]


def test_failed_trajectory_is_never_visible(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        fill(store, "a", 10)
    store = Store.open(tmp_path / "s.zarr", mode="r+")
    with pytest.raises(RuntimeError):
        with store.add_trajectory("b", velocities=False, box=None) as writer:
            writer.append(np.zeros((2, 5, 3)), [0, 1], [0, 1])
            raise RuntimeError("killed")
    assert Store.open(tmp_path / "s.zarr").trajectory_names == ["a"]
    with pytest.raises(InputError, match="no trajectory 'b'"):
        Store.open(tmp_path / "s.zarr").trajectory("b")


def test_uncommitted_leftover_is_replaced(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        pass
    group = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+")
    group["trajectories"].create_group("a")  # what a killed run leaves: data but no commit
    store = Store.open(tmp_path / "s.zarr", mode="r+")
    assert store.trajectory_names == []
    positions = fill(store, "a", 4)
    np.testing.assert_array_equal(Store.open(tmp_path / "s.zarr").trajectory("a").positions(), positions)


def test_new_store_appears_only_when_complete(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with writing(tmp_path / "s.zarr", topology=topology()) as store:
            fill(store, "a", 10)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_only_at_the_end(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        old = fill(store, "old", 5)
    with pytest.raises(RuntimeError):
        with writing(tmp_path / "s.zarr", topology=topology(), mode="overwrite") as store:
            fill(store, "new", 5)
            raise RuntimeError
    np.testing.assert_array_equal(Store.open(tmp_path / "s.zarr").trajectory("old").positions(), old)
    with writing(tmp_path / "s.zarr", topology=topology(), mode="overwrite") as store:
        fill(store, "new", 5)
    assert Store.open(tmp_path / "s.zarr").trajectory_names == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["s.zarr"]


def test_url_store(tmp_path):
    url = f"memory://mdforecast-test-{tmp_path.name}"
    with writing(url, topology=topology()) as store:
        positions = fill(store, "a", 30)
    np.testing.assert_array_equal(Store.open(url).trajectory("a").positions(3, 9), positions[3:9])
    with pytest.raises(StoreError, match="already exists"):
        with writing(url, topology=topology()):
            pass


def test_topology_round_trip_and_subset(tmp_path):
    top = Topology(names=np.array(["OW", "HW1", "HW2", "OW", "HW1", "HW2"]), resnames=np.array(["SOL"] * 6),
                   resids=np.array([1, 1, 1, 2, 2, 2]), elements=np.array(["O", "H", "H"] * 2),
                   charges=np.array([-0.834, 0.417, 0.417] * 2), bonds=np.array([[0, 1], [0, 2], [3, 4], [3, 5]]))
    with writing(tmp_path / "s.zarr", topology=top):
        pass
    back = Store.open(tmp_path / "s.zarr").topology
    for name, value in top.fields().items():
        np.testing.assert_array_equal(getattr(back, name), value)
    assert back.types is None and back.masses is None  # absent stays absent, never zeros
    sub = top.subset(np.array([3, 4, 5]))
    np.testing.assert_array_equal(sub.bonds, [[0, 1], [0, 2]])
    assert top.composition() == "SOL×2"


def test_subset_is_a_read_only_view_of_some_atoms(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology(6)) as store:
        with store.add_trajectory("a", velocities=True, box=(3,), attrs={"dt_ps": 0.5}) as w:
            w.append(np.arange(36, dtype=np.float32).reshape(2, 6, 3), np.arange(2.0), np.arange(2),
                     velocities=np.ones((2, 6, 3), np.float32), boxes=np.full((2, 3), 9.0, np.float32))
    full = Store.open(tmp_path / "s.zarr")
    view = full.subset(np.array([1, 4]))
    assert view.topology.n_atoms == 2 and list(view.topology.names) == list(full.topology.names[[1, 4]])
    traj = view.trajectory()
    assert traj.n_atoms == 2 and traj.dt_ps == 0.5
    np.testing.assert_array_equal(traj.positions(), full.trajectory().positions()[:, [1, 4]])
    assert traj.velocities().shape == (2, 2, 3) and traj.boxes().shape == (2, 3)
    np.testing.assert_array_equal(view.subset(np.array([1])).trajectory().positions(), traj.positions()[:, [1]])
    with pytest.raises(StoreError, match="read-only"):
        view.set_split(["a"], [])
    with pytest.raises(InputError, match="increasing"):
        full.subset(np.array([4, 1]))
