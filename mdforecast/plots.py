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


def plot_mse(evaluation, path: str) -> None:
    """Per-frame MSE (Å², averaged over trajectories) of the model, every baseline and the chaos floor against
    frames after the last observed frame, log-log; the scored windows are shaded."""
    fig, axes = _figure()
    ax = axes[0, 0]
    curve = evaluation.curve
    ahead = curve["frames"] - (evaluation.observed[1] - 1)  # 1 = the first forecast frame
    marker = None if len(ahead) > 50 else "o"
    for name, values in curve.items():
        if name == "frames":
            continue
        ok = np.isfinite(values) & (values > 0)
        ax.plot(ahead[ok], values[ok], marker=marker, ms=3, label=name,
                lw=2.0 if name.startswith("forecast") else 1.0,
                ls="--" if name == "chaos floor" else "-")
    for w in evaluation.windows:
        if not w["full"]:
            ax.axvspan(w["horizon"][0] + 1, w["horizon"][1], color="0.9", zorder=0)
    ax.set(xscale="log", yscale="log", xlabel="frames after the last observed frame",
           ylabel="MSE (Å², centred)" if evaluation.centred else "MSE (Å²)",
           title=f"{', '.join(evaluation.trajectories)}: observed [{evaluation.observed[0]}, {evaluation.observed[1]})")
    ax.legend(fontsize=8)
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
