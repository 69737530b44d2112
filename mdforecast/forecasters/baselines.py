"""Baseline forecasters (FIELD.md "Baselines"): what a learned model must beat, with its interface.

With the last observed frame :math:`x_0` at trajectory frame :math:`t_0 = \\mathrm{end} - 1` and
:math:`\\tau = t - t_0` frames ahead:

- ``persistence``: :math:`\\hat x(t) = x_0` (its MSE at τ is the mean squared displacement at τ);
- ``mean``: the mean of the observed frames (unwrapped positions);
- ``velocity``: :math:`\\hat x = x_0 + v\\tau`;
- ``damped-velocity``: :math:`\\hat x = x_0 + v\\,\\tau_c(1 - e^{-\\tau/\\tau_c})`, with :math:`\\tau_c` fitted
  by least squares on the training trajectories' observed frames (on the observation itself when no training
  trajectory is given).

The velocity :math:`v = x_0 - x_{-1}` (Å per frame) is the **backward finite difference of the last two
observed frames**, never stored velocities: it exists for every store, it is the displacement per frame on
the scale the forecast is made, and ``damped-velocity`` fits τc with the very same estimator, so the fit
absorbs its half-frame lag. (Stored MD velocities are instantaneous; over a 0.1 ps frame in a liquid they
decorrelate, so the finite difference is the more useful estimate of the next frames' drift.)

:data:`BASELINES` is the registry and the single source of the ``--model``/``--baselines`` choices.

Shapes: T observed frames, N atoms, K requested times.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..store import Trajectory
from .base import Forecaster, Observation, lead_time

__all__ = ["BASELINES", "Persistence", "ObservedMean", "ConstantVelocity", "DampedVelocity", "LinearAR",
           "fit_decay_time", "fit_linear_ar", "linear_ar_displacement"]


def _ahead(observation: Observation, times: np.ndarray) -> np.ndarray:
    """Frames ahead of the last observed frame, ``(K,)`` float64; refuses times inside the observation."""
    times = np.asarray(times, dtype=np.float64)
    if times.size and times.min() < observation.end:
        raise InputError(f"forecast time {times.min():g} lies inside the observed frames "
                         f"[{observation.start}, {observation.end}); ask for times ≥ {observation.end}")
    return lead_time(times, observation.end)


def _velocity(observation: Observation) -> np.ndarray:
    """Backward finite difference of the last two observed frames, ``(N, 3)`` float64 Å/frame."""
    if observation.n_frames < 2:
        raise InputError("a velocity baseline needs at least 2 observed frames; raise --observe")
    return observation.positions[-1].astype(np.float64) - observation.positions[-2].astype(np.float64)


class Persistence(Forecaster):
    """The last observed frame, forever."""

    name = "persistence"

    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        tau = _ahead(observation, times)
        return np.repeat(observation.positions[-1][None], len(tau), axis=0).astype(np.float32)


class ObservedMean(Forecaster):
    """The mean of the observed (unwrapped) positions, forever."""

    name = "mean"

    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        tau = _ahead(observation, times)
        mean = observation.positions.mean(axis=0, dtype=np.float64)
        return np.repeat(mean[None], len(tau), axis=0).astype(np.float32)


class ConstantVelocity(Forecaster):
    """The last observed frame moved on at its finite-difference velocity: :math:`x_0 + v\\tau`."""

    name = "velocity"

    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        tau = _ahead(observation, times)
        x0 = observation.positions[-1].astype(np.float64)
        return (x0[None] + tau[:, None, None] * _velocity(observation)[None]).astype(np.float32)


def fit_decay_time(positions: list[np.ndarray], *, max_ahead: int = 200, origin_stride: int = 5) -> float:
    """Least-squares τc (frames) of :math:`d(\\tau) \\approx v\\,\\tau_c(1 - e^{-\\tau/\\tau_c})` on trajectories.

    For origins :math:`t_0` (every ``origin_stride`` frames) and τ = 1 … ``max_ahead``, with
    :math:`v = x_{t_0} - x_{t_0-1}` and :math:`d = x_{t_0+\\tau} - x_{t_0}`, the squared error summed over
    origins, atoms and τ is :math:`\\sum_\\tau g(\\tau)^2 S - 2 g(\\tau) C(\\tau) + \\mathrm{const}` with
    :math:`S = \\sum v\\cdot v` and :math:`C(\\tau) = \\sum v\\cdot d(\\tau)`; it is minimised over
    :math:`\\log\\tau_c` (bounded search, 0.01 – 10⁴ frames).

    Args:
        positions: unwrapped ``(T, N, 3)`` Å arrays, one per trajectory (T ≥ 3).
    """
    from scipy.optimize import minimize_scalar

    cross: np.ndarray | None = None
    norm = 0.0
    for x in positions:
        x = np.asarray(x, dtype=np.float64)
        horizon = min(max_ahead, (x.shape[0] - 1) // 2)  # leave as many origins as horizons
        if horizon < 1:
            continue
        origins = np.arange(1, x.shape[0] - horizon, origin_stride)
        v = x[origins] - x[origins - 1]
        c = np.array([np.sum(v * (x[origins + k] - x[origins])) for k in range(1, horizon + 1)])
        cross = c if cross is None else cross[: len(c)] + c[: len(cross)]
        norm += float(np.sum(v * v))
    if cross is None or norm <= 0.0:
        raise InputError("fitting the damped velocity's decay time needs trajectories of at least 3 frames "
                         "that move; observe more frames")
    tau = np.arange(1, len(cross) + 1, dtype=np.float64)

    def loss(log_tc: float) -> float:
        g = np.exp(log_tc) * -np.expm1(-tau / np.exp(log_tc))
        return float(np.sum(g * g * norm - 2.0 * g * cross))

    best = minimize_scalar(loss, bounds=(np.log(1e-2), np.log(1e4)), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(best.x))


class DampedVelocity(Forecaster):
    """The velocity baseline with decaying drift: :math:`x_0 + v\\,\\tau_c(1 - e^{-\\tau/\\tau_c})`.

    Args:
        decay_frames: τc in frames; ``None`` until :meth:`fit` (or fitted on the observation at predict time).
    """

    name = "damped-velocity"

    def __init__(self, decay_frames: float | None = None) -> None:
        self.decay_frames = decay_frames
        self.fitted_on = "given" if decay_frames is not None else "each observation's own frames"

    def fit(self, trajectories: list[Trajectory], *, observe: int) -> "DampedVelocity":
        """Fit τc on frames [0, ``observe``) of ``trajectories`` (training data only)."""
        if trajectories:
            self.decay_frames = fit_decay_time([t.positions(0, observe) for t in trajectories])
            self.fitted_on = "training trajectories " + ", ".join(t.name for t in trajectories)
        return self

    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        tau = _ahead(observation, times)
        tc = self.decay_frames if self.decay_frames is not None else fit_decay_time([observation.positions])
        drift = tc * -np.expm1(-tau / tc)
        x0 = observation.positions[-1].astype(np.float64)
        return (x0[None] + drift[:, None, None] * _velocity(observation)[None]).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "decay_frames": self.decay_frames, "fitted_on": self.fitted_on}


def _recent_displacements(x: np.ndarray, origins: np.ndarray, lags: int) -> np.ndarray:
    """``(O, N·3, K)`` float64: :math:`x_{t_0+1-k} - x_{t_0-k}`, k = 1 … K, at origins :math:`t_0` of ``x`` ``(T, N, 3)``."""
    u = np.stack([x[origins - k + 1] - x[origins - k] for k in range(1, lags + 1)], axis=-1)
    return u.reshape(len(origins), -1, lags)


def _lagged_cross(u: np.ndarray, flat: np.ndarray, origins: np.ndarray, horizon: int,
                  chunk: int = 128) -> np.ndarray:
    """``(horizon, K)``: :math:`b_k(\\tau) = \\sum_{o,m} u_{omk} (x_{t_o+\\tau,m} - x_{t_o,m})`, τ = 1 … ``horizon``, for
    ``u`` ``(O, M, K)`` at frames ``origins`` ``(O,)`` of ``flat`` ``(T, M)``, origins + horizon < T. A cross-correlation
    in time, computed by FFT over ``chunk`` columns at a time (O(T log T) per column instead of O(T · horizon))."""
    n_frames, columns = flat.shape
    n = 1 << int(np.ceil(np.log2(n_frames + horizon + 1)))  # zero padding: no wrap-around
    total = np.zeros((horizon + 1, u.shape[2]))
    for lo in range(0, columns, chunk):
        part = flat[:, lo:lo + chunk]
        spectrum = np.fft.rfft(part - part.mean(axis=0), n=n, axis=0)  # the mean cancels in x(t + τ) − x(t)
        weights = np.zeros((n_frames,) + u[:, lo:lo + chunk].shape[1:])
        weights[origins] = u[:, lo:lo + chunk]
        cross = np.einsum("fck,fc->fk", np.fft.rfft(weights, n=n, axis=0).conj(), spectrum)
        total += np.fft.irfft(cross, n=n, axis=0)[:horizon + 1]
    return total[1:] - total[0]


def fit_linear_ar(positions: list[np.ndarray], *, lags: int = 3, max_ahead: int = 1000, origin_stride: int = 5,
                  ridge: float = 1e-3) -> np.ndarray:
    """Ridge coefficients ``(L, K)`` of the displacement at leads τ = 1 … L on the last K displacement vectors.

    For origins :math:`t_0` (every ``origin_stride`` frames) with inputs
    :math:`u_k = x_{t_0+1-k} - x_{t_0-k}` and targets :math:`d(\\tau) = x_{t_0+\\tau} - x_{t_0}` (every atom and
    coordinate one sample), :math:`a(\\tau) = (G + \\lambda \\tfrac{\\mathrm{tr}\\,G}{K} I)^{-1} b(\\tau)` with
    :math:`G = \\sum u u^\\top` and :math:`b(\\tau) = \\sum u\\, d(\\tau)`; L is at most ``max_ahead`` and half
    the longest trajectory (so every lead has as many origins as leads).

    Args:
        positions: unwrapped ``(T, N, 3)`` Å arrays, one per trajectory. lags: K. ridge: λ, relative to the
            mean eigenvalue of G.
    """
    if lags < 1:
        raise InputError(f"the linear autoregression needs at least 1 lag, got {lags}")
    gram, cross = np.zeros((lags, lags)), np.zeros((0, lags))
    for x in positions:
        x = np.asarray(x, dtype=np.float64)
        horizon = min(max_ahead, (x.shape[0] - lags) // 2)
        if horizon < 1:
            continue
        origins = np.arange(lags, x.shape[0] - horizon, origin_stride)
        u = _recent_displacements(x, origins, lags)
        gram += np.einsum("omk,oml->kl", u, u)
        b = _lagged_cross(u, x.reshape(x.shape[0], -1), origins, horizon)
        if len(b) > len(cross):
            b[:len(cross)] += cross
            cross = b
        else:
            cross[:len(b)] += b
    if not len(cross) or np.trace(gram) <= 0.0:
        raise InputError(f"fitting the linear autoregression needs trajectories of at least {lags + 2} frames that "
                         "move; observe more frames")
    regularised = gram + ridge * np.trace(gram) / lags * np.eye(lags)
    return np.linalg.solve(regularised, cross.T).T


def linear_ar_displacement(positions: np.ndarray, coefficients: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Displacements ``(K_t, N, 3)`` float64 Å from the last of ``positions`` ``(T, N, 3)`` at leads ``tau``
    ``(K_t,)`` frames: coefficients ``(L, K)`` of :func:`fit_linear_ar`, interpolated linearly between whole
    leads and held at lead L beyond it (at leads below 1 scaled by τ from zero)."""
    lags = coefficients.shape[1]
    if positions.shape[0] < lags + 1:
        raise InputError(f"the linear autoregression looks back {lags} displacements; observe at least {lags + 1} frames")
    x = np.asarray(positions[-lags - 1:], dtype=np.float64)
    u = _recent_displacements(x, np.array([lags]), lags)[0].reshape(x.shape[1], 3, lags)
    leads = np.arange(0, coefficients.shape[0] + 1, dtype=np.float64)
    table = np.concatenate([np.zeros((1, lags)), coefficients])
    a = np.stack([np.interp(tau, leads, table[:, k]) for k in range(lags)], axis=-1)  # (K_t, K)
    return np.einsum("tk,nxk->tnx", a, u)


class LinearAR(Forecaster):
    """A ridge linear autoregression per lead on the last K displacement vectors (:func:`fit_linear_ar`).

    Args:
        coefficients: ``(L, K)``; ``None`` until :meth:`fit` (or fitted on the observation at predict time).
        lags: K, when fitting.
    """

    name = "linear-ar"

    def __init__(self, coefficients: np.ndarray | None = None, lags: int = 3) -> None:
        self.coefficients = None if coefficients is None else np.asarray(coefficients, dtype=np.float64)
        self.lags = lags if coefficients is None else self.coefficients.shape[1]
        self.fitted_on = "given" if coefficients is not None else "each observation's own frames"

    def fit(self, trajectories: list[Trajectory], *, observe: int) -> "LinearAR":
        """Fit on frames [0, ``observe``) of ``trajectories`` (training data only)."""
        if trajectories:
            self.coefficients = fit_linear_ar([t.positions(0, observe) for t in trajectories], lags=self.lags)
            self.fitted_on = "training trajectories " + ", ".join(t.name for t in trajectories)
        return self

    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        tau = _ahead(observation, times)
        coefficients = self.coefficients if self.coefficients is not None else \
            fit_linear_ar([observation.positions], lags=self.lags)
        x0 = observation.positions[-1].astype(np.float64)
        return (x0[None] + linear_ar_displacement(observation.positions, coefficients, tau)).astype(np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "lags": self.lags, "fitted_on": self.fitted_on,
                "leads": None if self.coefficients is None else len(self.coefficients)}


#: baseline name → class; the single source of the ``--model`` and ``--baselines`` choices
BASELINES: dict[str, type[Forecaster]] = {cls.name: cls for cls in
                                          (Persistence, ObservedMean, ConstantVelocity, DampedVelocity, LinearAR)}
