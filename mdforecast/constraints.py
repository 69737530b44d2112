"""Projection of positions onto fixed bond lengths (SHAKE/RATTLE-like), mass-weighted, in numpy float64.

Given positions :math:`x` and bonds :math:`(i, j)` with lengths :math:`d_{ij}`, find nearby positions with
:math:`|x_i - x_j| = d_{ij}` for every bond. Gauss–Seidel sweeps over the bonds; each bond is set to its length
exactly by moving its two atoms along the bond vector :math:`r_{ij} = x_i - x_j`, inversely to their masses:

.. math::
    g = \\frac{1 - d_{ij}/|r_{ij}|}{1/m_i + 1/m_j}, \\qquad
    x_i \\leftarrow x_i - \\frac{g}{m_i}\\, r_{ij}, \\qquad x_j \\leftarrow x_j + \\frac{g}{m_j}\\, r_{ij}

(the new bond vector is :math:`r_{ij}\\,d_{ij}/|r_{ij}|`). Sweeps repeat until every bond is within
``tolerance`` (relative) of its length. Each step moves :math:`m_i \\Delta x_i + m_j \\Delta x_j = 0`, so the
centre of mass is kept; it uses only bond vectors and their norms, so the projection commutes with rotations,
translations and a relabelling of the atoms (with the bonds relabelled alike): it is equivariant. Positions
whose bonds already have their lengths are returned unchanged. Bond graphs without rings (a peptide's
backbone and side chains) converge in a few sweeps; a bond of zero length has no direction and is left alone.

Shapes: K frames, N atoms, B bonds; positions ``(K, N, 3)`` or ``(N, 3)`` Å, bonds ``(B, 2)`` int,
lengths ``(B,)`` or, one set per frame, ``(K, B)`` Å, masses ``(N,)`` u.
"""

from __future__ import annotations

import numpy as np

from .physics import bond_lengths

__all__ = ["project_bonds", "bond_reference"]

_TINY = 1e-12  # Å: bond vectors shorter than this have no direction


def project_bonds(positions: np.ndarray, bonds: np.ndarray, lengths: np.ndarray, masses: np.ndarray | None = None,
                  *, tolerance: float = 1e-8, max_sweeps: int = 1000) -> np.ndarray:
    """``positions`` with every bond set to ``lengths`` (see the module docstring), float64, same shape.

    Args:
        masses: atom masses (default all equal). tolerance: largest relative bond error left.
        max_sweeps: sweeps over all bonds at most (the result is returned as it is then).
    """
    x = np.array(positions, dtype=np.float64)
    single = x.ndim == 2
    x = x[None] if single else x
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    lengths = np.broadcast_to(np.asarray(lengths, dtype=np.float64), (x.shape[0], len(bonds)))
    inverse = np.ones(x.shape[1]) if masses is None else 1.0 / np.asarray(masses, dtype=np.float64)
    share = inverse[bonds] / inverse[bonds].sum(axis=1, keepdims=True)  # (B, 2): each end's part of a correction
    for _ in range(max_sweeps):
        worst = 0.0
        for (i, j), d, (si, sj) in zip(bonds, lengths.T, share):
            r = x[:, i] - x[:, j]
            norm = np.linalg.norm(r, axis=-1)
            ok = norm > _TINY
            error = np.where(ok, 1.0 - d / np.where(ok, norm, 1.0), 0.0)  # (K,)
            worst = max(worst, float(np.abs(error * norm / d).max(initial=0.0)))  # relative bond error
            x[:, i] -= (si * error)[:, None] * r
            x[:, j] += (sj * error)[:, None] * r
        if worst <= tolerance:
            break
    return x[0] if single else x


def bond_reference(positions: np.ndarray, bonds: np.ndarray) -> np.ndarray:
    """Mean length ``(B,)`` Å of each bond over frames ``(K, N, 3)`` (e.g. the observed ones)."""
    return bond_lengths(positions, np.asarray(bonds, dtype=np.int64).reshape(-1, 2)).mean(axis=0)
