"""``mdforecast evaluate``: score a forecast store against the truth, window by window (PROTOCOL.md "Scores").

For each window: the position MSE in Å² (centred per frame, plus after Kabsch superposition, for systems
without a box), the paper-scale MSE, the same for every baseline on the same frames, the model's skill
against each, the chaos floor where the truth store has twins, and optionally physics metrics
(:mod:`mdforecast.physics`). Scores are pure numpy (:mod:`mdforecast.scores`); this module finds the frames.

Only forecast frames at whole truth frames can be scored (a forecast at frame 2500.5 has no truth); the
count of scored frames is reported per window.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import scores
from . import protocol
from .errors import InputError
from .forecasters import BASELINES, Forecaster, Observation, load_forecaster
from .progress import progress_bar
from .provenance import positions_sha256
from .store import Store, Trajectory
from .timespec import Window
from .verdict import floor_explanation, floor_notes, horizon_ps, verdict

__all__ = ["evaluate", "Evaluation", "SCHEMA_VERSION", "DEFAULT_BASELINES"]

#: version of the JSON document :meth:`Evaluation.to_dict` returns (documented in docs/forecasting.md)
SCHEMA_VERSION = 1
#: baselines scored when ``--baselines`` is not given
DEFAULT_BASELINES = tuple(BASELINES)
_BLOCK = 1000  # frames read at a time
_PHYSICS_FRAMES = 200  # at most this many frames per trajectory and window, evenly spaced, for physics metrics
_GEOMETRY_FRAMES = 50  # at most this many scored frames per trajectory, evenly spaced, checked for broken geometry


@dataclasses.dataclass
class _Series:
    """Per-frame scores of trajectory ``name``: frame indices ``(K,)`` and, per predictor and metric, ``(K,)`` Å²."""

    name: str
    frames: np.ndarray
    values: dict[str, dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The result of :func:`evaluate`; :meth:`to_dict` is the ``--json`` document."""

    forecast: str
    truth: str
    model: dict
    trajectories: list[str]
    observed: tuple[int, int]
    centred: bool
    metrics: list[str]
    paper_scale: dict
    windows: list[dict]
    physics_kind: str | None
    dt_ps: float | None  # frame time of the truth trajectories, ps (None: unknown)
    twins: int  # twin trajectories of the scored ones in the truth (the chaos floor's sample size)
    notes: list[str]  # what the chaos floor is, and the windows where it lies above a forecaster
    geometry_warnings: list[str]  # one line per kind of broken geometry in the forecast frames (none: empty)
    curve: dict = dataclasses.field(repr=False)  # per-frame MSE of every predictor, for plots
    physics_curves: dict = dataclasses.field(repr=False)  # window label → g(r) / φ-ψ arrays, for plots

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("curve", "physics_curves")}
        out["observed"] = list(self.observed)
        return {"schema_version": SCHEMA_VERSION, **out}

    def summary(self) -> str:
        """The verdict of every window, then the notes on the chaos floor, one per line."""
        return "\n".join([w["verdict"] for w in self.windows] + self.notes)


def _read_rows(traj: Trajectory, rows: np.ndarray) -> np.ndarray:
    """Positions ``(len(rows), N, 3)`` of stored frames ``rows`` (sorted), reading contiguous blocks."""
    out, i = [], 0
    while i < len(rows):
        j = int(np.searchsorted(rows, rows[i] + _BLOCK))
        block = traj.positions(int(rows[i]), int(rows[j - 1]) + 1)
        out.append(block[rows[i:j] - rows[i]])
        i = j
    return np.concatenate(out) if out else np.zeros((0, traj.n_atoms, 3), np.float32)


def _twins(truth: Store, name: str, observe_end: int) -> list[Trajectory]:
    """The twins of trajectory ``name`` that branch where its observation ends (twin frame 0 at trajectory
    frame ``observe_end``, or at the last observed frame itself); twins of another starting point (a forecast
    made ``--from`` elsewhere) say nothing about this forecast."""
    return [t for t in truth if t.attrs.get("twin_of") == name
            and observe_end - 1 <= int(t.attrs.get("first_frame", 0)) <= observe_end]


def _metric_fns(centred: bool) -> dict:
    if centred:
        return {"mse": lambda f, t: scores.mse_per_frame(scores.centred(f), scores.centred(t)),
                "mse_kabsch": scores.kabsch_mse_per_frame}
    return {"mse": scores.mse_per_frame}


def _parse_baselines(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``'lgode:RUN_DIR'`` → ``('lgode', 'RUN_DIR')``; a name or path labels itself."""
    out = []
    for spec in specs:
        label, sep, path = spec.partition(":")
        if sep and label not in BASELINES and path:
            out.append((label, path))
        else:
            out.append((spec if spec in BASELINES else Path(spec).name, spec))
    labels = [label for label, _ in out]
    clash = {label for label in labels if labels.count(label) > 1 or label in ("model", "chaos floor")}
    if clash:
        raise InputError(f"--baselines names {', '.join(sorted(clash))} twice or reserved; give each a LABEL:PATH "
                         "of its own")
    return out


def _scoreable(frames: np.ndarray, truth: Trajectory) -> np.ndarray:
    """Mask of forecast frames that can be scored: whole frames the truth trajectory holds."""
    return truth.rows_of(frames) >= 0


def _windows(frames: np.ndarray, observe_end: int, truth: Trajectory, *, window, horizon, full) -> list[Window]:
    scoreable = frames[_scoreable(frames, truth)]
    n_truth = truth.span
    if not len(scoreable):
        raise InputError("no forecast frame falls on a whole frame of the truth trajectory, so nothing can be "
                         "scored; predict whole frames inside the truth's length")
    # the forecast covers [first, end): its last frame plus its spacing (1 frame, or K with --every K)
    first, spacing = float(frames.min()), float(np.diff(np.unique(frames)).min()) if len(frames) > 1 else 1.0
    end = min(float(frames.max()) + spacing, n_truth)
    chosen = [Window.from_option(w, observe_end) for w in window]
    chosen += [Window.from_option(h, observe_end, horizon=True) for h in horizon]
    if not chosen:  # the default windows, with --full or without
        chosen = [Window(a + observe_end, b + observe_end, observe_end) for a, b in protocol.WINDOWS
                  if a + observe_end >= first and b + observe_end <= end]
        full = True
    for w in chosen:
        if w.start < first or w.stop > end or not w.contains(scoreable).any():
            raise InputError(f"window {w.label} lies outside the scoreable forecast frames {first:g}-{end:g} "
                             f"(truth has {n_truth}); choose windows inside them")
    chosen = sorted(set(chosen), key=lambda w: (w.start, w.stop))
    if full:
        chosen.append(Window(int(scoreable.min()), int(scoreable.max()) + 1, observe_end, full=True))
    return chosen


def evaluate(forecast: str | os.PathLike | Store, *, truth: str | os.PathLike | Store | None = None,
             window: Sequence[str] = (), horizon: Sequence[str] = (), full: bool = False,
             baselines: Sequence[str] = DEFAULT_BASELINES, physics: bool = False,
             progress: bool = False) -> Evaluation:
    """Score ``forecast`` (a store written by :func:`mdforecast.prediction.predict`) against ``truth``.

    Args:
        truth: the truth store (default: the one recorded in the forecast's provenance).
        window: ``'A-B'`` half-open ranges of trajectory frames. horizon: the same, counted after the observed part.
        full: also score every scoreable forecast frame, as one more window. Without ``window`` and
            ``horizon`` (with ``full`` or without): the default horizons (:data:`mdforecast.protocol.WINDOWS`: 0-20,
            then the paper's Table 3) that fit inside the forecast, and the full range.
        baselines: names of :data:`~mdforecast.forecasters.BASELINES`, ``LABEL:RUN_DIR`` or checkpoint paths.
        physics: add physics metrics (:func:`mdforecast.physics.physics_scores`) per window.
    """
    fstore = forecast if isinstance(forecast, Store) else Store.open(forecast)
    provenance = fstore.attrs.get("forecast")
    if not isinstance(provenance, dict):
        raise InputError(f"{fstore.path} is a store but not a forecast; make one with `mdforecast predict`")
    if truth is None:
        truth = _recorded_truth(provenance)
    if truth is None and not Path(provenance["truth"]).exists() and "://" not in provenance["truth"]:
        raise InputError(f"the truth store recorded in {fstore.path}, {provenance['truth']}, does not exist; "
                         "pass --truth STORE")
    tstore = truth if isinstance(truth, Store) else Store.open(truth if truth is not None else provenance["truth"])
    if provenance.get("select", "all") != "all":  # the forecast holds the atoms predict --select kept
        from .mdio import select_indices

        tstore = tstore.subset(select_indices(tstore.topology, provenance["select"], tstore.path))
    if not tstore.topology.same_system(fstore.topology):
        raise InputError(f"forecast {fstore.path} ({fstore.topology.n_atoms} atoms, {fstore.topology.composition()}) "
                         f"and truth {tstore.path} ({tstore.topology.n_atoms} atoms, {tstore.topology.composition()}) "
                         "are different systems; pass the --truth store the forecast was made from")
    pairs = []
    for ftraj in fstore:
        info = ftraj.attrs.get("forecast", {})
        name = info.get("trajectory", ftraj.name)
        if name not in tstore.trajectory_names:
            raise InputError(f"truth store {tstore.path} has no trajectory {name!r}, which forecast {fstore.path} "
                             "forecasts; pass the --truth store the forecast was made from")
        pairs.append((ftraj, tstore.trajectory(name), tuple(info.get("observed", provenance["observed"]))))
        _check_observed(ftraj, pairs[-1][1], tstore, pairs[-1][2], info.get("observed_sha256"))
    observed = pairs[0][2]
    if any(p[2] != observed for p in pairs):
        raise InputError(f"the trajectories of {fstore.path} observed different frames; evaluate them one by one")
    frames0 = pairs[0][0].frame_index()
    windows = _windows(frames0, observed[1], min((p[1] for p in pairs), key=lambda t: t.span), window=window,
                       horizon=horizon, full=full)
    centred = not pairs[0][1].has_box
    fns = _metric_fns(centred)
    split = tstore.split or {}
    train = [tstore.trajectory(n) for n in split.get("train", [])]
    predictors = {label: load_forecaster(spec, train_trajectories=train, observe=observed[1] - observed[0])
                  for label, spec in _parse_baselines(baselines)}
    for predictor in predictors.values():
        predictor.check(tstore.topology, pairs[0][1].dt_ps)

    series = [_score_trajectory(f, t, tstore.topology, observed, windows, fns, predictors,
                                _twins(tstore, t.name, observed[1]), progress) for f, t, observed in pairs]
    scale = tstore.attrs.get("paper_scale") if not train else None
    if scale is None:
        scale = scores.paper_scale(train or [t for _, t, _ in pairs], observed, centred, "training trajectories" if train
                             else "the forecast trajectories (no split in the truth store)")
    kind, physics_numbers, physics_curves = None, {}, {}
    if physics:
        from .physics import system_kind

        kind = system_kind(tstore.topology, has_box=not centred)
        for w in windows:
            physics_numbers[w], physics_curves[w.label] = _window_physics(kind, tstore.topology, pairs, w)
    model_name = provenance.get("model", {}).get("name", "model")
    dt_ps = pairs[0][1].dt_ps
    entries = [_window_entry(w, series, list(predictors), scale["factor"], physics_numbers.get(w)) for w in windows]
    for entry in entries:
        entry["horizon_ps"] = horizon_ps(entry["horizon"], dt_ps)
        entry["verdict"] = verdict(entry, model_name, dt_ps)
    twins = sum(len(_twins(tstore, t.name, o[1])) for _, t, o in pairs)
    notes = ([floor_explanation(twins)] if twins else []) + floor_notes(entries, model_name, dt_ps)
    geometry = {}
    for f, t, _ in pairs:  # the first trajectory that shows a kind of problem names it
        for problem, line in _geometry(tstore.topology, f, t, windows).items():
            geometry.setdefault(problem, f"{line} (trajectory {t.name})")
    return Evaluation(forecast=fstore.path, truth=tstore.path, model=provenance.get("model", {}),
                      trajectories=[t.name for _, t, _ in pairs], observed=observed, centred=centred,
                      metrics=list(fns), paper_scale=scale, windows=entries, physics_kind=kind, dt_ps=dt_ps,
                      twins=twins, notes=notes, geometry_warnings=list(geometry.values()),
                      curve=_curve(series, model_name), physics_curves=physics_curves)


def _check_observed(ftraj: Trajectory, ttraj: Trajectory, tstore: Store, observed: tuple[int, int],
                    recorded: str | None) -> None:
    """Refuse a truth whose observed frames differ from those the forecast was made from (another simulation
    of the same system scores silently wrong); forecasts written before the fingerprint was recorded pass."""
    if recorded is None:
        return
    observation = Observation.from_trajectory(ttraj, tstore.topology, observe=observed[1] - observed[0],
                                              end=observed[1])
    if positions_sha256(observation.positions) != recorded:
        raise InputError(f"truth {tstore.path} trajectory {ttraj.name!r} is not the one forecast {ftraj.name!r} was "
                         f"made from: its observed frames [{observed[0]}, {observed[1]}) differ; pass the --truth "
                         "store the forecast was made from")


def _recorded_truth(provenance: dict) -> str | None:
    """The truth embedded with the pretrained model a forecast names, when its recorded truth path is gone
    (a forecast made on another machine, or by another installation of mdforecast)."""
    name = (provenance.get("model") or {}).get("pretrained")
    recorded = provenance.get("truth", "")
    if name is None or "://" in recorded or Path(recorded).exists():
        return None
    from .pretrained import PRETRAINED, embedded_truth

    return embedded_truth(name) if name in PRETRAINED else None


def _score_trajectory(ftraj: Trajectory, ttraj: Trajectory, topology, observed: tuple[int, int],
                      windows: list[Window], fns: dict, predictors: dict[str, Forecaster], twins: list[Trajectory],
                      progress: bool) -> _Series:
    """Per-frame scores of the forecast, every baseline and the twins, on the frames the windows need."""
    frames = ftraj.frame_index()
    wanted = np.zeros(len(frames), bool)
    for w in windows:
        wanted |= w.contains(frames)
    wanted &= _scoreable(frames, ttraj)
    rows = np.flatnonzero(wanted)
    kept = frames[rows].astype(np.int64)
    observation = Observation.from_trajectory(ttraj, topology, observe=observed[1] - observed[0], end=observed[1])
    names = ["model", *predictors] + (["chaos floor"] if twins else [])
    values = {n: {m: np.full(len(rows), np.nan) for m in fns} for n in names}
    with progress_bar(f"score {ttraj.name}", len(rows), enabled=progress) as bar:
        for lo in range(0, len(rows), _BLOCK):
            sl = slice(lo, lo + _BLOCK)
            truth = _read_rows(ttraj, ttraj.rows_of(kept[sl]))
            guesses = {"model": _read_rows(ftraj, rows[sl])}
            guesses.update({n: p.predict(observation, kept[sl].astype(np.float64)) for n, p in predictors.items()})
            for name, guess in guesses.items():
                for metric, fn in fns.items():
                    values[name][metric][sl] = fn(guess, truth)
            if twins:
                for metric in fns:
                    values["chaos floor"][metric][sl] = _twin_floor(twins, kept[sl], truth, fns[metric])
            bar.advance(len(truth))
    return _Series(ttraj.name, kept, values)


def _twin_floor(twins: list[Trajectory], frames: np.ndarray, truth: np.ndarray, fn) -> np.ndarray:
    """Mean twin-vs-truth score ``(K,)`` over the twins covering each frame (NaN where none does).

    A twin's attributes ``first_frame`` give the trajectory frame of its frame 0."""
    total, count = np.zeros(len(frames)), np.zeros(len(frames))
    for twin in twins:
        rows = twin.rows_of(frames - int(twin.attrs.get("first_frame", 0)))
        inside = rows >= 0
        if inside.any():
            total[inside] += fn(_read_rows(twin, rows[inside]), truth[inside])
            count[inside] += 1
    with np.errstate(invalid="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _values(series: list[_Series], name: str, metric: str, window: Window) -> np.ndarray:
    """The finite per-frame scores of ``name`` inside ``window``, over all trajectories."""
    parts = [s.values[name][metric][window.contains(s.frames)] for s in series if name in s.values]
    values = np.concatenate(parts) if parts else np.zeros(0)
    return values[np.isfinite(values)]


def _mean(series: list[_Series], name: str, metric: str, window: Window) -> tuple[float | None, int]:
    values = _values(series, name, metric, window)
    return (float(values.mean()) if len(values) else None), len(values)


def _window_entry(window: Window, series: list[_Series], baselines: list[str], factor: float,
                  physics: dict | None) -> dict:
    metrics = list(series[0].values["model"])

    def block(name: str) -> dict:
        out = {m: _mean(series, name, m, window)[0] for m in metrics}
        out["mse_paper"] = None if out["mse"] is None else out["mse"] * factor
        return out

    model = block("model")
    entry = {"label": window.label, "window": [window.start, window.stop], "horizon": list(window.horizon),
             "full": window.full, "frames": _mean(series, "model", "mse", window)[1], "model": model, "baselines": {}}
    for name in baselines:
        entry["baselines"][name] = {**block(name), "skill": {m: scores.skill(model[m], v) for m, v in block(name).items()
                                                             if m in metrics}}
    floor = None
    if len(_values(series, "chaos floor", "mse", window)):
        floor = {m: scores.chaos_floor(_values(series, "chaos floor", m, window)) for m in metrics}
        floor["mse_paper"] = floor["mse"] * factor
        floor["frames"] = len(_values(series, "chaos floor", "mse", window))
    entry["chaos_floor"] = floor
    # each trajectory's MSE: a target "on each held-out trajectory" is checked on these, not on the pooled mean
    entry["per_trajectory"] = {s.name: {name: _mean([s], name, "mse", window)[0] for name in ["model", *baselines]}
                               for s in series}
    if physics is not None:
        entry["physics"] = physics
    return entry


def _curve(series: list[_Series], model_name: str) -> dict:
    """Per-frame MSE (Å², averaged over trajectories) of every predictor, for the MSE-vs-horizon plot."""
    frames = np.unique(np.concatenate([s.frames for s in series]))
    out = {"frames": frames}
    for name in series[0].values:
        total, count = np.zeros(len(frames)), np.zeros(len(frames))
        for s in series:
            idx = np.searchsorted(frames, s.frames)
            ok = np.isfinite(s.values[name]["mse"])
            np.add.at(total, idx[ok], s.values[name]["mse"][ok])
            np.add.at(count, idx[ok], 1)
        with np.errstate(invalid="ignore"):
            curve = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        out[f"forecast ({model_name})" if name == "model" else name] = curve / 2.0 if name == "chaos floor" else curve
    return out


def _spaced_rows(ftraj: Trajectory, ttraj: Trajectory, windows: list[Window], limit: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Stored rows ``(K,)`` of at most ``limit`` forecast frames of ``ftraj``, evenly spaced over its scoreable
    frames inside any of ``windows``, and the rows ``(K,)`` of the same frames in ``ttraj`` (both increasing)."""
    frames = ftraj.frame_index()
    inside = np.zeros(len(frames), bool)
    for w in windows:
        inside |= w.contains(frames)
    rows = np.flatnonzero(inside & _scoreable(frames, ttraj))
    rows = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), limit)).round().astype(int))]
    return rows, ttraj.rows_of(frames[rows])


def _boxes_at(traj: Trajectory, rows: np.ndarray) -> np.ndarray | None:
    """Boxes ``(len(rows), 3)`` or ``(len(rows), 3, 3)`` Å of stored frames ``rows`` (increasing); ``None``
    without a box."""
    if not len(rows):
        return traj.boxes(0, 0)
    return traj.boxes(int(rows[0]), int(rows[-1]) + 1)[rows - rows[0]] if traj.has_box else None


def _geometry(topology, ftraj: Trajectory, ttraj: Trajectory, windows: list[Window]) -> dict[str, str]:
    """:func:`~mdforecast.physics.geometry_problems` of at most ``_GEOMETRY_FRAMES`` scored forecast frames of
    ``ftraj`` (evenly spaced over the windows' frames) against the true frames."""
    from .physics import geometry_problems

    rows, truth_rows = _spaced_rows(ftraj, ttraj, windows, _GEOMETRY_FRAMES)
    if not len(rows):
        return {}
    return geometry_problems(topology, _read_rows(ftraj, rows), _read_rows(ttraj, truth_rows),
                             _boxes_at(ttraj, truth_rows))


def _window_physics(kind: str, topology, pairs: list, window: Window) -> tuple[dict, dict]:
    """Physics numbers and curves of ``window`` (at most ``_PHYSICS_FRAMES`` frames per trajectory)."""
    from .physics import physics_scores

    parts: dict[str, list] = {"forecast": [], "truth": [], "forecast_boxes": [], "truth_boxes": [], "reference": []}
    for ftraj, ttraj, observed in pairs:
        rows, truth_rows = _spaced_rows(ftraj, ttraj, [window], _PHYSICS_FRAMES)
        last = int(ttraj.rows_of(np.array([observed[1] - 1]))[0])
        parts["forecast"].append(_read_rows(ftraj, rows))
        parts["truth"].append(_read_rows(ttraj, truth_rows))
        parts["reference"].append(np.repeat(ttraj.positions(last, last + 1), len(rows), axis=0))
        if ttraj.has_box:
            parts["forecast_boxes"].append(_boxes_at(ftraj, rows))
            parts["truth_boxes"].append(_boxes_at(ttraj, truth_rows))
    arrays = {k: np.concatenate(v) if v else None for k, v in parts.items()}
    return physics_scores(kind, topology, **arrays)
