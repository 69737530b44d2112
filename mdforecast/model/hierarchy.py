"""The time hierarchy: levels, segments, output times, and the down-scaling between levels.

Lead time ``t`` counts frames after the last observed frame (``t = frame − (observation.end − 1)``, so
horizon step h is t = h ∈ (0, H]). Level 0 has one segment spanning the horizon H; level ℓ > 0 tiles the
horizon with segments of span ``S_ℓ = s_{ℓ−1}`` (the stride of the level above), and each level outputs
every ``s_ℓ`` frames, ``n_ℓ = S_ℓ / s_ℓ`` outputs per segment at τ = k/n_ℓ, k = 1..n_ℓ. With the paper's
strides (400, 20, 1) over H = 8000: spans 8000, 400, 20 and 20 outputs per segment at every level.

A query at time t and depth d uses, at each level p ≤ d, the segment that contains the level-d segment of
t (intervals closed on the right: ``m_d = ⌈t / S_d⌉ − 1``); a segment's initial state comes from the
coarser segments it lies in, at its start, through :class:`DownScale`:

.. math::
    h_\\ell(0) = W^h_\\ell\\,[h_0(t_0), …, h_{\\ell-1}(t_0)] + b_\\ell, \\qquad
    v_\\ell(0) = W^v_\\ell\\,[v_0(t_0), …, v_{\\ell-1}(t_0)] \\ \\text{(channel mixing, no bias)}

Shapes: Q queries, U segments of a level, N atoms, F features, C vector channels.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from .layers import VectorLinear

__all__ = ["Hierarchy", "Plan", "DownScale"]


@dataclasses.dataclass(frozen=True)
class LevelPlan:
    """The segments one level must solve. ``sample``/``index``: ``(U,)`` window and segment index;
    ``parent_rows[k]``/``parent_tau[k]``: row in level k's plan and local time of each segment's start."""

    sample: np.ndarray
    index: np.ndarray
    parent_rows: list[np.ndarray]
    parent_tau: list[np.ndarray]


@dataclasses.dataclass(frozen=True)
class Plan:
    """Which segments to solve, and where each query reads them: ``rows[p]``/``tau[p]`` ``(Q,)``
    (row −1 where a query's depth is below level p)."""

    levels: list[LevelPlan]
    rows: list[np.ndarray]
    tau: list[np.ndarray]


class Hierarchy:
    """Spans and strides of L levels over a horizon of H frames (validated, one-line errors)."""

    def __init__(self, horizon: int, strides: tuple[int, ...]) -> None:
        strides = tuple(int(s) for s in strides)
        if horizon < 1 or not strides or min(strides) < 1:
            raise InputError(f"horizon ({horizon}) and strides {list(strides)} must be positive frame counts")
        spans = (horizon,) + strides[:-1]
        for level, (span, stride) in enumerate(zip(spans, strides)):
            if span % stride:
                what = "--horizon" if level == 0 else f"the stride of level {level - 1} ({span})"
                raise InputError(f"level {level}'s stride {stride} does not divide {what} = {span} frames; pick "
                                 "--strides coarse → fine so each divides the one before and the first divides --horizon")
        self.horizon, self.strides, self.spans = horizon, strides, spans
        self.outputs = tuple(span // stride for span, stride in zip(spans, strides))
        self.segments = tuple(horizon // span for span in spans)

    @property
    def levels(self) -> int:
        return len(self.strides)

    def __repr__(self) -> str:
        return f"Hierarchy(horizon={self.horizon}, strides={list(self.strides)}, spans={list(self.spans)})"

    def segment_of(self, level: int, t: np.ndarray) -> np.ndarray:
        """Index of the level's segment whose interval (start, end] holds lead time ``t``."""
        return np.clip(np.ceil(np.asarray(t, dtype=np.float64) / self.spans[level]) - 1, 0,
                       self.segments[level] - 1).astype(np.int64)

    def ancestor(self, level: int, index: np.ndarray, parent: int) -> np.ndarray:
        """Index of the level-``parent`` segment containing segment ``index`` of ``level``."""
        return (np.asarray(index) * self.spans[level]) // self.spans[parent]

    def output_times(self, level: int, index: int) -> np.ndarray:
        """Lead times (frames) of the outputs of segment ``index`` of ``level``: ``(n_ℓ,)``."""
        return index * self.spans[level] + self.strides[level] * np.arange(1, self.outputs[level] + 1)

    def plan(self, sample: np.ndarray, t: np.ndarray, depth: np.ndarray) -> Plan:
        """The segments needed to answer queries (window ``sample``, lead time ``t``, depth) — and no more."""
        sample, t, depth = np.asarray(sample, np.int64), np.asarray(t, np.float64), np.asarray(depth, np.int64)
        finest = np.zeros_like(sample)
        for d in np.unique(depth):
            finest[depth == d] = self.segment_of(int(d), t[depth == d])
        levels, rows, taus = [], [], []
        keys_of: list[dict] = []
        for p in range(int(depth.max()) + 1):
            use = depth >= p
            index = np.zeros_like(sample)
            for d in np.unique(depth[use]):
                sel = use & (depth == d)
                index[sel] = self.ancestor(int(d), finest[sel], p)
            keys = sorted(set(zip(sample[use].tolist(), index[use].tolist())))
            lookup = {k: r for r, k in enumerate(keys)}
            row = np.full(len(t), -1, dtype=np.int64)
            row[use] = [lookup[k] for k in zip(sample[use].tolist(), index[use].tolist())]
            tau = np.where(use, (t - index * self.spans[p]) / self.spans[p], 0.0)
            seg_sample = np.array([k[0] for k in keys], dtype=np.int64)
            seg_index = np.array([k[1] for k in keys], dtype=np.int64)
            parent_rows, parent_tau = [], []
            for k in range(p):
                m = self.ancestor(p, seg_index, k)
                parent_rows.append(np.array([keys_of[k][key] for key in zip(seg_sample.tolist(), m.tolist())],
                                            dtype=np.int64))
                parent_tau.append((seg_index * self.spans[p] - m * self.spans[k]) / self.spans[k])
            keys_of.append(lookup)
            levels.append(LevelPlan(seg_sample, seg_index, parent_rows, parent_tau))
            rows.append(row)
            taus.append(tau)
        return Plan(levels, rows, taus)


class DownScale(nn.Module):
    """Initial state of a level-ℓ segment from the states of levels 0..ℓ−1 at its start (equation above).

    Shapes: ``[h_k (U, N, F)] * ℓ, [v_k (U, N, C, 3)] * ℓ -> h (U, N, F), v (U, N, C, 3)``.
    """

    def __init__(self, level: int, features: int, vectors: int) -> None:
        super().__init__()
        self.level = level
        self.scalars = nn.Linear(level * features, features)
        self.vectors = VectorLinear(level * vectors, vectors)

    def forward(self, hs: list[torch.Tensor], vs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scalars(torch.cat(hs, dim=-1)), self.vectors(torch.cat(vs, dim=-2))

    def __repr__(self) -> str:
        return f"DownScale(level={self.level})"
