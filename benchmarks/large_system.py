"""A ~50,000-atom solvated peptide from MD to evaluated forecast on the CPU: every stage's wall time and peak memory.

Alanine dipeptide (ACE-ALA-NME, built by :mod:`mdforecast.datasets.ala2`) solvated by OpenMM's ``Modeller`` in
a cubic TIP3P box of ``--box`` Å (amber14 + TIP3P, PME with a 9 Å cutoff, H-bond constraints, rigid water;
Langevin 300 K, friction 1/ps, 2 fs steps), minimised and equilibrated for ``--equilibrate`` steps, then
simulated on OpenMM's CPU platform for two consecutive trajectories written as XTC (plus ``system.pdb``), a
frame every ``--every`` steps: ``train.xtc`` (``--train-frames``) and the held-out continuation ``test.xtc``
(``--test-frames``). Frames only a few steps apart keep the simulation to minutes; the model's lead times are
counted in these frames.

Then, each stage a child process of its own (``os.wait4`` gives its peak resident set and CPU time):

- ``mdforecast ingest`` of each trajectory (``train.zarr``, ``test.zarr``);
- ``mdforecast train --preset cpu-small`` on the whole system (solvent included), in a short time layout
  (``--observe``, ``--horizon``, ``--strides``) and as few optimiser steps as show that it runs (one epoch of
  ``--samples`` windows, batch 1, one finest segment and two outputs per segment scored);
- ``mdforecast train --select protein`` (the solvent dropped from the data and every graph), same options;
- ``mdforecast predict`` of both models on the held-out trajectory, ``--forecast`` frames after its first
  ``observe`` frames (the protein model with ``--select protein``);
- ``mdforecast evaluate`` of both forecasts against the trajectory, with the persistence and linear-ar
  baselines.

A forecast of a model trained for a few steps is not a result: the section reports the costs, and the
scores only to show the pipeline ran end to end. The section says the load (other work on the machine).

    python benchmarks/large_system.py --dir /tmp/large          # all stages, writes the "large-system" section
    python benchmarks/large_system.py --dir /tmp/large --box 40 --no-write   # a ~6,000-atom rehearsal
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEMPERATURE_K, FRICTION_PER_PS, STEP_PS = 300.0, 1.0, 0.002


def make(out: Path, box_a: float, every: int, equilibrate: int, train_frames: int, test_frames: int,
         threads: int) -> dict:
    """Solvate, minimise, equilibrate and simulate (module docstring); returns sizes and the simulation speed."""
    import openmm
    from openmm import app, unit

    from mdforecast.datasets.ala2 import build_topology_positions

    topology, positions = build_topology_positions(-60.0, -45.0)
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    modeller = app.Modeller(topology, positions * unit.nanometer)
    edge = box_a / 10.0
    modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(edge, edge, edge) * unit.nanometer)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                     constraints=app.HBonds, rigidWater=True)
    integrator = openmm.LangevinMiddleIntegrator(TEMPERATURE_K * unit.kelvin, FRICTION_PER_PS / unit.picosecond,
                                                 STEP_PS * unit.picoseconds)
    integrator.setRandomNumberSeed(1)
    platform = openmm.Platform.getPlatformByName("CPU")
    simulation = app.Simulation(modeller.topology, system, integrator, platform, {"Threads": str(threads)})
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(TEMPERATURE_K * unit.kelvin, 1)
    simulation.step(equilibrate)
    state = simulation.context.getState(getPositions=True, enforcePeriodicBox=False)
    with open(out / "system.pdb", "w") as f:
        app.PDBFile.writeFile(simulation.topology, state.getPositions(), f)
    began = time.perf_counter()
    for name, frames in (("train", train_frames), ("test", test_frames)):
        reporter = app.XTCReporter(str(out / f"{name}.xtc"), every, enforcePeriodicBox=False)
        simulation.reporters.append(reporter)
        simulation.step(frames * every)
        simulation.reporters.remove(reporter)
        del reporter  # closes the file
    seconds = time.perf_counter() - began
    steps = (train_frames + test_frames) * every
    return {"atoms": modeller.topology.getNumAtoms(), "waters": sum(r.name == "HOH" for r in modeller.topology.residues()),
            "box_a": box_a, "md_steps": steps, "md_steps_per_s": steps / seconds, "frame_ps": every * STEP_PS}


def run_stage(name: str, argv: list[str], log: Path) -> dict:
    """Run ``argv`` as a child process; its wall time, CPU time, peak resident set and the load after it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    began = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(argv)}\n")
        f.flush()
        proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - began
    row = {"stage": name, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
           "peak_gib": usage.ru_maxrss / 2**20, "load": os.getloadavg()[0], "rc": proc.returncode}
    print(json.dumps(row), file=sys.stderr, flush=True)
    if proc.returncode:
        raise SystemExit(f"stage {name} failed (exit {proc.returncode}); its output is in {log}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="working directory (trajectories, stores, runs)")
    parser.add_argument("--box", type=float, default=78.0, help="cubic box edge, Å (78: about 47,000 atoms)")
    parser.add_argument("--every", type=int, default=2, help="MD steps (2 fs) per saved frame")
    parser.add_argument("--equilibrate", type=int, default=250, help="MD steps before the first saved frame")
    parser.add_argument("--observe", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--strides", default="10,1")
    parser.add_argument("--solver", default="euler", help="ODE solver (cpu-small: rk4)")
    parser.add_argument("--steps", type=int, default=1, help="ODE solver steps per segment (cpu-small: 4)")
    parser.add_argument("--forecast", type=int, default=100, help="frames forecast on the held-out trajectory")
    parser.add_argument("--samples", type=int, default=2, help="training windows (one optimiser step each)")
    parser.add_argument("--threads", type=int, default=2, help="OpenMM CPU threads")
    parser.add_argument("--make", nargs=6, metavar=("BOX", "EVERY", "EQUIL", "TRAIN", "TEST", "THREADS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--publish", action="store_true", help="only write the section from DIR/results.json")
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()
    out = args.dir.resolve()
    if args.publish:
        saved = json.loads((out / "results.json").read_text())
        publish("large-system", report(**saved), write=not args.no_write)
        return
    if args.make:
        box, every, equil, n_train, n_test, threads = args.make
        info = make(out, float(box), int(every), int(equil), int(n_train), int(n_test), int(threads))
        (out / "system.json").write_text(json.dumps(info))
        return
    out.mkdir(parents=True, exist_ok=True)
    log = out / "log.txt"
    log.write_text("")
    train_frames = args.observe + args.horizon + 5  # a few distinct windows
    test_frames = args.observe + args.forecast
    py, cli = sys.executable, [sys.executable, "-m", "mdforecast"]
    stages = [run_stage("simulate (OpenMM CPU)", [py, __file__, "--dir", str(out), "--make", str(args.box),
                                                  str(args.every), str(args.equilibrate), str(train_frames),
                                                  str(test_frames), str(args.threads)], log)]
    system = json.loads((out / "system.json").read_text())
    for name in ("train", "test"):
        stages.append(run_stage(f"ingest {name}.xtc", [*cli, "ingest", str(out / f"{name}.xtc"), "--top",
                                                        str(out / "system.pdb"), "-o", str(out / f"{name}.zarr"),
                                                        "--force", "-q"], log))
    config = out / "train.yaml"
    config.write_text(f"samples_per_epoch: {args.samples}\nbatch: 1\nval_samples: 1\nsegments: 1\nmax_outputs: 2\n")
    layout = ["--observe", str(args.observe), "--horizon", str(args.horizon), "--strides", args.strides,
              "--solver", args.solver, "--steps", str(args.steps)]
    first, last = args.observe, args.observe + args.forecast - 1
    runs = {"all": ("the whole system", []), "protein": ("--select protein", ["--select", "protein"])}
    scores = {}
    for key, (label, select) in runs.items():
        run = out / f"run-{key}"
        stages.append(run_stage(f"train, {label}", [*cli, "train", str(out / "train.zarr"), "-o", str(run),
                                                     "--preset", "cpu-small", "--config", str(config), "--epochs", "1",
                                                     *layout, *select], log))
        forecast = out / f"forecast-{key}.zarr"
        stages.append(run_stage(f"predict {args.forecast} frames, {label}",
                                [*cli, "predict", str(out / "test.zarr"), "--model", str(run), "--from", str(first),
                                 "--until", str(last + 1), "-o", str(forecast), "--force", *select], log))
        scores_file = out / f"scores-{key}.json"
        row = run_stage(f"evaluate, {label}", [*cli, "evaluate", str(forecast), "--window", f"{first}-{last + 1}",
                                               "--baselines", "persistence,linear-ar", "--json"], log)
        stages.append(row)
        scores[key] = _last_json(log)
        scores_file.write_text(json.dumps(scores[key]))
    options = {k: getattr(args, k) for k in ("every", "threads", "observe", "horizon", "strides", "solver", "steps",
                                             "samples", "forecast")}
    (out / "results.json").write_text(json.dumps({"system": system, "stages": stages, "scores": scores,
                                                  "options": options}))
    publish("large-system", report(system, stages, scores, options), write=not args.no_write)


def _last_json(log: Path) -> dict:
    """The JSON object the last stage printed (``evaluate --json``)."""
    text = log.read_text()
    return json.loads(text[text.rindex("\n$ "):].split("\n", 2)[2])


def report(system: dict, stages: list[dict], scores: dict, options: dict) -> str:
    frames = f"a frame every {options['every']} MD steps ({system['frame_ps'] * 1000:g} fs)"
    lines = [f"## A {system['atoms']:,}-atom solvated peptide end to end", "",
             f"`python benchmarks/large_system.py` on {hardware()}, a shared machine: *load* is the 1-minute load "
             "average after each stage; above the core count other work competed, so *wall s* is longer than on an "
             "idle machine and *CPU s* (user + system time of the stage's process) is the better measure of its "
             f"cost. Alanine dipeptide solvated in a {system['box_a']:g} Å cubic TIP3P box by OpenMM's Modeller: "
             f"**{system['atoms']:,} atoms** ({system['waters']:,} waters; amber14 + TIP3P, PME 9 Å, Langevin 300 K, "
             f"2 fs), simulated on OpenMM's CPU platform ({options['threads']} threads, "
             f"{system['md_steps_per_s']:.1f} steps/s under this load) with {frames} so that it fits in minutes: "
             f"a training trajectory and its held-out continuation. Training: `--preset cpu-small` (F = 16, C = 8, "
             f"one encoder layer) in a short layout (observe {options['observe']}, horizon {options['horizon']}, "
             f"strides {options['strides']}) with `--solver {options['solver']} --steps {options['steps']}` "
             "(one field evaluation per segment instead of cpu-small's 16 with rk4 and 4 steps, whose cost per "
             "training step by system size is in the scaling section) and one epoch of "
             f"{options['samples']} windows, batch 1, one finest segment and two outputs per segment scored: "
             "as few steps as show that it runs, so the scores below are not a result, only proof that every "
             f"stage ran. Forecast: {options['forecast']} frames of the held-out trajectory after its first "
             f"{options['observe']}. *Peak GiB* is the stage process' peak resident set (`os.wait4`).", "",
             "| stage | wall s | CPU s | peak GiB | load |", "|---|---|---|---|---|"]
    for r in stages:
        lines.append(f"| {r['stage']} | {r['wall_s']:.0f} | {r['cpu_s']:.0f} | {r['peak_gib']:.2f} | {r['load']:.1f} |")
    lines += ["", "| model | atoms forecast | MSE Å² | persistence Å² | linear-ar Å² |", "|---|---|---|---|---|"]
    for key, label in (("all", "whole system (solvent forecast too)"), ("protein", "`--select protein` (solvent dropped)")):
        w = scores[key]["windows"][0]
        atoms = system["atoms"] if key == "all" else system["atoms"] - 3 * system["waters"]  # a neutral peptide
        lines.append(f"| {label} | {atoms:,} | {w['model']['mse']:.4g} | {w['baselines']['persistence']['mse']:.4g} | "
                     f"{w['baselines']['linear-ar']['mse']:.4g} |")
    lines += ["", "`--select protein` drops the solvent from the data and from every graph; a mode in which the "
              "solvent shapes the protein's graph without being forecast is not built. Memory stays bounded at "
              "this size because message passing runs over chunks of edges, decoding over chunks of lead times "
              "(recomputed in the backward pass) and `predict` solves a few finest segments per pass; `train` and "
              "`predict` say so in one line on stderr (docs/model.md, \"Large systems\")."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
