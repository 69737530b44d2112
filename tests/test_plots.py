"""evaluate --plot: MSE by lead time with persistence visible under overlaps, and the skill by lead time."""

from __future__ import annotations

import numpy as np

from mdforecast import plots
from mdforecast.evaluation import evaluate
from mdforecast.prediction import predict
from synth import argon, make_store, random_walk


def test_plot_shows_persistence_under_an_overlap_and_the_skill_by_lead(tmp_path, monkeypatch):
    trajs = {f"t{i}": random_walk(80, 5, seed=i) for i in range(3)}
    truth = make_store(tmp_path / "t.zarr", argon(5), trajs, box=20.0, split=(["t0", "t1"], ["t2"]))
    predict(truth, "mean", tmp_path / "f.zarr", observe=20)
    result = evaluate(tmp_path / "f.zarr", baselines=["persistence", "damped-velocity"])
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    plots.plot_mse(result, "unused.png")
    mse_ax, skill_ax = figures[0].axes[:2]
    lines = {line.get_label(): line for line in mse_ax.get_lines()}
    assert lines["persistence"].get_linewidth() > 2 * lines["damped-velocity"].get_linewidth()
    skills = {line.get_label(): line for line in skill_ax.get_lines() if line.get_label().startswith("vs ")}
    assert set(skills) == {"vs persistence", "vs damped-velocity"}
    y = skills["vs persistence"].get_ydata()
    assert np.isfinite(y).all() and (y < 1).all()
    assert skills["vs persistence"].get_color() == lines["persistence"].get_color()
