"""Forecast speed against OpenMM producing the same frames on the same hardware (PROTOCOL.md score 5).

Times ``mdforecast.prediction.predict`` (end to end: load/fit, forecast, write the forecast store) for
(a) all 8000 protocol frames [2000, 10000) and (b) one far frame (9999), for each ``--model`` (baseline names,
run directories or checkpoints), and OpenMM simulating the protocol's system for the same span: 8000 frames of
50 steps of 2 fs = 400,000 steps, with positions fetched every frame. A single far frame costs OpenMM the
same 400,000 steps (it must integrate through them); fetching frames is a small part of it. OpenMM's steps/s
is measured over ``--openmm-steps`` steps after a warm-up and extrapolated linearly to 400,000 steps (a
constant-cost loop), as stated in the output.

The observed frames come from ``--store`` (a real dataset; needed for a trained model) or, by default, a
synthetic 250-atom store at the lj density (Brownian positions: the baselines' cost does not depend on the
content, DoMiNO's only through the neighbour count). ``--untrained-domino`` also times DoMiNO in the paper's
configuration with untrained weights: the cost of the architecture before a model is trained.

    python benchmarks/forecast_speed.py --untrained-domino --system lj --system tip3p
    python benchmarks/forecast_speed.py --store lj.zarr --model runs/domino --model damped-velocity
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402

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


def time_forecasts(store: str, model: str, workdir: Path, device: str | None, batch: int) -> dict:
    from mdforecast.prediction import predict

    out = {}
    for label, kwargs in (("all", {"until": UNTIL}), ("far", {"times": str(UNTIL - 1)})):
        began = time.perf_counter()
        result = predict(store, model, workdir / f"{model.replace('/', '_')}-{label}.zarr", observe=OBSERVE,
                         device=device, batch=batch, force=True, **kwargs)
        out[label] = (time.perf_counter() - began, result.frames, result.model)
    return out


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


def time_openmm(system: str, steps: int, threads: int) -> float:
    """OpenMM steps per second, producing a frame (positions fetched) every 50 steps, after 1000 warm-up steps."""
    context, integrator = (openmm_lj if system == "lj" else openmm_tip3p)(threads)
    integrator.step(1000)
    began = time.perf_counter()
    for _ in range(steps // STEPS_PER_FRAME):
        integrator.step(STEPS_PER_FRAME)
        context.getState(getPositions=True).getPositions(asNumpy=True)
    return (steps // STEPS_PER_FRAME) * STEPS_PER_FRAME / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="baseline name, run directory or checkpoint (repeatable)")
    parser.add_argument("--store", help="store to observe (default: a synthetic 250-atom argon store)")
    parser.add_argument("--system", action="append", choices=["lj", "tip3p"], help="OpenMM systems (default lj)")
    parser.add_argument("--openmm-steps", type=int, default=20000, help="steps timed per OpenMM system")
    parser.add_argument("--threads", type=int, default=2, help="OpenMM CPU threads")
    parser.add_argument("--untrained-domino", action="store_true",
                        help="also time DoMiNO in the paper's configuration with untrained weights")
    parser.add_argument("--torch-threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", help="torch device for trained models")
    parser.add_argument("--batch", type=int, default=40, help="forecast frames per model call (bounds memory)")
    parser.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    args = parser.parse_args()
    from mdforecast.forecasters import BASELINES

    models = list(args.model or BASELINES)
    systems = args.system or ["lj"]
    protocol_steps = (UNTIL - OBSERVE) * STEPS_PER_FRAME

    import torch

    torch.set_num_threads(args.torch_threads)
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
        load_before = os.getloadavg()[0]
        timings = {m: time_forecasts(store, m, workdir, args.device, args.batch) for m in models}
    openmm_rate = {s: time_openmm(s, args.openmm_steps, args.threads) for s in systems}
    load_after = os.getloadavg()[0]

    rows = []
    for model, t in timings.items():
        rows.append(f"| {t['all'][2]} ({labels[model]}) | {t['all'][1]:,} | {t['all'][0]:.2f} | {t['all'][1] / t['all'][0]:,.0f} "
                    f"| {t['far'][0]:.3f} |")
    omm = [f"| OpenMM {s}, CPU platform, {args.threads} threads | {rate:,.0f} steps/s | "
           f"{protocol_steps / rate:,.0f} s | {(UNTIL - OBSERVE) / (protocol_steps / rate):,.1f} |"
           for s, rate in openmm_rate.items()]
    source = f"store `{args.store}`" if args.store else "a synthetic argon store at the lj density (Brownian positions)"
    trained = any(m not in BASELINES for m in args.model or [])
    note = ("" if trained else "\n\nNo trained DoMiNO model existed when this ran: the baselines give the floor "
            "of the forecasting pipeline's cost (reading the observation, forecasting, writing the store)"
            + (", and DoMiNO in the paper's configuration (observe 2000, horizon 8000, strides 400/20/1, 64 "
               "features) with **untrained weights** gives the architecture's cost, which does not depend on the "
               "weights' values" if args.untrained_domino else "")
            + ". Rerun with `--store DATASET --model RUN_DIR` to time a trained DoMiNO on the same machine.")
    section = f"""## Forecast speed

`benchmarks/forecast_speed.py` on {hardware()}. Observe frames [0, {OBSERVE}) of {source} ({n_atoms} atoms) and
forecast with `mdforecast.prediction.predict` end to end (load/fit, forecast, write the forecast store): all
{UNTIL - OBSERVE:,} frames [{OBSERVE}, {UNTIL}), and the single far frame {UNTIL - 1}. One run each, torch with
{args.torch_threads} threads, `--batch {args.batch}` frames per model call, on a machine shared with other work
(1-minute load average {load_before:.1f} before, {load_after:.1f} after).{note}

| forecaster | frames | wall time, all frames (s) | frames/s | wall time, frame {UNTIL - 1} only (s) |
|---|---|---|---|---|
{chr(10).join(rows)}

OpenMM producing the same frames: {UNTIL - OBSERVE:,} frames × {STEPS_PER_FRAME} steps of 2 fs = {protocol_steps:,} steps
(the single far frame needs the same {protocol_steps:,} steps). Steps/s measured over {args.openmm_steps:,} steps after
1,000 warm-up steps, positions fetched every {STEPS_PER_FRAME} steps, then extrapolated linearly to {protocol_steps:,} steps.

| simulator | measured speed | time for {UNTIL - OBSERVE:,} frames (extrapolated) | frames/s |
|---|---|---|---|
{chr(10).join(omm)}
"""
    publish("forecast_speed", section, write=not args.no_write)


if __name__ == "__main__":
    main()
