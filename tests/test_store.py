"""The store: layout, chunking along frames, windows, atomic commits, URLs, the zarr-only reading recipe."""

from __future__ import annotations

import hashlib

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


def test_a_trajectory_records_the_checksum_of_its_positions(tmp_path):
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        positions = fill(store, "a", 700)  # several chunks, appended unevenly
        same = fill(store, "b", 700)  # fill draws by the name's length: the same data
        other = fill(store, "cc", 700)
    stored = Store.open(tmp_path / "s.zarr")
    digest = stored.trajectory("a").attrs["positions_sha256"]
    assert digest == hashlib.sha256(positions.astype("<f4").tobytes()).hexdigest()
    assert np.array_equal(same, positions) and stored.trajectory("b").attrs["positions_sha256"] == digest
    assert not np.array_equal(other, positions) and stored.trajectory("cc").attrs["positions_sha256"] != digest


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


def _build(path, positions: np.ndarray) -> None:
    """A store with what ingest, predict and datasets write: a topology with strings, a chunk of zeros and no
    bonds; trajectories longer, shorter and as long as announced, appended unevenly, with velocities, triclinic
    boxes and frame indices, attributes added later, a split, an aborted trajectory and a removed one."""
    n, frames = positions.shape[1], len(positions)
    top = Topology(names=np.array(["OW", "HW1", "HW2"] * (n // 3)), resnames=np.array(["SOL"] * n),
                   resids=np.repeat(np.arange(1, n // 3 + 1), 3), segids=np.array([""] * n), masses=np.full(n, 16.0),
                   charges=np.zeros(n), bonds=np.zeros((0, 2), np.int64))
    boxes = np.tile(np.array([[20.0, 0, 0], [0, 20, 0], [10, 10, 14.1]], np.float32), (frames, 1, 1))
    with writing(path, topology=top, attrs={"created": "now", "note": [1, 2.5, None]}) as store:
        for name, expected in (("longer", 2 * frames), ("shorter", frames // 2), ("exact", frames), ("gone", 0)):
            with store.add_trajectory(name, velocities=True, box=(3, 3), attrs={"dt_ps": 0.1},
                                      frame_index=name == "exact", expected_frames=expected) as writer:
                # uneven blocks, some across chunk boundaries, some of several chunks
                edges = sorted({0, 50, 61, 112, 200, 224, *range(290, frames, 4000), frames})
                for start, stop in zip(edges[:-1], edges[1:]):
                    part = slice(start, stop)
                    times = np.arange(frames)[part] * 0.1
                    writer.append(positions[part], times, np.arange(frames)[part] * 50, velocities=-positions[part],
                                  boxes=boxes[part], **({"frames": times + 0.5} if name == "exact" else {}))
                writer.set_attrs(sha256="abc")
        with pytest.raises(RuntimeError):
            with store.add_trajectory("aborted", velocities=False, box=None) as writer:
                writer.append(positions[:200], np.arange(200.0), np.arange(200))
                raise RuntimeError("killed")
        store.set_split(train=["longer", "gone"], test=["exact"])
        store.remove_trajectories(["gone"])


@pytest.mark.parametrize("n, frames", [(774, 300), (6, 15000)])
def test_a_local_store_is_written_as_zarr_writes_it(tmp_path, n, frames):
    # a local store is written without zarr (store._LocalNodes), a store at a URL through zarr's API: the same
    # nodes, the same zarr.json documents and the same chunk bytes; zarr reads the local one as its own.
    # 774 atoms: 112 frames per 1 MiB chunk of positions, two whole chunks and an edge; 6 atoms: 1024 frames per
    # chunk, and steps, times and boxes in two chunks of 14,336 frames
    import json

    import fsspec

    def same_files(local, url) -> dict[str, bytes]:
        fs, root = fsspec.core.url_to_fs(url)
        theirs = {name[len(root.rstrip("/")) + 1:]: fs.cat_file(name) for name in fs.find(root)}
        ours = {str(p.relative_to(local)): p.read_bytes() for p in local.rglob("*") if p.is_file()}
        assert sorted(ours) == sorted(theirs)
        for name, data in ours.items():
            if name.endswith("zarr.json"):
                assert json.loads(data) == json.loads(theirs[name]), name
            else:
                assert data == theirs[name], name
        return ours

    positions = np.cumsum(np.random.default_rng(1).normal(size=(frames, n, 3)), axis=0).astype(np.float32)
    local, url = tmp_path / "s.zarr", f"memory://mdforecast-same-{tmp_path.name}-{n}"
    _build(local, positions)
    _build(url, positions)
    ours = same_files(local, url)
    chunk = Store.open(local).trajectory("exact").frames_per_chunk
    assert f"trajectories/longer/particles/all/position/value/c/{frames // chunk}/0/0" in ours  # the edge chunk
    assert ("trajectories/longer/particles/all/position/time/c/1" in ours) == (frames > 14336)
    assert not any(name.startswith(("topology/charges/c", "topology/segids/c", "topology/bonds/c")) for name in ours)
    store = Store.open(local)
    # a topology read back from a store (variable-width strings), as predict writes it
    for path in (tmp_path / "copy.zarr", f"{url}-copy"):
        with writing(path, topology=store.topology, attrs={"created": "now"}):
            pass
    same_files(tmp_path / "copy.zarr", f"{url}-copy")
    assert store.trajectory_names == ["longer", "shorter", "exact"] and store.split["test"] == ["exact"]
    for traj in store:
        np.testing.assert_array_equal(traj.positions(), positions)
        np.testing.assert_array_equal(traj.velocities(100, 300), -positions[100:300])
        np.testing.assert_allclose(traj.boxes()[:, 2], [[10, 10, 14.1]] * frames, rtol=1e-6)
        np.testing.assert_allclose(traj.times(), np.arange(frames) * 0.1)
        assert traj.attrs == {"dt_ps": 0.1, "sha256": "abc",
                              "positions_sha256": hashlib.sha256(positions.astype("<f4").tobytes()).hexdigest()}
    np.testing.assert_allclose(store.trajectory("exact").frame_index(), np.arange(frames) * 0.1 + 0.5)
    assert store.topology.segids.tolist() == [""] * n and not store.topology.charges.any()
    assert store.topology.bonds.shape == (0, 2)


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


def test_a_store_opened_read_only_refuses_writes(tmp_path):
    # (zarr refused them; a local store's files are now written without zarr)
    with writing(tmp_path / "s.zarr", topology=topology()) as store:
        fill(store, "a", 3)
    with pytest.raises(StoreError, match="opened read-only"):
        Store.open(tmp_path / "s.zarr").set_split(train=["a"], test=[])
    assert Store.open(tmp_path / "s.zarr").split is None
    Store.open(tmp_path / "s.zarr", mode="r+").set_split(train=["a"], test=[])
    assert Store.open(tmp_path / "s.zarr").split == {"train": ["a"], "test": []}


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
