"""How far a forecast moves its atoms from one frame to the next, against the truth: is the forecast a path?

For each forecast store (``mdforecast predict`` output, every frame forecast) and each of its trajectories: the
step of every atom from each frame to the next (Å; the first step from the last observed frame), its RMS over
the atoms per step and its largest value, against the truth's over the same frames. A forecast that is a path
moves as the truth does, ~0.25 Å RMS per 0.1 ps frame in lj; the report lists the largest steps and the lead
they end at (a hierarchy segment's start, a fusion bin's edge).

    python benchmarks/forecast_steps.py pretrain/lj/forecast-domino.zarr --label lj -o forecast-steps.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mdforecast.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402

LARGEST = 8  # steps listed per trajectory


def steps(x: np.ndarray) -> np.ndarray:
    """Each atom's step ``(T - 1, N)`` Å between consecutive frames of ``x`` ``(T, N, 3)`` (unwrapped)."""
    return np.linalg.norm(np.diff(x.astype(np.float64), axis=0), axis=-1)


def score(forecast_path: Path) -> dict:
    forecast = Store.open(forecast_path)
    truth = Store.open(forecast.attrs["forecast"]["truth"])
    result = {}
    for name in forecast.trajectory_names:
        traj, real = forecast.trajectory(name), truth.trajectory(name)
        frames = traj.frame_index()
        if np.any(np.diff(frames) != 1):
            raise SystemExit(f"{forecast_path} {name}: forecast every frame (predict without --every) to measure steps")
        last = int(real.rows_of(np.array([frames[0] - 1]))[0])  # the last observed frame
        rows = real.rows_of(frames)
        if np.any(rows < 0) or np.any(np.diff(rows) != 1):
            raise SystemExit(f"{forecast_path} {name}: the truth store does not hold every forecast frame")
        f = steps(np.concatenate([real.positions(last, last + 1), traj.positions()]))
        t = steps(real.positions(last, int(rows[-1]) + 1))
        rms = np.sqrt((f ** 2).mean(axis=1))
        top = np.argsort(rms)[::-1][:LARGEST]
        result[name] = {"frames": len(frames), "truth_rms": float(np.sqrt((t ** 2).mean())), "truth_max": float(t.max()),
                        "forecast_rms": float(np.sqrt((f ** 2).mean())),
                        "largest": [{"lead": int(k) + 1, "rms": float(rms[k]), "max": float(f[k].max())} for k in top]}
    return {"forecast": str(forecast_path), "model": forecast.attrs["forecast"]["model"].get("checkpoint"),
            "trajectories": result}


def markdown(results: dict[str, dict]) -> str:
    lines = [f"`benchmarks/forecast_steps.py`, {hardware()}: each atom's step from one forecast frame to the next "
             "(Å; the first from the last observed frame), RMS over the atoms and largest, against the truth's over "
             f"the same frames; the {LARGEST} largest steps by RMS and the lead (frames after the last observed one) "
             "they end at.", "",
             "| model | trajectory | frames | truth step RMS / max (Å) | forecast step RMS (Å) | largest steps: lead "
             "(RMS / max, Å) |", "|---|---|---|---|---|---|"]
    for label, result in results.items():
        for name, r in result["trajectories"].items():
            largest = ", ".join(f"{s['lead']} ({s['rms']:.2f} / {s['max']:.1f})" for s in r["largest"])
            lines.append(f"| {label} | {name} | {r['frames']} | {r['truth_rms']:.3f} / {r['truth_max']:.2f} | "
                         f"{r['forecast_rms']:.3f} | {largest} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("forecasts", nargs="+", type=Path, help="forecast stores (mdforecast predict output)")
    parser.add_argument("--label", action="append", help="a name per forecast store (default: its path)")
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--no-write", action="store_true", help="print the docs section without writing it")
    args = parser.parse_args(argv)
    labels = args.label or [str(p) for p in args.forecasts]
    if len(labels) != len(args.forecasts):
        parser.error("give one --label per forecast store")
    results = {label: score(path) for label, path in zip(labels, args.forecasts)}
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    publish("forecast-steps", "## Forecast steps frame to frame\n\n" + markdown(results), write=not args.no_write)


if __name__ == "__main__":
    main()
