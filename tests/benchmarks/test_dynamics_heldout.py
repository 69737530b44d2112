"""benchmarks/dynamics_heldout.py: the paired differences over held-out trajectories, against numpy."""

from __future__ import annotations

import numpy as np

import benchmark_scripts


def test_paired_differences_are_the_mean_and_standard_error_over_trajectories():
    heldout = benchmark_scripts.load("dynamics_heldout")
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(4):
        p = 100.0 + rng.normal()
        rows.append({"model": p + rng.normal(0, 0.1), "hierarchy": p + 0.2, "no-hierarchy": p, "persistence": p,
                     "mean": 2 * p, "damped-velocity": p - 0.05 + rng.normal(0, 0.1), "linear-ar": p + 1.0})
    trajectories = {f"traj{i}": {"windows": {"980-1000": row}} for i, row in enumerate(rows)}
    pooled = {"980-1000": {k: float(np.mean([r[k] for r in rows])) for k in heldout.COLUMNS}}
    best = min(heldout.BASELINES, key=lambda k: pooled["980-1000"][k])
    line = heldout._paired(trajectories, pooled)[-2]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:2] == ["980-1000", best]
    d = np.array([100 * (r["model"] - r[best]) / r["persistence"] for r in rows])
    assert cells[2] == f"{d.mean():+.3f} ± {d.std(ddof=1) / 2:.3f}"
    h = np.array([100 * 0.2 / r["persistence"] for r in rows])
    assert cells[4] == f"{h.mean():+.3f} ± {h.std(ddof=1) / 2:.3f}"
    wins = sum(r["model"] <= min(r[k] for k in heldout.BASELINES) for r in rows)
    assert cells[6] == f"{wins} of 4"
