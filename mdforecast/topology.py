"""The topology of a system: per-atom names, kinds, residues, masses, charges and bonds.

One :class:`Topology` per store. Fields a source file does not have are ``None``, never filled with
zeros. Conversion to and from MDAnalysis lives here, at the boundary.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

__all__ = ["Topology", "KIND_FIELDS"]

#: the fields that can name atom kinds for a model (``train --kinds``), in the order tried when none is asked for
KIND_FIELDS = ("elements", "types", "names")

@dataclasses.dataclass(frozen=True, eq=False)
class Topology:
    """Per-atom data of N atoms.

    Args:
        names: ``(N,)`` str, atom names (``OW``, ``HW1``, ``CA``).
        resnames, resids: ``(N,)`` residue name and number of each atom.
        types, elements, segids: ``(N,)`` str or ``None`` when the source has none.
        masses: ``(N,)`` float64 u, or ``None``. charges: ``(N,)`` float64 e, or ``None``.
        bonds: ``(B, 2)`` int64 atom indices, or ``None`` when bonds are unknown.
    """

    names: np.ndarray
    resnames: np.ndarray
    resids: np.ndarray
    types: np.ndarray | None = None
    elements: np.ndarray | None = None
    segids: np.ndarray | None = None
    masses: np.ndarray | None = None
    charges: np.ndarray | None = None
    bonds: np.ndarray | None = None

    @property
    def n_atoms(self) -> int:
        return len(self.names)

    def fields(self) -> dict[str, np.ndarray]:
        """The fields that are present, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def same_system(self, other: "Topology") -> bool:
        """True when both describe the same atoms in the same order (names and residue names)."""
        return (self.n_atoms == other.n_atoms and np.array_equal(self.names, other.names)
                and np.array_equal(self.resnames, other.resnames))

    def composition(self) -> str:
        """Residue names with counts, e.g. ``'HOH×258'`` or ``'ACE×1 ALA×1 NME×1'``."""
        starts = np.r_[True, (self.resids[1:] != self.resids[:-1]) | (self.resnames[1:] != self.resnames[:-1])]
        counts = Counter(self.resnames[starts].tolist())
        return " ".join(f"{name}×{n}" for name, n in counts.items())

    def subset(self, indices: np.ndarray) -> "Topology":
        """The topology of atoms ``indices`` (bonds kept where both ends are selected)."""
        indices = np.asarray(indices)
        out = {k: v[indices] for k, v in self.fields().items() if k != "bonds"}
        if self.bonds is not None:
            out["bonds"] = _select_bonds(self.bonds, indices, self.n_atoms)
        return Topology(**out)

    @classmethod
    def from_atomgroup(cls, atoms) -> "Topology":
        """Read the topology of an MDAnalysis ``AtomGroup``, keeping only attributes it really has."""
        universe = atoms.universe
        fields = {"names": _strings(atoms.names) if hasattr(atoms, "names") else np.array([""] * len(atoms)),
                  "resnames": _strings(atoms.resnames) if hasattr(atoms, "resnames") else np.array(["UNK"] * len(atoms)),
                  "resids": np.asarray(atoms.resids, dtype=np.int64)}
        for name in ("types", "elements", "segids"):
            if hasattr(universe.atoms, name):
                fields[name] = _strings(getattr(atoms, name))
        for name in ("masses", "charges"):
            if hasattr(universe.atoms, name):
                fields[name] = np.asarray(getattr(atoms, name), dtype=np.float64)
        if hasattr(universe, "bonds") and len(universe.bonds):
            bonds = np.asarray(universe.bonds.indices, dtype=np.int64)
            fields["bonds"] = _select_bonds(bonds, atoms.indices, universe.atoms.n_atoms)
        return cls(**fields)

    def to_universe(self, n_frames: int = 1):
        """An MDAnalysis ``Universe`` with this topology and an empty in-memory trajectory."""
        import MDAnalysis as mda

        segids = self.segids if self.segids is not None else np.full(self.n_atoms, "")
        starts = np.r_[True, (self.resids[1:] != self.resids[:-1]) | (self.resnames[1:] != self.resnames[:-1])
                       | (segids[1:] != segids[:-1])]
        resindex = np.cumsum(starts) - 1
        names, first, segindex = np.unique(segids[starts], return_index=True, return_inverse=True)
        order = np.argsort(first)  # segments in order of appearance
        universe = mda.Universe.empty(self.n_atoms, n_residues=int(starts.sum()), n_segments=len(names),
                                      atom_resindex=resindex, residue_segindex=np.argsort(order)[segindex],
                                      trajectory=True, velocities=False)
        if self.segids is not None:
            universe.add_TopologyAttr("segids", names[order])
        universe.add_TopologyAttr("names", self.names)
        universe.add_TopologyAttr("resnames", self.resnames[starts])
        universe.add_TopologyAttr("resids", self.resids[starts])
        for name in ("types", "elements", "masses", "charges"):
            value = getattr(self, name)
            if value is not None:
                universe.add_TopologyAttr(name, value)
        if self.bonds is not None and len(self.bonds):
            universe.add_TopologyAttr("bonds", [tuple(b) for b in self.bonds.tolist()])
        return universe


def _strings(values) -> np.ndarray:
    return np.asarray([str(v) for v in values], dtype=object).astype(str)


def _select_bonds(bonds: np.ndarray, indices: np.ndarray, n_atoms: int) -> np.ndarray:
    """Bonds ``(B, 2)`` among ``indices``, renumbered to positions in ``indices``."""
    new_index = np.full(n_atoms, -1)
    new_index[indices] = np.arange(len(indices))
    mapped = new_index[bonds]
    return mapped[(mapped >= 0).all(axis=1)].reshape(-1, 2)
