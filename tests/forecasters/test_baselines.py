"""baselines: each formula on constructed motion, the τc fit, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from mdforecast.forecasters.baselines import (BASELINES, ConstantVelocity, DampedVelocity, LinearAR, ObservedMean,
                                              Persistence, fit_decay_time, fit_linear_ar)
from mdforecast.errors import InputError
from mdforecast.forecasters import Forecaster, Observation
from synth import argon, random_walk


def observation(positions: np.ndarray, start: int = 0) -> Observation:
    return Observation(positions=positions.astype(np.float32), topology=argon(positions.shape[1]), dt_ps=0.1,
                       start=start)


@pytest.fixture
def walk() -> Observation:
    return observation(random_walk(50, 5, seed=2), start=10)  # frames [10, 60)


def test_registry_is_the_set_of_baselines_and_each_builds():
    assert list(BASELINES) == ["persistence", "mean", "velocity", "damped-velocity", "linear-ar"]
    for name, cls in BASELINES.items():
        forecaster = cls()
        assert isinstance(forecaster, Forecaster) and forecaster.name == name
        out = forecaster.predict(observation(random_walk(30, 4)), np.array([30.0, 31.5, 100.0]))
        assert out.shape == (3, 4, 3) and out.dtype == np.float32


def test_persistence_and_mean(walk):
    times = np.array([60.0, 75.25, 500.0])
    np.testing.assert_array_equal(Persistence().predict(walk, times), np.repeat(walk.positions[-1:], 3, axis=0))
    np.testing.assert_allclose(ObservedMean().predict(walk, times)[1], walk.positions.mean(axis=0), atol=1e-5)


def test_velocity_continues_uniform_motion_exactly():
    v = np.array([[0.3, -0.2, 0.05]] * 4)
    x0 = np.random.default_rng(0).uniform(0, 5, (4, 3))
    frames = np.arange(20)
    positions = x0 + frames[:, None, None] * v
    obs = observation(positions)
    times = np.array([20.0, 23.5, 40.0])
    expected = x0 + times[:, None, None] * v
    np.testing.assert_allclose(ConstantVelocity().predict(obs, times), expected, atol=1e-4)


def test_damped_velocity_formula_with_given_decay(walk):
    tc, times = 3.0, np.array([60.0, 61.0, 70.5])
    tau = times - 59
    v = walk.positions[-1].astype(np.float64) - walk.positions[-2]
    expected = walk.positions[-1] + (tc * (1 - np.exp(-tau / tc)))[:, None, None] * v
    np.testing.assert_allclose(DampedVelocity(tc).predict(walk, times), expected, atol=1e-4)
    # far ahead it stops at x0 + v·τc; right after the last frame it moves like the velocity baseline
    far = DampedVelocity(tc).predict(walk, np.array([1e6]))[0]
    np.testing.assert_allclose(far, walk.positions[-1] + tc * v, atol=1e-4)


@pytest.mark.parametrize("tc", [2.0, 8.0])
def test_decay_time_fit_recovers_an_ornstein_uhlenbeck_velocity(tc):
    # velocities AR(1) with φ = e^(−1/τc): the finite-difference estimator's drift saturates at φ/(1−φ) frames
    rng = np.random.default_rng(1)
    phi = np.exp(-1 / tc)
    v = np.zeros((3000, 40, 3))
    for t in range(1, len(v)):
        v[t] = phi * v[t - 1] + rng.normal(0, 1, (40, 3))
    fitted = fit_decay_time([np.cumsum(v, axis=0)])
    assert fitted == pytest.approx(phi / (1 - phi), rel=0.1)


def test_damped_velocity_fits_on_training_trajectories(tmp_path):
    from synth import make_store

    store = make_store(tmp_path / "s.zarr", argon(30), {"a": random_walk(500, 30, seed=1), "b": random_walk(500, 30)})
    model = DampedVelocity().fit(list(store), observe=400)
    assert model.decay_frames is not None and "a, b" in model.describe()["fitted_on"]
    # a Brownian walk has no velocity memory: the fitted drift is far below one frame's worth
    assert model.decay_frames < 0.5


def test_times_inside_the_observation_are_refused(walk):
    with pytest.raises(InputError, match="inside the observed frames"):
        Persistence().predict(walk, np.array([59.0]))


def test_velocity_needs_two_frames():
    with pytest.raises(InputError, match="at least 2 observed frames"):
        ConstantVelocity().predict(observation(random_walk(1, 3)), np.array([5.0]))


def test_linear_ar_fit_is_the_numpy_least_squares_fit():
    # ridge → 0: per lead, the ordinary least-squares fit of every atom's and coordinate's displacement on its
    # last K displacement vectors, all samples pooled (coefficients shared across atoms and coordinates)
    x = np.cumsum(np.random.default_rng(3).normal(size=(120, 6, 3)), axis=0)
    lags, leads = 3, 5
    coefficients = fit_linear_ar([x], lags=lags, max_ahead=leads, origin_stride=2, ridge=0.0)
    origins = np.arange(lags, 120 - leads, 2)
    u = np.stack([x[origins - k + 1] - x[origins - k] for k in range(1, lags + 1)], axis=-1).reshape(-1, lags)
    for tau in range(1, leads + 1):
        target = (x[origins + tau] - x[origins]).reshape(-1)
        expected = np.linalg.lstsq(u, target, rcond=None)[0]
        np.testing.assert_allclose(coefficients[tau - 1], expected, rtol=1e-8)


def test_linear_ar_cross_terms_by_fft_are_the_direct_sums():
    from mdforecast.forecasters.baselines import _lagged_cross, _recent_displacements

    x = np.cumsum(np.random.default_rng(5).normal(size=(300, 7, 3)), axis=0) + 40.0  # far from the origin
    origins, horizon = np.arange(3, 300 - 140, 4), 140
    u = _recent_displacements(x, origins, 3)
    flat = x.reshape(300, -1)
    direct = np.stack([np.einsum("omk,om->k", u, flat[origins + tau] - flat[origins]) for tau in range(1, horizon + 1)])
    np.testing.assert_allclose(_lagged_cross(u, flat, origins, horizon, chunk=4), direct, rtol=1e-9, atol=1e-9)


def test_linear_ar_forecast_recovers_an_autoregressive_motion_and_is_equivariant():
    # displacements AR(2): d_t = 0.6 d_{t−1} − 0.2 d_{t−2} + noise; the lead-1 coefficients are (0.6, −0.2)
    rng = np.random.default_rng(4)
    d = np.zeros((4000, 20, 3))
    for t in range(2, len(d)):
        d[t] = 0.6 * d[t - 1] - 0.2 * d[t - 2] + rng.normal(size=(20, 3))
    coefficients = fit_linear_ar([np.cumsum(d, axis=0)], lags=2, max_ahead=10)
    np.testing.assert_allclose(coefficients[0], [0.6, -0.2], atol=0.02)
    model = LinearAR(coefficients)
    obs = observation(np.cumsum(d[:50], axis=0))
    times = np.array([50.0, 50.5, 55.0, 500.0])
    out = model.predict(obs, times)
    last, u1 = obs.positions[-1].astype(np.float64), obs.positions[-1] - obs.positions[-2].astype(np.float64)
    u2 = obs.positions[-2] - obs.positions[-3].astype(np.float64)
    np.testing.assert_allclose(out[0], last + coefficients[0, 0] * u1 + coefficients[0, 1] * u2, atol=1e-4)
    np.testing.assert_allclose(out[3], last + coefficients[-1, 0] * u1 + coefficients[-1, 1] * u2, atol=1e-4)
    rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    moved = observation(obs.positions.astype(np.float64) @ rotation.T + 5.0)
    np.testing.assert_allclose(model.predict(moved, times), out.astype(np.float64) @ rotation.T + 5.0, atol=1e-3)
    permutation = rng.permutation(20)
    np.testing.assert_allclose(model.predict(observation(obs.positions[:, permutation]), times), out[:, permutation])


def test_linear_ar_fits_on_training_trajectories(tmp_path):
    from synth import make_store

    store = make_store(tmp_path / "s.zarr", argon(30), {"a": random_walk(500, 30, seed=1), "b": random_walk(500, 30)})
    model = LinearAR().fit(list(store), observe=400)
    assert model.coefficients.shape == (198, 3) and "a, b" in model.describe()["fitted_on"]
    with pytest.raises(InputError, match="at least 5 frames"):
        fit_linear_ar([random_walk(3, 4)], lags=3)
