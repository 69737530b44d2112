"""Periodic box math against brute force over lattice images."""

import itertools

import numpy as np
import pytest

from mdforecast.pbc import Unwrapper, box_matrix, box_vectors, dimensions_from_box, minimum_image


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
    # the wrapped step differs from the true one by (image index) × (box change), here ≤ 4 × 0.02 Å.
    truth = 1.0 + 0.7 * np.arange(60)
    boxes = 10.0 - 0.02 * np.arange(60)
    wrapped = truth % boxes
    unwrapper = Unwrapper()
    points = np.stack([wrapped, np.zeros(60), np.zeros(60)], axis=-1)[:, None, :]  # (60, 1, 3)
    edges = np.repeat(boxes[:, None], 3, axis=1)
    # in uneven blocks, as ingest streams them: the result must not depend on where blocks end
    out = np.concatenate([unwrapper.update(points[a:b], edges[a:b]) for a, b in [(0, 1), (1, 17), (17, 60)]])[:, 0, 0]
    np.testing.assert_allclose(np.diff(out), 0.7, atol=4 * 0.02 + 1e-9)
    assert out[-1] > 3 * boxes[-1]  # it crossed faces several times, never jumped back
