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
from pretrain import SCALES  # noqa: E402
from report import publish  # noqa: E402

from mdforecast.cli.app import flatten  # noqa: E402
from mdforecast.protocol import OBSERVE  # noqa: E402

#: issue 7's water geometry target: physics key → (largest RMS deviation from the truth, unit)
WATER_TOLERANCE = {"oh_length": (0.02, "Å"), "hoh_angle": (2.0, "°")}
#: issue 15's ala2 targets: bond-length RMS deviation from the truth (Å) in every window; the Kabsch MSE below
#: persistence in these horizons (frames after the observed part) and over the full domain
BOND_TOLERANCE = 0.05
KABSCH_HORIZONS = ((0, 20), (80, 100))
_WATER_LABELS = {"oh_length": "O–H length", "hoh_angle": "H–O–H angle"}
#: columns of the score tables: evaluate's names → headers
COLUMNS = {"model": "DoMiNO", "lgode": "LG-ODE", "hierarchy": "hierarchy alone", "persistence": "persistence",
           "mean": "mean", "velocity": "velocity", "damped-velocity": "damped velocity", "linear-ar": "linear AR",
           "chaos floor": "chaos floor"}
#: issue 14's target for a model with a dynamics level: at most the best of these in every window
ISSUE14_BASELINES = ("persistence", "mean", "damped-velocity", "linear-ar")


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _window_name(window: dict, *, sentence: bool = False) -> str:
    """The name of a window entry of an evaluate document: ``'4980-5000'`` (``'full 0-10000'`` for the full
    domain) in tables; with ``sentence``, ``'window 4980-5000'`` or ``'full domain'``."""
    span = f"{window['window'][0]}-{window['window'][1]}"
    if sentence:
        return "full domain" if window["full"] else f"window {span}"
    return ("full " if window["full"] else "") + span


def _values(window: dict, metric: str) -> dict:
    """predictor → ``metric`` of one window entry of an evaluate document (``chaos floor`` included)."""
    out = {"model": window["model"].get(metric)}
    out.update({name: b.get(metric) for name, b in window["baselines"].items()})
    if window["chaos_floor"] is not None:
        out["chaos floor"] = window["chaos_floor"].get(metric)
    return out


def score_table(scores: dict, metric: str) -> str:
    """Markdown table: one row per window (full domain last), one column per predictor scored."""
    columns = [k for k in COLUMNS if any(_values(w, metric).get(k) is not None for w in scores["windows"])]
    head = "| window (trajectory frames) | horizon | frames | " + " | ".join(COLUMNS[k] for k in columns) + " |"
    rows = [head, "|" + "---|" * (3 + len(columns))]
    for w in scores["windows"]:
        values = _values(w, metric)
        best = min((v for k, v in values.items() if k != "chaos floor" and v is not None), default=None)
        cells = [(f"**{_number(values.get(k))}**" if values.get(k) == best else _number(values.get(k)))
                 for k in columns]
        name = _window_name(w)
        rows.append(f"| {name} | {w['horizon'][0]}-{w['horizon'][1]} | {w['frames']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def dynamics_verdict(scores: dict, metric: str) -> list[str]:
    """Issue 14's target for a model with a dynamics level, checked on ``metric``: DoMiNO at most
    min(persistence, mean, damped velocity, linear AR) in every window and on the full domain."""
    lines = []
    for w in scores["windows"]:
        v = _values(w, metric)
        best = min(ISSUE14_BASELINES, key=lambda k: v[k])
        ok = v["model"] <= v[best]
        where = _window_name(w, sentence=True)
        lines.append(f"- {where}: DoMiNO {_number(v['model'])} vs the best baseline, {COLUMNS[best]}, "
                     f"{_number(v[best])} (ratio {v['model'] / v[best]:.4f}): target {'met' if ok else '**missed**'}"
                     + (f"; the hierarchy alone {_number(v['hierarchy'])}" if v.get("hierarchy") is not None else ""))
    return lines


def verdict(system: str, scores: dict, metric: str) -> list[str]:
    """Issues 6 and 7's targets, checked on ``metric``: DoMiNO below LG-ODE and below min(persistence, mean) on the
    full domain and on every window where some forecaster beats persistence; ala2 2× below LG-ODE. Without an
    LG-ODE (scale ``cpu-dynamics``): issue 14's target (:func:`dynamics_verdict`)."""
    if all(w["baselines"].get("lgode") is None for w in scores["windows"]):
        return dynamics_verdict(scores, metric)
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
        where = _window_name(w, sentence=True)
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
        where = _window_name(w, sentence=True)
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


def conformation_verdict(scores: dict) -> list[str]:
    """Issue 15's ala2 targets: bond lengths within :data:`BOND_TOLERANCE` of the truth's (RMS over bonds and
    frames) in every window; the Kabsch MSE below persistence in :data:`KABSCH_HORIZONS` and the full domain;
    with the centred MSE and the φ/ψ Jensen–Shannon divergence beside them."""
    lines = []
    for w in scores["windows"]:
        where = _window_name(w, sentence=True)
        physics = w.get("physics", {})
        bond = physics.get("bond_length", {}).get("rms_deviation")
        kabsch, persistence = w["model"]["mse_kabsch"], w["baselines"].get("persistence", {}).get("mse_kabsch")
        scored = w["full"] or tuple(w["horizon"]) in KABSCH_HORIZONS
        parts = [f"bond-length RMS deviation {_number(bond)} Å (target ≤ {BOND_TOLERANCE}: "
                 f"{'met' if bond is not None and bond <= BOND_TOLERANCE else '**missed**'})"]
        if persistence is not None:
            below = kabsch < persistence
            parts.append(f"Kabsch MSE {_number(kabsch)} vs persistence {_number(persistence)} Å²"
                         + (f" (target: below; {'met' if below else '**missed**'})" if scored else ""))
        parts.append(f"centred MSE {_number(w['model']['mse'])} Å²")
        if "phi_psi_jsd_bits" in physics:
            parts.append(f"φ/ψ JSD {physics['phi_psi_jsd_bits']:.3f} bits")
        lines.append(f"- {where}: " + "; ".join(parts))
    return lines


def physics_table(domino: dict, lgode: dict | None) -> str:
    """Physics metrics of both forecasts (LG-ODE's when there is one; and the truth where the metric has one) on
    every window."""
    windows = [(w, l) for w, l in zip(domino["windows"], lgode["windows"] if lgode else [None] * len(domino["windows"]))
               if "physics" in w]
    if not windows:
        return "_no physics metrics were computed_"
    keys = list(flatten(windows[0][0]["physics"]))
    rows = ["| window | model | " + " | ".join(keys) + " |", "|" + "---|" * (2 + len(keys))]
    for w, l in windows:
        name = _window_name(w)
        for label, entry in (("DoMiNO", w), ("LG-ODE", l)):
            if entry is None:
                continue
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


def _fused_on(record: dict, fusion: dict) -> str:
    """Which trajectories the fusion by lead time was fitted on, in words."""
    names = ", ".join(fusion.get("trajectories", []))
    rule = (f"leave-one-{fusion['folds']}-out" if "folds" in fusion else  # a record of before the groups
            "cross-validation over groups of windows whose forecast spans overlap")
    spec = record["models"]["domino"].get("fusion_data")
    if spec and fusion.get("fitted_on") == "fusion data":
        seed = record["seed"] + spec["seed_offset"]
        return (f"{spec['trajectories']} trajectories simulated for it alone (seeds {seed}–{seed + spec['trajectories'] - 1}"
                f", {names}; neither the hierarchy nor the dynamics level was fitted on them), chosen per lead bin by "
                f"{rule} and the one-standard-error rule")
    return (f"the {fusion.get('fitted_on', 'training')} trajectories {names}, chosen per lead bin by {rule} and the "
            "one-standard-error rule").strip()


def training(record: dict) -> str:
    init = record["models"]["domino"].get("init")
    if init:  # cpu-dynamics: the hierarchy came trained; this run fitted the dynamics level and the fusion
        stage = record["stages"]["train-domino"]
        model_json = json.loads((Path(stage["run"]) / "model.json").read_text())
        meta, data = model_json["training"], model_json.get("data") or {}
        # the fingerprint tells data apart only when the trajectories carry checksums (of their source file or of
        # their positions; else it hashes names and frame counts, the same for any two stores of one layout)
        checked = all(t.get("sha256") or t.get("positions_sha256")
                      for t in (data.get("trajectories") or {"": {}}).values())
        same = checked and data.get("sha256") is not None and data.get("sha256") == (init.get("data") or {}).get("sha256")
        return (f"The hierarchy is the DoMiNO of `--init` (weights SHA-256 {init['weights_sha256'][:12]}…, trained "
                f"{init['training']['epochs']} epochs of {init['training']['samples_per_epoch']} windows, "
                f"{init['training']['lead_sampling']} lead sampling), not trained here; its training trajectories "
                + ("are these (the same data fingerprint). " if same else "**differ** from these (data fingerprint). "
                   if checked else "cannot be compared with these (the stores record no trajectory checksums). ")
                + f"This run: the dynamics level in {meta['dynamics']['wall_s'] / 60:.0f} min (pair term R² "
                f"{meta['dynamics']['pair_r2']:.4f}, {meta['force_steps']} teacher-forced steps, "
                f"{meta['rollout_steps']} rollouts of {meta['rollout_frames']} frames), the fusion on "
                f"{meta['fusion']['windows']} windows of {_fused_on(record, meta['fusion'])} in "
                f"{meta['fusion']['wall_s'] / 60:.0f} min (rollout up to {meta['fusion']['rollout_frames']} frames; "
                f"{sum(not b['sources'] for b in meta['fusion']['bins'])} of {len(meta['fusion']['bins'])} lead bins "
                f"persistence); {stage['wall_s'] / 60:.0f} min in all, torch "
                f"with {stage.get('torch_threads', stage.get('threads', '?'))} threads.")
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
    lgode = json.loads(Path(record["stages"]["evaluate-lgode"]["scores"]).read_text()) \
        if "evaluate-lgode" in record["stages"] else None
    speeds = json.loads((Path(generate_file).parent / "data" / "speeds.json").read_text())
    metric = "mse_kabsch" if "mse_kabsch" in domino["metrics"] else "mse"
    reductions = ", ".join(f"{k} {v['used']} (protocol {v['protocol']})" for k, v in record["reductions"].items()) \
        or "none"
    parts = [f"### {system}",
             f"Scale `{record['scale']}`, dataset seed {record['seed']}, {record['data']['trajectories']} × "
             f"{record['data']['frames']:,} frames, twins per test trajectory: {record['data']['twins']}; trained "
             f"on {record['hardware']['cpu_cores']} CPU cores ({record['hardware']['cpu']}), GPU: "
             f"{record['hardware']['gpu'] or 'none'}. Differences from PROTOCOL.md and the paper configuration: "
             f"{reductions}." + (f" Note: {SCALES[record['scale']]['note']}." if record["models"]["domino"].get("init")
                                 else ""),
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
              f"**Targets** ({'issues 6 and 7' if lgode else 'issue 14'}), on the PROTOCOL.md MSE"
              f"{' (centred)' if domino['centred'] else ''}:",
              "\n".join(verdict(system, domino, "mse"))]
    if lgode and record["models"]["domino"].get("init"):  # a dynamics level: no window behind the baselines
        parts += ["No window behind the baselines (issue 14: at most the best of persistence, mean, damped velocity "
                  "and linear AR; issue 15 asks for at most persistence), on the PROTOCOL.md MSE:",
                  "\n".join(dynamics_verdict(domino, "mse"))]
    if metric == "mse_kabsch":
        parts += ["The same on the MSE after superposition (Kabsch), which scores the conformation:",
                  "\n".join(verdict(system, domino, "mse_kabsch"))]
    if any("bond_length" in w.get("physics", {}) for w in domino["windows"]):
        parts += ["**Conformation targets** (issue 15) of DoMiNO's forecast:", "\n".join(conformation_verdict(domino))]
    ablation = [record["stages"].get(f"ablation-L{d}") for d in (0, 1)]
    if all(ablation):
        parts += ["**Ablation** (the trained DoMiNO decoded from levels 0..d only; the paper retrains a model per "
                  "variant), full domain MSE Å²: " + ", ".join(
                      f"{a['levels']} {_number(a['mse']['mse'])}" for a in ablation)
                  + f", full (L0…L2) {_number(full['model']['mse'])}."]
    elif record["models"]["domino"].get("init"):
        parts += ["**Ablation**: without the dynamics level, the column *hierarchy alone* (the `--init` DoMiNO, "
                  "the paper's model at this size); without the coarse levels: the section on the dynamics level on "
                  "held-out lj trajectories below (`benchmarks/dynamics_heldout.py`)."]
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
