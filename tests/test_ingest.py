"""ingest: exact round trips through MD formats, unwrapping across periodic boxes, velocities, options."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mdsystems import COMPACT_BOXES, WATER, System, sparse_waters, waters
from mdforecast import Store, export, ingest
from mdforecast.errors import InputError
from mdforecast.pbc import dimensions_from_box

# format → (writer options, absolute position tolerance in Å from the format's precision, keeps box, keeps time)
FORMATS = {
    "dcd": ({}, 1e-4, True, False),
    "trr": ({}, 1e-4, True, True),
    "xtc": ({}, 6e-3, True, True),          # 0.001 nm precision
    "nc": ({}, 1e-4, True, True),
    "pdb": ({"multiframe": True}, 6e-4, False, False),  # 8.3f Å
    "xyz": ({}, 1e-4, False, False),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_through_format(tmp_path, water_system, fmt):
    options, tol, has_box, has_time = FORMATS[fmt]
    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / f"traj.{fmt}", topology=top, **options)
    result = ingest([path], tmp_path / "s.zarr", topology=top)
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    assert result.trajectories == {"traj": len(water_system.positions)}
    assert traj.attrs["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()  # of the file ingested
    np.testing.assert_allclose(traj.positions(), water_system.positions, atol=tol, rtol=0)
    if has_box:
        np.testing.assert_allclose(traj.boxes(), np.tile(water_system.dimensions[:3], (traj.n_frames, 1)), atol=tol)
    if has_time:
        np.testing.assert_allclose(traj.times(), np.arange(traj.n_frames) * water_system.dt_ps, atol=1e-4)


def test_particle_crossing_box_faces_stays_continuous(tmp_path):
    box = 10.0
    steps = np.arange(40)[:, None] * np.array([0.9, -0.7, 0.45])  # crosses x and y faces several times
    positions = (np.array([5.0, 5.0, 5.0]) + steps)[:, None, :].astype(np.float32)
    argon = System(positions=positions, dimensions=np.array([box, box, box, 90, 90, 90], np.float32),
                   names=["AR"], resnames=["AR"], resids=[1], bonds=[])
    top = tmp_path / "ar.pdb"
    path = argon.write(tmp_path / "ar.dcd", wrap=True, topology=top)
    ingest([path], tmp_path / "s.zarr", topology=top)
    stored = Store.open(tmp_path / "s.zarr").trajectory().positions()
    np.testing.assert_allclose(stored, positions, atol=1e-4)
    # without unwrapping the file's jumps stay in
    ingest([path], tmp_path / "raw.zarr", topology=top, unwrap=False)
    raw = Store.open(tmp_path / "raw.zarr").trajectory().positions()
    assert np.abs(np.diff(raw, axis=0)).max() > box / 2


def test_water_split_by_the_box_comes_out_whole(tmp_path):
    # molecule 0 straddles the x face in frame 0: wrapping per atom splits it in the file
    system = waters(n_waters=3, n_frames=10, box=9.0, seed=1)
    system.positions -= system.positions[0, 0] - np.array([8.9, 4.0, 4.0], np.float32)
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "w.dcd", wrap=True, topology=top)
    ingest([path], tmp_path / "s.zarr", topology=top)
    stored = Store.open(tmp_path / "s.zarr").trajectory().positions()
    oh = np.linalg.norm(stored[:, 1::3] - stored[:, 0::3], axis=-1)
    np.testing.assert_allclose(oh, 0.9572, atol=1e-4)
    # equal to the truth up to one lattice translation per molecule
    shift = stored - system.positions
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=1e-4)
    np.testing.assert_allclose(shift / 9.0, np.round(shift / 9.0), atol=1e-4)


def test_bonds_are_guessed_when_the_topology_has_none(tmp_path):
    system = waters(n_waters=3, n_frames=6, seed=2)
    system.positions -= system.positions[0, 0] - np.array([0.1, 4.0, 4.0], np.float32)  # split across x=0
    system.names = ["O", "H1", "H2"] * 3
    system.bonds = []
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "w.dcd", wrap=True, topology=top)
    ingest([path], tmp_path / "s.zarr", topology=top)
    store = Store.open(tmp_path / "s.zarr")
    assert store.attrs["bonds_guessed"] and len(store.topology.bonds) == 6
    oh = np.linalg.norm(store.trajectory().positions()[:, 1::3] - store.trajectory().positions()[:, 0::3], axis=-1)
    np.testing.assert_allclose(oh, 0.9572, atol=1e-4)


def test_triclinic_box_unwraps_and_keeps_box_vectors(tmp_path):
    from MDAnalysis.lib.mdamath import triclinic_vectors

    dims = np.array([12.0, 13.0, 14.0, 75.0, 80.0, 85.0], np.float32)
    system = waters(n_waters=4, n_frames=15, box=12.0, drift=1.2, seed=3, dimensions=list(dims))
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "t.dcd", wrap=True, topology=top)
    ingest([path], tmp_path / "s.zarr", topology=top)
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    boxes = traj.boxes()
    assert boxes.shape == (15, 3, 3)
    np.testing.assert_allclose(boxes[0], triclinic_vectors(dims), atol=1e-4)
    np.testing.assert_allclose(dimensions_from_box(boxes[0]), dims, atol=1e-3)
    stored = traj.positions()
    assert np.linalg.norm(np.diff(stored, axis=0), axis=-1).max() < 3.0  # no jumps
    shift = stored - system.positions
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=2e-4)  # lattice shift only
    frac = shift[0] @ np.linalg.inv(triclinic_vectors(dims))
    np.testing.assert_allclose(frac, np.round(frac), atol=1e-4)


def test_velocities_are_kept(tmp_path, water_system):
    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / "v.trr", topology=top)
    ingest([path], tmp_path / "s.zarr", topology=top)
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    assert traj.has_velocities
    np.testing.assert_allclose(traj.velocities(), water_system.velocities, atol=1e-4)


def test_no_velocities_when_the_file_has_none(water_files, tmp_path):
    traj, top, _ = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    stored = Store.open(tmp_path / "s.zarr").trajectory()
    assert not stored.has_velocities
    with pytest.raises(InputError, match="no velocities"):
        stored.velocities()


def test_stride_follows_atoms_through_skipped_frames(tmp_path):
    # 4 Å per frame: with stride 3 the kept frames are 12 Å apart, more than half the 10 Å box
    positions = (np.array([5.0, 5.0, 5.0]) + np.arange(30)[:, None] * np.array([4.0, 0, 0]))[:, None].astype(np.float32)
    argon = System(positions=positions, dimensions=np.array([10, 10, 10, 90, 90, 90], np.float32),
                   names=["AR"], resnames=["AR"], resids=[1], bonds=[])
    top = tmp_path / "ar.pdb"
    path = argon.write(tmp_path / "ar.trr", wrap=True, topology=top)  # TRR keeps each frame's time
    ingest([path], tmp_path / "s.zarr", topology=top, start=2, stop=26, stride=3)
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    stored, truth = traj.positions(), positions[2:26:3]
    np.testing.assert_allclose(np.diff(stored, axis=0), np.diff(truth, axis=0), atol=1e-4)  # 12 Å per kept frame
    np.testing.assert_allclose(stored[0], truth[0] - [10.0, 0, 0], atol=1e-4)  # frame 2 as the file has it
    assert traj.attrs["frames"] == {"start": 2, "stop": 26, "stride": 3}
    assert traj.attrs["dt_ps"] == pytest.approx(3 * argon.dt_ps)


def test_selection_keeps_the_selected_atoms(water_files, tmp_path):
    traj, top, system = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top, select="name OW")
    store = Store.open(tmp_path / "s.zarr")
    assert store.topology.n_atoms == 4 and set(store.topology.names) == {"OW"}
    assert store.topology.bonds is not None and len(store.topology.bonds) == 0
    oxygens = store.trajectory().positions()
    full = Store.open(ingest([traj], tmp_path / "all.zarr", topology=top).store).trajectory().positions()
    np.testing.assert_allclose(oxygens, full[:, 0::3], atol=1e-5)


def test_several_files_become_several_trajectories_and_append_adds(water_files, tmp_path):
    traj, top, system = water_files
    other = system.write(tmp_path / "other.dcd", wrap=True)
    result = ingest([traj, other], tmp_path / "s.zarr", topology=top, names=["a", "b"])
    assert list(result.trajectories) == ["a", "b"]
    ingest([traj], tmp_path / "s.zarr", topology=top, append=True)
    store = Store.open(tmp_path / "s.zarr")
    assert store.trajectory_names == ["a", "b", "traj"]
    np.testing.assert_array_equal(store.trajectory("a").positions(), store.trajectory("traj").positions())


@pytest.mark.parametrize("fmt", ["dcd", "xtc", "trr", "pdb"])
def test_export_then_ingest_round_trip(water_files, tmp_path, fmt):
    traj, top, system = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    store = Store.open(tmp_path / "s.zarr")
    result = export(store, tmp_path / f"out.{fmt}", start=2, stop=11, stride=2)
    assert result.frames == 5
    again = ingest([tmp_path / f"out.{fmt}"], tmp_path / "again.zarr", topology=tmp_path / "out.pdb")
    back = Store.open(again.store)
    tol = FORMATS[fmt][1]
    np.testing.assert_allclose(back.trajectory().positions(), store.trajectory().positions(2, 11, 2), atol=tol)
    assert back.topology.same_system(store.topology)
    assert len(back.topology.bonds) == len(store.topology.bonds)
    if fmt != "pdb":
        np.testing.assert_allclose(back.trajectory().boxes(), store.trajectory().boxes(2, 11, 2), atol=1e-3)


def test_export_selection_writes_only_those_atoms(water_files, tmp_path):
    traj, top, _ = water_files
    ingest([traj], tmp_path / "s.zarr", topology=top)
    export(tmp_path / "s.zarr", tmp_path / "o.dcd", select="name OW")
    back = Store.open(ingest([tmp_path / "o.dcd"], tmp_path / "o.zarr", topology=tmp_path / "o.pdb").store)
    assert back.topology.n_atoms == 4


def test_water_geometry_is_constant_after_ingest_of_the_shipped_example(tmp_path):
    from pathlib import Path

    examples = Path(__file__).resolve().parent.parent / "examples"
    ingest([examples / "water.xtc"], tmp_path / "w.zarr", topology=examples / "water.pdb")
    positions = Store.open(tmp_path / "w.zarr").trajectory().positions()
    oh = np.linalg.norm(positions[:, 1::3] - positions[:, 0::3], axis=-1)
    np.testing.assert_allclose(oh, 0.9572, atol=0.02)  # rigid TIP3P, XTC precision 0.01 Å per coordinate
    assert np.linalg.norm(np.diff(positions, axis=0), axis=-1).max() < 4.0  # no jumps across the 12.5 Å box


def test_water_template_is_the_tip3p_geometry():
    # guards the fixture itself: O–H 0.9572 Å, H–O–H 104.52°
    a, b = WATER[1] - WATER[0], WATER[2] - WATER[0]
    assert np.linalg.norm(a) == pytest.approx(0.9572, abs=1e-4)
    assert np.linalg.norm(b) == pytest.approx(0.9572, abs=1e-4)
    assert np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b))) == pytest.approx(104.52, abs=0.01)


def test_format_option_reads_a_file_whose_extension_does_not_say(water_files, tmp_path):
    traj, top, system = water_files
    renamed = tmp_path / "traj.data"
    renamed.write_bytes(traj.read_bytes())
    ingest([renamed], tmp_path / "s.zarr", topology=top, fmt="DCD")
    assert Store.open(tmp_path / "s.zarr").trajectory().n_frames == len(system.positions)


def test_ingest_into_a_url_store_and_export_from_it(water_files, tmp_path):
    traj, top, system = water_files
    url = f"memory://ingest-{tmp_path.name}"
    ingest([traj], url, topology=top)
    np.testing.assert_allclose(Store.open(url).trajectory().positions(), system.positions, atol=2e-4)
    export(url, tmp_path / "o.dcd")
    back = Store.open(ingest([tmp_path / "o.dcd"], tmp_path / "o.zarr", topology=tmp_path / "o.pdb").store)
    np.testing.assert_allclose(back.trajectory().positions(), system.positions, atol=2e-4)


def test_ingest_into_a_new_local_store_does_not_import_zarr(tmp_path, water_system):
    # a local store's files are written as zarr writes them, without zarr (store._LocalNodes): ingest does not
    # pay zarr's import; what it wrote reads back through zarr
    import subprocess
    import sys

    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / "traj.xtc", wrap=True, topology=top)
    code = ("import sys; from mdforecast import ingest; ingest([sys.argv[1]], sys.argv[2], topology=sys.argv[3]); "
            "print(sorted(name for name in sys.modules if name.startswith('zarr.')))")
    done = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "s.zarr"), str(top)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    np.testing.assert_allclose(traj.positions(), water_system.positions, atol=6e-3, rtol=0)
    assert traj.attrs["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def _water_geometry(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """O–H ``(T, W, 2)`` and H–H ``(T, W)`` distances, Å, of waters stored as O, H, H."""
    oh = np.linalg.norm(positions[:, np.r_[1:positions.shape[1]:3, 2:positions.shape[1]:3]]
                        - np.tile(positions[:, 0::3], (1, 2, 1)), axis=-1)
    return oh, np.linalg.norm(positions[:, 2::3] - positions[:, 1::3], axis=-1)


@pytest.mark.parametrize("wrap", ["atom", "molecule"])
@pytest.mark.parametrize("box", list(COMPACT_BOXES))
def test_sparse_npt_water_in_compact_boxes_stays_whole(tmp_path, box, wrap):
    # GROMACS-like: rhombic dodecahedron or truncated octahedron, box scaled every frame (NPT), frames so far
    # apart (each water moves 0.3 of the image distance, in a new orientation) that nothing is correlated
    import MDAnalysis as mda
    from MDAnalysis.lib.distances import minimize_vectors

    system = sparse_waters(box, seed=5)
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "w.trr", wrap=wrap, topology=top)
    result = ingest([path], tmp_path / "s.zarr", topology=top)
    assert result.warnings == []
    stored = Store.open(tmp_path / "s.zarr").trajectory().positions()
    oh, hh = _water_geometry(stored)
    np.testing.assert_allclose(oh, 0.9572, atol=2e-4)
    np.testing.assert_allclose(hh, 1.5139, atol=2e-4)
    universe = mda.Universe(str(top), str(path))
    file_positions = np.stack([ts.positions.copy() for ts in universe.trajectory])
    dims = np.stack([ts.dimensions.copy() for ts in universe.trajectory])
    oxygens = np.repeat(np.arange(0, system.n_atoms, 3), 3)
    for t in range(len(stored)):
        # reference atoms (oxygens) step by MDAnalysis' minimum image of the file's step, frame by frame
        if t:
            expected = minimize_vectors(file_positions[t, 0::3] - file_positions[t - 1, 0::3], dims[t])
            np.testing.assert_allclose(stored[t, 0::3] - stored[t - 1, 0::3], expected, atol=2e-4)
        # and every atom sits at the minimum image of its file position around its molecule's oxygen
        expected = minimize_vectors(file_positions[t] - file_positions[t, oxygens], dims[t])
        np.testing.assert_allclose(stored[t] - stored[t, oxygens], expected, atol=2e-4)


def test_gromacs_xtc_of_a_dodecahedron_stays_whole(tmp_path):
    system = sparse_waters("dodecahedron", n_frames=12, seed=6)
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "w.xtc", wrap=True, topology=top)
    ingest([path], tmp_path / "s.zarr", topology=top)
    oh, hh = _water_geometry(Store.open(tmp_path / "s.zarr").trajectory().positions())
    np.testing.assert_allclose(oh, 0.9572, atol=0.02)  # XTC: 0.01 Å per coordinate
    np.testing.assert_allclose(hh, 1.5139, atol=0.02)


def test_a_selection_inside_molecules_is_placed_through_their_other_atoms(tmp_path):
    system = sparse_waters("truncated octahedron", n_frames=10, seed=7)
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "w.trr", wrap=True, topology=top)
    ingest([path], tmp_path / "h.zarr", topology=top, select="name HW1 HW2")
    hydrogens = Store.open(tmp_path / "h.zarr").trajectory().positions()
    np.testing.assert_allclose(np.linalg.norm(hydrogens[:, 1::2] - hydrogens[:, 0::2], axis=-1), 1.5139, atol=2e-4)


def test_too_sparse_frames_give_one_warning(tmp_path):
    system = sparse_waters("dodecahedron", n_frames=8, step=0.45, npt=0.0, seed=8)
    top = tmp_path / "top.pdb"
    path = system.write(tmp_path / "w.trr", wrap=True, topology=top)
    result = ingest([path], tmp_path / "s.zarr", topology=top)
    assert len(result.warnings) == 1
    assert "100.00% of the molecules' steps" in result.warnings[0] and "--no-unwrap" in result.warnings[0]
    assert "under-counted" in result.warnings[0] and "8.0 Å" in result.warnings[0]  # 0.4 × 20 Å


def test_time_step_unknown_unless_given(tmp_path, water_system):
    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / "w.xyz", topology=top)  # XYZ records no time
    ingest([path], tmp_path / "s.zarr", topology=top)
    traj = Store.open(tmp_path / "s.zarr").trajectory()
    assert traj.attrs["dt_ps"] is None and traj.dt_ps is None
    assert np.isnan(traj.times()).all()
    ingest([path], tmp_path / "dt.zarr", topology=top, dt_ps=2.0, start=1, stride=2)
    traj = Store.open(tmp_path / "dt.zarr").trajectory()
    assert traj.dt_ps == pytest.approx(4.0)
    np.testing.assert_allclose(traj.times(), 2.0 * np.arange(1, 12, 2))
    with pytest.raises(InputError, match="--dt"):
        ingest([path], tmp_path / "bad.zarr", topology=top, dt_ps=0.0)


def test_truncated_xtc_warns_and_garbled_xtc_is_refused(tmp_path, water_system):
    top = tmp_path / "top.pdb"
    data = water_system.write(tmp_path / "w.xtc", wrap=True, topology=top).read_bytes()
    (tmp_path / "cut.xtc").write_bytes(data[:-30])
    result = ingest([tmp_path / "cut.xtc"], tmp_path / "cut.zarr", topology=top)
    assert result.trajectories == {"cut": 11}
    assert len(result.warnings) == 1 and "incomplete frame" in result.warnings[0]
    garbled = bytearray(data)
    second = 92 + (int.from_bytes(data[88:92], "big") + 3) // 4 * 4  # frame 0: 92-byte header + its coordinates
    garbled[second + 56:second + 60] = np.array([0.0], ">f4").tobytes()  # frame 1's precision: 0
    (tmp_path / "bad.xtc").write_bytes(bytes(garbled))
    with pytest.raises(InputError, match="frame 1 .*compression"):
        ingest([tmp_path / "bad.xtc"], tmp_path / "bad.zarr", topology=top)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name or p.name == "bad.zarr"]


@pytest.mark.parametrize("field, at, value, needle", [("box", 16 + 4, np.nan, "non-finite or absurd time or box"),
                                                       ("time", 12, 3e7, "non-finite or absurd time or box"),
                                                       ("smallidx", 84, 99, "impossible compression parameters"),
                                                       ("magic", 0, 1996, "XTC magic number")])
def test_xtc_header_checks_name_the_first_bad_frame(tmp_path, water_system, field, at, value, needle):
    import MDAnalysis as mda

    from mdforecast.mdio import check_xtc

    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / "w.xtc", wrap=True, topology=top)
    index = check_xtc(path)
    reader = mda.Universe(str(top), str(path)).trajectory
    np.testing.assert_array_equal(index.offsets, reader._xdr.offsets)  # the walk finds MDAnalysis' frames
    np.testing.assert_allclose(index.times, [ts.time for ts in reader], atol=1e-4)
    data = bytearray(path.read_bytes())
    for frame in (9, 5):  # frame 5 comes first
        dtype = ">i4" if field in ("smallidx", "magic") else ">f4"
        data[index.offsets[frame] + at:index.offsets[frame] + at + 4] = np.array([value], dtype).tobytes()
    (tmp_path / "bad.xtc").write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"frame 5 \\(byte {index.offsets[5]}\\) .*{needle}"):
        check_xtc(tmp_path / "bad.xtc")


def test_the_decoding_process_prepares_blocks_and_reports_their_errors(tmp_path, water_system):
    from mdforecast.mdio import XTCFrames, check_xtc

    path = water_system.write(tmp_path / "w.xtc", topology=tmp_path / "top.pdb")
    index = check_xtc(path)

    def prepare(part):  # runs in the decoding process
        if part["frame"][0] == 4:
            raise InputError("frame 4 refused; fix it")
        if part["frame"][0] == 8:
            raise ZeroDivisionError("a bug")
        part["position"][:] = 1.0
        part["twice"][:] = 2 * part["frame"]

    for first, error, match in [(0, InputError, "^frame 4 refused; fix it$"),
                                (8, RuntimeError, "ZeroDivisionError: a bug")]:
        decoder = XTCFrames(path, range(first, 12), offsets=index.offsets, atoms=None, n_atoms=index.n_atoms,
                            size=4, fields={"twice": ((), np.int64)}, prepare=prepare)
        seen = []
        with pytest.raises(error, match=match):
            for n, part in decoder:
                assert (part["position"] == 1.0).all()
                seen.append(part["twice"].tolist())
        assert seen == ([[0, 2, 4, 6]] if first == 0 else [])


def test_a_box_turning_triclinic_in_an_xtc_is_refused_in_one_line(tmp_path, water_system):
    import MDAnalysis as mda

    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / "w.xtc", topology=top)
    universe = mda.Universe(str(top), str(path))
    with mda.Writer(str(tmp_path / "skew.xtc"), universe.atoms.n_atoms) as writer:
        for ts in universe.trajectory:
            if ts.frame >= 6:
                ts.dimensions = [*ts.dimensions[:3], 90, 90, 60]
            writer.write(universe.atoms)
    with pytest.raises(InputError, match="frame 6 of .* has a triclinic box while earlier frames") as failure:
        ingest([tmp_path / "skew.xtc"], tmp_path / "s.zarr", topology=top)
    assert "\n" not in str(failure.value)
    assert not [p for p in tmp_path.iterdir() if "zarr" in p.name]


def test_xtc_frame_decoding_outside_its_declared_range_is_refused(tmp_path, water_system, monkeypatch):
    import dataclasses
    import importlib

    import MDAnalysis as mda

    ingest_module = importlib.import_module("mdforecast.ingest")  # the module, not the function of that name
    top = tmp_path / "top.pdb"
    path = water_system.write(tmp_path / "w.xtc", wrap=True, topology=top)
    index = ingest_module.check_xtc(path)
    bounds = index.bounds
    assert index.note is None and bounds.shape == (12, 2, 3) and index.n_atoms == water_system.n_atoms
    data = np.stack([ts.positions.copy() for ts in mda.Universe(str(top), str(path)).trajectory])
    np.testing.assert_allclose(bounds[:, 0], data.min(axis=1), atol=0.01)  # the header's range is the data's
    np.testing.assert_allclose(bounds[:, 1], data.max(axis=1), atol=0.01)
    bounds[7, 1] -= 1.0  # as if frame 7's compressed data decoded beyond what its header declares
    monkeypatch.setattr(ingest_module, "check_xtc", lambda p: dataclasses.replace(index, bounds=bounds))
    with pytest.raises(InputError, match="frame 7 .* outside the range its header declares"):
        ingest([path], tmp_path / "s.zarr", topology=top)
