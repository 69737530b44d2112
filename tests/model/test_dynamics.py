"""The dynamics level and the fusion by lead time: a velocity-Verlet reference, periodic images, symmetries,
the closed-form pair fit, zero weights = persistence, and old (paper) configurations unchanged."""

import dataclasses

import numpy as np
import pytest
import torch

from mdforecast.errors import InputError
from mdforecast.forecasters import DominoForecaster, Observation
from mdforecast.model import Domino, DominoConfig, Normalisation
from mdforecast.model.dynamics import DynamicsLevel, fit_pair_force
from mdforecast.model.graph import radius_graph_all_pairs
from mdforecast.testing import assert_equivariant
from oscillators import oscillators, topology

torch.set_num_threads(1)

BOX, CUTOFF, RADIAL = 12.0, 5.0, 8


def lattice(n_side: int = 3, seed: int = 0) -> np.ndarray:
    """A jittered simple-cubic lattice filling the box, ``(n_side³, 3)`` Å (no two atoms closer than ~3 Å)."""
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) * (BOX / n_side)
    return grid + np.random.default_rng(seed).normal(0, 0.15, grid.shape)


def known_level(substeps: int = 1, layers: int = 0, kinds: int = 1) -> DynamicsLevel:
    level = DynamicsLevel(kinds, CUTOFF, RADIAL, 8, 4, layers, 10.0, substeps=substeps).double()
    with torch.no_grad():
        level.pair.copy_(torch.as_tensor(np.random.default_rng(1).normal(0, 0.02, level.pair.shape)))
    return level


def numpy_acceleration(x: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """The pair term written out: every minimum-image pair within the cutoff, the basis of RadialBasis."""
    d = x[None, :, :] - x[:, None, :]  # x_j − x_i
    d -= BOX * np.round(d / BOX)
    r = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(r, 2 * CUTOFF)  # no self-pair (d = 0 there, so its unit vector is 0 too)
    centers, gamma = np.linspace(0, CUTOFF, RADIAL), ((RADIAL - 1) / CUTOFF) ** 2
    basis = np.exp(-gamma * (r[..., None] - centers) ** 2) * (0.5 * (np.cos(np.pi * r / CUTOFF) + 1))[..., None]
    phi = np.where(r < CUTOFF, basis @ coef, 0.0)
    return (phi[..., None] * d / r[..., None]).sum(axis=1)


@pytest.mark.parametrize("substeps", [1, 3])
def test_rollout_is_velocity_verlet_with_the_pair_force(substeps):
    level = known_level(substeps)
    coef = level.pair.detach().numpy()[0]
    x0 = lattice()
    previous = x0 - np.random.default_rng(2).normal(0, 0.05, x0.shape)
    a = numpy_acceleration(x0, coef)
    v, x, h, expected = x0 - previous + 0.5 * a, x0.copy(), 1.0 / substeps, []
    for _ in range(6):
        for _ in range(substeps):
            x = x + h * v + 0.5 * h * h * a
            a_next = numpy_acceleration(x, coef)
            v = v + 0.5 * h * (a + a_next)
            a = a_next
        expected.append(x)
    kinds = torch.zeros(len(x0), dtype=torch.int64)
    box = torch.eye(3, dtype=torch.float64)[None] * BOX
    got = level.rollout(torch.as_tensor(previous)[None], torch.as_tensor(x0)[None], kinds, box, 6)[:, 0]
    assert np.abs(np.asarray(expected) - x0).max() > 0.05  # the force moves the atoms
    np.testing.assert_allclose(got.detach().numpy(), np.asarray(expected), atol=1e-10)
    # the neighbour function is injectable: the O(N²) reference gives the same rollout
    level.neighbor_fn = radius_graph_all_pairs
    again = level.rollout(torch.as_tensor(previous)[None], torch.as_tensor(x0)[None], kinds, box, 6)[:, 0]
    np.testing.assert_allclose(again.detach().numpy(), np.asarray(expected), atol=1e-10)


def test_periodic_images_and_equivariance_of_the_acceleration():
    level = known_level(layers=1, kinds=2)
    with torch.no_grad():
        level.out.weight.normal_()  # the correction starts at zero; make it act
    kinds = torch.as_tensor(np.arange(27) % 2)
    x = torch.as_tensor(lattice())[None]
    box = torch.eye(3, dtype=torch.float64)[None] * BOX
    a = level.acceleration(x, kinds, box)
    assert level.acceleration(x, kinds, box).abs().max() > 1e-3
    # unwrapped positions: moving single atoms by box vectors changes nothing
    shifts = torch.as_tensor(np.random.default_rng(3).integers(-2, 3, (27, 3)) * BOX)
    torch.testing.assert_close(level.acceleration(x + shifts, kinds, box), a)
    rotation = torch.as_tensor(np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0])
    torch.testing.assert_close(level.acceleration(x @ rotation.T + 3.0, kinds, box @ rotation.T), a @ rotation.T)
    perm = torch.as_tensor(np.random.default_rng(5).permutation(27))
    torch.testing.assert_close(level.acceleration(x[:, perm], kinds[perm], box), a[:, perm])


def test_closed_form_pair_fit_recovers_the_force_of_a_one_step_integrator():
    truth = known_level(substeps=1)
    x0 = lattice(seed=6)
    kinds = torch.zeros(len(x0), dtype=torch.int64)
    box = torch.eye(3, dtype=torch.float64)[None] * BOX
    with torch.no_grad():
        path = truth.rollout(torch.as_tensor(x0 - 0.03)[None], torch.as_tensor(x0)[None], kinds, box, 12)[:, 0].numpy()
    fitted = DynamicsLevel(1, CUTOFF, RADIAL, 8, 4, 0, 10.0).double()
    r2 = fit_pair_force(fitted, [(path[t - 1:t + 2], box[0].numpy()) for t in range(1, 11)], kinds, ridge=0.0)
    assert r2 == pytest.approx(1.0, abs=1e-9)
    torch.testing.assert_close(fitted.acceleration(torch.as_tensor(path[5])[None], kinds, box),
                               truth.acceleration(torch.as_tensor(path[5])[None], kinds, box))


def dynamics_forecaster(members: int = 3, weights: np.ndarray | None = None, *, kinds=("A", "B"), ar_std: float = 0.3,
                        **options) -> DominoForecaster:
    """A small double-precision model with a dynamics level and random (seeded) weights; ``options`` override
    its config (e.g. ``rigid_water=True``)."""
    config = DominoConfig(**{**dict(observe=30, horizon=24, strides=(12, 4, 1), features=16, vectors=8,
                                    encoder_layers=1, radial=8, steps=3, lags=(1, 5), context=10, cutoff=6.0,
                                    checkpoint=False, dynamics=True, force_cutoff=6.0, force_radial=8,
                                    members=members, spread=0.05, fusion_bins=4), **options})
    torch.manual_seed(0)
    model = Domino(config, Normalisation(1.0, (0.2, 0.6, 0.6), 3.0), list(kinds)).double()
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(std=0.5)
        model.dynamics.pair.normal_(std=0.01)
        model.dynamics.out.weight.normal_(std=0.01)
        fusion = model.lead_fusion
        fusion.weights.copy_(torch.as_tensor(np.random.default_rng(0).uniform(0.2, 1.0, fusion.weights.shape)
                                             if weights is None else weights))
        fusion.ar.normal_(std=ar_std)
    return DominoForecaster(model, meta={"dt_ps": 0.1})


def observation(box: float | None = 20.0) -> Observation:
    pos = oscillators(14, 40, box=box, seed=3)[:30].astype(np.float64)
    return Observation(positions=pos, topology=topology(14), dt_ps=0.1,
                       boxes=None if box is None else np.full((30, 3), box))


@pytest.mark.parametrize("box", [20.0, None])
def test_fused_forecast_is_equivariant(box):
    forecaster = dynamics_forecaster()
    obs, times = observation(box), np.array([30, 31.5, 36, 50])
    sources = forecaster.sources(obs, times)
    assert all(np.abs(sources[j]).max() > 0.05 for j in range(3))  # every source moves the atoms
    assert_equivariant(forecaster, obs, times, atol=1e-5)


def test_zero_fusion_weights_are_persistence_exactly():
    forecaster = dynamics_forecaster(weights=np.zeros((4, 3)))
    obs = observation()
    out = forecaster.predict(obs, np.array([30.0, 33.5, 45.0, 70.0]))
    np.testing.assert_array_equal(out, np.repeat(obs.positions[-1:].astype(np.float32), 4, axis=0))


def test_fusion_weights_select_sources_per_lead_bin():
    weights = np.zeros((4, 3))
    weights[0, 0] = 1.0  # lead 1: the rollout; leads ≥ 2: the linear autoregression
    weights[1:, 2] = 1.0
    forecaster = dynamics_forecaster(members=1, weights=weights)
    model = forecaster.model
    assert model.lead_fusion.edges.tolist() == [1, 2, 5, 11, 25]
    obs, times = observation(), np.array([30.0, 31.0, 33.0, 50.0])
    sources = forecaster.sources(obs, times)
    out = forecaster.predict(obs, times)
    np.testing.assert_allclose(out[:1], obs.positions[-1] + sources[0, :1], atol=1e-6)
    np.testing.assert_allclose(out[1:], obs.positions[-1] + sources[2, 1:], atol=1e-6)
    # one member from the observed frames is the rollout of the level itself
    x = torch.as_tensor(obs.positions[-2:])
    box = torch.eye(3, dtype=torch.float64)[None] * 20.0
    path = model.dynamics.rollout(x[:1], x[1:], model.kind_index(obs.topology), box, 2)[:, 0].detach().numpy()
    np.testing.assert_allclose(sources[0, :2], path - obs.positions[-1], atol=1e-8)  # the forecast's φ: a table


def test_the_paper_configuration_has_no_dynamics_level():
    paper = DominoConfig(observe=30, horizon=24, strides=(12, 4, 1), lags=(1, 5), context=10)
    assert not paper.dynamics
    model = Domino(paper, Normalisation(1.0, (0.2, 0.6, 0.6), 3.0), ["A"])
    assert not any(k.startswith(("dynamics", "lead_fusion")) for k in model.state_dict())
    # a model.json written before the dynamics level existed has none of its keys
    old = {k: v for k, v in paper.to_dict().items() if k not in {f.name for f in dataclasses.fields(DominoConfig)
                                                                 if f.name.startswith(("dynamics", "force"))}}
    assert DominoConfig.from_dict(old) == paper


def test_predict_batch_by_batch_rolls_out_once_and_gives_the_forecast_of_one_call():
    """The rollout runs once per observation, to the fusion's ``rollout_frames``; shorter requests are its
    prefix, so the forecast does not depend on how ``predict`` is batched."""
    obs, times = observation(), np.arange(30.0, 50.0)
    whole = dynamics_forecaster()  # rollout_frames 0: rolls out exactly the 20 frames asked for
    expected = whole.predict(obs, times)
    batched = dynamics_forecaster()
    batched.model.lead_fusion.rollout_frames.fill_(30)
    lengths, forecast = [], batched.model.dynamics.forecast
    batched.model.dynamics.forecast = lambda *args, **kw: lengths.append(args[3]) or forecast(*args, **kw)
    got = np.concatenate([batched.predict(obs, times[lo:lo + 5]) for lo in range(0, 20, 5)])
    assert lengths == [30]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_one_rollout_serves_every_lead_of_the_rollouts_last_weighted_bin():
    """Batches ending inside the last bin where the rollout's weight is non-zero do not roll out again: the first
    rollout reaches that bin's end, whatever ``rollout_frames`` says (here 0, as in a model fitted without it)."""
    weights = np.full((4, 3), 0.5)
    weights[2:, 0] = 0.0  # the rollout is weighted in the first two bins only
    obs, times = observation(), np.arange(30.0, 54.0)
    expected = dynamics_forecaster(weights=weights).predict(obs, times)
    batched = dynamics_forecaster(weights=weights)
    fusion = batched.model.lead_fusion
    reach = int(fusion.edges[2])
    assert fusion.reach(0) == reach and fusion.reach(1) == 25 and 2 < reach < 24  # bins: edges[b] ≤ lead < edges[b+1]
    lengths, forecast = [], batched.model.dynamics.forecast
    batched.model.dynamics.forecast = lambda *args, **kw: lengths.append(args[3]) or forecast(*args, **kw)
    got = np.concatenate([batched.predict(obs, times[lo:lo + 2]) for lo in range(0, 24, 2)])
    assert lengths == [reach]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    fusion.weights.zero_()
    assert fusion.reach(0) == 0


def test_forecast_with_several_threads_rolls_members_out_in_groups_with_the_same_result():
    """Members rolled out in groups, one thread each, give the one-call mean; the thread count is restored."""
    level = known_level(layers=1)
    x0 = lattice()
    rng = np.random.default_rng(3)
    recent = torch.as_tensor(np.stack([x0 - k * rng.normal(0, 0.05, x0.shape) for k in (3, 2, 1, 0)]))
    kinds, box = torch.zeros(len(x0), dtype=torch.int64), torch.eye(3, dtype=torch.float64) * BOX
    with torch.no_grad():
        one = level.forecast(recent, kinds, box, 5, members=5, spread=0.05)
        torch.set_num_threads(3)
        try:
            grouped = level.forecast(recent, kinds, box, 5, members=5, spread=0.05)
            assert torch.get_num_threads() == 3
        finally:
            torch.set_num_threads(1)
    assert one.shape == (5, len(x0), 3) and float(one.abs().max()) > 0
    torch.testing.assert_close(grouped, one, rtol=0, atol=1e-12)


def test_tabulated_pair_term_matches_the_basis():
    """Without gradients φ comes from a table (the forecast's rollouts); it matches the basis to ~1e-6 of the
    force, on a repulsive wall as steep as lj's."""
    level = DynamicsLevel(2, 8.5, 25, 8, 4, 0, 12.0).double()
    r = torch.linspace(2.9, 8.5, 400, dtype=torch.float64)
    target = 24 * ((3.4 / r) ** 12 * 2 - (3.4 / r) ** 6) / r * 0.025  # an lj force, Å/frame²
    with torch.no_grad():
        coef = torch.linalg.lstsq(level.basis(r), target[:, None]).solution[:, 0]
        level.pair.copy_(torch.stack([coef, 0.5 * coef, 0.5 * coef, -coef]))
    d = torch.as_tensor(np.random.default_rng(0).uniform(2.9, 8.6, 2000))
    pair = torch.as_tensor(np.random.default_rng(1).integers(0, 4, 2000))
    exact = level.pair_strength(d, pair)
    with torch.no_grad():
        table = level.pair_strength(d, pair)
        assert float(exact.abs().max()) > 1.0
        assert float((table - exact).abs().max()) < 1e-5 * float(exact.abs().max())
        assert float(table[d >= 8.5].abs().max()) == 0.0  # nothing beyond the cutoff
        level.pair.mul_(2.0)  # a changed pair term rebuilds the table
        torch.testing.assert_close(level.pair_strength(d, pair), 2 * table)


def test_rollout_neighbour_list_with_a_skin_matches_fresh_lists(monkeypatch):
    """Atoms that move several skins: the reused list (rebuilt when an atom has moved half the skin) gives the
    rollout of a list built at every step (skin 0)."""
    level = known_level(substeps=2)
    x0 = lattice(seed=8)
    previous = x0 - np.random.default_rng(9).normal(0, 0.15, x0.shape)  # ~0.26 Å per frame
    kinds = torch.zeros(len(x0), dtype=torch.int64)
    box = torch.eye(3, dtype=torch.float64)[None] * BOX
    builds = []
    fn = level.neighbor_fn
    level.neighbor_fn = lambda x, cutoff, b: builds.append(cutoff) or fn(x, cutoff, b)
    reused = level.rollout(torch.as_tensor(previous)[None], torch.as_tensor(x0)[None], kinds, box, 8)
    assert 1 < len(builds) < 17 and builds[0] == pytest.approx(CUTOFF + 0.999 * BOX / 2 - CUTOFF)  # skin: the room
    assert float((reused[-1, 0].detach() - torch.as_tensor(x0)).norm(dim=-1).max()) > 1.5
    monkeypatch.setattr("mdforecast.model.dynamics.SKIN", 0.0)
    fresh = level.rollout(torch.as_tensor(previous)[None], torch.as_tensor(x0)[None], kinds, box, 8)
    torch.testing.assert_close(reused, fresh, rtol=0, atol=1e-10)


def test_fitted_velocity_is_the_true_one_of_a_finely_integrated_path():
    """Frames of a path of the level's own force at 10 steps per frame: the fitted v₀ is the path's velocity
    (to 1e-6 Å/frame), where the last frames' difference is off by the force's curvature."""
    level = known_level(substeps=10)
    with torch.no_grad():
        level.pair.mul_(10.0)  # a force that bends the path within a frame
    x0 = lattice(seed=10)
    kinds = torch.zeros(len(x0), dtype=torch.int64)
    box = torch.eye(3, dtype=torch.float64) * BOX
    v_true = torch.as_tensor(np.random.default_rng(11).normal(0, 0.2, x0.shape))
    with torch.no_grad():  # backwards 3 frames from (x0, v_true), then forwards: the frames the fit sees
        back = level.rollout(None, torch.as_tensor(x0)[None], kinds, box[None], 3, velocity=v_true[None],
                             backward=True)[:, 0]
    recent = torch.cat([back.flip(0), torch.as_tensor(x0)[None]])
    fitted = level.fit_velocity(recent, kinds, box, iterations=100)
    difference = recent[-1] - recent[-2]
    assert float((difference - v_true).abs().max()) > 3e-3
    torch.testing.assert_close(fitted, v_true, rtol=0, atol=1e-6)


def test_quadrature_fit_recovers_the_instantaneous_force():
    """Frames of a path integrated at 20 steps per frame: the quadrature fit finds the force itself (as the
    one-step fit, which finds the force one step per frame needs, does not)."""
    truth = known_level(substeps=20)
    x0 = lattice(seed=12)
    kinds = torch.zeros(len(x0), dtype=torch.int64)
    box = torch.eye(3, dtype=torch.float64)[None] * BOX
    with torch.no_grad():
        path = truth.rollout(None, torch.as_tensor(x0)[None], kinds, box, 14,
                             velocity=torch.as_tensor(np.random.default_rng(13).normal(0, 0.3, x0.shape))[None])
    path = path[:, 0].numpy()
    probe = torch.as_tensor(path[7])[None]
    errors = {}
    for quadrature, reach in ((6, 2), (0, 1)):
        fitted = DynamicsLevel(1, CUTOFF, RADIAL, 8, 4, 0, 10.0).double()
        fit_pair_force(fitted, [(path[t - reach:t + reach + 1], box[0].numpy()) for t in range(2, 12)], kinds,
                       ridge=0.0, quadrature=quadrature)
        with torch.no_grad():
            expected = truth.acceleration(probe, kinds, box)
            errors[quadrature] = float((fitted.acceleration(probe, kinds, box) - expected).abs().max()
                                       / expected.abs().max())
    assert errors[6] < 1e-3 and errors[0] > 10 * errors[6], errors


@pytest.mark.parametrize("members", [1, 3])
def test_forecast_from_a_fitted_velocity_is_equivariant(members):
    """One member: every symmetry (assert_equivariant); members kicked per atom: rotations and translations
    (a permutation changes which atom draws which kick)."""
    forecaster = dynamics_forecaster(members=members, fit_velocity=True, substeps=2)
    obs, times = observation(), np.array([30, 31.5, 36, 50])
    assert np.abs(forecaster.sources(obs, times)[0]).max() > 0.05
    if members == 1:
        assert_equivariant(forecaster, obs, times, atol=1e-5)
        return
    level, kinds = forecaster.model.dynamics, forecaster.model.kind_index(obs.topology)
    recent, box = torch.as_tensor(obs.positions), torch.eye(3, dtype=torch.float64) * 20.0
    rotation = torch.as_tensor(np.linalg.qr(np.random.default_rng(4).normal(size=(3, 3)))[0])
    with torch.no_grad():
        plain = level.forecast(recent, kinds, box, 6, members, 0.05, fit_velocity=True)
        turned = level.forecast(recent @ rotation.T + 5.0, kinds, box @ rotation.T, 6, members, 0.05,
                                fit_velocity=True)
    torch.testing.assert_close(turned, plain @ rotation.T, rtol=0, atol=1e-5)


def test_fit_velocity_is_refused_with_a_rollout_from_rest():
    with pytest.raises(InputError, match="fit_velocity"):
        DominoConfig(observe=30, horizon=24, strides=(12, 4, 1), lags=(1, 5), context=10, dynamics=True,
                     fit_velocity=True, rollout_at_rest=True)
