"""Score a model with a dynamics level on held-out trajectories against its hierarchy alone and the baselines.

For each truth trajectory: observe frames [0, observe), forecast every frame up to --until (default: the protocol's
10,000) and score the position MSE (Å²) in the protocol's windows (frames after the observed part) and over the
full domain, per trajectory; g(r) of the forecast frames of the first window against the truth's (peak height and
position); the forecaster's wall time. Forecasters, all from the same observation:

- ``model``: the fused forecast (``DominoForecaster.predict``), checked equal to the fusion of its sources;
- ``hierarchy``: the model's hierarchy alone (for a model fine-tuned with ``--init lj`` and no hierarchy epochs,
  these are the shipped ``lj`` model's forecasts: the paper DoMiNO);
- ``no-hierarchy``: the ablation without the coarse levels: rollout + linear autoregression, weights refitted on
  the training store (``--train``) without the hierarchy's column;
- persistence, mean, damped-velocity and linear-ar, fitted on the training store's training trajectories.

    python benchmarks/dynamics_heldout.py --model runs/dyn --train train.zarr --truth fresh.zarr -o heldout.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time

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


def gr_peak(positions: np.ndarray, boxes: np.ndarray) -> dict:
    r, g = rdf(positions, boxes, r_max=12.0)
    k = int(np.argmax(g))
    return {"height": float(g[k]), "position": float(r[k])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--train", required=True, help="store the model and the baselines were fitted on")
    parser.add_argument("--truth", required=True, help="held-out store (a seed never trained on)")
    parser.add_argument("--trajectory", action="append", help="default: every trajectory of --truth")
    parser.add_argument("--until", type=int, default=protocol.OBSERVE + protocol.HORIZON)
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    forecaster = load(args.model)
    fusion = forecaster.model.lead_fusion
    observe = forecaster.observe
    train = Store.open(args.train)
    train_trajs = [train.trajectory(n) for n in (train.split or {}).get("train", train.trajectory_names)]
    baselines = {name: load_forecaster(name, train_trajectories=train_trajs, observe=observe)
                 for name in ("persistence", "mean", "damped-velocity", "linear-ar")}
    truth = Store.open(args.truth)
    windows = [(a, b) for a, b in protocol.WINDOWS if observe + b <= args.until]
    weights = fusion.weights.cpu().numpy()
    # the ablation without the coarse levels: the fusion refitted as in training, without the hierarchy
    ablation = copy.deepcopy(forecaster.model)
    options = forecaster.meta["training"]
    fit_fusion(ablation, [Series(t.name, t.positions(), box_matrix(t.boxes())) for t in train_trajs], train.topology,
               windows=options["fusion_windows"], max_rollout=options["max_rollout"], seed=options["seed"],
               sources=("dynamics", "linear-ar"))
    results = {"model": args.model, "train": args.train, "truth": args.truth, "observe": observe,
               "weights": weights.tolist(), "rollout_frames": int(fusion.rollout_frames),
               "no_hierarchy_weights": ablation.lead_fusion.weights.cpu().numpy().tolist(),
               "hardware": {"cpu_cores": torch.get_num_threads(), "machine": platform.machine(),
                            "torch": torch.__version__}, "trajectories": {}}
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
