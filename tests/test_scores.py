"""scores: the protocol's scoring functions against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mdforecast import scores


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 2, (7, 11, 3))
    return truth + rng.normal(0, 0.5, truth.shape), truth


def test_mse_per_frame_matches_loops(pair):
    forecast, truth = pair
    expected = [sum((forecast[k, i, d] - truth[k, i, d]) ** 2 for i in range(11) for d in range(3)) / 33
                for k in range(7)]
    np.testing.assert_allclose(scores.mse_per_frame(forecast, truth), expected, rtol=1e-12)


def test_centred_removes_each_frames_centroid(pair):
    c = scores.centred(pair[0] + np.array([5.0, -3.0, 2.0]))
    np.testing.assert_allclose(c.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(c, scores.centred(pair[0]), atol=1e-12)


def test_kabsch_is_zero_for_a_rotated_translated_copy(pair):
    truth = pair[1]
    rot = Rotation.random(7, random_state=1).as_matrix()
    moved = np.einsum("kij,knj->kni", rot, truth) + np.array([3.0, 1.0, -2.0])
    assert scores.mse_per_frame(moved, truth).min() > 1.0
    np.testing.assert_allclose(scores.kabsch_mse_per_frame(moved, truth), 0, atol=1e-10)


def test_kabsch_matches_scipy_optimal_rotation(pair):
    forecast, truth = pair
    p, q = scores.centred(forecast), scores.centred(truth)
    expected = []
    for k in range(len(p)):
        rot, _ = Rotation.align_vectors(q[k], p[k])  # independent optimal proper rotation of p onto q
        expected.append(np.mean((rot.apply(p[k]) - q[k]) ** 2))
    np.testing.assert_allclose(scores.kabsch_mse_per_frame(forecast, truth), expected, rtol=1e-8)
    assert np.all(scores.kabsch_mse_per_frame(forecast, truth) <= scores.mse_per_frame(p, q) + 1e-12)


def test_kabsch_refuses_reflections():
    truth = np.random.default_rng(0).normal(size=(1, 9, 3))
    mirrored = truth * np.array([1.0, 1.0, -1.0])  # a chiral molecule's mirror image is not a rotation of it
    assert scores.kabsch_mse_per_frame(mirrored, truth)[0] > 1e-3


def test_paper_scale_equals_mse_of_mapped_positions(pair):
    forecast, truth = pair
    low, high = -7.5, 12.0
    mapped = [2 * (x - low) / (high - low) - 1 for x in (forecast, truth)]
    np.testing.assert_allclose(scores.mse_per_frame(forecast, truth) * scores.paper_scale_factor(low, high),
                               scores.mse_per_frame(*mapped), rtol=1e-12)
    with pytest.raises(ValueError):
        scores.paper_scale_factor(1.0, 1.0)


def test_skill_and_chaos_floor():
    assert scores.skill(1.0, 4.0) == pytest.approx(0.75)
    assert scores.skill(8.0, 4.0) == pytest.approx(-1.0)
    assert scores.skill(1.0, 0.0) is None
    assert scores.chaos_floor(np.array([2.0, 4.0, 6.0])) == pytest.approx(2.0)
