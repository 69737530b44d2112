"""The conformation of a molecule without a box (``conformations``): sources fused by lead time, bonds kept.

A molecule in implicit solvent tumbles (ala2: orientation random within ~5 ps), so a forecast can only know its
conformation; the hierarchy is trained on the MSE after superposition (``loss = 'kabsch'``). A forecast frame at
lead t (frames after the last observed frame :math:`x(T)`) is

.. math::
    x(t) = P\\Big(x(T) + \\sum_j w_{b(t), j}\\, \\Delta x_j(t)\\Big)

with the sources :data:`~mdforecast.model.CONFORMATION_SOURCES`, each a displacement from :math:`x(T)`:
``hierarchy``, the hierarchy's frame superposed onto :math:`x(T)` (its orientation is not trained);
``linear-ar``, the linear autoregression of :func:`~mdforecast.forecasters.baselines.linear_ar_displacement`;
``mean``, the observed mean conformation (the observed frames superposed onto their mean, iterated) superposed
onto :math:`x(T)`. So the orientation is that of the last observed frame, moved by the autoregression.
:math:`w` are :class:`~mdforecast.model.fusion.LeadFusion`'s weights (all zero: persistence) and :math:`P` the
projection onto the bond lengths of the observed frames (:func:`mdforecast.constraints.project_bonds`,
mass-weighted).

:func:`fit_conformation_fusion` fits the weights per lead bin on training windows under the Kabsch MSE by
alternating least squares: superpose each true frame onto the current fused frame, solve the weights by least
squares against the superposed truth, repeat (each step lowers the summed Kabsch MSE). A bin keeps its least
squares weights only where they beat persistence under leave-one-window-out cross-validation (exact Kabsch MSE
of the held-out window), as :func:`~mdforecast.fitting.fit_fusion` does. The fused frames are averages of
conformations (methyl hydrogens, a flipping peptide plane), which the projection puts back on their bonds but
can leave overlapping; so the kept weights are then scaled by the factor s ∈ {0, 0.2, …, 1} whose *projected*
forecast has the lowest Kabsch MSE on the bin's training frames among those without overlapping atoms
(:func:`~mdforecast.physics.geometry_problems`); s = 0 is persistence.

Shapes: T frames, N atoms, K forecast times, J sources, W windows.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from .constraints import bond_reference, project_bonds
from .errors import InputError
from .fitting import draw_frames, solve_weights
from .forecasters.base import Observation, lead_time
from .forecasters.baselines import fit_linear_ar, linear_ar_displacement
from .model import CONFORMATION_SOURCES
from .model.data import Series
from .model.fusion import LeadFusion
from .model.superpose import superpose
from .scores import kabsch_mse_per_frame
from .topology import Topology

__all__ = ["mean_conformation", "sources", "forecast", "fit_conformation_fusion"]

_ITERATIONS = 4  # alternations of superposition and least squares per fit
_MEAN_ITERATIONS = 3  # superpose-and-average passes of the mean conformation
_SHRINK = np.linspace(0.0, 1.0, 6)  # scale factors of the fitted weights tried on the projected forecast


def _superposed(mobile: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``mobile`` ``(..., N, 3)`` superposed onto ``target`` (broadcast), float64 Å."""
    mobile, target = np.broadcast_arrays(np.asarray(mobile, np.float64), np.asarray(target, np.float64))
    return superpose(torch.from_numpy(np.ascontiguousarray(mobile)),
                     torch.from_numpy(np.ascontiguousarray(target))).numpy()


def mean_conformation(positions: np.ndarray) -> np.ndarray:
    """The mean conformation ``(N, 3)`` Å of frames ``(T, N, 3)``: frames superposed onto the last one and
    averaged, then onto that average and averaged again (:data:`_MEAN_ITERATIONS` passes), in the last frame's
    orientation."""
    x = np.asarray(positions, dtype=np.float64)
    mean = x[-1]
    for _ in range(_MEAN_ITERATIONS):
        mean = _superposed(x, mean).mean(axis=0)
    return _superposed(mean, x[-1])


def sources(observation: Observation, times: np.ndarray, ar: np.ndarray,
            hierarchy: Callable[[np.ndarray], np.ndarray], used: np.ndarray | None = None) -> np.ndarray:
    """Displacements ``(J, K, N, 3)`` float64 Å from the last observed frame at ``times`` ``(K,)`` of each of
    :data:`CONFORMATION_SOURCES`. ``ar``: the autoregression's coefficients ``(H, lags)``; ``hierarchy``: the
    hierarchy's positions ``(K, N, 3)`` at given times; ``used`` ``(J,)`` bool: the sources computed (others zero)."""
    t = lead_time(times, observation.end)
    used = np.ones(len(CONFORMATION_SOURCES), bool) if used is None else used
    x0 = observation.positions[-1].astype(np.float64)
    out = np.zeros((len(CONFORMATION_SOURCES), len(t), *x0.shape))
    if used[0]:
        out[0] = _superposed(hierarchy(times), x0) - x0
    if used[1]:
        out[1] = linear_ar_displacement(observation.positions, ar, t)
    if used[2]:
        out[2] = mean_conformation(observation.positions) - x0
    return out


def _bonds(topology: Topology) -> np.ndarray:
    if topology.bonds is None or not len(topology.bonds):
        raise InputError("a model with conformations keeps bond lengths, but this topology has no bonds; ingest the "
                         "trajectory with a topology that has them (PSF, PRMTOP, PDB with CONECT)")
    return topology.bonds


def forecast(observation: Observation, times: np.ndarray, fusion: LeadFusion,
             hierarchy: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Positions ``(K, N, 3)`` float32 Å at ``times``: the fused sources, every bond projected onto its mean
    length over the observed frames (see the module docstring)."""
    bonds = _bonds(observation.topology)
    t = lead_time(times, observation.end)
    used = fusion.weights.cpu().numpy()[fusion.bin(t)] != 0  # (K, J)
    d = sources(observation, times, fusion.ar.cpu().numpy(), hierarchy, used=used.any(0))
    fused = observation.positions[-1].astype(np.float64) + fusion.combine(t, d)
    lengths = bond_reference(observation.positions, bonds)
    return project_bonds(fused, bonds, lengths, observation.topology.masses).astype(np.float32)


def _fit_bin(d: np.ndarray, truth: np.ndarray, x0: np.ndarray, columns: list[int]) -> np.ndarray:
    """Weights ``(J,)`` minimising the summed Kabsch MSE of ``x0 + Σ_j w_j d_j`` against ``truth`` (alternating
    least squares from persistence). d ``(Q, J, N, 3)``; truth, x0 ``(Q, N, 3)``."""
    w = np.zeros(d.shape[1])
    for _ in range(_ITERATIONS):
        target = _superposed(truth, x0 + np.einsum("j,qjnx->qnx", w, d)) - x0
        w = solve_weights(np.einsum("qjnx,qinx->ji", d, d), np.einsum("qjnx,qnx->j", d, target), columns)
    return w


def _kabsch(w: np.ndarray, d: np.ndarray, truth: np.ndarray, x0: np.ndarray) -> float:
    """Summed Kabsch MSE (Å²) over the frames of the fused forecast with weights ``w``."""
    return float(kabsch_mse_per_frame(x0 + np.einsum("j,qjnx->qnx", w, d), truth).sum())


def _shrink(w: np.ndarray, d: np.ndarray, truth: np.ndarray, x0: np.ndarray, topology: Topology,
            lengths: np.ndarray) -> tuple[float, float]:
    """The factor s of :data:`_SHRINK` whose projected forecast with weights ``s·w`` has the lowest summed Kabsch
    MSE without overlapping atoms, and that MSE (Å²). ``lengths`` ``(Q, B)``: each frame's observed bond lengths."""
    from .physics import closest_nonbonded, overlap_limit

    best = (0.0, float(kabsch_mse_per_frame(x0, truth).sum()))
    bonds = np.asarray(topology.bonds)
    limit = overlap_limit(truth, None, bonds)
    for s in _SHRINK[1:]:
        projected = project_bonds(x0 + np.einsum("j,qjnx->qnx", s * w, d), bonds, lengths, topology.masses)
        error = float(kabsch_mse_per_frame(projected, truth).sum())
        if error < best[1] and closest_nonbonded(projected, None, bonds, limit).min() >= limit:
            best = (float(s), error)
    return best


def fit_conformation_fusion(model, series: list[Series], topology: Topology, *, windows: int, seed: int,
                            log=lambda message: None) -> dict:
    """Fit ``model.lead_fusion`` of a model with ``conformations`` on ``series`` (see the module docstring):
    the linear autoregression (leads up to 1000 frames, zero beyond) and the weights per lead bin. Returns per bin
    the weights, the choice and the fused forecast's Kabsch MSE on the training windows relative to persistence's."""
    from .forecasters.domino import DominoForecaster

    _bonds(topology)
    start = time.perf_counter()
    config, fusion = model.config, model.lead_fusion
    coefficients = fit_linear_ar([s.positions for s in series], lags=config.ar_lags, max_ahead=min(config.horizon, 1000))
    ar = np.zeros((config.horizon, config.ar_lags))
    ar[:len(coefficients)] = coefficients[:config.horizon]
    fusion.ar.copy_(torch.as_tensor(ar))
    edges = fusion.edges.cpu().numpy()
    rng = np.random.default_rng([seed, 13])
    forecaster = DominoForecaster(model)
    # per bin: the windows' source displacements, true frames, last observed frames and window numbers
    data: list[list] = [[] for _ in range(fusion.bins)]
    grid = fusion.sample_leads()
    for w, (k, end) in enumerate(draw_frames(series, windows, config.observe, 1, rng)):
        s = series[k]
        leads = grid[(grid <= s.n_frames - end) & (grid <= config.horizon)]
        observation = Observation(positions=s.positions[end - config.observe:end], topology=topology, dt_ps=None,
                                  start=end - config.observe)
        d = sources(observation, end - 1 + leads, ar, lambda times: forecaster._hierarchy(observation, times))
        truth = s.positions[(end - 1 + leads).astype(np.int64)].astype(np.float64)
        x0 = s.positions[end - 1].astype(np.float64)
        lengths = bond_reference(observation.positions, topology.bonds)
        bins = fusion.bin(leads)
        for b in np.unique(bins):
            q = bins == b
            data[b].append((w, d[:, q].transpose(1, 0, 2, 3), truth[q], np.repeat(x0[None], q.sum(), 0),
                            np.repeat(lengths[None], q.sum(), 0)))
        log(f"conformation fusion: window {w + 1}/{windows} ({s.name}, frame {end}, leads up to {int(leads.max())})")
    columns = list(range(len(CONFORMATION_SOURCES)))
    weights, report = np.zeros((fusion.bins, len(columns))), []
    for b in range(fusion.bins):
        entry = {"leads": [int(edges[b]), int(edges[b + 1])], "windows": len(data[b])}
        if len(data[b]) < 2:  # nothing to cross-validate: persistence
            report.append({**entry, "weights": dict(zip(CONFORMATION_SOURCES, weights[b].tolist())),
                           "chosen": "persistence", "kabsch_ratio_to_persistence": None})
            continue
        owner = np.concatenate([np.full(len(x[2]), x[0]) for x in data[b]])
        d, truth, x0, lengths = (np.concatenate([x[i] for x in data[b]]) for i in (1, 2, 3, 4))
        persistence = _kabsch(np.zeros(len(columns)), d, truth, x0)
        held_out = sum(_kabsch(_fit_bin(d[owner != w], truth[owner != w], x0[owner != w], columns),
                               d[owner == w], truth[owner == w], x0[owner == w]) for w in np.unique(owner))
        fitted = _fit_bin(d, truth, x0, columns)
        chosen = "least squares" if held_out < persistence else "persistence"
        scale, projected = _shrink(fitted, d, truth, x0, topology, lengths) if chosen == "least squares" \
            else (0.0, persistence)
        chosen = chosen if scale > 0 else "persistence"
        weights[b] = scale * fitted
        ratio = (lambda v: v / persistence if persistence > 0 else None)  # noqa: E731
        report.append({**entry, "weights": dict(zip(CONFORMATION_SOURCES, weights[b].tolist())), "chosen": chosen,
                       "scale": scale, "kabsch_ratio_to_persistence": ratio(_kabsch(weights[b], d, truth, x0)),
                       "projected_ratio_to_persistence": ratio(projected), "held_out_ratio": ratio(held_out)})
    fusion.weights.copy_(torch.as_tensor(weights))
    log("conformation fusion: " + ", ".join(f"{r['leads'][0]}-{r['leads'][1]} {r['chosen']}" for r in report))
    return {"windows": windows, "bins": report, "wall_s": time.perf_counter() - start}
