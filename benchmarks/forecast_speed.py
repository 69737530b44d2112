"""Forecast speed against OpenMM producing the same frames on the same hardware (PROTOCOL.md score 5).

Times ``mdforecast.prediction.predict`` (end to end: load/fit, forecast, write the forecast store) for
(a) all 8000 protocol frames [2000, 10000) and (b) one far frame (9999), for each ``--model`` (baseline names,
run directories or checkpoints) with each ``--torch-threads`` count, the command line ``mdforecast predict``
from process start to exit for the trained models, and OpenMM simulating the protocol's system for the same
span with each ``--threads`` count (one thread pinned to one core): 8000 frames of 50 steps of 2 fs = 400,000
steps, with positions fetched every frame. A single far frame costs OpenMM the same 400,000 steps (it must
integrate through them); fetching frames is a small part of it. OpenMM's steps/s is measured over
``--openmm-steps`` steps after a warm-up and extrapolated linearly to 400,000 steps (a constant-cost loop), as
stated in the output. Both sides report wall time and CPU time (user + system of all threads) with the load
average, and the trained models' speed-up over OpenMM compares each side's fastest configuration.

The observed frames come from ``--store`` (a real dataset; needed for a trained model) or, by default, a
synthetic 250-atom store at the lj density (Brownian positions: the baselines' cost does not depend on the
content, DoMiNO's only through the neighbour count). ``--untrained-domino`` also times DoMiNO in the paper's
configuration with untrained weights: the cost of the architecture before a model is trained.

    python benchmarks/forecast_speed.py --untrained-domino --system lj --system tip3p
    python benchmarks/forecast_speed.py --store lj.zarr --model runs/domino --model damped-velocity
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_seconds, hardware, publish  # noqa: E402

OBSERVE, UNTIL, STEPS_PER_FRAME, DT_PS = 2000, 10000, 50, 0.002


def synthetic_store(path: Path, n_atoms: int = 250) -> str:
    """A store of one 10,000-frame argon trajectory (Brownian, 27 Å box) to observe from."""
    from mdforecast.store import writing
    from mdforecast.topology import Topology

    names = np.array(["AR"] * n_atoms)
    topology = Topology(names=names, resnames=names.copy(), resids=np.arange(1, n_atoms + 1),
                        elements=np.array(["Ar"] * n_atoms), masses=np.full(n_atoms, 39.948))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 27.0, (n_atoms, 3))
    with writing(path, topology=topology) as store:
        with store.add_trajectory("traj", velocities=False, box=(3,), attrs={"dt_ps": 0.1, "unwrapped": True}) as w:
            for lo in range(0, UNTIL, 1000):
                block = x + np.cumsum(rng.normal(0, 0.1, (1000, n_atoms, 3)), axis=0)
                x = block[-1]
                frames = np.arange(lo, lo + 1000)
                w.append(block.astype(np.float32), frames * 0.1, frames * STEPS_PER_FRAME,
                         boxes=np.full((1000, 3), 27.0, np.float32))
    return str(path)


def untrained_domino(store: str, workdir: Path) -> str:
    """A run directory holding DoMiNO in the paper's default configuration with untrained weights.

    The cost of a forecast does not depend on the weights' values, only on the configuration and the system,
    so this times the architecture before any model is trained. It is labelled as untrained everywhere.
    """
    from mdforecast.checkpoint import save_model
    from mdforecast.model import Domino, DominoConfig, Normalisation, atom_kinds
    from mdforecast.store import Store

    config = DominoConfig(observe=OBSERVE, horizon=UNTIL - OBSERVE)
    topology = Store.open(store).topology
    kinds = sorted(set(atom_kinds(topology, config.kind_field).tolist()))
    model = Domino(config, Normalisation(1.0, (1.0,) * (len(config.lags) + 1), 10.0), kinds)
    run_dir = workdir / "untrained-domino"
    run_dir.mkdir()
    dt_ps = Store.open(store).trajectory().dt_ps
    save_model(run_dir, model, dt_ps=dt_ps, training={"untrained": True}, data={"store": store}, history=[])
    return str(run_dir)


def time_forecasts(store: str, model: str, workdir: Path, device: str | None, batch: int, threads: int) -> dict:
    """Wall and CPU seconds of ``predict`` in this process with ``threads`` torch threads: all frames, then the
    far frame alone; with the 1-minute load average before and after."""
    import torch

    from mdforecast.prediction import predict

    torch.set_num_threads(threads)
    out = {"load": [os.getloadavg()[0]]}
    for label, kwargs in (("all", {"until": UNTIL}), ("far", {"times": str(UNTIL - 1)})):
        began, cpu = time.perf_counter(), cpu_seconds()
        result = predict(store, model, workdir / f"{model.replace('/', '_')}-{label}.zarr", observe=OBSERVE,
                         device=device, batch=batch, force=True, **kwargs)
        out[label] = (time.perf_counter() - began, cpu_seconds() - cpu, result.frames, result.model)
    out["load"].append(os.getloadavg()[0])
    return out


def time_cli(store: str, model: str, workdir: Path, threads: int) -> tuple[float, float, float, float]:
    """Wall and CPU seconds of ``python -m mdforecast predict`` forecasting all frames, process start to exit
    (imports, loading, forecast, store written), with ``OMP_NUM_THREADS=threads``; the load before and after."""
    command = [sys.executable, "-m", "mdforecast", "predict", store, "--model", model, "--observe", str(OBSERVE),
               "--until", str(UNTIL), "-o", str(workdir / "cli.zarr"), "--force", "--quiet"]
    load, began, cpu = os.getloadavg()[0], time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return time.perf_counter() - began, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu, load, os.getloadavg()[0]


def openmm_lj(threads: int):
    """The protocol's lj system: 250 argon, ρ* = 0.5, LJ cut at 3σ + dispersion correction, Nosé–Hoover 100 K."""
    import openmm
    from openmm import unit

    n, sigma, eps = 250, 0.3405, 0.996  # nm, kJ/mol
    box = (n / 0.5) ** (1 / 3) * sigma
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(box, 0, 0), openmm.Vec3(0, box, 0), openmm.Vec3(0, 0, box))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(3 * sigma)
    force.setUseDispersionCorrection(True)
    for _ in range(n):
        system.addParticle(39.948)
        force.addParticle(0.0, sigma, eps)
    system.addForce(force)
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n]
    positions = (grid + 0.5) * box / side
    integrator = openmm.NoseHooverIntegrator(100 * unit.kelvin, 25 / unit.picosecond, DT_PS * unit.picosecond)
    return _context(system, integrator, positions, threads)


def openmm_tip3p(threads: int):
    """The protocol's tip3p system: 258 rigid TIP3P waters, PME, 9 Å cutoff, Nosé–Hoover 300 K (1/ps)."""
    import openmm
    from openmm import app, unit

    forcefield = app.ForceField("amber14/tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, model="tip3p", numAdded=258, neutralize=False)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.9 * unit.nanometer,
                                     constraints=app.HBonds, rigidWater=True)
    integrator = openmm.NoseHooverIntegrator(300 * unit.kelvin, 1 / unit.picosecond, DT_PS * unit.picosecond)
    positions = np.array(modeller.positions.value_in_unit(unit.nanometer))
    return _context(system, integrator, positions, threads)


def _context(system, integrator, positions, threads: int):
    import openmm

    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, integrator, platform, {"Threads": str(threads)})
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, maxIterations=200)
    context.setVelocitiesToTemperature(integrator.getTemperature())
    return context, integrator


def time_openmm(system: str, steps: int, threads: int) -> dict:
    """OpenMM steps per second and CPU seconds per step, producing a frame (positions fetched) every 50 steps,
    after 1000 warm-up steps, in this process (:func:`openmm_in_child` runs it in a fresh one); one thread is
    pinned to one core, the configuration of ``benchmarks/datasets_speed.py``."""
    if threads == 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    context, integrator = (openmm_lj if system == "lj" else openmm_tip3p)(threads)
    integrator.step(1000)
    load, began, cpu = os.getloadavg()[0], time.perf_counter(), cpu_seconds()
    for _ in range(steps // STEPS_PER_FRAME):
        integrator.step(STEPS_PER_FRAME)
        context.getState(getPositions=True).getPositions(asNumpy=True)
    done = (steps // STEPS_PER_FRAME) * STEPS_PER_FRAME
    return {"steps_per_s": done / (time.perf_counter() - began), "cpu_per_step": (cpu_seconds() - cpu) / done,
            "load": (load, os.getloadavg()[0])}


def openmm_in_child(system: str, steps: int, threads: int) -> dict:
    """:func:`time_openmm` in a fresh process (its own CPU accounting and core affinity)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(time_openmm, system, steps, threads).result()


def main() -> None:
    from mdforecast.prediction import predict

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="baseline name, run directory or checkpoint (repeatable)")
    parser.add_argument("--store", help="store to observe (default: a synthetic 250-atom argon store)")
    parser.add_argument("--system", action="append", choices=["lj", "tip3p"], help="OpenMM systems (default lj)")
    parser.add_argument("--openmm-steps", type=int, default=20000, help="steps timed per OpenMM system")
    parser.add_argument("--threads", type=int, action="append",
                        help="OpenMM CPU threads (repeatable; default 1, pinned to one core, and 2)")
    parser.add_argument("--untrained-domino", action="store_true",
                        help="also time DoMiNO in the paper's configuration with untrained weights")
    parser.add_argument("--torch-threads", type=int, action="append",
                        help="torch CPU threads of the forecasts (repeatable; default 1 and 2)")
    parser.add_argument("--device", help="torch device for trained models")
    parser.add_argument("--batch", type=int, default=inspect.signature(predict).parameters["batch"].default,
                        help="forecast frames per model call (default: predict's and the CLI's)")
    parser.add_argument("--no-cli", action="store_true", help="skip timing the command line for trained models")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    args = parser.parse_args()
    from mdforecast.forecasters import BASELINES

    models = list(args.model or BASELINES)
    systems = args.system or ["lj"]
    torch_threads = args.torch_threads or [1, 2]
    omm_threads = args.threads or [1, 2]
    protocol_steps = (UNTIL - OBSERVE) * STEPS_PER_FRAME

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        store = args.store or synthetic_store(workdir / "synthetic.zarr")
        from mdforecast.store import Store

        n_atoms = Store.open(store).topology.n_atoms
        labels = {m: f"`{m}`" for m in models}
        if args.untrained_domino:
            run_dir = untrained_domino(store, workdir)
            models.append(run_dir)
            labels[run_dir] = "paper configuration, **untrained weights**"
        trained = [m for m in models if m not in BASELINES]
        timings = {(m, k): time_forecasts(store, m, workdir, args.device, args.batch, k)
                   for m in models for k in (torch_threads if m in trained else torch_threads[:1])}
        cli = {} if args.no_cli else {(m, k): time_cli(store, m, workdir, k) for m in trained for k in torch_threads}
    openmm = {(s, k): openmm_in_child(s, args.openmm_steps, k) for s in systems for k in omm_threads}

    rows = []
    for (model, threads), t in timings.items():
        wall, cpu, frames, name = t["all"]
        rows.append(f"| {name} ({labels[model]}) | {threads} | {frames:,} | {wall:.2f} | {cpu:.2f} | {frames / wall:,.0f} "
                    f"| {t['far'][0]:.3f} | {t['load'][0]:.1f} → {t['load'][1]:.1f} |")
    cli_rows = [f"| {labels[m]} | {k} | {wall:.2f} | {cpu:.2f} | {before:.1f} → {after:.1f} |"
                for (m, k), (wall, cpu, before, after) in cli.items()]
    omm_rows = []
    for (s, k), r in openmm.items():
        how = "1 thread, pinned to one core" if k == 1 else f"{k} threads"
        omm_rows.append(f"| OpenMM {s}, CPU platform, {how} | {r['steps_per_s']:,.0f} | {r['cpu_per_step'] * 1e3:.3f} "
                        f"| {protocol_steps / r['steps_per_s']:,.1f} | {protocol_steps * r['cpu_per_step']:,.1f} "
                        f"| {r['load'][0]:.1f} → {r['load'][1]:.1f} |")
    lj = [r for (s, _), r in openmm.items() if s == "lj"]
    verdicts = []
    if lj:
        omm_wall = min(protocol_steps / r["steps_per_s"] for r in lj)
        omm_cpu = min(protocol_steps * r["cpu_per_step"] for r in lj)
        for model in trained:
            wall = min(t["all"][0] for (m, _), t in timings.items() if m == model)
            cpu = min(t["all"][1] for (m, _), t in timings.items() if m == model)
            ends = [w for (m, _), (w, *_rest) in cli.items() if m == model]
            end_to_end = f"; the command line, process start to exit, {omm_wall / min(ends):.1f}×" if ends else ""
            verdicts.append(f"- {labels[model]}: {omm_wall / wall:.1f}× faster than OpenMM lj in wall time, best "
                            f"configuration against best ({wall:.2f} s against {omm_wall:,.1f} s){end_to_end}; "
                            f"{omm_cpu / cpu:.1f}× in CPU time ({cpu:.2f} s against {omm_cpu:,.1f} s).")
    source = f"store `{args.store}`" if args.store else "a synthetic argon store at the lj density (Brownian positions)"
    untrained = run_dir if args.untrained_domino else None
    note = ("" if any(m != untrained for m in trained) else "\n\nNo trained DoMiNO model existed when this ran: the "
            "baselines give the floor of the forecasting pipeline's cost (reading the observation, forecasting, "
            "writing the store)" + (", and DoMiNO in the paper's configuration (observe 2000, horizon 8000, strides "
                                    "400/20/1, 64 features) with **untrained weights** gives the architecture's cost, "
                                    "which does not depend on the weights' values" if untrained else "")
            + ". Rerun with `--store DATASET --model RUN_DIR` to time a trained DoMiNO on the same machine.")
    cli_table = ("" if not cli_rows else f"""
The command line end to end, process start to exit (Python start, imports, loading the model, the forecast,
writing the store): `python -m mdforecast predict STORE --model M --observe {OBSERVE} --until {UNTIL}` with
`OMP_NUM_THREADS` set to the torch threads; CPU time of the child process.

| model | torch threads | wall time (s) | CPU time (s) | load before → after |
|---|---|---|---|---|
{chr(10).join(cli_rows)}
""")
    section = f"""## Forecast speed

`benchmarks/forecast_speed.py` on {hardware()}. Observe frames [0, {OBSERVE}) of {source} ({n_atoms} atoms) and
forecast with `mdforecast.prediction.predict` end to end (load/fit, forecast, write the forecast store): all
{UNTIL - OBSERVE:,} frames [{OBSERVE}, {UNTIL}), and the single far frame {UNTIL - 1}. One run each, `--batch {args.batch}`
frames per model call (the command line's default), on a machine shared with other work (1-minute load
averages in the tables: on 2 cores a load above 2 means the processes wait for a core, so wall times grow and
CPU times, user + system of every thread, are the steadier measure).{note}

"Same CPU" here means both sides on these 2 cores, each in its fastest configuration: OpenMM with one thread
pinned to a core (the configuration of `benchmarks/datasets_speed.py`) or with 2 threads; the forecast with 1 or 2
torch threads. CPU time compares the work each side does, whatever the load.

| forecaster | torch threads | frames | wall time, all frames (s) | CPU time, all frames (s) | frames/s | wall time, frame {UNTIL - 1} only (s) | load before → after |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
{cli_table}
OpenMM producing the same frames: {UNTIL - OBSERVE:,} frames × {STEPS_PER_FRAME} steps of 2 fs = {protocol_steps:,} steps
(the single far frame needs the same {protocol_steps:,} steps). Steps/s and CPU time per step measured over
{args.openmm_steps:,} steps after 1,000 warm-up steps in a fresh process, positions fetched every {STEPS_PER_FRAME} steps, then
extrapolated linearly to {protocol_steps:,} steps.

| simulator | measured steps/s | CPU ms per step | wall time for {UNTIL - OBSERVE:,} frames (s, extrapolated) | CPU time for {UNTIL - OBSERVE:,} frames (s) | load before → after |
|---|---|---|---|---|---|
{chr(10).join(omm_rows)}
{chr(10) + "Speed-up of the trained models over OpenMM lj (best against best):" + chr(10) + chr(10) + chr(10).join(verdicts) if verdicts else ""}
"""
    publish("forecast_speed", section, write=not args.no_write)


if __name__ == "__main__":
    main()
