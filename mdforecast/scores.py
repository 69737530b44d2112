"""Scoring functions of the benchmark protocol (PROTOCOL.md "Scores"): pure numpy, exact, float64.

Every function takes positions ``(K, N, 3)`` Å (K frames, N atoms) and returns one number per frame, so a
window's score is the mean of its frames' scores (each frame has the same N × 3 coordinates, so that mean
equals the MSE over atoms, xyz and frames) and an MSE-vs-horizon curve comes for free.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["mse_per_frame", "centred", "kabsch_mse_per_frame", "paper_scale_factor", "paper_scale", "skill",
           "chaos_floor"]

_BLOCK = 1000  # frames read at a time by paper_scale


def mse_per_frame(forecast: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean squared error of each frame over atoms and xyz, ``(K,)`` float64 Å².

    .. math:: \\mathrm{MSE}_k = \\frac{1}{3N} \\sum_{i,d} (\\hat x_{kid} - x_{kid})^2
    """
    diff = np.asarray(forecast, dtype=np.float64) - np.asarray(truth, dtype=np.float64)
    return np.mean(diff * diff, axis=(1, 2))


def centred(positions: np.ndarray) -> np.ndarray:
    """Positions ``(K, N, 3)`` with each frame's centroid (unweighted) removed, float64 Å."""
    positions = np.asarray(positions, dtype=np.float64)
    return positions - positions.mean(axis=1, keepdims=True)


def kabsch_mse_per_frame(forecast: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """MSE ``(K,)`` Å² after optimally superposing each forecast frame onto the true one (Kabsch).

    Both frames are centred, the forecast is rotated by the proper rotation R minimising
    :math:`\\sum_i |R\\hat x_i - x_i|^2` (SVD of the covariance, reflection excluded), and the MSE is taken
    over atoms and xyz. It scores the conformation, not the orientation or position.
    """
    p, q = centred(forecast), centred(truth)
    h = np.einsum("kni,knj->kij", p, q)  # covariance (K, 3, 3)
    u, s, vt = np.linalg.svd(h)
    sign = np.sign(np.linalg.det(u @ vt))  # −1 where the optimum would be a reflection
    s[:, 2] *= sign
    # minimal sum of squares = |p|² + |q|² − 2·(s1 + s2 ± s3)
    sq = np.sum(p * p, axis=(1, 2)) + np.sum(q * q, axis=(1, 2)) - 2.0 * s.sum(axis=1)
    return np.maximum(sq, 0.0) / (3 * p.shape[1])


def paper_scale_factor(low: float, high: float) -> float:
    """Factor turning an MSE in Å² into the paper's scale: positions mapped to [-1, 1] by ``low``/``high`` Å.

    The map :math:`x' = 2(x - \\mathrm{low})/(\\mathrm{high} - \\mathrm{low}) - 1` is affine with one
    slope, so :math:`\\mathrm{MSE}' = \\mathrm{MSE} \\cdot 4/(\\mathrm{high} - \\mathrm{low})^2` exactly.
    """
    if not high > low:
        raise ValueError(f"the paper scale needs high > low, got low={low}, high={high}")
    return 4.0 / (high - low) ** 2


def skill(mse_model: float, mse_baseline: float) -> float | None:
    """Skill ``1 − MSE_model / MSE_baseline`` (1 perfect, 0 as good as the baseline, < 0 worse);
    ``None`` when the baseline is exact (MSE 0), where skill is undefined."""
    if mse_baseline <= 0.0:
        return None
    return 1.0 - mse_model / mse_baseline


def chaos_floor(twin_mse: np.ndarray) -> float:
    """The best possible point-forecast MSE, ``mean(twin-vs-truth MSE) / 2`` Å².

    Two MD runs from one state are independent draws of the future given that state, so their MSE is twice
    the variance around the conditional mean, which no forecaster beats pointwise (FIELD.md).
    """
    return float(np.mean(twin_mse)) / 2.0


def paper_scale(trajectories: Sequence, observed: tuple[int, int], centre: bool, source: str) -> dict:
    """The paper-scale normalisation: one global min and max (Å) over the observed frames of ``trajectories``
    (:class:`~mdforecast.store.Trajectory`, read in blocks; centred per frame when ``centre``), their
    :func:`paper_scale_factor`, and ``source``, the words saying which frames they came from."""
    low, high = np.inf, -np.inf
    for traj in trajectories:
        for lo in range(observed[0], min(observed[1], traj.n_frames), _BLOCK):
            x = traj.positions(lo, min(lo + _BLOCK, observed[1]))
            x = centred(x) if centre else x
            low, high = min(low, float(x.min())), max(high, float(x.max()))
    return {"low": low, "high": high, "factor": paper_scale_factor(low, high),
            "source": f"frames [{observed[0]}, {observed[1]}) of {source}"}
