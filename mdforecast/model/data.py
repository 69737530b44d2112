"""Training windows: trajectories in memory, random windows and segments, batches and normalisation.

A *window* of trajectory ``traj`` ending at frame ``end`` observes frames ``[end − observe, end)`` and
forecasts ``[end, end + horizon)`` (lead time t ↔ frame ``end + t − 1``). A training *sample* is a window
plus the finest-level segments it trains on (``segments`` random ones, as the paper's "5 random segments
per step"); every coarser segment containing one of them is solved and scored too, at up to
``max_outputs`` of its output times. All randomness of a sample comes from its own seed, so a batch is
the same whatever process (DDP rank) builds it.

With ``partial`` windows, a window may end anywhere from ``observe`` to one finest segment before the end
of its trajectory; it is scored only at the lead times the trajectory holds (its finest segments are drawn
among those inside the data, coarser levels keep their output times inside it). A trajectory of exactly
``observe + horizon`` frames then gives ``horizon − S + 1`` distinct windows (S: the finest span) instead
of one, which is what lets the protocol's 10,000-frame trajectories train a 2,000 → 8,000 model.

Shapes: T frames, N atoms, B windows, Q queries.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .graph import radius_graph
from .domino import DominoConfig, Normalisation, Window
from .features import input_vectors
from .hierarchy import Hierarchy

__all__ = ["Series", "Sample", "Batch", "draw_samples", "make_batch", "normalisation"]


@dataclasses.dataclass(frozen=True)
class Series:
    """One trajectory in memory: ``positions (T, N, 3)`` float32 Å (unwrapped), ``boxes (T, 3, 3)`` Å or None."""

    name: str
    positions: np.ndarray
    boxes: np.ndarray | None

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]


@dataclasses.dataclass(frozen=True)
class Sample:
    traj: int
    end: int
    seed: int


@dataclasses.dataclass(frozen=True)
class Batch:
    """Model inputs and targets. ``target (Q, N, 3)`` Å; ``group (Q,)`` = sample · L + depth, for per-sample,
    per-level means."""

    window: Window
    sample: np.ndarray
    t: np.ndarray
    depth: np.ndarray
    target: torch.Tensor
    group: torch.Tensor


def _ends(series: list[Series], config: DominoConfig, partial: bool) -> np.ndarray:
    """Number of valid window ends per trajectory (the whole horizon inside it, or one finest segment)."""
    future = Hierarchy(config.horizon, config.strides).spans[-1] if partial else config.horizon
    return np.array([max(0, s.n_frames - config.observe - future + 1) for s in series])


def draw_samples(series: list[Series], config: DominoConfig, n: int, seed: tuple[int, ...],
                 partial: bool = False) -> list[Sample]:
    """``n`` windows drawn uniformly over all valid (trajectory, end) pairs, from ``seed``; ``partial``:
    also windows whose horizon runs past the trajectory's end (module docstring)."""
    counts = _ends(series, config, partial)
    rng = np.random.default_rng(list(seed))
    flat = rng.integers(0, counts.sum(), size=n)
    traj = np.searchsorted(np.cumsum(counts), flat, side="right")
    end = flat - np.r_[0, np.cumsum(counts)][traj] + config.observe
    seeds = rng.integers(0, 2**62, size=n)
    return [Sample(int(a), int(b), int(c)) for a, b, c in zip(traj, end, seeds)]


def _weights(lead: np.ndarray, sampling: str) -> np.ndarray | None:
    """Probabilities of drawing each of ``lead`` (frames ahead): ``None`` (uniform) or ∝ 1/lead (``log``)."""
    if sampling == "uniform":
        return None
    w = 1.0 / np.asarray(lead, dtype=np.float64)
    return w / w.sum()


def _queries(hierarchy: Hierarchy, rng: np.random.Generator, segments: int, max_outputs: int, available: int,
             sampling: str = "uniform"):
    """Lead times and depths of one sample's scored outputs, all ≤ ``available`` (frames left in the data).
    ``sampling``: finest segments and output times drawn uniformly, or ∝ 1/lead time (``log``)."""
    finest_level = hierarchy.levels - 1
    span = hierarchy.spans[finest_level]
    n_finest = min(hierarchy.segments[finest_level], available // span)
    finest = rng.choice(n_finest, size=min(segments, n_finest), replace=False,
                        p=_weights(np.arange(1, n_finest + 1) * span, sampling))
    ts, depths = [], []
    for level in range(hierarchy.levels):
        for m in np.unique(hierarchy.ancestor(finest_level, finest, level)):
            times = hierarchy.output_times(level, int(m))
            times = times[times <= available]
            if len(times) > max_outputs:
                times = np.sort(rng.choice(times, size=max_outputs, replace=False, p=_weights(times, sampling)))
            ts.append(times)
            depths.append(np.full(len(times), level))
    return np.concatenate(ts), np.concatenate(depths)


def make_batch(series: list[Series], samples: list[Sample], config: DominoConfig, kinds: torch.Tensor, *,
               segments: int, max_outputs: int, device: torch.device | str = "cpu",
               dtype: torch.dtype = torch.float32, sampling: str = "uniform") -> Batch:
    """Inputs and targets of ``samples`` (each scored at its own random segments and output times, drawn
    uniformly or, with ``sampling='log'``, with probability ∝ 1/lead time)."""
    hierarchy = Hierarchy(config.horizon, config.strides)
    last, inputs, boxes, qs, ts, ds, targets = [], [], [], [], [], [], []
    for b, s in enumerate(samples):
        data = series[s.traj]
        observed = data.positions[s.end - config.observe:s.end]
        last.append(observed[-1])
        inputs.append(input_vectors(observed, config.lags, config.context))
        if data.boxes is not None:
            boxes.append(data.boxes[s.end - 1])
        t, d = _queries(hierarchy, np.random.default_rng(s.seed), segments, max_outputs, data.n_frames - s.end,
                        sampling)
        qs.append(np.full(len(t), b))
        ts.append(t)
        ds.append(d)
        targets.append(data.positions[s.end + t - 1])
    tensor = lambda x: torch.as_tensor(np.asarray(x), dtype=dtype, device=device)  # noqa: E731
    sample, depth = np.concatenate(qs), np.concatenate(ds)
    window = Window(kinds.to(device), tensor(np.stack(last)), tensor(np.stack(inputs)),
                    tensor(np.stack(boxes)) if boxes else None)
    group = torch.as_tensor(sample * hierarchy.levels + depth, device=device)
    return Batch(window, sample, np.concatenate(ts).astype(np.float64), depth, tensor(np.concatenate(targets)), group)


def normalisation(series: list[Series], config: DominoConfig, windows: int = 64, times: int = 32) -> Normalisation:
    """Scales from up to ``windows`` evenly spread training windows: RMS displacement over ``times`` lead
    times spread evenly over the horizon and, as σ(t), at ``times`` log-spaced lead times; RMS of each
    input vector; the mean neighbour count."""
    samples = draw_samples(series, config, windows, seed=(0,))
    even = np.unique(np.linspace(1, config.horizon, times).round().astype(np.int64))
    logs = np.unique(np.geomspace(1, config.horizon, times).round().astype(np.int64))
    lead = np.union1d(even, logs)
    disp, vecs, neighbors = [], [], []
    for k, s in enumerate(samples):
        data = series[s.traj]
        observed = data.positions[s.end - config.observe:s.end]
        disp.append(((data.positions[s.end + lead - 1] - observed[-1]) ** 2).mean(axis=(1, 2)))
        vecs.append((input_vectors(observed, config.lags, config.context).astype(np.float64) ** 2).mean(axis=(0, 2)))
        if k < 8:
            box = None if data.boxes is None else torch.as_tensor(data.boxes[s.end - 1], dtype=torch.float64)
            edges, _ = radius_graph(torch.as_tensor(observed[-1], dtype=torch.float64), config.cutoff, box)
            neighbors.append(edges.shape[1] / observed.shape[1])
    floor = 1e-6  # Å: a frozen system still gets finite scales
    msd = np.mean(disp, axis=0)  # (len(lead),) Å²
    return Normalisation(displacement=max(float(np.sqrt(msd[np.isin(lead, even)].mean())), floor),
                         inputs=tuple(max(float(x), floor) for x in np.sqrt(np.mean(vecs, axis=0))),
                         avg_neighbors=float(np.mean(neighbors)),
                         lead=tuple(float(x) for x in logs),
                         rms=tuple(max(float(x), floor) for x in np.sqrt(msd[np.isin(lead, logs)])))
