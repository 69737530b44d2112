"""How much early skill can a water forecast get from positions alone? (issue 15: 0-20 frames ≤ 1.0 Å²)

From the last observed frame of windows of a water store's test trajectory, OpenMM integrates the **true force
field** (the system the store was made with, ``mdforecast.datasets.SYSTEMS``, and its integrator: rigid water,
Nosé–Hoover chain at 300 K, 2 fs steps; the chain's own state is not stored and starts at rest) for 20 frames,
started from the true positions and velocities that are

- ``exact``: the stored velocities of that frame (the true state: what the chaos floor's twins start from);
- ``rest``: zero;
- ``backward``: the backward difference of the last two frames, (x₀ − x₋₁)/Δt;
- ``verlet``: that plus half a frame of the true acceleration, (x₀ − x₋₁)/Δt + a(x₀)Δt/2 (exact for an
  acceleration constant over the last frame, the dynamics level's start);
- ``centre of mass``: each molecule's centre-of-mass velocity from the backward difference, no rotation;
- ``Maxwell–Boltzmann mean``: the mean of K rollouts from thermal velocities drawn at random (the conditional mean
  of the future given the last frame alone, with the true forces).

Scored by the position MSE (Å²) over the 20 frames, against persistence. Frames 0.1 ps apart: a water's
velocities forget in tens of fs, so if the rollouts from estimated velocities do no better than persistence even
with the true forces, the target is out of reach for any forecaster that sees positions only.

    python benchmarks/water_limit.py pretrain/tip3p/tip3p.zarr --system tip3p --members 8 -o water-limit.json
    python benchmarks/water_limit.py --system tip3p --results water-limit.json   # the docs section again
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from mdforecast.molecules import find_waters
from mdforecast.pbc import box_matrix
from mdforecast.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402

FRAMES = 20
KT_PER_K = 0.0083144626  # kJ/mol/K
CASES = ("exact", "rest", "backward", "verlet", "centre of mass", "Maxwell–Boltzmann mean")


class TrueDynamics:
    """The store's system in OpenMM (CPU platform, one thread): rollouts of ``FRAMES`` frames from a state given
    in the store's atoms (Å, Å/ps); massless sites are placed by OpenMM."""

    def __init__(self, system_name: str, dt_ps: float) -> None:
        import openmm
        from openmm import unit

        from mdforecast.datasets import SYSTEMS

        spec = SYSTEMS[system_name]
        built = spec.build(np.random.default_rng(0))
        self.openmm, self.unit, self.keep, self.full = openmm, unit, built.keep, np.array(built.positions)
        self.integrator = openmm.NoseHooverIntegrator(spec.temperature_k, spec.coupling_per_ps, spec.timestep_ps)
        self.context = openmm.Context(built.system, self.integrator, openmm.Platform.getPlatformByName("CPU"),
                                      {"Threads": "1"})
        self.masses = np.array([built.system.getParticleMass(int(i)).value_in_unit(unit.dalton) for i in self.keep])
        self.steps = int(round(dt_ps / spec.timestep_ps))

    def _set(self, x: np.ndarray, box: np.ndarray) -> None:
        vec = self.openmm.Vec3
        self.context.setPeriodicBoxVectors(*[vec(*(row / 10)) for row in box])
        full = self.full.copy()
        full[self.keep] = x / 10  # nm; massless sites are recomputed from their atoms
        self.context.setPositions(full)
        self.context.computeVirtualSites()

    def acceleration(self, x: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(N, 3)`` Å/ps² at positions ``x`` Å (1 kJ/mol/nm per u is 10 Å/ps²)."""
        self._set(x, box)
        f = self.context.getState(getForces=True).getForces(asNumpy=True).value_in_unit(
            self.unit.kilojoule_per_mole / self.unit.nanometer)[self.keep]
        return f / self.masses[:, None] * 10.0

    def rollout(self, x: np.ndarray, v: np.ndarray, box: np.ndarray) -> np.ndarray:
        """Positions ``(FRAMES, N, 3)`` Å at the next frames from positions ``x`` Å and velocities ``v`` Å/ps."""
        self._set(x, box)
        velocities = np.zeros_like(self.full)
        velocities[self.keep] = v / 10
        self.context.setVelocities(velocities)
        self.context.applyVelocityConstraints(1e-6)
        out = []
        for _ in range(FRAMES):
            try:
                self.integrator.step(self.steps)
            except self.openmm.OpenMMException:  # the start blew up (NaN coordinates): no forecast
                return np.full((FRAMES, len(self.keep), 3), np.nan)
            state = self.context.getState(getPositions=True)
            out.append(state.getPositions(asNumpy=True).value_in_unit(self.unit.angstrom)[self.keep])
        return np.array(out)


def run(store_path: Path, system: str, ends: list[int], members: int, seed: int) -> dict:
    store = Store.open(store_path)
    name = store.split["test"][0]
    traj = store.trajectory(name)
    if not traj.has_velocities:
        raise SystemExit(f"{store_path}: trajectory {name} has no velocities; make the store with mdforecast datasets")
    dynamics = TrueDynamics(system, traj.dt_ps)
    groups = find_waters(store.topology)
    masses = dynamics.masses
    rng = np.random.default_rng(seed)
    kt = KT_PER_K * 300.0
    rows, load = [], [os.getloadavg()[0]]
    for end in ends:
        began = time.perf_counter()
        x = traj.positions(end - 2, end + FRAMES).astype(np.float64)
        box = box_matrix(traj.boxes(end - 1, end)[0])
        x0, truth = x[1], x[2:]
        backward = (x0 - x[0]) / traj.dt_ps
        w = masses[groups.atoms][..., None]
        centre = np.zeros_like(x0)
        centre[groups.atoms] = ((backward[groups.atoms] * w).sum(1) / w.sum(1))[:, None]
        starts = {"exact": traj.velocities(end - 1, end)[0].astype(np.float64), "rest": np.zeros_like(x0),
                  "backward": backward,
                  "verlet": backward + 0.5 * traj.dt_ps * dynamics.acceleration(x0, box), "centre of mass": centre}
        mse = {case: float(((dynamics.rollout(x0, v, box) - truth) ** 2).mean()) for case, v in starts.items()}
        thermal = [dynamics.rollout(x0, rng.normal(size=x0.shape) * np.sqrt(kt / masses)[:, None] * 10.0, box)
                   for _ in range(members)]  # sqrt(kJ/mol/u) = 1 km/s = 10 Å/ps
        mse["Maxwell–Boltzmann mean"] = float(((np.mean(thermal, 0) - truth) ** 2).mean())
        mse["persistence"] = float(((x0 - truth) ** 2).mean())
        rows.append({"trajectory": name, "last_observed": end - 1, "mse": mse,
                     "wall_s": round(time.perf_counter() - began, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    mean = {case: float(np.mean([r["mse"][case] for r in rows])) for case in (*CASES, "persistence")}
    load.append(os.getloadavg()[0])
    return {"store": str(store_path), "system": system, "frames": FRAMES, "members": members, "seed": seed,
            "dt_ps": traj.dt_ps, "windows": rows, "mean": mean, "load": load}


def _cell(value: float) -> str:
    return f"{value:.3g}" if np.isfinite(value) else "blew up"


def markdown(result: dict) -> str:
    cases = (*CASES, "persistence")
    lines = [f"### How much early skill water positions allow ({result['system']})", "",
             f"{result['system']}: rollouts of the true force field and integrator (OpenMM, Nosé–Hoover chain, 2 fs, "
             f"rigid water) over the {result['frames']} frames ({result['frames'] * result['dt_ps']:g} ps) after "
             f"frames of the test trajectory, from the true positions and the velocities named (module docstring of "
             f"`benchmarks/water_limit.py`; Maxwell–Boltzmann mean: {result['members']} rollouts). Position MSE in "
             f"Å² ({hardware()}; 1-minute load {result['load'][0]:.1f} at the start, {result['load'][1]:.1f} at the end)."
             if "load" in result else f"Å² ({hardware()}).", "",
             "| last observed frame | " + " | ".join(cases) + " |", "|---" * (len(cases) + 1) + "|"]
    for r in result["windows"]:
        lines.append(f"| {r['trajectory']} {r['last_observed']} | " + " | ".join(_cell(r['mse'][c]) for c in cases)
                     + " |")
    lines.append("| **mean** | " + " | ".join(f"**{_cell(result['mean'][c])}**" for c in cases) + " |")
    m = result["mean"]
    best = min(m[c] for c in CASES if c != "exact" and np.isfinite(m[c]))
    lines += ["", f"From the true state (the stored velocities; the thermostat's state is not stored, so this is "
              f"not the twins' chaos floor) one rollout scores {m['exact']:.3g} Å²; from velocities estimated from "
              f"frames {result['dt_ps']:g} "
              f"ps apart it scores {min(m[c] for c in ('backward', 'verlet', 'centre of mass') if np.isfinite(m[c])):.3g} at best and "
              f"from rest {m['rest']:.3g}, against persistence {m['persistence']:.3g}, and the mean over thermal "
              f"velocities (what the last frame alone says about the future, with the true forces) "
              f"{m['Maxwell–Boltzmann mean']:.3g}. Over frames 0-20 the best start from positions alone is "
              f"{1 - best / m['persistence']:.0%} below persistence, the true velocities "
              f"{1 - m['exact'] / m['persistence']:.0%}: frames this far apart carry little of the velocities."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path, nargs="?",
                        help="a water store made by mdforecast datasets make (with velocities)")
    parser.add_argument("--results", type=Path, help="write the docs section from the JSON of an earlier run (-o)")
    parser.add_argument("--system", choices=["tip3p", "tip4p"], required=True)
    parser.add_argument("--ends", default="500,1000,1500,2000", help="first forecast frames of the windows")
    parser.add_argument("--members", type=int, default=4, help="rollouts of the Maxwell–Boltzmann mean")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON here")
    parser.add_argument("--section", default=None, help="docs section name (default: water-limit-SYSTEM)")
    parser.add_argument("--no-write", action="store_true", help="print the docs section without writing it")
    args = parser.parse_args(argv)
    if (args.store is None) == (args.results is None):
        parser.error("give a STORE to run, or --results JSON to write the section of an earlier run")
    result = json.loads(args.results.read_text()) if args.results else \
        run(args.store, args.system, [int(e) for e in args.ends.split(",")], args.members, args.seed)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
    publish(args.section or f"water-limit-{args.system}", markdown(result), write=not args.no_write)


if __name__ == "__main__":
    main()
