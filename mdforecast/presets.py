"""Named option sets for ``mdforecast train --preset`` (:data:`PRESETS`), kept apart from :mod:`mdforecast.training`
so the command line can describe them without importing torch."""

from __future__ import annotations

__all__ = ["PRESETS", "describe"]

#: named option sets (``--preset``); every key is a model or training option, frame counts in frames
PRESETS = {
    # the paper's DoMiNO: the position MSE and a plain decode even for a molecule without a box (which tumbles, so
    # the centred MSE is minimised by collapsing it towards its centroid: kept to reproduce that, never shipped)
    "paper": {"loss": "mse", "conformations": False},
    "cpu-small": {"features": 16, "vectors": 8, "encoder_layers": 1, "radial": 8, "steps": 4, "checkpoint": True,
                  "batch": 4, "samples_per_epoch": 32, "segments": 2, "max_outputs": 10},
    # the dynamics level and the fusion, on a CPU; the hierarchy as cpu-small but not trained (epochs 0):
    # give --init a trained model (e.g. the pretrained lj) for its levels, or --epochs to train them here; no
    # trajectory is held out (nothing is selected by epoch): give --fusion-data trajectories the model is not
    # fitted on for the fusion's 16 windows (without, it is fitted in-sample on the training ones). The dynamics
    # level is the instantaneous pair force fitted in closed form (no gradient steps), 2 Verlet steps per frame
    # from a fitted initial velocity
    "cpu-dynamics": {"features": 16, "vectors": 8, "encoder_layers": 1, "radial": 8, "steps": 4, "checkpoint": True,
                     "batch": 4, "samples_per_epoch": 32, "segments": 2, "max_outputs": 10, "epochs": 0,
                     "holdout": 0, "fusion_windows": 16, "dynamics": True, "substeps": 2, "fit_velocity": True,
                     "force_layers": 0, "force_steps": 0, "rollout_steps": 0},
    # cpu-dynamics for rigid water (issue 15): waters moved as rigid bodies and kept apart, rollouts from rest
    # (0.1 ps frames are longer than the velocities' memory), pair term only, fitted in closed form (no gradient
    # steps), one rollout of at most 20 frames (the rollout helps only at the first leads); the last training
    # trajectory is held out, and the fusion fitted on 16 windows of it (the dynamics level on the others)
    "cpu-water": {"features": 16, "vectors": 8, "encoder_layers": 1, "radial": 8, "steps": 4, "checkpoint": True,
                  "batch": 4, "samples_per_epoch": 32, "segments": 2, "max_outputs": 10, "epochs": 0, "holdout": 1,
                  "dynamics": True, "rigid_water": True, "rollout_at_rest": True, "separate_molecules": True,
                  "force_cutoff": 6.0, "force_layers": 0, "members": 1, "force_steps": 0, "rollout_steps": 0,
                  "pair_frames": 300, "max_rollout": 20, "fusion_windows": 16},
}


def describe(name: str) -> str:
    """``'cpu-small sets features=16, vectors=8, …'``; ``'paper: the defaults'`` for a preset that sets nothing."""
    options = PRESETS[name]
    if not options:
        return f"{name}: the defaults"
    return f"{name} sets " + ", ".join(f"{key}={value}" for key, value in options.items())
