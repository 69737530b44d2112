import numpy as np
import torch
from scipy.spatial.transform import Rotation

from mdforecast import scores
from mdforecast.model.superpose import kabsch_msd, rotation, superpose


def _random(shape, seed=0):
    return torch.as_tensor(np.random.default_rng(seed).normal(size=shape), dtype=torch.float64)


def test_rotation_recovers_a_known_rotation_and_translation():
    p = _random((5, 7, 3))
    r = torch.as_tensor(Rotation.random(5, random_state=1).as_matrix(), dtype=torch.float64)
    q = p @ r.transpose(-1, -2) + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    torch.testing.assert_close(rotation(p, q), r)
    torch.testing.assert_close(superpose(p, q), q)
    torch.testing.assert_close(kabsch_msd(p, q), torch.zeros(5, dtype=torch.float64), atol=1e-10, rtol=0)


def test_kabsch_msd_matches_the_numpy_scorer_and_never_exceeds_plain_mse():
    p, q = _random((6, 9, 3), 2), _random((6, 9, 3), 3)
    expected = scores.kabsch_mse_per_frame(p.numpy(), q.numpy())
    np.testing.assert_allclose(kabsch_msd(p, q).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(((superpose(p, q) - q) ** 2).mean((-1, -2)).numpy(), expected, rtol=1e-10)
    assert np.all(expected <= scores.mse_per_frame(scores.centred(p.numpy()), scores.centred(q.numpy())) + 1e-12)


def test_reflections_are_excluded():
    p = _random((1, 8, 3), 4)
    mirrored = p * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.linalg.det(rotation(p, mirrored))[0] > 0
    assert kabsch_msd(p, mirrored)[0] > 1e-3


def test_weights_put_the_weighted_centroids_together_and_fit_heavy_atoms_best():
    p, q = _random((4, 3), 5), _random((4, 3), 6)
    w = torch.tensor([100.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    moved = superpose(p, q, w)
    torch.testing.assert_close((w[:, None] * moved).sum(0), (w[:, None] * q).sum(0))
    assert (moved[0] - q[0]).norm() < (superpose(p, q)[0] - q[0]).norm()
    direct = (w * ((moved - q) ** 2).sum(-1)).sum() / (3 * w.sum())
    torch.testing.assert_close(kabsch_msd(p, q, w), direct)


def test_kabsch_msd_has_a_finite_gradient():
    p = _random((3, 6, 3), 7).requires_grad_()
    kabsch_msd(p, _random((3, 6, 3), 8)).sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
