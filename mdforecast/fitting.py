"""Fitting a model's dynamics level and its fusion by lead time (``mdforecast train`` with ``dynamics``).

1. :func:`fit_dynamics`: the pair term in closed form (:func:`~mdforecast.model.dynamics.fit_pair_force`, least
   squares on second differences of ``pair_frames`` training frames; with ``fit_velocity``, the instantaneous
   force, by a :data:`QUADRATURE`-node quadrature along the quartic through 5 frames), then ``force_steps`` teacher-forced
   one-frame steps (every training frame is a sample: from frames t − 1, t predict t + 1), then ``rollout_steps``
   short rollouts of ``rollout_frames`` frames, backpropagated through the integrator. Adam on the dynamics
   level's parameters only; the loss is the MSE of the predicted positions, Å².
2. :func:`fit_fusion`, after the hierarchy is trained: the linear autoregression's coefficients
   (:func:`~mdforecast.forecasters.baselines.fit_linear_ar`, on ``ar_series``: the training trajectories) and, per
   lead bin, the least-squares weights of the sources' displacements (:data:`~mdforecast.model.SOURCES`) on
   ``fusion_windows`` windows of ``series``: trajectories the hierarchy and the dynamics level were not fitted on
   (``mdforecast train`` passes the ``--fusion-data`` store's or the run's held-out ones, :mod:`mdforecast.training`),
   since on their own training trajectories the sources look better than they are. Which sources a bin uses is
   chosen by cross-validation over independent groups of windows. Two windows of one trajectory whose forecast
   spans (from their last observed frame to the bin's last lead) overlap share part of their truth, so their
   errors are correlated: per bin, such windows are chained into one group, and far bins, whose spans are long,
   have few groups. Every subset's held-out error per group, its weights fitted without the group, and the
   one-standard-error rule: the fewest sources whose held-out error exceeds the best subset's by at most one
   standard error of that difference (paired over the groups; ties go to the lower error). The empty subset is
   persistence (all weights zero), so a bin where no source clearly helps (far leads, where every forecaster is
   within noise of persistence), a bin with fewer than :data:`MIN_GROUPS` groups (with few, the rule takes noise
   for skill), and leads the windows do not reach are persistence. A window on a trajectory the autoregression
   was fitted on is scored with one fitted without it. The rollout is fitted up to ``max_rollout`` frames; from
   the first bin where its weight falls below 0.02 on, its weight is zero (the other sources are fitted without
   it), which is where a forecast stops rolling out.

All randomness is drawn from ``seed``. Shapes: T frames, N atoms, S windows, J sources, W windows of a bin.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import torch

from .errors import InputError
from .forecasters.base import Observation
from .forecasters.baselines import fit_linear_ar, linear_ar_displacement
from .forecasters.domino import DominoForecaster
from .model import Domino, SOURCES
from .model.data import Series
from .model.dynamics import fit_pair_force
from .model.rigid import RigidBodies
from .molecules import RigidGroups
from .topology import Topology

__all__ = ["fit_dynamics", "fit_fusion", "draw_frames", "solve_weights", "MIN_GROUPS"]

_STOP = 0.02  # rollout weight below which the rollout stops
#: independent groups of windows a bin needs to use any source: on noise sources the rule below takes one in 50 % of
#: draws with 2 groups, 17 % with 4, 9 % with 8 and 1 % with 16 (benchmarks/fusion_rule.py)
MIN_GROUPS = 8
#: Gauss–Legendre nodes per half-frame of the instantaneous pair-force fit (R² 0.9952 on lj with 6)
QUADRATURE = 6


def _tensor(x, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=like.dtype, device=like.device)


def draw_frames(series: list[Series], n: int, before: int, after: int, rng: np.random.Generator
                ) -> list[tuple[int, int]]:
    """``n`` random (trajectory index, frame t) of ``series``, uniform over the frames that have ``before`` frames
    before t and ``after`` frames after it (the windows of this module and of :mod:`mdforecast.conformation`)."""
    counts = np.array([max(0, s.n_frames - before - after) for s in series])
    flat = rng.integers(0, counts.sum(), size=n)
    traj = np.searchsorted(np.cumsum(counts), flat, side="right")
    return [(int(k), int(f - np.r_[0, np.cumsum(counts)][k] + before)) for k, f in zip(traj, flat)]


def _windows(series: list[Series], picks: list[tuple[int, int]], frames: int, param: torch.Tensor):
    """Frames t − 1, t and the ``frames`` after t of each pick, and the box at t: ``previous (S, N, 3)``,
    ``last (S, N, 3)``, ``target (frames, S, N, 3)``, ``boxes (S, 3, 3) | None``."""
    previous = _tensor([series[k].positions[t - 1] for k, t in picks], param)
    last = _tensor([series[k].positions[t] for k, t in picks], param)
    target = _tensor([series[k].positions[t + 1:t + 1 + frames] for k, t in picks], param).transpose(0, 1)
    boxes = None if series[0].boxes is None else _tensor([series[k].boxes[t] for k, t in picks], param)
    return previous, last, target, boxes


def fit_dynamics(model: Domino, series: list[Series], kinds: torch.Tensor, *, pair_frames: int, force_steps: int,
                 rollout_steps: int, rollout_frames: int, batch: int, lr: float, seed: int,
                 rigid: RigidGroups | None = None, log=lambda message: None) -> dict:
    """Fit ``model.dynamics`` on ``series`` (see the module docstring); returns a record of the fit: R² of the
    pair term, and the mean teacher-forced and rollout losses (Å²) over the last tenth of their steps.
    ``rigid``: molecules the rollouts move as rigid bodies (as the forecast does)."""
    start = time.perf_counter()
    level = model.dynamics
    param = level.pair
    rng = np.random.default_rng([seed, 7])
    reach = 2 if model.config.fit_velocity else 1  # a rollout on the true path: the instantaneous force
    picks = draw_frames(series, pair_frames, reach, reach, rng)
    r2 = fit_pair_force(level, [(series[k].positions[t - reach:t + reach + 1], None if series[k].boxes is None
                                 else series[k].boxes[t]) for k, t in picks], kinds.to(param.device),
                        quadrature=QUADRATURE if reach == 2 else 0)
    log(f"dynamics: pair term fitted in closed form, R² {r2:.4f} of the second differences")
    optimizer = torch.optim.Adam(level.parameters(), lr=lr)
    record = {"pair_r2": r2}
    bodies = None if rigid is None else RigidBodies.from_groups(rigid, param)
    for name, steps, frames in (("teacher_forced", force_steps, 1), ("rollout", rollout_steps, rollout_frames)):
        losses = []
        for step in range(steps):
            picks = draw_frames(series, batch, 3 if model.config.fit_velocity else 1, frames, rng)
            previous, last, target, boxes = _windows(series, picks, frames, param)
            previous = last if model.config.rollout_at_rest else previous
            velocity = None
            if model.config.fit_velocity:  # each window's from its own last 4 frames, as the forecast's
                velocity = torch.stack([level.fit_velocity(
                    _tensor(series[k].positions[t - 3:t + 1], param), kinds.to(param.device),
                    None if boxes is None else boxes[i]) for i, (k, t) in enumerate(picks)])
            pred = level.rollout(previous, last, kinds.to(param.device), boxes, frames, bodies, velocity)
            loss = ((pred - target) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(level.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            if (step + 1) % max(1, steps // 5) == 0:
                log(f"dynamics: {name} step {step + 1}/{steps}, MSE {np.mean(losses[-max(1, steps // 5):]):.4g} Å²")
        record[f"{name}_mse"] = float(np.mean(losses[-max(1, steps // 10):])) if losses else None
    level.zero_grad(set_to_none=True)  # the hierarchy's optimiser must not step these parameters
    record["wall_s"] = time.perf_counter() - start
    return record


def solve_weights(gram: np.ndarray, cross: np.ndarray, columns: list[int]) -> np.ndarray:
    """Least-squares weights ``(J,)`` of the sources ``columns`` (the others zero) from the normal equations
    ``gram (J, J)``, ``cross (J,)``, with a tiny relative ridge."""
    w = np.zeros(len(cross))
    if not columns:
        return w
    g = gram[np.ix_(columns, columns)]
    lam = 1e-8 * max(float(np.trace(g)), 1e-30)
    w[columns] = np.linalg.solve(g + lam * np.eye(len(columns)), cross[columns])
    return w


def _error(w: np.ndarray, gram: np.ndarray, cross: np.ndarray, norm: float) -> float:
    """Summed squared error of weights ``w`` from the sufficient statistics of some windows."""
    return float(norm - 2 * w @ cross + w @ gram @ w)


def _groups(trajectories: np.ndarray, ends: np.ndarray, span: int) -> np.ndarray:
    """Group ids ``(W,)`` of windows (their trajectories and last observed frames + 1, ``ends``): windows of one
    trajectory whose forecast spans of ``span`` frames overlap, chained, share a group."""
    order = np.lexsort((ends, trajectories))
    t, e = trajectories[order], ends[order]
    new = np.r_[True, (t[1:] != t[:-1]) | (e[1:] - e[:-1] >= span)]
    groups = np.empty(len(order), dtype=np.int64)
    groups[order] = np.cumsum(new) - 1
    return groups


def _choose(gram: np.ndarray, cross: np.ndarray, norm: np.ndarray, groups: np.ndarray, columns: list[int]
            ) -> tuple[list[int], float | None]:
    """The subset of the sources ``columns`` one bin uses (the module docstring's rule) from each window's
    sufficient statistics ``gram (W, J, J)``, ``cross (W, J)``, ``norm (W,)``, and the windows' independent
    groups ``groups (W,)`` (:func:`_groups`); returns it and its held-out error relative to persistence's
    (``None`` with fewer than :data:`MIN_GROUPS` groups)."""
    scored = norm > 0
    gram, cross, norm, groups = gram[scored], cross[scored], norm[scored], groups[scored]
    labels, groups = np.unique(groups, return_inverse=True)
    if len(labels) < MIN_GROUPS:
        return [], None
    g_all, c_all = gram.sum(0), cross.sum(0)
    subsets = [list(sub) for k in range(len(columns) + 1) for sub in itertools.combinations(columns, k)]
    errors = np.zeros((len(subsets), len(labels)))  # held-out error of each subset on each group
    for f in range(len(labels)):
        rows = np.flatnonzero(groups == f)
        g_in, c_in, n_in = gram[rows].sum(0), cross[rows].sum(0), norm[rows].sum()
        for i, sub in enumerate(subsets):
            errors[i, f] = _error(solve_weights(g_all - g_in, c_all - c_in, sub), g_in, c_in, n_in)
    best = int(np.argmin(errors.sum(1)))
    excess = errors - errors[best]
    within = excess.sum(1) <= np.sqrt(len(labels)) * excess.std(1, ddof=1)  # one SE of the summed difference
    chosen = min(np.flatnonzero(within), key=lambda i: (len(subsets[i]), errors[i].sum()))
    return subsets[chosen], float(errors[chosen].sum() / norm.sum())


def fit_fusion(model: Domino, series: list[Series], topology: Topology, *, windows: int, max_rollout: int,
               seed: int, sources: tuple[str, ...] = SOURCES, ar_series: list[Series] | None = None,
               log=lambda message: None) -> dict:
    """Fit ``model.lead_fusion`` on windows of ``series`` and its autoregression on ``ar_series`` (default
    ``series``), see the module docstring; returns which trajectories it was fitted on, and per lead bin the
    sources chosen, the number of windows and of independent groups of them, their held-out MSE relative to
    persistence's and the fused forecast's on the fitting windows, and the rollout's length in frames.
    ``sources``: the :data:`~mdforecast.model.SOURCES` fused (the others get weight zero: the ablations)."""
    unknown = set(sources) - set(SOURCES)
    if unknown or SOURCES[0] not in sources:
        raise InputError(f"fusion sources {sorted(sources)} must include {SOURCES[0]!r} and be among {list(SOURCES)}")
    allowed = [j for j, name in enumerate(SOURCES) if name in sources]
    ar_series = series if ar_series is None else ar_series
    start = time.perf_counter()
    config, fusion = model.config, model.lead_fusion
    def ar_fit(positions: list[np.ndarray]) -> np.ndarray:
        """``(horizon, K)`` coefficients, the last fitted lead's held beyond the leads the data reach."""
        c = fit_linear_ar(positions, lags=config.ar_lags, max_ahead=config.horizon)
        return np.concatenate([c, np.repeat(c[-1:], config.horizon - len(c), 0)])[:config.horizon]

    fusion.ar.copy_(torch.as_tensor(ar_fit([s.positions for s in ar_series])))
    # cross-fitting: a window on a trajectory the autoregression was fitted on is scored with one fitted without
    # it, else its far leads are in-sample and the fusion over-weights them (with one trajectory nothing is left)
    ar_without = {k: ar_fit([a.positions for a in ar_series if a is not s]) for k, s in enumerate(series)
                  if any(a is s for a in ar_series)} if len(ar_series) > 1 and 2 in allowed else {}
    edges = fusion.edges.cpu().numpy()
    available = max(s.n_frames for s in series) - config.observe
    rng = np.random.default_rng([seed, 11])
    gram = np.zeros((windows, fusion.bins, 3, 3))  # per window, so that the choice can be cross-validated
    cross = np.zeros((windows, fusion.bins, 3))
    norm = np.zeros((windows, fusion.bins))
    trajectories = np.zeros(windows, dtype=np.int64)  # each window's trajectory and last observed frame + 1
    ends = np.zeros(windows, dtype=np.int64)
    # the rollout of a model fitted before (fine-tuning) must not be stretched to that fit's reach
    fusion.weights.zero_()
    fusion.rollout_frames.zero_()
    forecaster = DominoForecaster(model)
    grid = fusion.sample_leads()
    # windows end where at least 1000 frames (half of those after the observation, if fewer) follow
    for w, (k, end) in enumerate(draw_frames(series, windows, config.observe, min(available // 2, 1000), rng)):
        data = series[k]
        trajectories[w], ends[w] = k, end
        leads = grid[grid <= data.n_frames - end]
        observation = Observation(positions=data.positions[end - config.observe:end], topology=topology, dt_ps=None,
                                  start=end - config.observe,
                                  boxes=None if data.boxes is None else data.boxes[end - config.observe:end])
        times = end - 1 + leads
        d = forecaster.sources(observation, times, used=np.isin(np.arange(3), allowed), rollout=max_rollout)
        if k in ar_without:
            d[2] = linear_ar_displacement(observation.positions, ar_without[k], leads)
        target = data.positions[(end - 1 + leads).astype(np.int64)] - data.positions[end - 1].astype(np.float64)
        b = fusion.bin(leads)
        np.add.at(gram[w], b, np.einsum("jqnx,iqnx->qji", d, d))
        np.add.at(cross[w], b, np.einsum("jqnx,qnx->qj", d, target))
        np.add.at(norm[w], b, np.einsum("qnx,qnx->q", target, target))
        log(f"fusion: window {w + 1}/{windows} ({data.name}, frame {end})")
    weights = np.zeros((fusion.bins, 3))  # zeros: persistence
    rolling, rollout_frames = True, 0
    report = []
    for b in range(fusion.bins):
        g, c, n = gram[:, b], cross[:, b], norm[:, b]
        rolling = rolling and edges[b + 1] - 1 <= max_rollout
        groups = _groups(trajectories, ends, int(edges[b + 1]) - 1)
        best, held_out = _choose(g, c, n, groups, allowed if rolling else allowed[1:])
        weights[b] = solve_weights(g.sum(0), c.sum(0), best)
        rolling = rolling and weights[b, 0] >= _STOP
        if rolling:
            rollout_frames = int(edges[b + 1] - 1)
        report.append({"leads": [int(edges[b]), int(edges[b + 1])], "weights": dict(zip(SOURCES, weights[b].tolist())),
                       "chosen": "least squares" if best else "persistence", "sources": [SOURCES[j] for j in best],
                       "windows": int((n > 0).sum()),
                       "groups": len(np.unique(groups[n > 0])), "held_out_mse_ratio": held_out, "mse_ratio_to_persistence":
                       float(_error(weights[b], g.sum(0), c.sum(0), n.sum()) / n.sum()) if n.sum() > 0 else None})
    fusion.weights.copy_(torch.as_tensor(weights))
    fusion.rollout_frames.fill_(rollout_frames)
    log(f"fusion: rollout for {rollout_frames} frames")
    return {"rollout_frames": rollout_frames, "windows": windows, "trajectories": [s.name for s in series],
            "autoregression_trajectories": [s.name for s in ar_series], "bins": report, "wall_s": time.perf_counter() - start}
