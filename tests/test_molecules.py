"""Waters found in a topology, and rigid only when the frames confirm it (minimum image within a molecule)."""

import dataclasses

import numpy as np

from mdforecast.molecules import find_waters, rigid_waters, whole
from synth import WATER, rigid_waters as rigid_frames, water


def test_waters_are_found_by_residue_name_or_by_their_bonds():
    groups = find_waters(water(4))
    np.testing.assert_array_equal(groups.atoms, np.arange(12).reshape(4, 3))
    unnamed = dataclasses.replace(water(4), resnames=np.array(["MOL"] * 12))
    np.testing.assert_array_equal(find_waters(unnamed).atoms, groups.atoms)  # O–H, O–H bonds say water
    assert find_waters(dataclasses.replace(unnamed, bonds=None)) is None  # neither name nor bonds


def test_atoms_of_a_water_may_come_in_any_order():
    perm = np.random.default_rng(0).permutation(12)
    groups = find_waters(water(4).subset(perm))
    assert sorted(perm[groups.atoms[:, 0]].tolist()) == [0, 3, 6, 9]  # the oxygens, as references
    assert sorted(perm[groups.atoms].ravel().tolist()) == list(range(12))


def test_rigid_waters_are_accepted_and_a_flexible_model_is_refused():
    frames = rigid_frames(20, 4)
    assert rigid_waters(water(4), frames).n_molecules == 4
    flexible = frames.copy()
    flexible[5, 1] += 0.05 * (frames[5, 1] - frames[5, 0])  # one O–H stretched by 0.05 Å in one frame
    said = []
    assert rigid_waters(water(4), flexible, log=said.append) is None
    assert len(said) == 1 and "flexible" in said[0]


def test_a_water_split_across_box_faces_is_whole_and_rigid():
    box = 12.0
    frames = rigid_frames(10, 4, box=box)
    frames[:, :3] += np.array([box - 0.3, 0.0, 0.0]) - frames[:1, :1]  # molecule 0's oxygen next to the face x = L
    wrapped = frames % box  # its hydrogens now sit on the other side of the box
    assert np.abs(wrapped - frames).max() > 1.0
    boxes = np.full((10, 3), box)
    assert rigid_waters(water(4), wrapped, boxes) is not None
    mol = whole(wrapped, find_waters(water(4)), boxes, per_frame=True)[:, 0]
    np.testing.assert_allclose(np.linalg.norm(mol[:, 1:] - mol[:, :1], axis=-1), np.linalg.norm(WATER[1]), atol=1e-5)
