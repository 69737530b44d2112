"""fitting: the fusion by lead time finds an exact rollout and stops it where asked; the ablation's sources; it is
fitted on the trajectories it is given, and its choice of sources keeps persistence where they are noise."""

import numpy as np
import torch

from mdforecast import fitting
from mdforecast.fitting import _choose, _groups, fit_fusion
from mdforecast.model import Domino, DominoConfig, Normalisation
from mdforecast.model.data import Series
from synth import argon

torch.set_num_threads(1)

BOX = 12.0


def lattice_model() -> tuple[Domino, np.ndarray]:
    """A model whose dynamics level is exact for its own trajectory (27 atoms, 600 frames, one kind)."""
    config = DominoConfig(observe=10, horizon=20, strides=(4, 1), features=8, vectors=4, encoder_layers=1, radial=4,
                          steps=2, lags=(1,), context=5, cutoff=5.0, checkpoint=False, dynamics=True, force_cutoff=5.0,
                          force_radial=8, force_layers=0, substeps=1, members=1, ar_lags=2, fusion_bins=4)
    model = Domino(config, Normalisation(0.5, (0.1, 0.4), 10.0), ["Ar"]).double()
    grid = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) * (BOX / 3)
    x0 = grid + np.random.default_rng(0).normal(0, 0.15, grid.shape)
    with torch.no_grad():
        model.dynamics.pair.copy_(torch.as_tensor(np.random.default_rng(1).normal(0, 0.02, model.dynamics.pair.shape)))
        box = torch.eye(3, dtype=torch.float64)[None] * BOX
        previous = torch.as_tensor(x0 - np.random.default_rng(2).normal(0, 0.05, x0.shape))[None]
        path = model.dynamics.rollout(previous, torch.as_tensor(x0)[None], torch.zeros(27, dtype=torch.int64), box, 599)
    return model, np.concatenate([x0[None], path[:, 0].numpy()])


def test_fusion_weights_an_exact_rollout_one_and_stops_where_asked():
    model, x = lattice_model()
    series = [Series("a", x, np.repeat(np.eye(3)[None] * BOX, len(x), axis=0))]
    record = fit_fusion(model, series, argon(27), windows=12, max_rollout=10, seed=0)
    weights = model.lead_fusion.weights.numpy()
    edges = model.lead_fusion.edges.tolist()  # bins [1, 2), [2, 5), [5, 10), [10, 21): the rollout stops at lead 9
    assert edges == [1, 2, 5, 10, 21] and record["rollout_frames"] == 9
    np.testing.assert_allclose(weights[:3], [[1.0, 0.0, 0.0]] * 3, atol=1e-4)
    assert weights[3, 0] == 0.0 and record["bins"][0]["chosen"] == "least squares"
    assert record["bins"][0]["mse_ratio_to_persistence"] < 1e-6
    # the ablation without the hierarchy never weights it
    fit_fusion(model, series, argon(27), windows=12, max_rollout=10, seed=0, sources=("dynamics", "linear-ar"))
    assert (model.lead_fusion.weights.numpy()[:, 1] == 0).all()


def test_fusion_is_fitted_on_the_trajectories_given_and_the_autoregression_on_the_others():
    model, x = lattice_model()
    boxes = np.repeat(np.eye(3)[None] * BOX, len(x), axis=0)
    exact = Series("a", x, boxes)  # the rollout is exact on it
    rng = np.random.default_rng(5)
    walks = [Series(f"w{k}", x[0] + np.cumsum(rng.normal(0, 0.3, x.shape), axis=0), boxes) for k in range(2)]
    record = fit_fusion(model, [exact], argon(27), windows=12, max_rollout=10, seed=0, ar_series=walks)
    assert record["trajectories"] == ["a"] and record["autoregression_trajectories"] == ["w0", "w1"]
    np.testing.assert_allclose(model.lead_fusion.weights.numpy()[:3, 0], 1.0, atol=1e-4)
    # fitted on the random walks instead, the rollout (exact only on "a") is not weighted one
    fit_fusion(model, walks, argon(27), windows=12, max_rollout=10, seed=0, ar_series=walks)
    assert np.abs(model.lead_fusion.weights.numpy()[:3, 0] - 1.0).max() > 0.1


def _statistics(rng: np.random.Generator, signal: float, windows: int = 32, values: int = 300):
    """One bin's sufficient statistics of ``windows`` windows of 3 Gaussian sources and a target of unequal
    variance per window; ``signal``: the target's coefficient on source 1 (0: every source is noise)."""
    d = rng.normal(size=(windows, 3, values))
    t = rng.normal(size=(windows, values)) * rng.uniform(0.5, 2.0, (windows, 1)) + signal * d[:, 1]
    return np.einsum("wjm,wim->wji", d, d), np.einsum("wjm,wm->wj", d, t), np.einsum("wm,wm->w", t, t)


def test_the_choice_of_sources_keeps_persistence_on_noise_and_takes_a_real_source():
    groups = np.arange(32)  # independent windows
    noise = [_choose(*_statistics(np.random.default_rng(seed), 0.0), groups, [0, 1, 2])[0] for seed in range(50)]
    # the lowest held-out error alone picks noise sources in about half of these draws
    assert sum(sub == [] for sub in noise) >= 45
    real = [_choose(*_statistics(np.random.default_rng(seed), 0.3), groups, [0, 1, 2]) for seed in range(50)]
    assert sum(sub == [1] for sub, _ in real) >= 45 and all(ratio < 1 for _, ratio in real)
    # a bin with one group of windows cannot be validated: persistence
    g, c, n = _statistics(np.random.default_rng(0), 0.3, windows=8)
    assert _choose(g, c, n, np.zeros(8, dtype=np.int64), [0, 1, 2]) == ([], None)


def test_windows_whose_forecast_spans_overlap_are_one_group():
    trajectories = np.array([0, 0, 0, 1, 1, 0])
    ends = np.array([100, 150, 400, 100, 120, 130])
    # spans of 40 frames: 100-130 chain (30 apart) in trajectory 0, 150 is 20 after 130; 400 alone; trajectory 1 apart
    groups = _groups(trajectories, ends, 40)
    assert groups[0] == groups[5] == groups[1] and len({groups[0], groups[2], groups[3]}) == 3
    assert groups[3] == groups[4]
    assert len(np.unique(_groups(trajectories, ends, 10))) == 6  # short spans: every window its own group
    assert len(np.unique(_groups(trajectories, ends, 1000))) == 2  # long spans: one group per trajectory


def _chains(rng: np.random.Generator, chains: int = 4, copies: int = 8, values: int = 300):
    """Sufficient statistics of ``chains`` × ``copies`` windows of 3 noise sources and a noise target, the
    windows of a chain nearly the same (overlapping forecast spans of one trajectory)."""
    def draw(*shape):
        return np.repeat(rng.normal(size=(chains, *shape)), copies, 0) + 0.3 * rng.normal(size=(chains * copies, *shape))
    d, t = draw(3, values), draw(values)
    return np.einsum("wjm,wim->wji", d, d), np.einsum("wjm,wm->wj", d, t), np.einsum("wm,wm->w", t, t)


def test_noise_replicated_in_overlapping_windows_is_not_taken_for_skill(monkeypatch):
    draws = [_chains(np.random.default_rng(seed)) for seed in range(50)]
    # counted as 32 independent windows, a chance correlation repeated 8 times looks like skill
    assert sum(_choose(g, c, n, np.arange(32), [0, 1, 2])[0] != [] for g, c, n in draws) >= 35
    # as 4 groups of overlapping windows it cannot be validated: persistence
    assert all(_choose(g, c, n, np.arange(32) // 8, [0, 1, 2]) == ([], None) for g, c, n in draws)
    # why: without the minimum, the rule takes noise for skill the more often the fewer the groups
    monkeypatch.setattr(fitting, "MIN_GROUPS", 2)
    rate = {}
    for chains in (2, 8, 16):
        noise = [_chains(np.random.default_rng(seed), chains=chains, copies=32 // chains) for seed in range(100)]
        rate[chains] = sum(_choose(g, c, n, np.arange(32) // (32 // chains), [0, 1, 2])[0] != [] for g, c, n in noise)
    assert rate[2] >= 20 and rate[8] <= 12 and rate[16] <= 5
