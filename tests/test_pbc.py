"""Periodic box math against brute force over lattice images and MDAnalysis' ``minimize_vectors``."""

import itertools

import numpy as np
import pytest

from mdforecast.pbc import (Unwrapper, box_matrix, box_vectors, dimensions_from_box, image_distance, minimum_image,
                            reduced_basis)


def brute_force_minimum_image(delta, h):
    images = np.array(list(itertools.product(range(-5, 6), repeat=3))) @ h
    candidates = delta[:, None, :] + images[None]
    best = np.argmin(np.linalg.norm(candidates, axis=-1), axis=1)
    return candidates[np.arange(len(delta)), best]


@pytest.mark.parametrize("dims", [[10, 12, 14, 90, 90, 90], [20, 20, 20, 60, 60, 90], [15, 16, 17, 80, 85, 75]])
def test_minimum_image_matches_brute_force(dims):
    from MDAnalysis.lib.mdamath import triclinic_vectors

    h = triclinic_vectors(np.array(dims, np.float32)).astype(np.float64)
    box = np.diag(h) if np.allclose(h, np.diag(np.diag(h))) else h
    rng = np.random.default_rng(0)
    # displacements shorter than half the smallest box height, shifted by random lattice vectors
    short = rng.uniform(-1, 1, (200, 3)) * 0.2 * min(dims[:3])
    delta = short + rng.integers(-3, 4, (200, 3)) @ h
    np.testing.assert_allclose(minimum_image(delta, box), brute_force_minimum_image(delta, h), atol=1e-9)
    np.testing.assert_allclose(dimensions_from_box(box), dims, atol=1e-3)
    np.testing.assert_allclose(box_vectors(np.array([dims, dims])), [h, h], atol=1e-4)  # MDAnalysis' convention


def test_per_frame_boxes_broadcast_over_atoms():
    boxes = np.array([[10.0, 10, 10], [20.0, 20, 20]])
    delta = np.full((2, 3, 3), 8.0)
    out = minimum_image(delta, boxes)
    np.testing.assert_allclose(out[0], -2.0)
    np.testing.assert_allclose(out[1], 8.0)
    np.testing.assert_allclose(minimum_image(delta, box_matrix(boxes)), out)


def test_unwrapper_follows_a_changing_box():
    # NPT-like: the box shrinks while an atom drifts through the faces. Unwrapping adds the minimum-image
    # displacement of each frame (von Bülow, Bullerjahn & Hummer 2020), so steps stay short and continuous;
    # the wrapped step differs from the true one by (image index) × (box change), here ≤ 4 × 0.02 Å
    # (plus float32 rounding of the stored positions).
    truth = 1.0 + 0.7 * np.arange(60)
    boxes = 10.0 - 0.02 * np.arange(60)
    wrapped = truth % boxes
    unwrapper = Unwrapper(n_atoms=1)
    points = np.stack([wrapped, np.zeros(60), np.zeros(60)], axis=-1)[:, None, :]  # (60, 1, 3)
    edges = np.repeat(boxes[:, None], 3, axis=1)
    # in uneven blocks, as ingest streams them: the result must not depend on where blocks end
    blocks = [(0, 1), (1, 17), (17, 20), (20, 60)]  # 3 frames: edges (3, 3) that are not one triclinic box
    out = np.concatenate([unwrapper.update(points[a:b], edges[a:b]) for a, b in blocks])[:, 0, 0]
    np.testing.assert_allclose(np.diff(out), 0.7, atol=4 * 0.02 + 1e-5)
    assert out[-1] > 3 * boxes[-1]  # it crossed faces several times, never jumped back


# GROMACS' compact boxes of image distance d (MDAnalysis dimensions), and strongly skewed ones
DODECAHEDRON_XY_SQUARE = [30.0, 30.0, 30.0, 60.0, 60.0, 90.0]
DODECAHEDRON_XY_HEXAGON = [30.0, 30.0, 30.0, 60.0, 60.0, 60.0]
TRUNCATED_OCTAHEDRON = [30.0, 30.0, 30.0, 70.528779, 109.471221, 70.528779]
SKEWED = [[20.0, 25.0, 60.0, 30.0, 35.0, 25.0], [40.0, 12.0, 15.0, 150.0, 40.0, 120.0],
          [10.0, 45.0, 12.0, 60.0, 75.0, 30.0]]


@pytest.mark.parametrize("dims", [DODECAHEDRON_XY_SQUARE, DODECAHEDRON_XY_HEXAGON, TRUNCATED_OCTAHEDRON])
def test_minimum_image_matches_mdanalysis_in_compact_boxes(dims):
    from MDAnalysis.lib.distances import minimize_vectors

    rng = np.random.default_rng(1)
    delta = rng.uniform(-2, 2, (2000, 3)) * dims[0]  # any displacement, up to two boxes away
    expected = minimize_vectors(delta, np.array(dims))
    np.testing.assert_allclose(minimum_image(delta, box_vectors(dims)), expected, atol=1e-4)
    assert image_distance(box_vectors(dims)) == pytest.approx(dims[0])  # d: the distance to the nearest image
    # plain rounding of fractional coordinates is not the minimum image in these cells
    h = box_vectors(dims)
    rounded = delta - np.round(delta @ np.linalg.inv(h)) @ h
    assert (np.linalg.norm(rounded, axis=1) > np.linalg.norm(expected, axis=1) + 1e-3).mean() > 0.05


@pytest.mark.parametrize("dims", SKEWED)
def test_minimum_image_is_exact_in_strongly_skewed_boxes(dims):
    from MDAnalysis.lib.distances import minimize_vectors

    h = box_vectors(dims)
    reduced = reduced_basis(h)
    change = reduced @ np.linalg.inv(h)  # integer, determinant ±1: the same lattice
    np.testing.assert_allclose(change, np.round(change), atol=1e-9)
    assert abs(np.linalg.det(np.round(change))) == pytest.approx(1.0)
    superbase = np.vstack([reduced, -reduced.sum(axis=0)])
    assert (superbase @ superbase.T)[np.triu_indices(4, 1)].max() <= 1e-9  # Selling-reduced: no acute pair
    rng = np.random.default_rng(2)
    delta = rng.uniform(-3, 3, (500, 3)) * max(dims[:3])
    out = minimum_image(delta, h)
    shift = (out - delta) @ np.linalg.inv(h)
    np.testing.assert_allclose(shift, np.round(shift), atol=1e-6)  # moved by lattice vectors only
    with pytest.raises(ValueError, match="flat"):
        reduced_basis(np.array([h[0], h[1], h[0] + h[1]]))
    start = delta - np.round(delta @ np.linalg.inv(reduced)) @ reduced
    np.testing.assert_allclose(np.linalg.norm(out, axis=1),
                               np.linalg.norm(brute_force_minimum_image(start, reduced), axis=1), atol=1e-9)
    # never longer than MDAnalysis' 27-image search, and shorter where that search misses in such cells
    theirs = np.linalg.norm(minimize_vectors(delta, np.array(dims, np.float64)), axis=1)
    assert np.all(np.linalg.norm(out, axis=1) <= theirs + 1e-4)
    assert np.any(np.linalg.norm(out, axis=1) < theirs - 1e-3)


def test_minimum_image_with_one_triclinic_box_per_frame():
    boxes = np.stack([box_vectors(np.array(TRUNCATED_OCTAHEDRON) * [s, s, s, 1, 1, 1]) for s in (1.0, 0.9, 1.1)])
    delta = np.random.default_rng(3).uniform(-40, 40, (3, 50, 3))
    out = minimum_image(delta, boxes)
    for t in range(3):
        np.testing.assert_allclose(out[t], minimum_image(delta[t], boxes[t]), atol=1e-12)


def test_unwrapper_keeps_molecules_whole_in_a_dodecahedron():
    # a water wrapped per atom lands its hydrogens in other images; the unwrapper puts them back along bonds
    from MDAnalysis.lib.distances import apply_PBC

    from mdsystems import WATER

    h = box_vectors(DODECAHEDRON_XY_SQUARE)
    rng = np.random.default_rng(4)
    centre = np.array([29.6, 0.2, 20.0]) + np.cumsum(rng.normal(0, 2.0, (40, 3)), axis=0)  # near faces, drifting
    truth = (centre[:, None, :] + WATER[None]).astype(np.float32)  # (40, 3, 3)
    wrapped = np.stack([apply_PBC(x, np.array(DODECAHEDRON_XY_SQUARE, np.float32)) for x in truth])
    assert np.linalg.norm(wrapped[:, 1] - wrapped[:, 0], axis=-1).max() > 5  # split by the box in the input
    boxes = np.repeat(h[None], 40, axis=0)
    out = np.concatenate([Unwrapper(3, np.array([[0, 1], [0, 2]])).update(wrapped, boxes)])
    np.testing.assert_allclose(out, truth - truth[0, 0] + wrapped[0, 0], atol=1e-3)  # one lattice shift throughout


def test_three_frames_of_edges_are_not_taken_for_one_triclinic_box():
    edges = np.array([[10.0, 10, 10], [20.0, 20, 20], [30.0, 30, 30]])
    delta = np.full((3, 2, 3), 8.0)
    out = minimum_image(delta, edges, per_frame=True)
    np.testing.assert_allclose(out[:, 0, 0], [-2.0, 8.0, 8.0])
    np.testing.assert_allclose(image_distance(edges, per_frame=True), [10.0, 20.0, 30.0])


def _unwrap_by_recursion(wrapped, boxes, parent):
    """The definition, frame by frame: reference atoms (parent[i] == i) step by the minimum image of their
    step; every other atom sits at the minimum image of its bond from its parent (parents first in ``order``)."""
    order = [i for i in range(len(parent)) if parent[i] == i]
    while len(order) < len(parent):
        order += [i for i in range(len(parent)) if parent[i] in order and i not in order]
    out = np.empty(wrapped.shape)
    for t in range(len(wrapped)):
        for i in order:
            if parent[i] == i:
                step = wrapped[t, i] - wrapped[t - 1, i] if t else 0.0
                out[t, i] = out[t - 1, i] + minimum_image(step[None], boxes[t])[0] if t else wrapped[0, i]
            else:
                out[t, i] = out[t, parent[i]] + minimum_image((wrapped[t, i] - wrapped[t, parent[i]])[None], boxes[t])[0]
    return out


def test_unwrapper_blocks_equal_frames_one_by_one_and_the_recursion():
    # NPT truncated octahedron; two waters and an 8-atom chain whose lowest-index atom is in its middle (tree
    # depth 4 each way: pointer jumping needs passes), all wrapped per atom while they drift across faces
    from MDAnalysis.lib.distances import apply_PBC

    from mdsystems import WATER

    rng = np.random.default_rng(5)
    n_frames = 30
    chain_order = np.array([7, 5, 3, 1, 0, 2, 4, 6]) + 6  # atom indices along the chain
    bonds = np.array([[0, 1], [0, 2], [3, 4], [3, 5], *zip(chain_order[:-1], chain_order[1:])])
    directions = rng.normal(size=(7, 3))
    chain = np.concatenate([[[0.0, 0, 0]], np.cumsum(1.5 * directions / np.linalg.norm(directions, axis=1)[:, None], 0)])
    centres = rng.uniform(0, 25, (3, 3)) + np.cumsum(rng.normal(0, 2.5, (n_frames, 3, 3)), axis=0)
    truth = np.empty((n_frames, 14, 3))
    truth[:, 0:3] = centres[:, 0, None] + WATER
    truth[:, 3:6] = centres[:, 1, None] + WATER
    truth[:, chain_order] = centres[:, 2, None] + chain
    dims = [np.array(TRUNCATED_OCTAHEDRON) * [s, s, s, 1, 1, 1] for s in 1 + 0.01 * np.sin(np.arange(n_frames))]
    wrapped = np.stack([apply_PBC(x.astype(np.float32), d.astype(np.float32)) for x, d in zip(truth, dims)])
    boxes = box_vectors(np.array(dims)).astype(np.float32)
    assert np.linalg.norm(np.diff(wrapped, axis=0), axis=-1).max() > 10  # the file has jumps

    blocks = Unwrapper(14, bonds)
    cuts = [0, 1, 8, 10, n_frames]
    out = np.concatenate([blocks.update(wrapped[a:b], boxes[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    one_by_one = Unwrapper(14, bonds)
    frames = np.concatenate([one_by_one.update(wrapped[t:t + 1], boxes[t:t + 1]) for t in range(n_frames)])
    np.testing.assert_array_equal(out, frames)  # where blocks end changes nothing, to the last bit
    assert (blocks.n_steps, blocks.long_steps) == (one_by_one.n_steps, one_by_one.long_steps) == (29 * 3, 0)

    parent = np.arange(14)
    parent[[1, 2, 4, 5]] = [0, 0, 3, 3]
    root = list(chain_order).index(6)  # the chain's lowest index; each other chain atom hangs on its neighbour
    for k, atom in enumerate(chain_order):
        parent[atom] = atom if k == root else chain_order[k + 1 if k < root else k - 1]
    np.testing.assert_allclose(out, _unwrap_by_recursion(wrapped.astype(np.float64), boxes.astype(np.float64), parent),
                               atol=2e-4)
    bond_lengths = np.linalg.norm(out[:, bonds[:, 0]] - out[:, bonds[:, 1]], axis=-1)
    np.testing.assert_allclose(bond_lengths, np.linalg.norm(truth[:, bonds[:, 0]] - truth[:, bonds[:, 1]], axis=-1),
                               atol=1e-4)  # every molecule whole in every frame
