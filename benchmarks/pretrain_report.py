"""Write the pretrained models' section of docs/benchmarks.md from the runs of ``benchmarks/pretrain.py``.

For each system run into ``OUT/SYSTEM/`` (``pretrain.json`` and the ``mdforecast evaluate --json`` documents
it points to), the section gives: the PROTOCOL.md scores on the full domain and on the paper's windows for
DoMiNO, LG-ODE and every baseline with the chaos floor; the verdict on issues 6 and 7's targets (water: O–H
length and H–O–H angle too), computed here; the ablation L0 / L0+L1 / full; physics metrics of both models;
the fresh-seed check; forecast speed against OpenMM; training cost. Nothing is typed by hand: rerun the
pipeline and this script to refresh it.

    python benchmarks/pretrain_report.py -o pretrain lj ala2
    python benchmarks/pretrain_report.py -o pretrain tip3p tip4p   # rewrites only these systems' sections
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import publish  # noqa: E402

from mdforecast.cli.app import flatten  # noqa: E402
from mdforecast.protocol import OBSERVE  # noqa: E402

#: issue 7's water geometry target: physics key → (largest RMS deviation from the truth, unit)
WATER_TOLERANCE = {"oh_length": (0.02, "Å"), "hoh_angle": (2.0, "°")}
_WATER_LABELS = {"oh_length": "O–H length", "hoh_angle": "H–O–H angle"}
#: columns of the score tables: evaluate's names → headers
COLUMNS = {"model": "DoMiNO", "lgode": "LG-ODE", "persistence": "persistence", "mean": "mean",
           "velocity": "velocity", "damped-velocity": "damped velocity", "linear-ar": "linear AR",
           "chaos floor": "chaos floor"}


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _values(window: dict, metric: str) -> dict:
    """predictor → ``metric`` of one window entry of an evaluate document (``chaos floor`` included)."""
    out = {"model": window["model"].get(metric)}
    out.update({name: b.get(metric) for name, b in window["baselines"].items()})
    if window["chaos_floor"] is not None:
        out["chaos floor"] = window["chaos_floor"].get(metric)
    return out


def score_table(scores: dict, metric: str) -> str:
    """Markdown table: one row per window (full domain last), one column per predictor."""
    head = "| window (trajectory frames) | horizon | frames | " + " | ".join(COLUMNS.values()) + " |"
    rows = [head, "|" + "---|" * (3 + len(COLUMNS))]
    for w in scores["windows"]:
        values = _values(w, metric)
        best = min((v for k, v in values.items() if k != "chaos floor" and v is not None), default=None)
        cells = [(f"**{_number(values.get(k))}**" if values.get(k) == best else _number(values.get(k))) for k in COLUMNS]
        name = ("full " if w["full"] else "") + f"{w['window'][0]}-{w['window'][1]}"
        rows.append(f"| {name} | {w['horizon'][0]}-{w['horizon'][1]} | {w['frames']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def verdict(system: str, scores: dict, metric: str) -> list[str]:
    """Issues 6 and 7's targets, checked on ``metric``: DoMiNO below LG-ODE and below min(persistence, mean) on the
    full domain and on every window where some forecaster beats persistence; ala2 2× below LG-ODE."""
    lines = []
    for w in scores["windows"]:
        v = _values(w, metric)
        floor = min(v["persistence"], v["mean"])
        skill = [k for k in ("model", "lgode", "velocity", "damped-velocity", "mean") if v.get(k) is not None
                 and v[k] < v["persistence"]]
        if not w["full"] and not skill:
            continue
        beats_lgode = v["model"] < v["lgode"]
        beats_floor = v["model"] < floor
        where = "full domain" if w["full"] else f"window {w['window'][0]}-{w['window'][1]}"
        ok = beats_lgode and beats_floor
        lines.append(f"- {where}: DoMiNO {_number(v['model'])} vs LG-ODE {_number(v['lgode'])} "
                     f"({'below' if beats_lgode else '**not below**'}), vs min(persistence, mean) {_number(floor)} "
                     f"({'below' if beats_floor else '**not below**'}): target {'met' if ok else '**missed**'}"
                     + ("" if w["full"] else " (forecasters with skill over persistence here: "
                        f"{', '.join(COLUMNS[k] for k in skill)})"))
        if w["full"] and system == "ala2":
            ratio = v["lgode"] / v["model"]
            chaos = v.get("chaos floor")
            bound = ("" if chaos is None or v["lgode"] >= 2 * chaos else
                     f"; out of reach on these data: it needs DoMiNO ≤ {_number(v['lgode'] / 2)}, below the chaos "
                     f"floor {_number(chaos)}, the estimated lowest MSE of any point forecast")
            lines.append(f"- full domain: LG-ODE / DoMiNO = {ratio:.2f} (target ≥ 2: "
                         f"{'met' if ratio >= 2 else '**missed**'}{bound})")
    return lines


def water_verdict(scores: dict) -> list[str]:
    """Issue 7's geometry target: forecast O–H lengths and H–O–H angles within :data:`WATER_TOLERANCE` (RMS
    over bonds/angles and frames) of the truth's, which are the rigid model's (SETTLE keeps them exact)."""
    lines = []
    for w in scores["windows"]:
        if "physics" not in w:
            continue
        where = "full domain" if w["full"] else f"window {w['window'][0]}-{w['window'][1]}"
        checks = []
        for key, (tolerance, unit) in WATER_TOLERANCE.items():
            d = w["physics"][key]
            met = d["rms_deviation"] <= tolerance
            checks.append((met, f"{_WATER_LABELS[key]} {d['forecast_mean']:.4g} {unit} (truth {d['truth_mean']:.4g}), "
                                f"RMS deviation {d['rms_deviation']:.3g} {unit} (target ≤ {tolerance} {unit}: "
                                f"{'met' if met else '**missed**'})"))
        ok = all(c for c, _ in checks)
        lines.append(f"- {where}: " + "; ".join(text for _, text in checks)
                     + f": target {'met' if ok else '**missed**'}")
    return lines


def physics_table(domino: dict, lgode: dict) -> str:
    """Physics metrics of both forecasts (and the truth where the metric has one) on every window."""
    windows = [(w, l) for w, l in zip(domino["windows"], lgode["windows"]) if "physics" in w]
    if not windows:
        return "_no physics metrics were computed_"
    keys = list(flatten(windows[0][0]["physics"]))
    rows = ["| window | model | " + " | ".join(keys) + " |", "|" + "---|" * (2 + len(keys))]
    for w, l in windows:
        name = ("full " if w["full"] else "") + f"{w['window'][0]}-{w['window'][1]}"
        for label, entry in (("DoMiNO", w), ("LG-ODE", l)):
            flat = flatten(entry["physics"])
            rows.append(f"| {name} | {label} | " + " | ".join(_number(flat.get(k)) for k in keys) + " |")
    return "\n".join(rows)


def speed(record: dict, speeds: dict) -> str:
    """DoMiNO's forecast rate (its predict stage) against OpenMM's (``datasets/data/speeds.json``)."""
    from mdforecast.datasets import SYSTEMS

    stage = record["stages"]["predict-domino"]
    frames = stage["frames"]
    rate = frames / stage["seconds"]
    spec = SYSTEMS[record["system"]]
    omm = speeds["systems"][record["system"]]
    omm_rate = omm["steps_per_s"] / spec.steps_per_frame
    return (f"DoMiNO forecast {frames:,} frames (every test trajectory, frames {record['models']['domino']['options'].get('observe', OBSERVE)}…) "
            f"in {stage['seconds']:.1f} s end to end ({rate:,.0f} frames/s, torch with "
            f"{stage.get('torch_threads', record['hardware']['torch_threads'])} threads on "
            f"{record['hardware']['cpu_cores']} CPU cores). OpenMM "
            f"({omm['platform']} platform, one pinned process, {omm['steps_per_s']:,} steps/s measured by "
            f"`benchmarks/datasets_speed.py` on {speeds['hardware']}, {speeds['date']}) makes "
            f"{omm_rate:,.1f} frames/s at {spec.steps_per_frame} steps per frame: DoMiNO is "
            + (f"**{rate / omm_rate:,.1f}× faster**" if rate >= omm_rate else f"**{omm_rate / rate:,.1f}× slower**")
            + " per frame at this model size. (A single far frame costs DoMiNO one segment per level, while "
            "OpenMM must integrate every step up to it.)")


def training(record: dict) -> str:
    rows = ["| model | epochs | samples/epoch | selected epoch (validation loss) | samples/s | threads | wall time |",
            "|---|---|---|---|---|---|---|"]
    for name, label in (("domino", "DoMiNO"), ("lgode", "LG-ODE")):
        stage = record["stages"][f"train-{name}"]
        options = record["models"][name]["options"]
        rows.append(f"| {label} | {stage['epochs']} | {options.get('samples_per_epoch', '–')} | {stage['best_epoch']} "
                    f"({stage['best_loss']:.4g}) | {stage['samples_per_s']:.2f} | {stage.get('threads', '–')} | "
                    f"{stage['wall_s'] / 60:.0f} min |")
    return "\n".join(rows)


def section(root: Path) -> str:
    from mdforecast.datasets.generate import __file__ as generate_file

    record = json.loads((root / "pretrain.json").read_text())
    system = record["system"]
    domino = json.loads(Path(record["stages"]["evaluate-domino"]["scores"]).read_text())
    lgode = json.loads(Path(record["stages"]["evaluate-lgode"]["scores"]).read_text())
    speeds = json.loads((Path(generate_file).parent / "data" / "speeds.json").read_text())
    metric = "mse_kabsch" if "mse_kabsch" in domino["metrics"] else "mse"
    reductions = ", ".join(f"{k} {v['used']} (protocol {v['protocol']})" for k, v in record["reductions"].items()) \
        or "none"
    parts = [f"### {system}",
             f"Scale `{record['scale']}`, dataset seed {record['seed']}, {record['data']['trajectories']} × "
             f"{record['data']['frames']:,} frames, twins per test trajectory: {record['data']['twins']}; trained "
             f"on {record['hardware']['cpu_cores']} CPU cores ({record['hardware']['cpu']}), GPU: "
             f"{record['hardware']['gpu'] or 'none'}. Differences from PROTOCOL.md and the paper configuration: "
             f"{reductions}.",
             f"Test trajectories {', '.join(domino['trajectories'])}, observed frames [{domino['observed'][0]}, "
             f"{domino['observed'][1]}). MSE in Å²" + (" of centred positions" if domino["centred"] else "")
             + "; bold: the lowest forecaster of the row; chaos floor = twin-vs-truth MSE / 2.",
             score_table(domino, "mse")]
    if metric == "mse_kabsch":
        parts += ["MSE after optimal superposition (Kabsch) of each frame onto the truth, Å²:",
                  score_table(domino, "mse_kabsch")]
    full = next(w for w in domino["windows"] if w["full"])
    parts += [f"Paper scale (positions mapped to [-1, 1] by {domino['paper_scale']['low']:.2f}…"
              f"{domino['paper_scale']['high']:.2f} Å from {domino['paper_scale']['source']}), full domain: "
              + ", ".join(f"{COLUMNS[k]} {_number(v)}" for k, v in _values(full, "mse_paper").items()) + ".",
              f"**Targets** (issues 6 and 7), on the PROTOCOL.md MSE{' (centred)' if domino['centred'] else ''}:",
              "\n".join(verdict(system, domino, "mse"))]
    if metric == "mse_kabsch":
        parts += ["The same on the MSE after superposition (Kabsch), which scores the conformation:",
                  "\n".join(verdict(system, domino, "mse_kabsch"))]
    ablation = [record["stages"].get(f"ablation-L{d}") for d in (0, 1)]
    if all(ablation):
        parts += ["**Ablation** (the trained DoMiNO decoded from levels 0..d only; the paper retrains a model per "
                  "variant), full domain MSE Å²: " + ", ".join(
                      f"{a['levels']} {_number(a['mse']['mse'])}" for a in ablation)
                  + f", full (L0…L2) {_number(full['model']['mse'])}."]
    parts += ["**Physics** of the forecast frames (at most 200 frames per trajectory and window):",
              physics_table(domino, lgode)]
    if any("oh_length" in w.get("physics", {}) for w in domino["windows"]):
        parts += ["**Water geometry** (issue 7: within 0.02 Å and 2° of the rigid model) of DoMiNO's forecast:",
                  "\n".join(water_verdict(domino))]
    fresh = record["stages"].get("fresh")
    if fresh:
        rows = [r for r in fresh["mse"] if not r["window"].startswith("full")]
        first = next(r for r in rows if "horizon 0-400" in r["window"])
        ok = first["model"] < first["persistence"]
        parts += [f"**Fresh trajectory** (seed {fresh['seed']}, never trained on; trajectory "
                  f"{', '.join(fresh['trajectory'])}): over its first 400 forecast frames DoMiNO "
                  f"{_number(first['model'])} Å² vs persistence {_number(first['persistence'])}, damped velocity "
                  f"{_number(first['damped-velocity'])}: target {'met' if ok else '**missed**'}. By window: "
                  + "; ".join(f"{r['window']}: DoMiNO {_number(r['model'])}, persistence {_number(r['persistence'])}"
                              for r in rows if r is not first) + "."]
    parts += ["**Forecast speed**: " + speed(record, speeds), "**Training cost**:", training(record)]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("systems", nargs="+", help="systems run by benchmarks/pretrain.py")
    parser.add_argument("-o", "--output", type=Path, default=Path("pretrain"), help="pretrain.py's output directory")
    parser.add_argument("--no-write", action="store_true", help="print instead of writing docs/benchmarks.md")
    args = parser.parse_args(argv)
    publish("pretrained", "## Pretrained models: benchmark scores\n\n`benchmarks/pretrain_report.py` from the "
            "runs of `benchmarks/pretrain.py` (docs/pretrained.md); every number below is read from those runs' "
            "stores and `mdforecast evaluate` documents.", write=not args.no_write)
    for system in args.systems:  # one section per system: a rerun for one system leaves the others as they are
        publish(f"pretrained-{system}", section(args.output / system), write=not args.no_write)


if __name__ == "__main__":
    main()
