"""constraints.project_bonds: restores bond lengths, keeps the centre of mass, equivariant, idle on valid input."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from mdforecast.constraints import bond_reference, project_bonds
from mdforecast.physics import bond_lengths
from synth import ala2, tumbling_ala2

MASSES = np.array([1.008 if n.startswith("H") else 12.01 for n in ala2().names])


def _distorted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid ala2 frames ``(5, 22, 3)``, the same shrunk towards their centroid with noise, and bond lengths."""
    x = tumbling_ala2(5, seed=seed, noise=0.0).astype(np.float64)
    rng = np.random.default_rng(seed)
    bad = 0.7 * (x - x.mean(1, keepdims=True)) + x.mean(1, keepdims=True) + rng.normal(0, 0.1, x.shape)
    return x, bad, bond_reference(x, ala2().bonds)


def test_projection_restores_every_bond_length_and_keeps_the_centre_of_mass():
    x, bad, lengths = _distorted()
    bonds = ala2().bonds
    assert np.abs(bond_lengths(bad, bonds) - lengths).max() > 0.2
    fixed = project_bonds(bad, bonds, lengths, MASSES)
    np.testing.assert_allclose(bond_lengths(fixed, bonds), np.broadcast_to(lengths, (5, len(bonds))), rtol=1e-7)
    centre = lambda y: np.einsum("n,knx->kx", MASSES, y) / MASSES.sum()  # noqa: E731
    np.testing.assert_allclose(centre(fixed), centre(bad), atol=1e-10)
    # it moves atoms less than the distortion did: a projection, not a replacement by another structure
    assert np.abs(fixed - bad).max() < np.abs(x - bad).max()


def test_projection_is_equivariant_under_rotation_translation_and_relabelling():
    _, bad, lengths = _distorted(1)
    bonds = ala2().bonds
    rot = Rotation.from_euler("xyz", [30, -50, 110], degrees=True).as_matrix()
    shift = np.array([4.0, -2.0, 7.5])
    moved = project_bonds(bad @ rot.T + shift, bonds, lengths, MASSES)
    np.testing.assert_allclose(moved, project_bonds(bad, bonds, lengths, MASSES) @ rot.T + shift, atol=1e-8)
    order = np.random.default_rng(2).permutation(22)  # atom k of the relabelled system is atom order[k]
    where = np.argsort(order)
    relabelled = project_bonds(bad[:, order], where[bonds], lengths, MASSES[order])
    np.testing.assert_allclose(relabelled, project_bonds(bad, bonds, lengths, MASSES)[:, order], atol=1e-8)


def test_a_valid_structure_is_left_unchanged():
    x = tumbling_ala2(3, seed=5, noise=0.0).astype(np.float64)
    bonds = ala2().bonds
    for frame in x:  # each frame with its own lengths, and (N, 3) input
        np.testing.assert_allclose(project_bonds(frame, bonds, bond_lengths(frame[None], bonds)[0], MASSES), frame,
                                   atol=1e-12)
