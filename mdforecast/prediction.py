"""``mdforecast predict``: forecast a stored trajectory with a model or a baseline into a new store.

The forecast is a store of the same format as the truth: same topology, one trajectory per forecast
trajectory (named like the truth's), each frame recording in ``frame_index`` the real-valued truth frame it
stands for. Provenance (model, checkpoint hash, truth store and trajectory, observed range, times) is kept in
the store's and each trajectory's attributes under ``forecast``, where ``mdforecast evaluate`` finds it.

Times are trajectory frame indices (see :mod:`mdforecast.timespec`); ``until=10000`` with 2000 observed
frames forecasts frames 2000 … 9999, "through the 10,000th frame" (PROTOCOL.md).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .errors import InputError, MDForecastError
from .mdio import select_indices
from .forecasters import BASELINES, Forecaster, Observation, default_observe, load_forecaster, provenance
from .pretrained import DEFAULT, PRETRAINED, embedded_truth
from .progress import progress_bar
from .provenance import positions_sha256
from .store import Store, Trajectory, is_remote, writing
from .timespec import parse_time, parse_times

__all__ = ["predict", "PredictResult"]


@dataclasses.dataclass(frozen=True)
class PredictResult:
    """What :func:`predict` wrote: the forecast store, its trajectories and frames, and the files exported."""

    output: str
    truth: str
    model: str
    trajectories: list[str]
    observed: tuple[int, int]  # trajectory frames [start, end) the forecast was made from
    frames: int
    first: float
    last: float
    seconds: float
    files: list[str]

    def summary(self) -> str:
        files = f"; wrote {', '.join(self.files)}" if self.files else ""
        return (f"forecast {self.frames} frames ({self.first:g} … {self.last:g}) of {', '.join(self.trajectories)} "
                f"with {self.model} from frames [{self.observed[0]}, {self.observed[1]}) into {self.output} "
                f"in {self.seconds:.1f} s{files}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: the most frames one ``predict`` forecasts (per trajectory), bounding memory for the frame list
MAX_FRAMES = 10**7


def _frame_times(traj: Trajectory, end: int, *, until, times, every: int, horizon: int | None) -> np.ndarray:
    dt_ps = traj.dt_ps
    if times is not None and (until is not None or every != 1):
        raise InputError("--times lists the frames itself; drop --until/--every (ranges take a step: A:B:STEP)")
    if every < 1:
        raise InputError(f"--every must be a positive number of frames, got {every}")
    if times is not None:
        frames = parse_times(times, dt_ps) if isinstance(times, str) else np.asarray(times, dtype=np.float64)
    else:
        default = traj.span if horizon is None else min(traj.span, end + horizon)
        stop = default if until is None else (parse_time(until, dt_ps) if isinstance(until, str) else float(until))
        if not np.isfinite(stop) or (stop - end) / every > MAX_FRAMES:
            raise InputError(f"--until {until} asks for more than {MAX_FRAMES:,} forecast frames; give a nearer "
                             "--until, or a larger --every")
        frames = np.arange(end, stop, every, dtype=np.float64)
        if not len(frames):
            raise InputError(f"nothing to forecast: --until {stop:g} is not after the observed frames [.., {end}); "
                             f"give --until larger than {end}")
    if not len(frames) or not np.isfinite(frames).all():
        raise InputError("--times holds no finite time; give frames like 2500,2500.5 or a range 2000:3000:10")
    if frames.min() < end:
        raise InputError(f"time {frames.min():g} lies inside the observed frames [.., {end}); forecast times "
                         f"must be ≥ {end} (lower --observe or --from to forecast earlier frames)")
    return np.sort(frames)


def _check_format(fmt: str | None, output: Path, names: list[str], force: bool) -> list[Path]:
    """The MD files ``--format`` will write (one per trajectory), refused up front if they cannot be."""
    if fmt is None:
        return []
    from MDAnalysis.coordinates.core import get_writer_for

    target = output.with_suffix("." + fmt.lower().lstrip("."))
    try:
        get_writer_for(str(target), format=fmt.upper().lstrip("."))
    except (TypeError, ValueError) as err:
        raise InputError(f"cannot write format {fmt!r}: MDAnalysis has no writer for it; use e.g. xtc, trr, dcd, "
                         "nc, pdb, gro") from err
    targets = [target] if len(names) == 1 else [target.with_name(f"{target.stem}-{n}{target.suffix}") for n in names]
    for path in targets + [t.with_suffix(".pdb") for t in targets]:
        if path.exists() and not force:
            raise InputError(f"{path} already exists; pass --force to replace it")
    return targets


def _store_of(model: str | Forecaster, device: str | None) -> str:
    """The store to forecast when ``predict`` gets no STORE: the truth sample shipped with a pretrained model,
    else the store the model was trained on (``describe()['store']``)."""
    if isinstance(model, str) and model in BASELINES:
        raise InputError(f"give the STORE to forecast: baseline {model!r} was not trained on one")
    if isinstance(model, str) and model in PRETRAINED:
        shipped = embedded_truth(model)
        if shipped is not None:
            return shipped
    described = load_forecaster(model, device=device).describe()
    found = described.get("store") or (described.get("data") or {}).get("store")
    if not found:
        raise InputError(f"model {model} does not record the store it was trained on; give the STORE to forecast")
    return found


def predict(store: str | os.PathLike | Store | None, model: str | Forecaster | None, output: str | os.PathLike, *,
            trajectories: Sequence[str] | None = None, until: float | str | None = None,
            times: str | Sequence[float] | None = None, every: int = 1, observe: int | None = None,
            from_frame: int | None = None, select: str = "all", fmt: str | None = None, device: str | None = None,
            batch: int = 640,
            force: bool = False, progress: bool = False) -> PredictResult:
    """Forecast ``trajectories`` of ``store`` with ``model`` into a new store at ``output``.

    Args:
        store: the truth store (path, URL or :class:`Store`); ``None``: the truth sample shipped with a
            pretrained model, else the store the model was trained on.
        model: a baseline name, pretrained name, run directory, checkpoint path or :class:`Forecaster`
            (:func:`~mdforecast.forecasters.load_forecaster`); ``None`` without a store: the pretrained :data:`~mdforecast.pretrained.DEFAULT`.
        trajectories: names to forecast (default: the split's first test trajectory, else the first).
        until: forecast frames [observe_end, until), in frames or a time with unit (``'1000ps'``);
            default: to the end of the truth trajectory (or of the model's horizon, if sooner).
        times: instead of ``until``: any real-valued frame times (``'2500.5,3000'``, ``'2000:3000:0.5'``).
        every: keep every N-th frame of the ``until`` range.
        observe: observed frames [0, observe) (default: :func:`~mdforecast.forecasters.default_observe`; for
            baselines with ``from_frame``, at most ``from_frame``).
        from_frame: forecast from this trajectory frame: observe frames [from_frame − observe, from_frame) and
            forecast from ``from_frame`` on (default: ``observe``, i.e. from the start of the trajectory).
        select: MDAnalysis selection of the atoms to forecast (e.g. ``'protein'``); the others are dropped: the
            forecaster sees only these, and the forecast store holds only these (``evaluate`` scores them).
        fmt: also write each forecast trajectory as an MD file (``'xtc'``, ``'dcd'``, …) next to ``output``.
        device: torch device for checkpoint models (baselines run in numpy).
        batch: forecast frames per call of the model (bounds memory; the progress bar advances per batch).
        force: replace an existing ``output``.

    The box of every forecast frame is the last observed box. Nothing is written if anything fails.
    """
    began = time.perf_counter()
    if model is None:
        if store is not None:
            raise InputError("give --model to forecast a STORE: a run directory, a pretrained name "
                             f"({', '.join(PRETRAINED) or 'none shipped'}) or a baseline ({', '.join(BASELINES)})")
        model = DEFAULT
    if store is None:
        store = _store_of(model, device)
    truth = store if isinstance(store, Store) else Store.open(store)
    if select != "all":
        truth = truth.subset(select_indices(truth.topology, select, truth.path))
    if batch < 1:
        raise InputError(f"--batch must be a positive number of frames, got {batch}")
    output = str(output)
    if output == "-":
        raise InputError("a forecast is a store (a directory), it cannot go to stdout; give -o PATH.zarr")
    if not force and (Path(output).exists() if not is_remote(output) else False):
        raise InputError(f"{output} already exists; pass --force to replace it")
    split = truth.split or {}
    names = list(trajectories) if trajectories else [(split.get("test") or truth.trajectory_names)[0]]
    export_to = _check_format(fmt, Path(output), names, force)
    trajs = [truth.trajectory(name) for name in names]
    train = [truth.trajectory(name) for name in split.get("train", [])]
    n_frames = trajs[0].span
    fit_observe = observe if observe is not None else default_observe(None, n_frames)  # baselines fit on these
    forecaster = load_forecaster(model, train_trajectories=train, observe=fit_observe, device=device)
    n_observe = observe if observe is not None else default_observe(forecaster, n_frames)
    if from_frame is not None and observe is None and forecaster.observe is None:
        n_observe = min(n_observe, from_frame)  # baselines observe what lies before --from
    end = n_observe if from_frame is None else from_frame
    if from_frame is not None and not 1 <= n_observe <= from_frame < n_frames:
        raise InputError(f"--from {from_frame} must lie in [{n_observe}, {n_frames}): {forecaster.name} observes "
                         f"{n_observe} frames before it and trajectory {names[0]!r} has {n_frames}; choose --from "
                         "inside that range (or a smaller --observe)")
    forecaster.check(truth.topology, trajs[0].dt_ps)
    note = forecaster.memory_note(truth.topology.n_atoms)
    if progress and note:
        print(note, file=sys.stderr)
    plans = []
    for traj in trajs:
        observation = Observation.from_trajectory(traj, truth.topology, observe=n_observe, end=end)
        plans.append((traj, observation, _frame_times(traj, observation.end, until=until, times=times, every=every,
                                                       horizon=forecaster.horizon)))

    model_info = provenance(forecaster, model)
    truth_path = truth.path if is_remote(truth.path) else str(Path(truth.path).resolve())
    attrs = {"forecast": {"model": model_info, "truth": truth_path, "trajectories": names,
                          "observed": [end - n_observe, end], "select": select, "box": "last observed box",
                          "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}}
    total = sum(len(t) for _, _, t in plans)
    with writing(output, topology=truth.topology, attrs=attrs, mode="overwrite" if force else "create") as out, \
            progress_bar(f"forecast with {forecaster.name}", total, enabled=progress) as bar:
        for traj, observation, frames in plans:
            _forecast_one(out, traj, observation, frames, forecaster, model_info, truth_path, batch, bar)
    files: list[str] = []
    for name, target in zip(names, export_to):
        from .export import export

        result = export(output, target, trajectory=name, force=force, progress=progress)
        files += [result.output, result.topology]
    all_frames = np.concatenate([t for _, _, t in plans])
    return PredictResult(output=output, truth=truth_path, model=forecaster.name, trajectories=names,
                         observed=(end - n_observe, end), frames=total, first=float(all_frames.min()),
                         last=float(all_frames.max()), seconds=time.perf_counter() - began, files=files)


def _forecast_one(out: Store, traj: Trajectory, observation: Observation, frames: np.ndarray,
                  forecaster: Forecaster, model_info: dict, truth_path: str, batch: int, bar) -> None:
    dt_ps = observation.dt_ps
    t0 = float(traj.times(0, 1)[0])
    steps = traj.steps(0, observation.end)
    per_frame = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else 0.0
    box = None if observation.boxes is None else observation.boxes[-1]
    attrs = {"dt_ps": dt_ps, "unwrapped": True, "source": f"{truth_path}#{traj.name}",
             "forecast": {"model": model_info, "truth": truth_path, "trajectory": traj.name,
                          "observed": [observation.start, observation.end],
                          "observed_sha256": positions_sha256(observation.positions), "box": "last observed box"}}
    with out.add_trajectory(traj.name, velocities=False, box=None if box is None else box.shape, attrs=attrs,
                            frame_index=True) as writer:
        for lo in range(0, len(frames), batch):
            chunk = frames[lo:lo + batch]
            positions = np.asarray(forecaster.predict(observation, chunk))
            if positions.shape != (len(chunk), observation.positions.shape[1], 3):
                raise MDForecastError(f"{forecaster.name} returned positions of shape {positions.shape} for "
                                      f"{len(chunk)} times; the model is broken, report it")
            if not np.isfinite(positions).all():
                raise MDForecastError(f"{forecaster.name} produced NaN/infinite positions near frame {chunk[0]:g}; "
                                      "the model diverged, try another checkpoint")
            writer.append(positions, t0 + chunk * (dt_ps or 0.0), np.rint(steps[0] + chunk * per_frame).astype(np.int64),
                          boxes=None if box is None else np.repeat(box[None], len(chunk), axis=0), frames=chunk)
            bar.advance(len(chunk))
