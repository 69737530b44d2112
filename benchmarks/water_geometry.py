"""Water geometry of forecasts (issue 15): are the forecast molecules real water molecules?

For each forecast store (``mdforecast predict`` output) and each of its trajectories, over every forecast frame:
the largest deviation of an O–H length (Å) and of an H–O–H angle (degrees) from the model's geometry (the
molecule's own geometry in the last observed frame: the water model's, rigid in the data to ~1e-5 Å), the
closest O–O pair (Å, minimum image in the frame's box) and the count of frames with an O–O pair under 2.3 Å;
the truth's closest O–O pair over the same frames for scale. Targets (issue 15): O–H within 0.005 Å, H–O–H
within 0.5°, no O–O pair under 2.3 Å.

    python benchmarks/water_geometry.py pretrain/tip3p/forecast-domino.zarr pretrain/tip4p/forecast-domino.zarr \\
        --label tip3p --label tip4p -o water-geometry.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mdforecast.molecules import find_waters, whole
from mdforecast.pbc import minimum_image
from mdforecast.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402

OH_TARGET, HOH_TARGET, OO_TARGET = 0.005, 0.5, 2.3


def _shape(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """O–H lengths ``(..., M, 2)`` Å and H–O–H angles ``(..., M)`` degrees of whole molecules ``(..., M, K, 3)``."""
    oh = m[..., 1:3, :] - m[..., :1, :]
    length = np.linalg.norm(oh, axis=-1)
    cos = (oh[..., 0, :] * oh[..., 1, :]).sum(-1) / (length[..., 0] * length[..., 1])
    return length, np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def closest_oo(oxygens: np.ndarray, boxes: np.ndarray | None) -> np.ndarray:
    """The closest O–O distance ``(T,)`` Å of every frame of ``oxygens`` ``(T, M, 3)`` (minimum image)."""
    out = np.empty(len(oxygens))
    i, j = np.triu_indices(oxygens.shape[1], 1)
    for t, x in enumerate(oxygens.astype(np.float64)):
        d = x[j] - x[i]
        if boxes is not None:
            d = minimum_image(d, boxes[t])
        out[t] = np.sqrt(np.einsum("pk,pk->p", d, d).min())
    return out


def score(forecast_path: Path) -> dict:
    forecast = Store.open(forecast_path)
    info = forecast.attrs["forecast"]
    truth = Store.open(info["truth"])
    groups = find_waters(forecast.topology)
    result = {}
    for name in forecast.trajectory_names:
        traj, real = forecast.trajectory(name), truth.trajectory(name)
        frames = traj.frame_index()
        x, boxes = traj.positions(), traj.boxes()
        row = int(real.rows_of(np.array([frames[0] - 1]))[0])  # the last observed frame
        last_box = None if boxes is None else real.boxes(row, row + 1)[0]
        ref_length, ref_angle = _shape(whole(real.positions(row, row + 1)[0], groups, last_box))
        length, angle = _shape(whole(x, groups, boxes, per_frame=True))
        oo = closest_oo(x[:, groups.atoms[:, 0]], boxes)
        rows = real.rows_of(frames)
        rows = rows[rows >= 0]  # truth frames a sampled truth kept
        oo_truth = closest_oo(real.positions()[rows][:, groups.atoms[:, 0]],
                              None if boxes is None else real.boxes()[rows])
        result[name] = {"frames": len(x), "first_frame": int(frames[0]),
                      "oh_max_deviation": float(np.abs(length - ref_length).max()),
                      "hoh_max_deviation": float(np.abs(angle - ref_angle).max()),
                      "oo_closest": float(oo.min()), "frames_with_oo_below_target": int((oo < OO_TARGET).sum()),
                      "truth_oo_closest": float(oo_truth.min())}
    return {"forecast": str(forecast_path), "model": info["model"].get("checkpoint"), "trajectories": result}


def markdown(results: dict[str, dict]) -> str:
    lines = [f"Every forecast frame of the held-out test trajectories (`benchmarks/water_geometry.py`, {hardware()}). "
             f"Targets: O–H within {OH_TARGET} Å and H–O–H within {HOH_TARGET}° of the model's geometry, no O–O pair "
             f"under {OO_TARGET} Å.", "",
             "| model | trajectory | frames | max O–H deviation (Å) | max H–O–H deviation (°) | closest O–O (Å) | "
             "frames with O–O < 2.3 Å | truth's closest O–O (Å) |", "|---|---|---|---|---|---|---|---|"]
    for label, result in results.items():
        for name, r in result["trajectories"].items():
            lines.append(f"| {label} | {name} | {r['frames']} | {r['oh_max_deviation']:.2g} | "
                         f"{r['hoh_max_deviation']:.2g} | {r['oo_closest']:.3f} | {r['frames_with_oo_below_target']} | "
                         f"{r['truth_oo_closest']:.3f} |")
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
    publish("water-geometry", markdown(results), write=not args.no_write)


if __name__ == "__main__":
    main()
