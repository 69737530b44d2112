"""OpenMM speed of the four benchmark systems, and what it means for `mdforecast datasets make`.

    python benchmarks/datasets_speed.py        # writes the "datasets" sections of docs/benchmarks.md and
                                               # docs/datasets.md, and mdforecast/datasets/data/speeds.json

Each system runs through the same code as `datasets make` (mdforecast.datasets.simulation.run: its default
platform, one thread, deterministic forces, frames read every `steps_per_frame` steps and converted), after a
short equilibration; the rate is timed over the frames recorded in 4 s, best of 3. One measurement runs one process
pinned to one core; the aggregate runs one pinned process per core (what `--workers N` does), all timed over
the same window. The water rows also report the box edge after the protocol's full equilibration (20 ps at
1 bar, then 5 ps NVT), a check of the liquid's density. `datasets list` reads speeds.json for its estimates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import Manager, get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, write_section  # noqa: E402

SECONDS = 4.0  # timed per measurement, after the build, minimisation and a short equilibration
REPEATS = 3  # the best of these is reported: other work on a shared machine only ever slows a run down


class _Done(Exception):
    pass


def measure(system: str, core: int, barrier=None) -> dict:
    """Run one trajectory pinned to ``core`` for :data:`SECONDS` after frame 0 (all processes of a
    measurement start timing together at ``barrier``); steps/s over that window and the last box (Å)."""
    os.sched_setaffinity(0, {core})
    from mdforecast.datasets import SYSTEMS
    from mdforecast.datasets.simulation import Job, resolve_platform, run

    spec = SYSTEMS[system]
    stamps, boxes = [], []

    def sink(positions, times, steps, velocities, box):
        boxes.append(None if box is None else float(box[0, 0]))

    def tick(n: int) -> None:
        if not stamps and barrier is not None:
            barrier.wait()
        stamps.append(time.perf_counter())
        if stamps[-1] - stamps[0] > SECONDS:
            raise _Done

    platform = resolve_platform(spec)
    try:
        run(Job(system, "bench", seed=core, frames=10**9, platform=platform, equilibration_ps=0.2), sink, tick)
    except _Done:
        pass
    steps = (len(stamps) - 1) * spec.steps_per_frame
    return {"platform": platform, "steps_per_s": steps / (stamps[-1] - stamps[0])}


def equilibrated_box(system: str, core: int) -> float:
    """The box edge (Å) after the protocol's full equilibration."""
    os.sched_setaffinity(0, {core})
    from mdforecast.datasets import SYSTEMS
    from mdforecast.datasets.simulation import Job, resolve_platform, run

    boxes = []
    run(Job(system, "bench", seed=core, frames=1, platform=resolve_platform(SYSTEMS[system])),
        lambda *frame: boxes.append(float(frame[4][0, 0])))
    return boxes[0]


def _pool(n: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=n, mp_context=get_context("spawn"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-npt", action="store_true", help="skip the full water equilibration (~1 min)")
    args = parser.parse_args()
    from mdforecast.datasets import SYSTEMS, estimate_seconds
    from mdforecast.datasets.simulation import openmm_version

    cores = sorted(os.sched_getaffinity(0))
    load_before = os.getloadavg()[0]
    results = {}
    for name in SYSTEMS:
        single, aggregate = [], []
        for _ in range(REPEATS):
            with _pool(1) as pool:
                single.append(pool.submit(measure, name, cores[0]).result())
            with Manager() as manager, _pool(len(cores)) as pool:
                barrier = manager.Barrier(len(cores))
                runs = [f.result() for f in [pool.submit(measure, name, c, barrier) for c in cores]]
            aggregate.append(sum(r["steps_per_s"] for r in runs))
        results[name] = {"platform": single[0]["platform"], "steps_per_s": round(max(r["steps_per_s"] for r in single)),
                         "aggregate_steps_per_s": round(max(aggregate))}
        print(name, results[name], file=sys.stderr)
    boxes = {}
    if not args.no_npt:
        with _pool(len(cores)) as pool:
            futures = {n: pool.submit(equilibrated_box, n, cores[i % len(cores)])
                       for i, n in enumerate(("tip3p", "tip4p"))}
            boxes = {n: f.result() for n, f in futures.items()}
    speeds = {"hardware": hardware(), "openmm_version": openmm_version(), "workers": len(cores),
              "date": time.strftime("%Y-%m-%d"), "load_average_before": round(load_before, 2), "systems": results}
    path = ROOT / "mdforecast" / "datasets" / "data" / "speeds.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(speeds, indent=2) + "\n")

    rows = ["| system | atoms | platform | steps/s, 1 process | frames/s, 1 process | "
            f"steps/s, {len(cores)} processes | box after 1 bar equilibration |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        spec = SYSTEMS[name]
        box = f"{boxes[name]:.2f} Å" if name in boxes else "–"
        rows.append(f"| {name} | {spec.n_atoms} | {r['platform']} | {r['steps_per_s']:,} | "
                    f"{r['steps_per_s'] / spec.steps_per_frame:,.1f} | {r['aggregate_steps_per_s']:,} | {box} |")
    where = (f"{hardware()}, OpenMM {openmm_version()}, {speeds['date']} (1-minute load average before the run: "
             f"{load_before:.1f}; other work on the machine slows every number here)")
    write_section("datasets", "## Dataset generation (OpenMM)\n\n`python benchmarks/datasets_speed.py` on "
                  f"{where}. One process per core, pinned, one thread each (deterministic forces).\n\n"
                  + "\n".join(rows))

    estimate = ["| system | dataset | full equilibration + frames per trajectory | "
                f"estimated time, --workers {len(cores)} |", "|---|---|---|---|"]
    for name, spec in SYSTEMS.items():
        e = estimate_seconds(spec, speeds=speeds)
        steps = sum(spec.equilibration_steps()) + spec.frames * spec.steps_per_frame
        estimate.append(f"| {name} | {spec.trajectories} × {spec.frames:,} frames | {steps:,} steps | "
                        f"{e['text']} |")
    picks = ", ".join(f"{n} {r['platform']}" for n, r in results.items())
    write_section("datasets-time", f"Measured on {where} by `benchmarks/datasets_speed.py` (platforms as "
                  f"`--platform auto` picks them: {picks}):\n\n" + "\n".join(estimate),
                  doc=ROOT / "docs" / "datasets.md")


if __name__ == "__main__":
    main()
