"""How DoMiNO's cost grows with system size: neighbour search, one training step, one forecast frame, memory.

Synthetic water at liquid density (0.0334 molecules/Å³, 3 atoms each, O–H 0.9572 Å, H–O–H 104.5°:
oxygens on random sites of a jittered cubic lattice, molecules randomly oriented) in a cubic box, at 774
atoms (the TIP3P benchmark system), 3,000, 12,000 and 48,000 atoms, cutoff 5 Å; the 1,000-frame trajectory
is a random walk (Gaussian steps of 0.05 Å per coordinate and frame): costs depend on sizes and neighbour
counts, not on the physics. Every size runs in its own process, on one torch thread
(``torch.set_num_threads(1)``), so peak memory and per-atom costs compare:

- neighbour search of one frame: ``radius_graph`` (vesin-torch cell lists, the default) and
  ``radius_graph_all_pairs`` (the O(N²) reference, skipped above ``--all-pairs-max`` atoms), ``--repeats``
  calls of each interleaved (so both see the same load), the fastest of each kept;
- one forecast frame: ``DominoForecaster.predict`` of the last horizon frame (one segment per level) with
  untrained weights in the cpu-small configuration (observe 200, horizon 800, strides 40/4/1);
- one training step of the same model: ``make_batch`` of ``--batch`` windows (2 segments, up to 10 outputs
  per segment, as cpu-small), forward, the training loss, backward and an AdamW step;
- wall time and CPU time (user + system, of this process) of the forecast and of the training step, and the
  step's system time (page faults: the kernel zeroing freshly mapped memory);
- peak resident set of the process (``ru_maxrss``) after the searches and the forecast and after the training step, and
  its growth over the resident set before the model was built (the trajectory data excluded) per atom.

A training step is skipped where the previous size, scaled linearly in atoms, predicts more than
``--max-gib`` of memory or more than ``--max-step-s`` CPU seconds; the section says so.

    python benchmarks/scale.py                # writes the "scale" section of docs/benchmarks.md
    python benchmarks/scale.py --sizes 774 3000 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import hardware, publish  # noqa: E402

SIZES = (774, 3000, 12000, 48000)
CUTOFF = 5.0  # Å
DENSITY = 0.0334  # water molecules per Å³
LAYOUT = {"observe": 200, "horizon": 800, "strides": (40, 4, 1)}
#: the cpu-small preset (``mdforecast.train.PRESETS``) without its batch and epoch sizes
CPU_SMALL = {"features": 16, "vectors": 8, "encoder_layers": 1, "radial": 8, "steps": 4, "checkpoint": True}
SEGMENTS, MAX_OUTPUTS = 2, 10


def water(n_atoms: int, seed: int = 0) -> tuple[np.ndarray, float]:
    """Positions ``(N, 3)`` float32 Å of ``N // 3`` water molecules and the cubic box edge, Å."""
    rng = np.random.default_rng(seed)
    n_mol = n_atoms // 3
    edge = (n_mol / DENSITY) ** (1 / 3)
    side = int(np.ceil(n_mol ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    grid = grid[rng.choice(len(grid), n_mol, replace=False)]  # empty sites spread evenly: uniform density
    spacing = edge / side
    oxygen = (grid + 0.5 + rng.uniform(-0.2, 0.2, (n_mol, 3))) * spacing
    half = np.radians(104.5) / 2
    local = 0.9572 * np.array([[np.sin(half), np.cos(half), 0.0], [-np.sin(half), np.cos(half), 0.0]])
    q, r = np.linalg.qr(rng.normal(size=(n_mol, 3, 3)))  # random rotations
    rot = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    hydrogens = oxygen[:, None, :] + np.einsum("hk,mjk->mhj", local, rot)
    atoms = np.concatenate([oxygen[:, None, :], hydrogens], axis=1).reshape(-1, 3)
    return atoms.astype(np.float32), float(edge)


def rss_now() -> int:
    """Current resident set of this process, bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set of this process so far, bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cpu_times() -> tuple[float, float]:
    """User and system CPU time of this process so far, s."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def one(n_atoms: int, batch: int, train: bool, all_pairs: bool, repeats: int) -> dict:
    """Every measurement of one system size (run in its own process)."""
    import torch

    from mdforecast.forecasters.base import Observation
    from mdforecast.forecasters.domino import DominoForecaster
    from mdforecast.model import Domino, DominoConfig, Normalisation, atom_kinds
    from mdforecast.model.data import Series, draw_samples, make_batch
    from mdforecast.model.graph import radius_graph, radius_graph_all_pairs
    from mdforecast.topology import Topology
    from mdforecast.training import _loss

    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    x0, edge = water(n_atoms)
    n = len(x0)
    frames = LAYOUT["observe"] + LAYOUT["horizon"]
    positions = np.empty((frames, n, 3), np.float32)
    positions[0] = x0
    for k in range(1, frames):
        positions[k] = positions[k - 1] + rng.normal(0, 0.05, (n, 3)).astype(np.float32)
    out = {"atoms": n, "box": edge, "data_mb": positions.nbytes / 1e6, "threads": torch.get_num_threads()}

    frame, box = torch.as_tensor(positions[LAYOUT["observe"] - 1]), torch.tensor([edge] * 3)
    searches = {"vesin": radius_graph, "all_pairs": radius_graph_all_pairs}
    times = {name: [] for name in searches}
    for _ in range(repeats):  # interleaved, so both see the same load
        for name, search in searches.items():
            if name == "all_pairs" and not all_pairs:
                continue
            began = time.perf_counter()
            edges, _ = search(frame, CUTOFF, box)
            times[name].append(time.perf_counter() - began)
            out[f"{name}_edges"] = edges.shape[1]
    out.update(vesin_s=min(times["vesin"]), edges=out.pop("vesin_edges"))
    if all_pairs:
        out["all_pairs_s"] = min(times["all_pairs"])
        if out.pop("all_pairs_edges") != out["edges"]:
            raise RuntimeError("all-pairs and vesin found different numbers of edges")

    names = np.array(["OW", "HW1", "HW2"] * (n // 3))
    topology = Topology(names=names, resnames=np.array(["HOH"] * n), resids=np.repeat(np.arange(1, n // 3 + 1), 3),
                        types=names)
    config = DominoConfig(**LAYOUT, **CPU_SMALL, cutoff=CUTOFF)
    kinds_all = atom_kinds(topology)
    before = rss_now()
    model = Domino(config, Normalisation(1.0, (1.0,) * (len(config.lags) + 1), edges.shape[1] / n),
                   sorted(set(kinds_all.tolist())))
    boxes = np.full((frames, 3), edge, np.float32)
    observation = Observation(positions=positions[:LAYOUT["observe"]], topology=topology, dt_ps=0.1,
                              boxes=boxes[:LAYOUT["observe"]])
    began, cpu = time.perf_counter(), cpu_times()
    DominoForecaster(model).predict(observation, np.array([frames - 1.0]))
    out.update(forecast_s=time.perf_counter() - began, forecast_cpu_s=sum(cpu_times()) - sum(cpu), forecast_peak=peak_rss())

    if train:
        series = [Series("water", positions, np.broadcast_to(np.diag([edge] * 3).astype(np.float32), (frames, 3, 3)))]
        samples = draw_samples(series, config, batch, seed=(0,))
        weights = torch.tensor([0.1, 0.2, 0.7])
        optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
        model.train()
        began, cpu = time.perf_counter(), cpu_times()
        data = make_batch(series, samples, config, model.kind_index(topology), segments=SEGMENTS,
                          max_outputs=MAX_OUTPUTS)
        loss = _loss(model, data, weights, config.levels, len(samples), 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        user, system = (b - a for a, b in zip(cpu, cpu_times()))
        out.update(train_s=time.perf_counter() - began, train_cpu_s=user + system, train_sys_s=system,
                   train_peak=peak_rss(), queries=len(data.t))
    out.update(before=before, model_growth=peak_rss() - before)

    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="atoms (rounded down to waters)")
    parser.add_argument("--batch", type=int, default=1, help="windows per training step")
    parser.add_argument("--all-pairs-max", type=int, default=12000, help="largest size timed with all pairs")
    parser.add_argument("--max-gib", type=float, default=8.0, help="skip a training step predicted to need more")
    parser.add_argument("--max-step-s", type=float, default=300.0, help="skip a training step predicted to take longer")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved neighbour searches of each kind (best kept)")
    parser.add_argument("--one", nargs=5, type=int, metavar=("ATOMS", "BATCH", "TRAIN", "ALL_PAIRS", "REPEATS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print, do not update docs/benchmarks.md")
    args = parser.parse_args()
    if args.one:
        n, batch, train, all_pairs, repeats = args.one
        print(json.dumps(one(n, batch, bool(train), bool(all_pairs), repeats)))
        return
    rows, previous = [], None
    for n in sorted(args.sizes):
        train, skipped = True, None
        if previous is not None and "train_s" in previous:
            scale = n / previous["atoms"]
            gib = (previous["before"] + previous["model_growth"] * scale) / 2**30
            seconds = previous["train_cpu_s"] * scale
            if gib > args.max_gib or seconds > args.max_step_s:
                train, skipped = False, f"predicted {seconds:.0f} s, {gib:.1f} GiB from {previous['atoms']:,} atoms"
        elif previous is not None:
            train, skipped = False, "skipped at a smaller size"
        began = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--one", str(n), str(args.batch), str(int(train)),
                               str(int(n <= args.all_pairs_max)), str(args.repeats)], capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"atoms": n, "error": proc.stderr.strip().splitlines()[-1]})
            break
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row.update(skipped=skipped, load=os.getloadavg()[0], wall_s=time.perf_counter() - began)
        rows.append(row)
        previous = row
        print(json.dumps(row), file=sys.stderr)
        publish("scale", report(rows, args.batch, args.repeats), write=not args.no_write)  # after every size


def report(rows: list[dict], batch: int, repeats: int) -> str:
    windows = f"{batch} window{'s' * (batch > 1)}"
    lines = ["## Scaling with system size", "",
             f"`python benchmarks/scale.py` on {hardware()}, one torch thread per measurement (a shared machine: "
             "*load* is the 1-minute load average after each size; above the core count, other work competed, so "
             "wall times are longer than on an idle machine and CPU times, user + system of the process, are the "
             f"better measure of cost). Neighbour searches: the fastest of {repeats} interleaved calls of each. "
             f"Synthetic water at liquid density in a cubic box, cutoff {CUTOFF:g} Å; DoMiNO in the cpu-small "
             "configuration (F=16, C=8, 4 RK4 steps, checkpointing, observe 200, horizon 800, strides 40/4/1) with "
             "untrained weights. *Forecast*: one far frame (one segment per level). *Training step*: "
             f"{windows}, {SEGMENTS} finest segments per window, up to {MAX_OUTPUTS} outputs per segment; batch, "
             "forward, loss, backward, AdamW step. *Peak RSS* is the process' peak resident set after the neighbour "
             "searches and the forecast (where the all-pairs search runs, its blocks of pair displacements count) "
             "and after the training step (Python, torch and the trajectory data, *data MB*, included), with its "
             "rise over the resident set before the model was built per atom. Per-atom costs are CPU time ÷ atoms for "
             "the forecast and the training step, wall time ÷ atoms for the searches; a flat column is linear growth.", "",
             "| atoms | box Å | edges/atom | all-pairs search s | vesin search s (µs/atom) | speed-up | forecast frame "
             "s, CPU s (ms/atom) | training step s, CPU s (ms/atom), of which system s | peak RSS forecast GiB "
             "(KiB/atom) | peak RSS training GiB (KiB/atom) | data MB | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['atoms']:,} | failed: {r['error']} | | | | | | | | | | |")
            continue
        n = r["atoms"]
        pairs = f"{r['all_pairs_s']:.3f}" if "all_pairs_s" in r else "not run (O(N²))"
        speedup = f"{r['all_pairs_s'] / r['vesin_s']:.0f}×" if "all_pairs_s" in r else ""
        peak = lambda key: f"{r[key] / 2**30:.2f} ({(r[key] - r['before']) / 1024 / n:.0f})"  # noqa: E731
        train, train_peak = ((f"{r['train_s']:.1f}, {r['train_cpu_s']:.1f} ({1e3 * r['train_cpu_s'] / n:.2f}), "
                              f"{r['train_sys_s']:.1f}", peak("train_peak"))
                             if "train_s" in r else (f"not measured: {r['skipped']}", "not measured"))
        lines.append(f"| {n:,} | {r['box']:.1f} | {r['edges'] / n:.1f} | {pairs} | {r['vesin_s']:.4f} "
                     f"({1e6 * r['vesin_s'] / n:.2f}) | {speedup} | {r['forecast_s']:.2f}, {r['forecast_cpu_s']:.2f} "
                     f"({1e3 * r['forecast_cpu_s'] / n:.3f}) | {train} | {peak('forecast_peak')} | {train_peak} | "
                     f"{r['data_mb']:.0f} | {r['load']:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
