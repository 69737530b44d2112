"""Score a model with a dynamics level on held-out trajectories against its hierarchy alone and the baselines.

For each truth trajectory: observe frames [0, observe), forecast every frame up to --until (default: the protocol's
10,000) and score the position MSE (Å²) in the protocol's windows (frames after the observed part) and over the
full domain, per trajectory; g(r) of the forecast frames of the first window against the truth's (peak height and
position); the forecaster's wall time. Forecasters, all from the same observation:

- ``model``: the fused forecast (``DominoForecaster.predict``), checked equal to the fusion of its sources;
- ``hierarchy``: the model's hierarchy alone (for a model fine-tuned with ``--init lj`` and no hierarchy epochs,
  these are the shipped ``lj`` model's forecasts: the paper DoMiNO);
- ``no-hierarchy``: the ablation without the coarse levels: rollout + linear autoregression, weights refitted
  without the hierarchy's column on the trajectories the model's fusion was fitted on (``--fusion-data``, default
  the store its ``model.json`` names; without one, the training store's) and the autoregression on ``--train``'s;
- persistence, mean, damped-velocity and linear-ar, fitted on the training store's training trajectories.

With several held-out trajectories the report also states, per window, how far the model and the hierarchy lie
from the best baseline and from persistence, as the mean over trajectories of the paired difference (in % of
persistence's MSE) ± its standard error: a difference smaller than about two standard errors is noise. With 2
trajectories it shows the per-trajectory tables as well.

    python benchmarks/dynamics_heldout.py --model runs/dyn --train train.zarr --truth fresh.zarr -o heldout.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdforecast import protocol
from mdforecast.fitting import fit_fusion
from mdforecast.forecasters import Observation, load_forecaster
from mdforecast.forecasters.domino import load
from mdforecast.model.data import Series
from mdforecast.pbc import box_matrix
from mdforecast.physics import rdf
from mdforecast.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402


def gr_peak(positions: np.ndarray, boxes: np.ndarray) -> dict:
    r, g = rdf(positions, boxes, r_max=12.0)
    k = int(np.argmax(g))
    return {"height": float(g[k]), "position": float(r[k])}


COLUMNS = ("model", "hierarchy", "no-hierarchy", "persistence", "mean", "damped-velocity", "linear-ar")
BASELINES = ("persistence", "mean", "damped-velocity", "linear-ar")


def _table(title: str, rows: dict) -> list[str]:
    lines = [title, "", "| window | " + " | ".join(COLUMNS) + " | model / best baseline | model / persistence |",
             "|---" * (len(COLUMNS) + 3) + "|"]
    for window, row in rows.items():
        best = min(row[k] for k in BASELINES)
        lines.append(f"| {window} | " + " | ".join(f"{row[k]:.4g}" for k in COLUMNS) +
                     f" | {row['model'] / best:.4f} | {row['model'] / row['persistence']:.4f} |")
    return lines + [""]


def markdown(results: dict) -> str:
    """The section of docs/benchmarks.md: MSE tables (both trajectories pooled, then each), g(r) in 0-20."""
    wall = results.get("training", {}).get("wall_s")
    trajectories = results["trajectories"]
    lines = ["## The dynamics level on held-out lj trajectories (issue 14)", "",
             f"`benchmarks/dynamics_heldout.py`: model `{results['model']}` (fitted on `{results['train']}`), "
             f"held-out store `{results['truth']}` ({_seed(results)}), observed frames [0, {results['observe']}); "
             f"{results['hardware']['description']}. `model`: the fused forecast, its fusion fitted on "
             f"`{results.get('fusion_data', results['train'])}` ({results.get('fusion_fitted_on') or 'training'} "
             "trajectories); `hierarchy`: its DoMiNO levels alone (the ablation without the dynamics level); "
             "`no-hierarchy`: the ablation without the coarse levels (rollout + linear autoregression, fusion "
             "refitted on the same trajectories); the baselines are fitted on the training store. "
             f"The rollout runs {results['rollout_frames']} frames. Fitting the dynamics level and the fusion took "
             + (f"{wall:.0f} s." if isinstance(wall, (int, float)) else "an unrecorded time."), ""]
    windows = next(iter(trajectories.values()))["windows"]
    pooled = {w: {k: float(np.mean([t["windows"][w][k] for t in trajectories.values()])) for k in COLUMNS}
              for w in windows}
    lines += _table(f"**{', '.join(trajectories)} pooled** (MSE, Å²; windows in frames after the observed part)",
                    pooled)
    if len(trajectories) > 2:
        return "\n".join(lines + _paired(trajectories, pooled) + _per_trajectory(trajectories))
    for name, entry in trajectories.items():
        lines += _table(f"**{name}**", entry["windows"])
        g = entry["g_r_0_20"]
        lines += [f"{name}: g(r) of the forecast frames 0-20, first peak (height, position Å): " + ", ".join(
            f"{k} {v['height']:.3f} at {v['position']:.2f}" for k, v in g.items()) +
            f"; sources of the 8,000 frames computed in {entry['sources_wall_s']:.0f} s", ""]
    return "\n".join(lines)


def _seed(results: dict) -> str:
    """The held-out store's seed as the report states it."""
    seed = results.get("truth_seed")
    return "a seed never trained on" if seed is None else f"dataset seed {seed}, never trained on"


def _per_trajectory(trajectories: dict) -> list[str]:
    """One row per trajectory: the model's MSE in 0-20, its ratio to persistence in 80-100 (the issue's targets
    are per held-out trajectory), the g(r) first peak of its 0-20 frames against the truth's, and the wall time."""
    lines = ["**Per trajectory**", "", "| trajectory | model 0-20 (Å²) | model / persistence 80-100 | g(r) first peak "
             "0-20, model / truth (height) | sources of the 8,000 frames (s) |", "|---|---|---|---|---|"]
    for name, entry in trajectories.items():
        w, g = entry["windows"], entry["g_r_0_20"]
        lines.append(f"| {name} | {w['0-20']['model']:.4f} | {w['80-100']['model'] / w['80-100']['persistence']:.4f} | "
                     f"{g['model']['height']:.3f} / {g['truth']['height']:.3f} | {entry['sources_wall_s']:.0f} |")
    return lines + [""]


def _paired(trajectories: dict, pooled: dict) -> list[str]:
    """Per window: model and hierarchy minus the pooled best baseline and minus persistence, each the mean over
    trajectories of the paired difference in % of persistence's MSE ± its standard error; and on how many
    trajectories the model is at or below every baseline."""
    n = len(trajectories)
    lines = [f"**Paired differences over the {n} trajectories** (mean ± standard error, % of persistence's MSE; "
             "negative: better)", "",
             "| window | best baseline | model − best | model − persistence | hierarchy − persistence | "
             "best baseline − persistence | trajectories where the model ≤ every baseline |", "|---" * 7 + "|"]

    def diff(window: str, a: str, b: str) -> str:
        d = np.array([100 * (t["windows"][window][a] - t["windows"][window][b]) / t["windows"][window]["persistence"]
                      for t in trajectories.values()])
        return f"{d.mean():+.3f} ± {d.std(ddof=1) / np.sqrt(n):.3f}"

    for window, row in pooled.items():
        best = min(BASELINES, key=lambda k: row[k])
        wins = sum(t["windows"][window]["model"] <= min(t["windows"][window][k] for k in BASELINES)
                   for t in trajectories.values())
        lines.append(f"| {window} | {best} | {diff(window, 'model', best)} | {diff(window, 'model', 'persistence')} | "
                     f"{diff(window, 'hierarchy', 'persistence')} | {diff(window, best, 'persistence')} | {wins} of {n} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model")
    parser.add_argument("--train", help="store the model and the baselines were fitted on")
    parser.add_argument("--truth", help="held-out store (a seed never trained on)")
    parser.add_argument("--trajectory", action="append", help="default: every trajectory of --truth")
    parser.add_argument("--fusion-data", help="store the no-hierarchy ablation's fusion is fitted on (default: the "
                                              "model's own fusion data, else --train)")
    parser.add_argument("--until", type=int, default=protocol.OBSERVE + protocol.HORIZON)
    parser.add_argument("-o", "--output", required=True, help="JSON of the scores")
    parser.add_argument("--report", action="store_true", help="print the Markdown section of an existing --output")
    parser.add_argument("--write", action="store_true", help="with --report: also write it to docs/benchmarks.md")
    args = parser.parse_args()
    if args.report:
        with open(args.output) as f:
            publish("dynamics-heldout", markdown(json.load(f)), write=args.write)
        return
    if not (args.model and args.train and args.truth):
        parser.error("--model, --train and --truth are needed (or --report)")
    torch.set_num_threads(max(1, torch.get_num_threads()))

    forecaster = load(args.model)
    fusion = forecaster.model.lead_fusion
    observe = forecaster.observe
    train = Store.open(args.train)
    train_trajs = [train.trajectory(n) for n in (train.split or {}).get("train", train.trajectory_names)]
    baselines = {name: load_forecaster(name, train_trajectories=train_trajs, observe=observe)
                 for name in BASELINES}
    truth = Store.open(args.truth)
    windows = [(a, b) for a, b in protocol.WINDOWS if observe + b <= args.until]
    weights = fusion.weights.cpu().numpy()
    # the ablation without the coarse levels: the fusion refitted as in training, without the hierarchy
    ablation = copy.deepcopy(forecaster.model)
    options = forecaster.meta["training"]
    fusion_data = args.fusion_data or (options.get("fusion_data") or {}).get("store")
    series = [Series(t.name, t.positions(), box_matrix(t.boxes())) for t in train_trajs]
    other = Store.open(fusion_data) if fusion_data else None
    fusion_series = [Series(t.name, t.positions(), box_matrix(t.boxes())) for t in other
                     if not t.attrs.get("twin_of")] if other else series
    fit_fusion(ablation, fusion_series, train.topology, windows=options["fusion_windows"],
               max_rollout=options["max_rollout"], seed=options["seed"], sources=("dynamics", "linear-ar"),
               ar_series=series)
    results = {"model": args.model, "train": args.train, "truth": args.truth, "observe": observe,
               "truth_seed": (truth.attrs.get("dataset") or {}).get("seed"),
               "fusion_data": fusion_data or args.train,
               "fusion_fitted_on": options.get("fusion", {}).get("fitted_on"),
               "weights": weights.tolist(), "rollout_frames": int(fusion.rollout_frames),
               "no_hierarchy_weights": ablation.lead_fusion.weights.cpu().numpy().tolist(),
               "hardware": {"description": hardware(), "torch_threads": torch.get_num_threads(),
                            "torch": torch.__version__},
               "training": {"wall_s": (options["dynamics"].get("wall_s", 0.0) + options["fusion"].get("wall_s", 0.0))
                            or "not recorded"},
               "trajectories": {}}
    for name in args.trajectory or truth.trajectory_names:
        traj = truth.trajectory(name)
        until = min(args.until, traj.span)
        obs = Observation.from_trajectory(traj, truth.topology, observe=observe)
        times = np.arange(observe, until, dtype=np.float64)
        start = time.perf_counter()
        rollout = max(int(fusion.rollout_frames), int(ablation.lead_fusion.rollout_frames))
        sources = forecaster.sources(obs, times, rollout=rollout)
        elapsed = time.perf_counter() - start
        t = times - (observe - 1)
        x0 = obs.positions[-1].astype(np.float64)
        forecasts = {"model": x0 + fusion.combine(t, sources), "hierarchy": x0 + sources[1],
                     "no-hierarchy": x0 + ablation.lead_fusion.combine(t, sources)}
        early = forecaster.predict(obs, times[:40])
        check = float(np.abs(early - forecasts["model"][:40]).max())
        assert check < 1e-3, f"predict and the fused sources disagree by {check} Å"
        forecasts.update({k: b.predict(obs, times).astype(np.float64) for k, b in baselines.items()})
        true = traj.positions(observe, until).astype(np.float64)
        mse = {k: ((f - true) ** 2).mean(axis=(1, 2)) for k, f in forecasts.items()}
        rows = {f"{a}-{b}": {k: float(v[a:b].mean()) for k, v in mse.items()} for a, b in windows}
        rows["full"] = {k: float(v.mean()) for k, v in mse.items()}
        boxes = traj.boxes(observe, observe + 20)
        results["trajectories"][name] = {
            "windows": rows, "sources_wall_s": elapsed, "predict_equals_fused_sources_max_abs": check,
            "g_r_0_20": {"truth": gr_peak(true[:20], boxes), "model": gr_peak(forecasts["model"][:20], boxes),
                         "hierarchy": gr_peak(forecasts["hierarchy"][:20], boxes)}}
        print(name, json.dumps(results["trajectories"][name]["windows"], indent=None), flush=True)
    with open(args.output, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
