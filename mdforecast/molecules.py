"""Molecular structure read from a topology: rigid waters and bonds.

A **water** is a residue (atoms sharing segment, residue name and number, in any order) whose real atoms are one oxygen and two hydrogens (by element, else by the first
letter of the atom name), named like a water (:data:`WATER_RESNAMES`: ``HOH``, ``WAT``, ``SOL``, ``TIP3``,
``TIP4``…) or, when the topology has bonds, bonded O–H, O–H. Its atoms are ordered O, H, H; a massless extra
site (TIP4P's M, when a store keeps it; mdforecast's own stores do not, PROTOCOL.md) follows as a fourth atom.

A water model is treated as **rigid** only when the frames confirm it: every intramolecular distance stays
within ``tolerance`` (Å) of its value in the first frame, in every frame (distances by minimum image, so a
molecule split across box faces counts as whole). A flexible water model (O–H vibrating by ~0.05 Å) is refused
with a log line, and its atoms are then forecast one by one.

Shapes: T frames, N atoms, M molecules, K atoms per molecule (3, or 4 with a stored M site).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .pbc import minimum_image
from .topology import Topology

__all__ = ["WATER_RESNAMES", "RIGID_TOLERANCE", "RigidGroups", "bonds", "find_waters", "rigid_waters", "whole"]

#: residue names of water in common force fields and file formats (compared case-insensitively)
WATER_RESNAMES = frozenset({"HOH", "WAT", "SOL", "H2O", "TIP3", "TIP3P", "TIP4", "TIP4P", "TIP4PEW", "TIP5P",
                            "T3P", "T4P", "T4E", "SPC", "SPCE"})
#: largest change (Å) of an intramolecular distance over the frames for a water to count as rigid
RIGID_TOLERANCE = 0.005


@dataclasses.dataclass(frozen=True)
class RigidGroups:
    """Molecules moved as rigid bodies.

    Args:
        atoms: ``(M, K)`` int64 atom indices of each molecule, its reference atom (the oxygen) first.
        weights: ``(M, K)`` float64 superposition weights: masses (u) when the topology has them (a massless
            site weighs 0), else 1.
    """

    atoms: np.ndarray
    weights: np.ndarray

    @property
    def n_molecules(self) -> int:
        return len(self.atoms)


def bonds(topology: Topology) -> np.ndarray:
    """The topology's bonds ``(B, 2)`` int64 atom indices; ``(0, 2)`` when it records none."""
    return np.zeros((0, 2), np.int64) if topology.bonds is None else np.asarray(topology.bonds, np.int64)


def _elements(topology: Topology) -> np.ndarray:
    """Upper-case element symbol of every atom ``(N,)`` (from ``elements``, else the first letter of the name)."""
    source = topology.elements if topology.elements is not None else [str(n).strip()[:1] for n in topology.names]
    return np.array([str(e).upper() for e in source])


def find_waters(topology: Topology) -> RigidGroups | None:
    """The waters of ``topology`` (see the module docstring), or ``None`` when it has none."""
    elements = _elements(topology)
    segids = topology.segids if topology.segids is not None else np.full(topology.n_atoms, "")
    keys = np.array([f"{g}\x00{r}\x00{i}" for g, r, i in zip(segids, topology.resnames, topology.resids)])
    _, residue = np.unique(keys, return_inverse=True)  # residues by (segment, name, number), in any atom order
    order = np.argsort(residue, kind="stable")
    masses = topology.masses
    bonded = {tuple(sorted(b)) for b in bonds(topology).tolist()}
    groups = []
    for atoms in np.split(order, np.flatnonzero(np.diff(residue[order])) + 1):
        real = atoms if masses is None else atoms[masses[atoms] > 0]
        extra = np.setdiff1d(atoms, real)
        if len(real) != 3 or sorted(elements[real].tolist()) != ["H", "H", "O"] or len(extra) > 1:
            continue
        oxygen = real[elements[real] == "O"][0]
        hydrogens = real[elements[real] == "H"]
        named = str(topology.resnames[atoms[0]]).upper() in WATER_RESNAMES
        if not (named or {tuple(sorted((oxygen, h))) for h in hydrogens.tolist()} <= bonded):
            continue
        groups.append([oxygen, *hydrogens, *extra])
    if not groups or len({len(g) for g in groups}) > 1:
        return None
    atoms = np.array(groups, dtype=np.int64)
    weights = np.ones(atoms.shape) if masses is None else np.asarray(masses, np.float64)[atoms]
    return RigidGroups(atoms, weights)


def whole(positions: np.ndarray, groups: RigidGroups, box: np.ndarray | None, *, per_frame: bool = False
          ) -> np.ndarray:
    """Each molecule's atoms ``(..., M, K, 3)`` float64 Å placed by minimum image around its reference atom.

    ``positions`` ``(..., N, 3)`` Å; ``box``: edges ``(3,)`` or vectors ``(3, 3)`` Å, or with ``per_frame`` one
    per frame of ``positions`` ``(T, N, 3)`` (``(T, 3)`` or ``(T, 3, 3)``); ``None``: no periodic box.
    """
    x = np.asarray(positions, np.float64)[..., groups.atoms, :]
    if box is None:
        return x
    ref = x[..., :1, :]
    delta = (x - ref).reshape(len(x), -1, 3) if per_frame else (x - ref).reshape(-1, 3)
    delta = minimum_image(delta, np.asarray(box, np.float64), per_frame=per_frame)
    return ref + delta.reshape(x.shape)


def _internal(x: np.ndarray) -> np.ndarray:
    """Intramolecular distances ``(..., M, P)`` Å of molecules ``(..., M, K, 3)``, P = K(K−1)/2 pairs."""
    i, j = np.triu_indices(x.shape[-2], 1)
    return np.linalg.norm(x[..., i, :] - x[..., j, :], axis=-1)


def rigid_waters(topology: Topology, positions: np.ndarray, boxes: np.ndarray | None = None, *,
                 tolerance: float = RIGID_TOLERANCE, log=lambda message: None) -> RigidGroups | None:
    """The waters of ``topology`` if ``positions`` ``(T, N, 3)`` Å show them rigid, else ``None`` (with a line
    to ``log`` saying why, when there are waters). ``boxes``: ``(T, 3)`` or ``(T, 3, 3)`` Å, or ``None``."""
    groups = find_waters(topology)
    if groups is None:
        return None
    d = _internal(whole(positions, groups, boxes, per_frame=True))
    spread = float(np.abs(d - d[:1]).max()) if len(d) else 0.0
    if spread > tolerance:
        log(f"waters not treated as rigid: an intramolecular distance changes by {spread:.4f} Å over the "
            f"{len(positions)} frames (tolerance {tolerance} Å), a flexible water model")
        return None
    return groups
