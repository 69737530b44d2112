"""Attention fusion over levels, the equivariant decoder of displacements, and fusion by lead time.

At a query time each level p ≤ d (the query's depth) offers its state :math:`(h_p, v_p)`. Attention weights
come from invariants only, so they are the same in every frame of reference:

.. math::
    w_p = \\operatorname{softmax}_{p \\le d}\\Big(\\frac{(W_q h_d)\\cdot(W_k h_p + e_p)}{\\sqrt F}\\Big), \\qquad
    s = \\sum_p w_p\\,A_p h_p, \\qquad V = \\sum_p w_p\\,B_p v_p

(:math:`e_p` a learned level embedding, :math:`A_p` linear, :math:`B_p` a vector channel mix). The decoder
gates the fused vector channels by invariants and sums them into one displacement per atom, in units of
the training data's displacement scale σ:

.. math::
    \\Delta x_i = \\sigma \\sum_c g_c(s_i, |V_i|)\\, V_{ic}, \\qquad x_i(t) = x_i(T) + \\Delta x_i

The gate's last layer starts at zero, so an untrained model forecasts persistence.

With a dynamics level (:class:`LeadFusion`), the forecast at lead t (frames) is the last observed frame plus a
lead-dependent combination of displacements from J sources (the dynamics rollout, the hierarchy, the linear
autoregression):

.. math::
    x(t) = x(T) + \\sum_j w_{b(t), j}\\, \\Delta x_j(t)

with one weight per source and lead bin b(t), fitted by least squares on training windows. All weights zero is
persistence.

Shapes: Q queries, L levels, N atoms, F features, C vector channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .layers import mlp, vector_norm

__all__ = ["LevelFusion", "EquivariantDecoder", "LeadFusion"]


class LevelFusion(nn.Module):
    """Shapes: ``h (Q, L, N, F), v (Q, L, N, C, 3), depth (Q,) int64 -> s (Q, N, F), V (Q, N, C, 3)``."""

    def __init__(self, levels: int, features: int, vectors: int) -> None:
        super().__init__()
        self.levels, self.features = levels, features
        self.query = nn.Linear(features, features, bias=False)
        self.key = nn.Linear(features, features, bias=False)
        self.level_embedding = nn.Parameter(torch.zeros(levels, features))
        self.scalar_values = nn.Parameter(torch.empty(levels, features, features))
        self.vector_values = nn.Parameter(torch.empty(levels, vectors, vectors))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.scalar_values, std=1.0 / math.sqrt(self.scalar_values.shape[-1]))
        nn.init.normal_(self.vector_values, std=1.0 / math.sqrt(self.vector_values.shape[-1]))

    def forward(self, h: torch.Tensor, v: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        finest = h[torch.arange(h.shape[0], device=h.device), depth]  # (Q, N, F)
        keys = self.key(h) + self.level_embedding[:, None, :]
        scores = (keys * self.query(finest)[:, None]).sum(-1) / math.sqrt(self.features)
        levels = torch.arange(self.levels, device=h.device)
        scores = scores.masked_fill((levels[None, :] > depth[:, None])[..., None], float("-inf"))
        w = torch.softmax(scores, dim=1)  # (Q, L, N)
        # Σ_p w_p A_p h_p as one product: the weighted states of all levels side by side, (Q, N, L·F), times the
        # levels' maps stacked, (L·F, F); the vectors likewise with x as a batch axis, (Q, N, 3, L·C) × (L·C, C)
        q, n_levels, n, f = h.shape
        c = v.shape[-2]
        s = (w[..., None] * h).transpose(1, 2).reshape(q, n, n_levels * f) @ \
            self.scalar_values.transpose(1, 2).reshape(n_levels * f, -1)
        vec = (w[..., None, None] * v).permute(0, 2, 4, 1, 3).reshape(q, n, 3, n_levels * c) @ \
            self.vector_values.transpose(1, 2).reshape(n_levels * c, -1)
        return s, vec.transpose(-1, -2)

    def __repr__(self) -> str:
        return f"LevelFusion(levels={self.levels}, features={self.features})"


class EquivariantDecoder(nn.Module):
    """Shapes: ``s (Q, N, F), V (Q, N, C, 3) -> Δx (Q, N, 3)`` in units of σ."""

    def __init__(self, features: int, vectors: int) -> None:
        super().__init__()
        self.gate = mlp(features + vectors, features, vectors)
        nn.init.zeros_(self.gate[-1].weight)
        nn.init.zeros_(self.gate[-1].bias)

    def forward(self, s: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        g = self.gate(torch.cat([s, vector_norm(vec)], dim=-1))
        return (g[..., None] * vec).sum(-2)

    def __repr__(self) -> str:
        return f"EquivariantDecoder(vectors={self.gate[-1].out_features})"


class LeadFusion(nn.Module):
    """Weights of J displacement sources per lead bin, and the linear autoregression's coefficients.

    Bins are log-spaced over leads 1 … H: bin b holds leads in ``[edges[b], edges[b + 1])`` (the last bin also
    every lead ≥ H). Buffers saved with the model: ``weights (bins, J)`` (zeros: persistence), ``ar (H, K)`` the
    coefficients of :func:`~mdforecast.forecasters.baselines.linear_ar_displacement` per lead, ``rollout_frames``
    the lead after which every weight of the rollout (source 0) is zero.

    Shapes: ``bin(t (Q,) frames) -> (Q,) int64``; ``combine(t (Q,), displacements (J, Q, N, 3)) -> (Q, N, 3)``.
    """

    def __init__(self, horizon: int, bins: int, sources: int, ar_lags: int) -> None:
        super().__init__()
        edges = np.unique(np.geomspace(1, horizon + 1, bins + 1).round().astype(np.int64))
        self.register_buffer("edges", torch.as_tensor(edges), persistent=False)
        self.register_buffer("weights", torch.zeros(len(edges) - 1, sources, dtype=torch.float64))
        self.register_buffer("ar", torch.zeros(horizon, ar_lags, dtype=torch.float64))
        self.register_buffer("rollout_frames", torch.zeros((), dtype=torch.int64))

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    def bin(self, t: np.ndarray) -> np.ndarray:
        edges = self.edges.cpu().numpy()
        return np.clip(np.searchsorted(edges, np.asarray(t, dtype=np.float64), side="right") - 1, 0, self.bins - 1)

    def sample_leads(self, per_bin: int = 4) -> np.ndarray:
        """Leads ``(L,)`` frames a fit scores: up to ``per_bin`` evenly spaced whole leads in each bin."""
        edges = self.edges.cpu().numpy()
        return np.unique(np.concatenate([np.linspace(a, b - 1, min(per_bin, b - a)).round()
                                         for a, b in zip(edges[:-1], edges[1:])]))

    def reach(self, source: int) -> int:
        """Frames of a source's path that serve every lead where its weight is non-zero: the end of its last
        non-zero bin, ``edges[b + 1]`` (exclusive, so real-valued leads up to it interpolate between frames);
        0 when every weight of the source is zero."""
        nonzero = np.flatnonzero(self.weights[:, source].cpu().numpy())
        return int(self.edges[nonzero[-1] + 1]) if len(nonzero) else 0

    def combine(self, t: np.ndarray, displacements: np.ndarray) -> np.ndarray:
        w = self.weights.cpu().numpy()[self.bin(t)]  # (Q, J)
        return np.einsum("qj,jqnx->qnx", w, displacements)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, sources={self.weights.shape[1]}, ar_lags={self.ar.shape[1]}"
