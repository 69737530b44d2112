"""A tiny learnable system for model tests: atoms oscillating around fixed sites, period set by their kind.

``x_i(t) = c_i + a_i cos(ω_k t) + b_i sin(ω_k t)`` (Å, t in frames) with random sites, amplitudes and phases
per trajectory: persistence is far off at a quarter period, while the future is a fixed function of the
recent motion and the observed mean, which an equivariant model can learn.
"""

from __future__ import annotations

import numpy as np

from mdforecast.topology import Topology
from synth import make_store as make_synthetic_store

PERIODS = {"A": 24.0, "B": 40.0}  # frames


def oscillators(n_atoms: int = 12, n_frames: int = 400, *, box: float | None = 20.0, seed: int = 0) -> np.ndarray:
    """Positions ``(n_frames, n_atoms, 3)`` float32 Å; atoms alternate kinds A, B."""
    rng = np.random.default_rng(seed)
    sites = rng.uniform(0, box or 20.0, (n_atoms, 3))
    a, b = rng.normal(0, 0.7, (2, n_atoms, 3))
    omega = np.array([2 * np.pi / PERIODS["AB"[i % 2]] for i in range(n_atoms)])
    t = np.arange(n_frames)[:, None, None]
    return (sites + a * np.cos(omega[:, None] * t) + b * np.sin(omega[:, None] * t)).astype(np.float32)


def topology(n_atoms: int) -> Topology:
    names = np.array(["A" if i % 2 == 0 else "B" for i in range(n_atoms)])
    return Topology(names=names, resnames=np.array(["OSC"] * n_atoms), resids=np.arange(1, n_atoms + 1),
                    types=names)


def make_store(path, *, n_traj: int = 3, n_atoms: int = 12, n_frames: int = 400, box: float | None = 20.0,
               test: int = 0, seed: int = 0) -> str:
    """A store of ``n_traj`` oscillator trajectories ``t0``, ``t1``, … (the last ``test`` of them in the test split),
    frames 0.1 ps apart."""
    names = [f"t{k}" for k in range(n_traj)]
    trajectories = {name: oscillators(n_atoms, n_frames, box=box, seed=seed + k) for k, name in enumerate(names)}
    make_synthetic_store(path, topology(n_atoms), trajectories, box=box,
                         split=(names[:-test], names[-test:]) if test else None)
    return str(path)


#: a CPU-sized configuration used throughout the model tests
TINY = {"observe": 48, "horizon": 24, "strides": (6, 1), "features": 16, "vectors": 8, "encoder_layers": 1,
        "radial": 8, "steps": 4, "lags": (1, 4), "context": 48, "cutoff": 6.0, "checkpoint": False,
        "batch": 8, "samples_per_epoch": 64, "segments": 2, "max_outputs": 6, "lr": 3e-3, "seed": 0}
