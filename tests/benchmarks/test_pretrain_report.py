"""benchmarks/pretrain_report.py: a window keeps one name in the score tables and one in the verdict lines."""

from __future__ import annotations

import benchmark_scripts


def _window(lo: int, hi: int, full: bool, model: float) -> dict:
    baselines = {"persistence": {"mse": 2.0}, "mean": {"mse": 3.0}, "damped-velocity": {"mse": 2.5},
                 "linear-ar": {"mse": 4.0}}
    return {"window": [lo, hi], "full": full, "horizon": [lo - 100, hi - 100], "frames": hi - lo,
            "model": {"mse": model}, "baselines": baselines, "chaos_floor": None}


def test_windows_are_named_alike_in_tables_and_verdicts():
    report = benchmark_scripts.load("pretrain_report")
    scores = {"windows": [_window(4980, 5000, False, 1.0), _window(100, 10000, True, 2.2)]}
    table = report.score_table(scores, "mse").splitlines()
    assert table[2].startswith("| 4980-5000 | 4880-4900 | 20 | **1** | 2 |")
    assert table[3].startswith("| full 100-10000 | 0-9900 | 9900 | 2.2 | **2** |")
    first, full = report.dynamics_verdict(scores, "mse")
    assert first.startswith("- window 4980-5000: DoMiNO 1 vs the best baseline, persistence, 2 ") and "met" in first
    assert full.startswith("- full domain: DoMiNO 2.2 ") and "**missed**" in full
