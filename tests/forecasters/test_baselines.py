"""baselines: each formula on constructed motion, the τc fit, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from mdforecast.forecasters.baselines import (BASELINES, ConstantVelocity, DampedVelocity, ObservedMean, Persistence,
                                  fit_decay_time)
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
    assert list(BASELINES) == ["persistence", "mean", "velocity", "damped-velocity"]
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
