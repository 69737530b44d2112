"""Optimal superposition (Kabsch) of point sets, batched and differentiable, in torch.

For a mobile set :math:`p_i` and a target set :math:`q_i` with weights :math:`w_i \\ge 0` (masses, or 1), the
proper rotation

.. math::
    R^\\star = \\arg\\min_{R \\in SO(3)} \\sum_i w_i \\,|R(p_i - \\bar p) - (q_i - \\bar q)|^2,
    \\qquad \\bar p = \\frac{\\sum_i w_i p_i}{\\sum_i w_i}

comes from the SVD of the weighted covariance :math:`H = \\sum_i w_i (p_i - \\bar p)(q_i - \\bar q)^\\top = U S V^\\top`:
:math:`R^\\star = V D U^\\top` with :math:`D = \\mathrm{diag}(1, 1, \\det(V U^\\top))` (reflections excluded). The
minimal sum of squares is :math:`\\sum_i w_i(|p_i - \\bar p|^2 + |q_i - \\bar q|^2) - 2(s_1 + s_2 + d\\,s_3)`,
which :func:`kabsch_msd` uses so its gradient needs only the singular values.

Uses: scoring and training conformations after superposition (a tumbling molecule), and placing a rigid geometry
(a water's O–H–H template) where a forecast put its atoms (:func:`superpose` of the template onto them).
The numpy scorer :func:`mdforecast.scores.kabsch_mse_per_frame` is the float64 reference for the unweighted case.

Shapes: ``(..., N, 3)`` Å for point sets (any leading batch dimensions), ``(N,)`` or ``(..., N)`` weights.
"""

from __future__ import annotations

import torch

__all__ = ["rotation", "superpose", "kabsch_msd"]


def _centred(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    centre = (w[..., None] * x).sum(-2, keepdim=True) / w.sum(-1)[..., None, None]
    return x - centre, centre


def _weights(x: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return x.new_ones(x.shape[:-1])
    return torch.as_tensor(weights, dtype=x.dtype, device=x.device).expand(x.shape[:-1])


def rotation(mobile: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """The proper rotation ``(..., 3, 3)`` that best maps ``mobile - centroid`` onto ``target - centroid``."""
    w = _weights(mobile, weights)
    p, _ = _centred(mobile, w)
    q, _ = _centred(target, w)
    h = torch.einsum("...n,...ni,...nj->...ij", w, p, q)
    u, _, vt = torch.linalg.svd(h)
    v = vt.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    v = torch.cat([v[..., :2], v[..., 2:] * d[..., None, None]], dim=-1)
    return v @ u.transpose(-1, -2)


def superpose(mobile: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``mobile`` ``(..., N, 3)`` rotated and translated onto ``target`` (weighted centroids coincide)."""
    w = _weights(mobile, weights)
    p, _ = _centred(mobile, w)
    _, centre = _centred(target, w)
    return p @ rotation(mobile, target, w).transpose(-1, -2) + centre


def kabsch_msd(forecast: torch.Tensor, truth: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean squared deviation ``(...)`` Å² after superposing ``forecast`` onto ``truth``.

    Divided by ``3 · Σ w`` (unweighted: the MSE over atoms and xyz, as the protocol scores it).
    """
    w = _weights(forecast, weights)
    p, _ = _centred(forecast, w)
    q, _ = _centred(truth, w)
    h = torch.einsum("...n,...ni,...nj->...ij", w, p, q)
    s = torch.linalg.svdvals(h)
    d = torch.sign(torch.linalg.det(h))
    d = torch.where(d == 0, torch.ones_like(d), d)
    trace = s[..., 0] + s[..., 1] + d * s[..., 2]
    sq = (w[..., None] * (p * p + q * q)).sum((-1, -2)) - 2 * trace
    return sq.clamp_min(0) / (3 * w.sum(-1))
