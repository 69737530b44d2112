"""Produce pretrained DoMiNO weights for one benchmark system, with the scores that go on its model card.

One prepared, resumable pipeline (issue 6), the same for every system of ``mdforecast.datasets.SYSTEMS``:

1. **data**: ``mdforecast.datasets.make`` the system with twins of every test trajectory (chaos floor);
2. **train**: DoMiNO (3 levels) and the LG-ODE baseline (``levels=1``) with ``mdforecast.training.train`` on
   the store's training trajectories;
3. **predict**: both models forecast every test trajectory from its observed frames to its end
   (``mdforecast.prediction.predict``);
4. **evaluate**: ``mdforecast.evaluation.evaluate`` on the full domain and on the paper's windows (those of
   Table 3 that fit the scale's horizon), DoMiNO against LG-ODE and every baseline on the same frames, with
   physics metrics; LG-ODE's own forecast is scored as well (its physics).

Everything goes under ``OUT/SYSTEM/``: the store, ``runs/domino`` and ``runs/lgode``, the forecasts,
``scores-domino.json`` and ``scores-lgode.json`` (the ``evaluate --json`` documents) and ``pretrain.json``
(scale, every reduction from the protocol, options, hardware, stage timings, headline scores). Rerunning
the same command resumes: the store fills in missing trajectories, training continues from its last
finished epoch, and finished stages are skipped (recorded in ``pretrain.json``).

Scales (:data:`SCALES`): ``protocol`` is PROTOCOL.md exactly with the ``paper`` preset (for a GPU);
``cpu`` keeps PROTOCOL.md's data and time layout but trains the ``cpu-small`` preset for fewer samples;
``cpu-short`` (the water systems on a 2-core CPU), ``cpu-small`` and ``tiny`` shrink the data, the horizon
and the training. ``cpu-dynamics`` keeps the ``cpu`` scale's data and trains no hierarchy: it adds a dynamics
level and the fusion by lead time (docs/model.md) to the trained DoMiNO given by ``--init`` (e.g. the ``cpu``
run's ``runs/domino``), fitted on the same training trajectories; its DoMiNO is scored against that hierarchy
alone (``hierarchy``), not against LG-ODE, which it does not train. Each says so in ``pretrain.json``.
``tiny`` only checks that the pipeline runs (minutes on a CPU): its weights are not fit to ship.

    python benchmarks/pretrain.py lj --scale protocol --device cuda --workers 4 -o pretrain
    python benchmarks/pretrain.py lj --scale cpu --device cpu --workers 2 --parallel -o pretrain
    python benchmarks/pretrain.py lj --scale cpu-dynamics --init pretrain/lj/runs/domino -o pretrain-dynamics
    python benchmarks/pretrain.py tip3p --scale cpu-short --device cpu --workers 2 --parallel -o pretrain
    python benchmarks/pretrain.py ala2 --scale cpu-small --device cpu -o pretrain
    python benchmarks/pretrain.py ala2 --scale cpu-conformation --device cpu --parallel -o pretrain
    python benchmarks/pretrain.py lj --scale tiny --device cpu -o /tmp/pretrain-tiny
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

#: model options per system: the neighbour cutoff (Å) of docs/model.md (LJ argon: 2.5 σ; water: first shells)
SYSTEM_OPTIONS = {"lj": {"cutoff": 8.5}, "tip3p": {"cutoff": 5.0}, "tip4p": {"cutoff": 5.0}, "ala2": {"cutoff": 5.0}}
#: data, layout and training of each scale; ``None`` = the protocol's value. ``lgode`` = LG-ODE's own options
#: (one segment over the whole horizon, so more solver steps than one DoMiNO segment); ``systems``: options
#: of one system at that scale (on a CPU, lj's 6 Å cutoff keeps the first shell, minimum at 5.3 Å, with a
#: third of the edges of 2.5 σ; ala2's 22 atoms cost a tenth of lj's 250 per window, so it trains longer);
#: ``fresh_frames``: frames simulated past the observation for the fresh-seed check (default 1000); ``fresh``:
#: False skips that check; ``ablation``: False skips the ablation. ``cpu-conformation`` is for ala2 on a 2-core CPU shared with other jobs (2026-12-03:
#: OpenMM's Reference platform got ~15 % of a core). Molecules without a box train on the Kabsch loss and decode
#: conformations at every scale (the ``protocol`` scale too: its ``paper`` preset would collapse them).
#: ``cpu-short`` is for the water systems on a 2-core CPU, where OpenMM made 3.6–3.7 TIP3P frames/s per pinned core
#: (2026-12-02): 3 × 2,500 frames, observe 500, horizon 2000 (LG-ODE: 16 RK4 steps, the protocol's 125 frames each).
SCALES = {
    "protocol": {"trajectories": None, "frames": None, "twins": 2, "preset": "paper",
                 "options": {}, "lgode": {"steps": 64}, "systems": {"ala2": {"loss": "kabsch", "conformations": True}}},
    "cpu": {"trajectories": None, "frames": None, "twins": 2, "preset": "cpu-small",
            "options": {"epochs": 20, "samples_per_epoch": 128, "lead_sampling": "log"}, "lgode": {"steps": 32},
            "systems": {"lj": {"cutoff": 6.0}, "ala2": {"epochs": 40}}},
    "cpu-short": {"trajectories": 3, "frames": 2500, "twins": 1, "preset": "cpu-small", "fresh_frames": 400,
                  "note": "trained without a GPU: OpenMM made 3.6-3.7 TIP3P frames/s per core on the 2-core CPU, "
                          "so PROTOCOL.md's 8 × 10,000 frames with twins (~10 core-hours of MD for TIP3P, more for "
                          "TIP4P-Ew) were cut to 3 × 2,500 frames (train, validation, test) with one twin, and "
                          "training to 3 epochs of 64 windows; a GPU run of --scale protocol replaces these weights",
                  "options": {"observe": 500, "horizon": 2000, "epochs": 3, "samples_per_epoch": 64,
                              "lead_sampling": "log"}, "lgode": {"steps": 16}},
    "cpu-conformation": {"trajectories": None, "frames": 7000, "twins": 0, "preset": "cpu-small", "fresh": False,
                         "ablation": (),
                         "note": "trained without a GPU on a 2-core CPU shared with four other jobs (OpenMM got ~10 % "
                                 "of a core): the first 7000 frames of PROTOCOL.md's 3 trajectories (observe 2000, "
                                 "forecast 5000), no twins (so no chaos floor), no fresh-seed check (the test "
                                 "trajectory is never trained on) and no ablation, the cpu-small architecture trained "
                                 "for 4 epochs of 128 windows on the "
                                 "Kabsch loss and decoded as a conformation with bond lengths kept (conformations); a "
                                 "GPU run of --scale protocol replaces it",
                         "options": {"observe": 2000, "horizon": 5000, "epochs": 4, "samples_per_epoch": 128,
                                     "lead_sampling": "log",
                                     "fusion_windows": 16, "loss": "kabsch", "conformations": True}, "lgode": {"steps": 32}},
    "cpu-small": {"trajectories": 4, "frames": 5000, "twins": 2, "preset": "cpu-small",
                  "options": {"observe": 1000, "horizon": 4000, "epochs": 10}, "lgode": {"steps": 32}},
    "cpu-dynamics": {"trajectories": None, "frames": None, "twins": 2, "preset": "cpu-dynamics", "init": True,
                     "models": ("domino",), "ablation": (), "fusion_data": 16,
                     "options": {"members": 8, "max_rollout": 130, "fusion_windows": 96},
                     "note": "the hierarchy (the DoMiNO levels) was not trained in this run: it is the trained DoMiNO "
                             "given by --init (card: init), kept as it is; this run fitted the dynamics level on the "
                             "same training trajectories and the fusion by lead time on 96 windows of 16 trajectories "
                             "simulated for it with other seeds (card: fusion_data), and trained no LG-ODE; the "
                             "dynamics level is the preset's closed-form instantaneous pair force, 2 Verlet steps "
                             "per frame from a fitted velocity, 8 members, and the fusion rolls out at most 130 "
                             "frames (default: 200) to fit a 2-core CPU"},
    "tiny": {"trajectories": 3, "frames": 1500, "twins": 1, "preset": "cpu-small",
             "options": {"observe": 300, "horizon": 1000, "strides": (200, 20, 1), "epochs": 2,
                         "samples_per_epoch": 8, "val_samples": 4, "cutoff": 6.0}, "lgode": {"steps": 16}},
}
#: ``cpu-water`` (issue 15): ``cpu-short``'s data, with DoMiNO from the ``cpu-water`` preset (a dynamics level
#: fitted in closed form, rigid waters kept apart, fusion by lead time fitted on the held-out training trajectory)
#: on a hierarchy given by ``--init`` (the one trained at ``cpu-short`` before, not trained again: 0 epochs);
#: LG-ODE trained one epoch (its best at ``cpu-short``)
SCALES["cpu-water"] = {**SCALES["cpu-short"], "init": True, "domino": {"preset": "cpu-water", "options": {"epochs": 0}},
                       "lgode": {"steps": 16, "epochs": 1},
                       "note": SCALES["cpu-short"]["note"].replace(", and training to 3 epochs of 64 windows", "")
                       + "; DoMiNO's hierarchy is the cpu-short one (--init: 3 epochs of 64 windows on traj0 of an "
                         "earlier simulation with these seeds, its epoch selected on that traj1; the data were "
                         "simulated again, and OpenMM's CPU platform does not repeat a trajectory, so it saw none of "
                         "these), its dynamics level fitted in closed form on traj0 and its fusion by lead time on 16 "
                         "windows of traj1 (preset cpu-water: waters rigid and kept apart); LG-ODE trained 1 epoch"}
#: ``cpu-water-fusion``: ``cpu-water`` with the fusion by lead time fitted on 2 trajectories simulated for it alone
#: (stage ``fusion-data``, seeds ``seed + FUSION_SEED + i``) instead of traj1
SCALES["cpu-water-fusion"] = {
    **SCALES["cpu-water"], "fusion_data": 2,
    "note": SCALES["cpu-water"]["note"].replace(
        "its fusion by lead time on 16 windows of traj1 (preset cpu-water: waters rigid and kept apart)",
        "its fusion by lead time on 16 windows of 2 trajectories of 2500 frames simulated for it alone with other "
        "seeds (card: fusion_data; each lead bin's sources chosen by cross-validation over groups of windows whose "
        "forecast spans overlap and the one-standard-error rule; traj1 is not used), waters rigid and kept apart (preset cpu-water)")}
MODELS = ("domino", "lgode")  # a scale's ``models`` may train fewer
#: offset of the unseen seed of the fresh-trajectory check (``seed + FRESH_SEED``; training used seed + i, i < 8)
FRESH_SEED = 1000
#: offset of the seeds of the trajectories a scale's ``fusion_data`` simulates for the fusion by lead time only
#: (``seed + FUSION_SEED + i``: neither the hierarchy nor the dynamics level is fitted on them)
FUSION_SEED = 2000
#: forecast frames the fresh-trajectory check scores (issue 6: better than persistence over the first 400)
FRESH_FRAMES = 400
#: coarser read-outs of the trained DoMiNO scored for the ablation (levels 0..depth; the full model is the third)
ABLATION = (0, 1)


def plan(system: str, scale: str, device: str, epochs: int | None = None, init: Path | None = None) -> dict:
    """What the run does: dataset arguments, each model's training options (``epochs`` overrides the
    scale's), and the differences from the protocol (``{key: {"protocol": value, "used": value}}``).
    ``init``: the run directory of the trained DoMiNO a scale with ``init`` (``cpu-dynamics``,
    ``cpu-water``) starts from (required there; the architecture, cutoff included, is that model's)."""
    from mdforecast.datasets import SYSTEMS
    from mdforecast.training import PRESETS

    spec, chosen = SYSTEMS[system], SCALES[scale]
    if bool(chosen.get("init")) != (init is not None):
        raise SystemExit(f"scale {scale} needs --init RUN_DIR (a trained DoMiNO, e.g. OUT/{system}/runs/domino of "
                         "--scale cpu)" if chosen.get("init") else f"--init is for the scales {', '.join(k for k, v in SCALES.items() if v.get('init'))}, not {scale}")
    data = {"trajectories": min(chosen["trajectories"] or spec.trajectories, spec.trajectories),
            "frames": chosen["frames"] or spec.frames, "twins": chosen["twins"]}
    options = {**SYSTEM_OPTIONS[system], **chosen["options"], **chosen.get("systems", {}).get(system, {}),
               **({"epochs": epochs} if epochs else {}), "device": device}
    domino = chosen.get("domino", {})  # DoMiNO's own preset and options, where the scale gives them
    models = {"domino": {"preset": domino.get("preset", chosen["preset"]),
                         "options": {**{k: v for k, v in options.items() if not (init and k in SYSTEM_OPTIONS[system])},
                                     **domino.get("options", {}), "levels": 3},
                         **({"init": _initial(init)} if init else {}),
                         **({"fusion_data": {"trajectories": chosen["fusion_data"], "seed_offset": FUSION_SEED}}
                            if chosen.get("fusion_data") else {})},
              "lgode": {"preset": chosen["preset"], "options": {**options, "levels": 1, "strides": (1,),
                                                                 **chosen.get("lgode", {})}}}
    models = {name: models[name] for name in chosen.get("models", MODELS)}
    protocol = {"trajectories": spec.trajectories, "frames": spec.frames, "observe": spec.frames // 5,
                "horizon": spec.frames - spec.frames // 5, "twins": SCALES["protocol"]["twins"], "preset": "paper"}
    preset = models["domino"]["preset"]  # the reductions are the model card's: DoMiNO's
    used = {**data, "observe": options.get("observe", protocol["observe"]),
            "horizon": options.get("horizon", protocol["horizon"]), "preset": preset}
    reductions = {k: {"protocol": protocol[k], "used": used[k]} for k in protocol if used[k] != protocol[k]}
    paper = {**_defaults(), **PRESETS["paper"], **SYSTEM_OPTIONS[system]}
    changed = {**(models["domino"]["init"]["config"] if init else {}), **PRESETS[preset],
               **{k: v for k, v in {**options, **domino.get("options", {})}.items() if k != "device"}}
    reductions.update({f"option {k}": {"protocol": paper[k], "used": v} for k, v in changed.items()
                       if k not in ("observe", "horizon") and _json(v) != _json(paper[k])})
    return {"system": system, "scale": scale, "data": data, "models": models, "reductions": reductions}


def _initial(run: Path) -> dict:
    """The record of the trained DoMiNO a run starts from: its directory, its weights' SHA-256, its config and
    how it was trained (from its ``model.json``)."""
    meta_path = Path(run) / "model.json"
    if not meta_path.is_file():
        raise SystemExit(f"--init {run}: no model.json there; give the run directory of a trained DoMiNO")
    meta = json.loads(meta_path.read_text())
    training = meta.get("training", {})
    return {"run": str(Path(run).resolve()), "weights_sha256": meta.get("weights_sha256"), "config": meta["config"],
            "training": {k: training.get(k) for k in ("epochs", "samples_per_epoch", "lead_sampling", "selected_on")},
            "data": meta.get("data")}


def _defaults() -> dict:
    """The paper configuration: every model and training option's default (docs/model.md)."""
    import dataclasses

    from mdforecast.model import DominoConfig
    from mdforecast.training import TrainOptions

    return {f.name: f.default for cls in (DominoConfig, TrainOptions) for f in dataclasses.fields(cls)}


def hardware(device: str) -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else None
    return {"cpu_cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(), "gpu": gpu,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__}


def _json(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparing with a saved record."""
    return json.loads(json.dumps(value))


def _write(path: Path, record: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=list))
    os.replace(tmp, path)


def _stage(record: dict, path: Path, name: str, fn) -> dict:
    """Run stage ``name`` unless ``record`` says it finished; record its result and wall time."""
    if record["stages"].get(name, {}).get("done"):
        print(f"[{name}] done before, skipped", file=sys.stderr)
        return record["stages"][name]
    print(f"[{name}] …", file=sys.stderr)
    began = time.perf_counter()
    result = fn()
    import torch

    record["stages"][name] = {"done": True, **result, "wall_s": round(time.perf_counter() - began, 1),
                              "torch_threads": torch.get_num_threads()}
    _write(path, record)
    return record["stages"][name]


def _train(store: Path, run: Path, model: dict, progress: bool, threads: int | None = None) -> dict:
    """Train ``model`` (a :func:`plan` entry) on ``store`` into ``run``; its fusion on ``fusion.zarr`` beside
    ``store`` when the entry has ``fusion_data``."""
    import torch

    from mdforecast.training import resolve_options, train

    if threads is not None:  # a worker process of --parallel
        torch.set_num_threads(threads)
    resume = (run / "state.json").exists()
    init = model.get("init", {}).get("run")
    options = {k: v for k, v in model["options"].items() if k != "device"}  # a train() argument, not an option
    result = train(store, run, *resolve_options(options, preset=model["preset"], init=init), init=init,
                   resume=resume, device=model["options"].get("device", "auto"), progress=progress,
                   fusion_data=store.parent / "fusion.zarr" if model.get("fusion_data") else None)
    return {"run": str(run), "resumed": resume, **{k: v for k, v in result.to_dict().items() if k != "history"}}


def ablation(store: Path, root: Path, depth: int, test: list[str], device: str, progress: bool) -> dict:
    """DoMiNO decoded from its levels 0..``depth`` only, on the full domain of every test trajectory."""
    from mdforecast.forecasters.domino import load
    from mdforecast.evaluation import evaluate
    from mdforecast.prediction import predict

    forecast = root / f"forecast-domino-L{depth}.zarr"
    predict(store, load(root / "runs" / "domino", device=device, depth=depth), forecast, trajectories=test,
            device=device, force=True, progress=progress)
    result = evaluate(forecast, full=True, baselines=[], progress=progress).to_dict()
    full = next(w for w in result["windows"] if w["full"])
    return {"depth": depth, "levels": f"L0…L{depth}", "mse": full["model"], "frames": full["frames"]}


def fresh(system: str, root: Path, seed: int, model: dict, *, frames: int, workers: int, platform_name: str,
          device: str, progress: bool) -> dict:
    """Forecast a trajectory nobody trained on (two trajectories simulated with ``seed``; the test one is
    forecast ``frames`` frames past its observation) and score DoMiNO against persistence and damped velocity
    over its first :data:`FRESH_FRAMES` forecast frames, and over the paper's first windows that fit."""
    from mdforecast.datasets import make
    from mdforecast.evaluation import evaluate
    from mdforecast.prediction import predict
    from mdforecast.protocol import OBSERVE

    observe = model["options"].get("observe", OBSERVE)
    store = root / "fresh.zarr"
    made = make(system, store, trajectories=2, frames=observe + frames, seed=seed, platform=platform_name,
                workers=workers, progress=progress)
    forecast = root / "forecast-fresh.zarr"
    predict(store, str(root / "runs" / "domino"), forecast, until=observe + frames, device=device,
            force=True, progress=progress)
    windows = [(0, FRESH_FRAMES), (0, 20), (80, 100), (180, 200), (980, 1000)]
    result = evaluate(forecast, horizon=[f"{a}-{b}" for a, b in windows if b <= frames],
                      baselines=["persistence", "damped-velocity", "mean"], progress=progress).to_dict()
    _write(root / "scores-fresh.json", result)
    return {"seed": seed, "store": str(store), "trajectory": result["trajectories"], "simulated_s": made.seconds,
            "scores": str(root / "scores-fresh.json"), "mse": headline(result)}


def headline(scores: dict) -> list[dict]:
    """Per window: MSE (Å²) of the model and every baseline and the chaos floor (and Kabsch MSE if scored)."""
    rows = []
    for w in scores["windows"]:
        row = {"window": w["label"] if not w["full"] else f"full {w['window'][0]}-{w['window'][1]}",
               "frames": w["frames"], "model": w["model"]["mse"]}
        row.update({name: b["mse"] for name, b in w["baselines"].items()})
        row["chaos floor"] = None if w["chaos_floor"] is None else w["chaos_floor"]["mse"]
        if "mse_kabsch" in scores["metrics"]:
            row["kabsch"] = {"model": w["model"]["mse_kabsch"],
                             **{name: b["mse_kabsch"] for name, b in w["baselines"].items()}}
        rows.append(row)
    return rows


def _train_both(record: dict, path: Path, store: Path, root: Path, threads: int) -> None:
    """Train the models not trained yet at once, one spawned process each, ``threads`` torch threads apiece
    (no progress bars: the two would interleave); each stage's wall time is its own process's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    todo = [name for name in record["models"] if not record["stages"].get(f"train-{name}", {}).get("done")]
    if not todo:
        return
    print(f"[train-{'+'.join(todo)}] … in {len(todo)} processes", file=sys.stderr)
    with ProcessPoolExecutor(len(todo), mp_context=multiprocessing.get_context("spawn")) as pool:
        began = time.perf_counter()
        jobs = {name: pool.submit(_timed, _train, store, root / "runs" / name, record["models"][name], False, threads)
                for name in todo}
        for name, job in jobs.items():
            result, wall = job.result()
            record["stages"][f"train-{name}"] = {"done": True, **result, "wall_s": round(wall, 1),
                                                 "parallel_wall_s": round(time.perf_counter() - began, 1),
                                                 "threads": threads}
            _write(path, record)


def _timed(fn, *args):
    began = time.perf_counter()
    return fn(*args), time.perf_counter() - began


def run(system: str, scale: str, out: Path, *, device: str = "cpu", workers: int = 1, platform_name: str = "auto",
        seed: int = 0, epochs: int | None = None, progress: bool = True, parallel_threads: int | None = None,
        init: Path | None = None) -> dict:
    """The whole pipeline for ``system`` at ``scale`` into ``out/system``; returns the ``pretrain.json`` record.
    ``parallel_threads``: train DoMiNO and LG-ODE at once, in two processes with that many threads each.
    ``init``: the trained DoMiNO a ``cpu-dynamics`` run adds its dynamics level to."""
    from mdforecast import __version__
    from mdforecast.forecasters import BASELINES
    from mdforecast.datasets import make
    from mdforecast.evaluation import evaluate
    from mdforecast.prediction import predict
    from mdforecast.store import Store

    root = out / system
    root.mkdir(parents=True, exist_ok=True)
    path = root / "pretrain.json"
    wanted = plan(system, scale, device, epochs, init)
    record = json.loads(path.read_text()) if path.exists() else {}
    same = ("scale", "seed", "data", "models")
    if record and _json([record[k] for k in same]) != _json([{**wanted, "seed": seed}[k] for k in same]):
        raise SystemExit(f"{root} holds a run with other options (scale, seed, data or models); use another -o")
    record = {**wanted, "seed": seed, "stages": record.get("stages", {}), "hardware": hardware(device),
              "mdforecast": __version__,
              "started": record.get("started", datetime.now(timezone.utc).isoformat(timespec="seconds"))}
    _write(path, record)
    store = root / f"{system}.zarr"
    _stage(record, path, "data", lambda: make(system, store, seed=seed, platform=platform_name, workers=workers,
                                              progress=progress, **record["data"]).to_dict())
    test = Store.open(store).split["test"]
    fusion_data = record["models"]["domino"].get("fusion_data")
    if fusion_data:  # trajectories for the fusion by lead time only (``_train``)
        _stage(record, path, "fusion-data", lambda: make(
            system, root / "fusion.zarr", trajectories=fusion_data["trajectories"], frames=record["data"]["frames"],
            seed=seed + fusion_data["seed_offset"], platform=platform_name, workers=workers,
            progress=progress).to_dict())
    if parallel_threads:
        _train_both(record, path, store, root, parallel_threads)
    for name in record["models"]:
        _stage(record, path, f"train-{name}", lambda: _train(store, root / "runs" / name, record["models"][name],
                                                             progress))
        _stage(record, path, f"predict-{name}", lambda: predict(
            store, str(root / "runs" / name), root / f"forecast-{name}.zarr", trajectories=test, device=device,
            force=True, progress=progress).to_dict())
    for depth in SCALES[scale].get("ablation", ABLATION):
        _stage(record, path, f"ablation-L{depth}", lambda depth=depth: ablation(store, root, depth, test, device,
                                                                               progress))
    if SCALES[scale].get("fresh", True):
        _stage(record, path, "fresh", lambda: fresh(system, root, seed + FRESH_SEED, record["models"]["domino"],
                                                     frames=SCALES[scale].get("fresh_frames", 1000),
                                                     workers=workers, platform_name=platform_name, device=device,
                                                     progress=progress))
    # DoMiNO against every baseline and LG-ODE, or (cpu-dynamics) against the hierarchy it started from alone
    others = [f"lgode:{root / 'runs' / 'lgode'}"] if "lgode" in record["models"] else \
        [f"hierarchy:{record['models']['domino']['init']['run']}"]
    for name, baselines in (("domino", [*BASELINES, *others]), ("lgode", [])):
        if name not in record["models"]:
            continue
        def score(name=name, baselines=baselines) -> dict:
            result = evaluate(root / f"forecast-{name}.zarr", baselines=baselines, physics=True, progress=progress)
            _write(root / f"scores-{name}.json", result.to_dict())
            return {"scores": str(root / f"scores-{name}.json"), "mse": headline(result.to_dict())}
        _stage(record, path, f"evaluate-{name}", score)
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    _write(path, record)
    return record


def card(record: dict, model_json: dict, box: list[float] | None) -> dict:
    """The model card (``card.json``) of the DoMiNO model of a finished run: protocol and reductions, data
    seeds and fingerprint, config, hardware, training time and the test scores (MSE in Å²); ``box``: the
    edges (Å) of a test trajectory's last observed frame, ``None`` without a periodic box."""
    rows = record["stages"]["evaluate-domino"]["mse"]
    full = next(r for r in rows if r["window"].startswith("full"))
    data = record["stages"]["data"]
    return {"format": "mdforecast-model-card", "format_version": 1, "system": record["system"],
            "atoms": data["n_atoms"], "box": box, "scale": record["scale"], "protocol": "PROTOCOL.md",
            "reductions": record["reductions"], **({"note": SCALES[record["scale"]]["note"]}
                                                   if "note" in SCALES[record["scale"]] else {}),
            "data": {"seed": record["seed"], **record["data"], "split": data["split"], "platform": data["platform"],
                     "fingerprint": model_json["data"]},
            "config": model_json["config"], "preset": record["models"]["domino"]["preset"],
            "training": {name: {k: record["stages"][f"train-{name}"][k] for k in ("epochs", "best_epoch", "best_loss",
                                                                                    "selected_on", "wall_s")}
                         for name in record["models"]},
            **({"init": _init_card(record["models"]["domino"]["init"])} if "init" in record["models"]["domino"] else {}),
            **({"fusion_data": {"seed": record["seed"] + record["models"]["domino"]["fusion_data"]["seed_offset"],
                                "frames": record["stages"]["fusion-data"]["frames"], "trajectories": sorted(
                                    record["stages"]["fusion-data"]["made"] + record["stages"]["fusion-data"]["skipped"]),
                                "fitted_on": model_json["training"]["fusion"]["fitted_on"]}}
               if "fusion-data" in record["stages"] else {}),
            "hardware": record["hardware"], "mdforecast": record["mdforecast"],
            "full_domain_mse": full["model"], "scores": rows,
            "fresh": {k: record["stages"]["fresh"][k] for k in ("seed", "trajectory", "mse")}
            if "fresh" in record["stages"] else None}


def _init_card(init: dict) -> dict:
    """The card's record of the ``--init`` model, without the paths it had on the machine that built it."""
    return {"weights_sha256": init["weights_sha256"], "training": init["training"],
            "data_sha256": (init.get("data") or {}).get("sha256")}


def _last_observed_box(path: Path, observe: int) -> list[float] | None:
    from mdforecast.store import Store

    store = Store.open(path)
    traj = store.trajectory(store.split["test"][0])
    return None if not traj.has_box else [float(x) for x in traj.boxes(observe - 1, observe)[0]]


def ship(root: Path, target: Path) -> Path:
    """Copy the DoMiNO model of the finished run in ``root`` (``OUT/SYSTEM``) to ``target`` (e.g.
    ``mdforecast/pretrained/lj``) with its :func:`card`. A ``tiny`` run is refused: it only checks the pipeline."""
    import shutil

    from mdforecast.pretrained.sample import TRUTH_STRIDE, embed_truth
    from mdforecast.store import Store

    record = json.loads((root / "pretrain.json").read_text())
    if "finished" not in record:
        raise SystemExit(f"the run in {root} has not finished; rerun it before shipping")
    if record["scale"] == "tiny":
        raise SystemExit("a tiny run only checks the pipeline; ship a protocol (or cpu-small) run")
    run = root / "runs" / "domino"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "model.json"):
        shutil.copyfile(run / name, target / name)
    meta = json.loads((run / "model.json").read_text())
    store = root / f"{record['system']}.zarr"
    model_card = card(record, meta, _last_observed_box(store, meta["config"]["observe"]))
    test = Store.open(store).split["test"][0]
    truth = target / "truth.zarr"
    if truth.exists():
        shutil.rmtree(truth)
    frames = embed_truth(store, test, truth, observe=meta["config"]["observe"])
    model_card["truth"] = {"file": "truth.zarr", "trajectory": test, "frames": len(frames),
                           "stride": TRUTH_STRIDE, "twins": len(Store.open(truth).trajectory_names) - 1}
    _write(target / "card.json", model_card)
    return target


def main(argv: list[str] | None = None) -> None:
    from mdforecast.datasets import SYSTEMS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("system", choices=list(SYSTEMS))
    parser.add_argument("--scale", choices=list(SCALES), default="protocol")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("-o", "--output", type=Path, default=Path("pretrain"), help="output directory")
    parser.add_argument("--workers", type=int, default=1, help="simulation processes (datasets make --workers)")
    parser.add_argument("--platform", default="auto", help="OpenMM platform (datasets make --platform)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (trajectory i uses seed + i)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--epochs", type=int, help="training epochs of both models (default: the scale's)")
    parser.add_argument("--parallel", action="store_true",
                        help="train DoMiNO and LG-ODE at once, one process each with --threads/2 threads")
    parser.add_argument("--init", type=Path, metavar="RUN_DIR",
                        help="--scale cpu-dynamics / cpu-water(-fusion): the trained DoMiNO (run directory) to add the dynamics level to")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--ship", type=Path, metavar="DIR",
                        help="after the run, copy its DoMiNO model and model card to DIR (mdforecast/pretrained/NAME)")
    args = parser.parse_args(argv)
    if args.ship is not None and args.scale == "tiny":
        parser.error("--ship: a tiny run only checks the pipeline; ship a protocol (or cpu-small) run")
    import torch

    torch.set_num_threads(args.threads)
    record = run(args.system, args.scale, args.output, device=args.device, workers=args.workers,
                 platform_name=args.platform, seed=args.seed, epochs=args.epochs, progress=not args.quiet,
                 parallel_threads=max(1, args.threads // 2) if args.parallel else None, init=args.init)
    print(json.dumps({"system": record["system"], "scale": record["scale"], "reductions": record["reductions"],
                      "wall_s": {k: v.get("wall_s") for k, v in record["stages"].items()},
                      "mse": record["stages"]["evaluate-domino"]["mse"]}, indent=2, default=list))
    if args.ship is not None:
        print(f"shipped {ship(args.output / args.system, args.ship)}", file=sys.stderr)


if __name__ == "__main__":
    main()
