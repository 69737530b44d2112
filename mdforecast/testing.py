"""Test helpers for users' and our own forecasters (as ``e3nn.util.test.assert_equivariant``).

A physically sensible forecaster commutes with the symmetries of the observation: rotating and
translating the observed frames (and the box) rotates and translates the forecast, and renumbering the
atoms renumbers it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .forecasters import Forecaster, Observation
from .pbc import box_matrix

__all__ = ["assert_equivariant", "random_rotation"]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation matrix ``(3, 3)``."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def assert_equivariant(forecaster: Forecaster, observation: Observation, times: np.ndarray, *,
                       atol: float = 1e-5, seed: int = 0) -> dict[str, float]:
    """Check E(3)-translation, SO(3)-rotation and permutation equivariance of ``forecaster.predict``.

    Compares ``predict(g·observation)`` with ``g·predict(observation)`` for a random rotation (box vectors
    rotated with the atoms), a random translation (10 Å scale) and a random atom permutation (topology
    permuted too). Raises ``AssertionError`` naming the symmetry and the largest deviation (Å) above
    ``atol``; returns the deviations by symmetry.
    """
    rng = np.random.default_rng(seed)
    times = np.asarray(times, dtype=np.float64)
    reference = np.asarray(forecaster.predict(observation, times), dtype=np.float64)
    rotation = random_rotation(rng)
    shift = rng.normal(0.0, 10.0, 3)
    perm = rng.permutation(observation.positions.shape[1])
    boxes = None if observation.boxes is None else box_matrix(observation.boxes)
    cases = {
        "rotation": (dataclasses.replace(observation, positions=observation.positions @ rotation.T,
                                         boxes=None if boxes is None else boxes @ rotation.T,
                                         velocities=None if observation.velocities is None
                                         else observation.velocities @ rotation.T),
                     reference @ rotation.T),
        "translation": (dataclasses.replace(observation, positions=observation.positions + shift), reference + shift),
        "permutation": (dataclasses.replace(observation, positions=observation.positions[:, perm],
                                            topology=observation.topology.subset(perm),
                                            velocities=None if observation.velocities is None
                                            else observation.velocities[:, perm]),
                        reference[:, perm]),
    }
    errors = {}
    for name, (transformed, expected) in cases.items():
        got = np.asarray(forecaster.predict(transformed, times), dtype=np.float64)
        errors[name] = float(np.abs(got - expected).max())
        if errors[name] > atol:
            raise AssertionError(f"{type(forecaster).__name__} is not {name}-equivariant: "
                                 f"max deviation {errors[name]:.3g} Å > atol {atol:g} Å")
    return errors
