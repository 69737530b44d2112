"""Training speed and peak memory of DoMiNO at the benchmark systems' sizes.

Runs ``mdforecast.training`` end to end (store → run directory) on synthetic trajectories of the LJ size
(250 atoms, 27.0 Å box) and the TIP3P size (774 atoms, 19.7 Å box): random positions at the liquid's
density moved by a random walk, so neighbour counts match the real systems. Speed depends on sizes, not
on the physics. Each case runs in its own process (clean peak memory) for 2 epochs; the second epoch's
training samples/s is reported (the first includes warm-up). Peak memory is ``torch.cuda.max_memory_allocated``
on a GPU and the process' peak resident set (data and Python included) on the CPU.

    python benchmarks/train_speed.py                  # CPU: cpu-small at both sizes, paper at LJ size
    python benchmarks/train_speed.py --device cuda    # GPU: paper config at both sizes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WORK = Path(__file__).resolve().parent / "_work"
#: atoms, cubic box edge Å, cutoff Å, atom names per molecule
SYSTEMS = {"lj": (250, 27.0, 8.5, ["Ar"]), "tip3p": (774, 19.7, 5.0, ["OW", "HW1", "HW2"])}
#: option sets measured; "paper" is the default configuration (3 levels, strides 400/20/1 over 8000 frames)
CASES = {
    "cpu-small": {"preset": "cpu-small", "options": {"observe": 200, "horizon": 800, "strides": (40, 4, 1)}},
    "paper": {"preset": "paper", "options": {}},
}


def make_store(system: str, frames: int) -> str:
    from mdforecast.store import writing
    from mdforecast.topology import Topology

    n, box, _, names = SYSTEMS[system]
    path = WORK / f"{system}-{frames}.zarr"
    if path.exists():
        return str(path)
    rng = np.random.default_rng(0)
    atom_names = np.array((names * n)[:n])
    topology = Topology(names=atom_names, resnames=np.array(["X"] * n), resids=np.arange(1, n + 1), types=atom_names)
    with writing(path, topology=topology) as store:
        with store.add_trajectory("t0", velocities=False, box=(3,), attrs={"dt_ps": 0.1, "unwrapped": True}) as w:
            x = rng.uniform(0, box, (n, 3)).astype(np.float32)
            for start in range(0, frames, 500):
                k = min(500, frames - start)
                steps = np.cumsum(rng.normal(0, 0.1, (k, n, 3)).astype(np.float32), axis=0)
                w.append(x + steps, (start + np.arange(k)) * 0.1, (start + np.arange(k)) * 50,
                         boxes=np.full((k, 3), box, np.float32))
                x = x + steps[-1]
    return str(path)


def one(system: str, case: str, device: str, batch: int, steps: int) -> dict:
    import torch

    from mdforecast.training import resolve_options, train
    from mdforecast.model import DominoConfig

    spec = CASES[case]
    options = {**spec["options"], "cutoff": SYSTEMS[system][2], "device": device, "batch": batch, "epochs": 2,
               "samples_per_epoch": batch * steps, "val_samples": 1, "holdout": 0}
    layout = {k: options.get(k, getattr(DominoConfig, k)) for k in ("observe", "horizon")}
    store = make_store(system, layout["observe"] + layout["horizon"] + 1)
    run = WORK / f"run-{system}-{case}-{device}"
    shutil.rmtree(run, ignore_errors=True)
    result = train(store, run, *resolve_options(options, preset=spec["preset"]))
    meta = json.loads((run / "model.json").read_text())
    cuda = torch.cuda.is_available() and device != "cpu"
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"system": system, "case": case, "load": os.getloadavg()[0], "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "threads": torch.get_num_threads(), "batch": batch, "samples_per_s": result.history[-1]["samples_per_s"],
            "peak_gib": peak / 2**30, "peak_kind": "GPU allocated" if cuda else "process RSS",
            "config": {k: meta["config"][k] for k in ("features", "vectors", "steps", "strides", "cutoff", "checkpoint")},
            "segments": meta["training"]["segments"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per case")
    parser.add_argument("--one", nargs=3, metavar=("SYSTEM", "CASE", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], args.device, int(args.one[2]), args.steps)))
        return
    plan = ([("lj", "cpu-small", 4), ("tip3p", "cpu-small", 4), ("lj", "paper", 2)] if args.device == "cpu"
            else [(s, c, b) for s in SYSTEMS for c, b in (("cpu-small", 32), ("paper", 8), ("paper", 32))])
    WORK.mkdir(exist_ok=True)
    rows = []
    for system, case, batch in plan:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--device", args.device, "--steps", str(args.steps),
                               "--one", system, case, str(batch)], capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"system": system, "case": case, "batch": batch, "error": proc.stderr.strip().splitlines()[-1]})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"{system} {case} batch {batch}: {rows[-1]['samples_per_s']:.2f} samples/s, "
              f"peak {rows[-1]['peak_gib']:.2f} GiB ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from report import publish

    publish(f"train_speed_{args.device}", report(rows, args.device), write=not args.no_write)


def report(rows: list[dict], device: str) -> str:
    from report import hardware  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

    lines = [f"## Training speed ({device})", "",
             f"`python benchmarks/train_speed.py --device {device}` on {hardware()}. Synthetic trajectories at the "
             "systems' sizes and densities (LJ: 250 atoms, 27.0 Å box, cutoff 8.5 Å; TIP3P: 774 atoms, 19.7 Å box, "
             "cutoff 5 Å); samples/s of the second training epoch; peak memory as stated; *load* is the machine's "
             "1-minute load average when the case finished (a shared machine: above the core count, other work "
             "competed for the cores).", "",
             "| system | config | batch | samples/s | peak memory | load | config details |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['system']} | {r['case']} | {r['batch']} | failed: {r['error']} | | | |")
            continue
        c = r["config"]
        lines.append(f"| {r['system']} | {r['case']} | {r['batch']} | {r['samples_per_s']:.2f} | "
                     f"{r['peak_gib']:.2f} GiB ({r['peak_kind']}) | {r['load']:.1f} | F={c['features']}, C={c['vectors']}, "
                     f"{c['steps']} RK4 steps, strides {c['strides']}, {r['segments']} segments, "
                     f"checkpoint={c['checkpoint']}, {r['threads']} threads |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
