"""Ingest throughput against plain MDAnalysis iteration, and peak memory against trajectory length.

    python benchmarks/ingest_speed.py            # writes the "ingest" section of docs/benchmarks.md

A synthetic XTC of 258 rigid-geometry waters (774 atoms, like the tip3p benchmark system) diffusing in a
periodic 19.8 Å box, written wrapped per atom, is ingested with `mdforecast ingest` (unwrapping, compression,
checksum included) and read frame by frame with plain MDAnalysis (`for ts in u.trajectory: ts.positions`).
Each measurement runs in its own process; peak memory is that process's maximum resident set size.
Targets (issue 2): ingest ≥ 0.8× plain MDAnalysis speed; peak memory independent of trajectory length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import cpu_seconds, hardware, write_section  # noqa: E402

N_WATERS, BOX = 258, 19.8


def make_xtc(path: Path, n_frames: int, seed: int = 0) -> Path:
    """Random-walk waters (Å steps like 0.1 ps of liquid water), wrapped per atom, plus a PDB topology."""
    import warnings

    import MDAnalysis as mda

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(seed)
    geometry = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.23998, 0.92663, 0.0]])
    n = 3 * N_WATERS
    universe = mda.Universe.empty(n, n_residues=N_WATERS, atom_resindex=np.repeat(np.arange(N_WATERS), 3),
                                  trajectory=True)
    universe.add_TopologyAttr("names", ["OW", "HW1", "HW2"] * N_WATERS)
    universe.add_TopologyAttr("types", ["O", "H", "H"] * N_WATERS)
    universe.add_TopologyAttr("resnames", ["SOL"] * N_WATERS)
    universe.add_TopologyAttr("resids", np.arange(1, N_WATERS + 1))
    universe.add_TopologyAttr("bonds", [(3 * i, 3 * i + k) for i in range(N_WATERS) for k in (1, 2)])
    centres = rng.uniform(0, BOX, (N_WATERS, 3))
    universe.dimensions = [BOX, BOX, BOX, 90, 90, 90]
    with mda.Writer(str(path), n) as writer:
        for t in range(n_frames):
            centres += rng.normal(0, 0.3, centres.shape)
            xyz = (centres[:, None, :] + geometry[None]).reshape(n, 3)
            universe.atoms.positions = xyz - BOX * np.floor(xyz / BOX)
            universe.trajectory.ts.time = 0.1 * t
            if t == 0:
                universe.atoms.write(str(path.with_suffix(".pdb")), bonds="all")
            writer.write(universe.atoms)
    return path


def _child(kind: str, xtc: str, out: str) -> None:
    import resource
    import warnings

    warnings.simplefilter("ignore")
    began = time.perf_counter()
    if kind == "mdanalysis":
        import MDAnalysis as mda

        universe = mda.Universe(xtc.replace(".xtc", ".pdb"), xtc)
        checksum = 0.0
        for ts in universe.trajectory:
            checksum += float(ts.positions[0, 0])
        frames = universe.trajectory.n_frames
    else:
        from mdforecast import ingest

        result = ingest([xtc], out, topology=xtc.replace(".xtc", ".pdb"))
        frames = sum(result.trajectories.values())
    seconds = time.perf_counter() - began
    peak_mb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                  ) / 1024  # ingest decodes XTC frames in a child process
    cpu = cpu_seconds(resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    print(json.dumps({"frames": frames, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_mb}))


def measure(kind: str, xtc: Path, out: Path) -> dict:
    """One run in a fresh process; ingest writes a new store ``out`` (removed first, outside the timing: deleting
    an old store is file-system work that plain MDAnalysis does not do either)."""
    import os
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()[0]
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(xtc), str(out)], capture_output=True,
                          text=True, check=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[2000, 20000], help="trajectory lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    rows, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n_frames in args.frames:
            xtc = make_xtc(Path(tmp) / f"w{n_frames}.xtc", n_frames)
            measure("mdanalysis", xtc, Path(tmp) / "warm.zarr")  # warm the page cache and offsets
            runs = {"mdanalysis": [], "mdforecast": []}
            for _ in range(args.repeats):  # interleaved: both sides see the same load from other processes
                for kind in runs:
                    runs[kind].append(measure(kind, xtc, Path(tmp) / "s.zarr"))
            best = {kind: min(r, key=lambda x: x["seconds"]) for kind, r in runs.items()}
            loads.extend(x["load"] for r in runs.values() for x in r)
            size_mb = xtc.stat().st_size / 2**20
            store_mb = sum(p.stat().st_size for p in (Path(tmp) / "s.zarr").rglob("*") if p.is_file()) / 2**20
            rows.append((n_frames, size_mb, store_mb, best, [x["load"] for r in runs.values() for x in r]))
            print(n_frames, best, file=sys.stderr)
    lines = [
        "## Ingest",
        "",
        f"`benchmarks/ingest_speed.py` on {hardware()}, shared with other jobs: 1-minute load average "
        f"{min(loads):.1f}–{max(loads):.1f} during the runs (2 cores: a load above 2 means waiting for a core). A "
        f"synthetic XTC of {3 * N_WATERS} atoms ({N_WATERS} waters, wrapped per atom in a {BOX} Å box); best of "
        f"{args.repeats} runs by wall-clock time, each in a fresh process, the two sides interleaved so both see the "
        "same load. *Plain MDAnalysis* imports MDAnalysis, opens the files, iterates the frames and touches the "
        "positions; *mdforecast ingest* also walks the XTC frame headers, unwraps, makes molecules whole, "
        "compresses into a new store and checksums the file. CPU s: user + system time of the process and its "
        "children (ingest decodes in a child process), less sensitive to the load than wall-clock time.",
        "",
        "| frames | XTC (MiB) | store (MiB) | plain MDAnalysis (frames/s) | mdforecast ingest (frames/s) | ratio | "
        "CPU s, MDAnalysis | CPU s, ingest | peak memory, MDAnalysis (MiB) | peak memory, ingest (MiB) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n_frames, size_mb, store_mb, best, row_loads in rows:
        mda_fps = best["mdanalysis"]["frames"] / best["mdanalysis"]["seconds"]
        ing_fps = best["mdforecast"]["frames"] / best["mdforecast"]["seconds"]
        lines.append(f"| {n_frames} | {size_mb:.1f} | {store_mb:.1f} | {mda_fps:,.0f} | {ing_fps:,.0f} | "
                     f"{ing_fps / mda_fps:.2f}× | {best['mdanalysis']['cpu_seconds']:.2f} | "
                     f"{best['mdforecast']['cpu_seconds']:.2f} | {best['mdanalysis']['peak_mb']:.0f} | "
                     f"{best['mdforecast']['peak_mb']:.0f} | {min(row_loads):.1f}–{max(row_loads):.1f} |")
    ratios = [(r[3]["mdforecast"]["frames"] / r[3]["mdforecast"]["seconds"]) /
              (r[3]["mdanalysis"]["frames"] / r[3]["mdanalysis"]["seconds"]) for r in rows]
    peaks = [r[3]["mdforecast"]["peak_mb"] for r in rows]
    lines += ["", f"Target ratio ≥ 0.8×: **{'met' if min(ratios) >= 0.8 else 'not met'}** (lowest "
              f"{min(ratios):.2f}×). How ingest works: before anything decodes the XTC, one walk over its frame "
              "headers (one small read per frame, all header values checked at once) finds every frame; a forked "
              "child process then reads frames with MDAnalysis' low-level XTC reader straight into shared memory, "
              "a block of 112 frames at a time (skipping its per-frame Timestep work), and also checks, boxes and "
              "unwraps each block (the whole block at once: no loop over frames or bond depths), while the parent "
              "writes the block before: it compresses it (Blosc lz4) and writes it straight to its chunk file in "
              "a writing thread. The child starts before the store is created, so decoding overlaps setting up "
              "the store; corrupt data can crash the child without taking ingest with it. A new local store is "
              "written without zarr: its `zarr.json` documents and chunk files are the ones zarr writes (a test "
              "compares both, file by file), so ingest neither imports zarr (about 0.2 s of CPU) nor makes ~60 "
              "calls through its asynchronous machinery (about 0.15 s). Beyond decoding, ingest pays for importing "
              "numcodecs (the compressors, about 0.03 s), the header walk, unwrapping (about as much CPU as "
              "decoding), compression and the checksum of the file. The *load* column is the 1-minute load average before each run (2 "
              "cores: above 2, processes wait for a core); on loaded cores the two processes of ingest compete "
              "with everything else, so the ratio is then closer to the CPU ratio than on an idle machine. "
              f"Peak memory of ingest: {min(peaks):.0f}–{max(peaks):.0f} MiB over a "
              f"{max(r[0] for r in rows) // min(r[0] for r in rows)}× range of trajectory lengths (frames are "
              "streamed through 8 shared blocks and written one chunk at a time)."]
    write_section("ingest", "\n".join(lines))


if __name__ == "__main__":
    main()
