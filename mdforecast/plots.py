"""Figures: ``mdforecast evaluate --plot`` (MSE against horizon, physics curves) and the training loss curve
(matplotlib, Agg)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np

from .errors import InputError

__all__ = ["plot_mse", "plot_physics", "physics_plot_path", "plot_loss"]


def _save(fig, path: str) -> None:
    """Save ``fig`` as PNG to ``path`` (``'-'``: stdout), only when complete."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    if path == "-":
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if not target.parent.is_dir():
        raise InputError(f"directory {target.parent} does not exist; create it first or plot elsewhere")
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)


def _figure(ncols: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=(6.4 * ncols, 4.4), squeeze=False)


_STYLE = {"persistence": {"lw": 3.5, "alpha": 0.45, "zorder": 1},  # wide and light: visible under overlaps
          "damped-velocity": {"ls": (0, (4, 2))}, "chaos floor": {"ls": "--"}}


def _binned(ahead: np.ndarray, values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Mean of ``values`` in each lead-time bin ``[edges[i], edges[i + 1])`` (NaN where a bin holds none)."""
    out = np.full(len(edges) - 1, np.nan)
    index = np.digitize(ahead, edges) - 1
    for i in range(len(out)):
        inside = (index == i) & np.isfinite(values)
        if inside.any():
            out[i] = values[inside].mean()
    return out


def plot_mse(evaluation, path: str) -> None:
    """Left: per-frame MSE (Å², averaged over trajectories) of the model, every baseline and the chaos floor
    against frames after the last observed frame, log-log, the scored windows shaded; persistence is drawn wide
    and light so it shows where damped velocity overlaps it. Right: the model's skill against each baseline,
    1 − MSE_model/MSE_baseline, by lead time (MSEs averaged in log-spaced bins of lead time first)."""
    from matplotlib.ticker import NullFormatter

    fig, axes = _figure(2)
    ax, skill_ax = axes[0]
    curve = evaluation.curve
    ahead = curve["frames"] - (evaluation.observed[1] - 1)  # 1 = the first forecast frame
    marker = None if len(ahead) > 50 else "o"
    model = next(name for name in curve if name.startswith("forecast"))
    colours = {name: f"C{i}" for i, name in enumerate(n for n in curve if n != "frames")}  # same in both panels
    for name, values in curve.items():
        if name == "frames":
            continue
        ok = np.isfinite(values) & (values > 0)
        style = {"lw": 2.0 if name == model else 1.0, "color": colours[name], **_STYLE.get(name, {})}
        ax.plot(ahead[ok], values[ok], marker=marker, ms=3, label=name, **style)
    for w in evaluation.windows:
        if not w["full"]:
            ax.axvspan(w["horizon"][0] + 1, w["horizon"][1], color="0.9", zorder=0)
    ax.set(xscale="log", yscale="log", xlabel="frames after the last observed frame",
           ylabel="MSE (Å², centred)" if evaluation.centred else "MSE (Å²)",
           title=f"{', '.join(evaluation.trajectories)}: observed [{evaluation.observed[0]}, {evaluation.observed[1]})")
    ax.legend(fontsize=8)
    edges = np.unique(np.geomspace(1, ahead.max() + 1, 40).round())
    centres = np.sqrt(edges[:-1] * edges[1:])
    model_mse = _binned(ahead, curve[model], edges)
    lowest = 0.0
    for name, values in curve.items():
        if name in ("frames", model, "chaos floor"):
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            skill = 1.0 - model_mse / _binned(ahead, values, edges)
        ok = np.isfinite(skill)
        lowest = min(lowest, float(skill[ok].min()) if ok.any() else 0.0)
        skill_ax.plot(centres[ok], skill[ok], marker="o" if ok.sum() < 20 else None, ms=3, label=f"vs {name}",
                      **{"lw": 1.2, "color": colours[name], **_STYLE.get(name, {})})
    skill_ax.axhline(0.0, color="k", lw=0.8)
    # symlog: skills of 0.001 against persistence and 0.99 against velocity on one axis
    skill_ax.set_yscale("symlog", linthresh=1e-3)
    skill_ax.set(xscale="log", xlabel="frames after the last observed frame",
                 ylim=(max(lowest * 1.5, -10.0) or -1e-3, 1.0), ylabel="skill 1 − MSE_model/MSE_baseline", title=f"{model}: skill by lead time")
    skill_ax.xaxis.set_minor_formatter(NullFormatter())
    skill_ax.legend(fontsize=8)
    _save(fig, path)


def physics_plot_path(path: str) -> str:
    """Where the physics figure goes: next to ``path`` as ``STEM-physics.png``."""
    target = Path(path)
    return str(target.with_name(f"{target.stem}-physics{target.suffix or '.png'}"))


def plot_physics(evaluation, path: str) -> None:
    """g(r) (liquids, water O–O) or φ/ψ scatter (peptides), forecast against truth, for the widest window."""
    if not evaluation.physics_curves:
        return
    label = max(evaluation.windows, key=lambda w: w["window"][1] - w["window"][0])["label"]
    curves = evaluation.physics_curves[label]
    if "phi_psi" in curves:
        fig, axes = _figure(2)
        for ax, name in zip(axes[0], ("truth", "forecast")):
            phi_psi = curves["phi_psi"][name]
            ax.scatter(phi_psi[:, 0], phi_psi[:, 1], s=3, alpha=0.5)
            ax.set(xlim=(-180, 180), ylim=(-180, 180), xlabel="φ (°)", ylabel="ψ (°)", title=f"{name}, {label}")
    else:
        fig, axes = _figure()
        key = next(iter(curves))
        for name in ("truth", "forecast"):
            axes[0, 0].plot(curves[key]["r"], curves[key][name], label=name)
        axes[0, 0].set(xlabel="r (Å)", ylabel="g_OO(r)" if key == "g_oo" else "g(r)", title=label)
        axes[0, 0].legend()
    _save(fig, path)


def plot_loss(history: list[dict], path: str | os.PathLike) -> None:
    """The training and validation loss (MSE / σ(t)², log scale) against epoch, as ``train`` records it in
    ``metrics.jsonl``, to the PNG ``path`` (replaced only when complete)."""
    fig, axes = _figure()
    ax = axes[0, 0]
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set(xlabel="epoch", ylabel="loss (MSE / σ(t)²)", yscale="log")
    ax.legend()
    _save(fig, str(path))
