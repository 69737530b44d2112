"""Small synthetic systems with known, unwrapped coordinates, written to MD files."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.23998, 0.92663, 0.0]])  # O, H1, H2 in Å (104.52°)


@dataclasses.dataclass
class System:
    """A synthetic trajectory: true unwrapped positions ``(T, N, 3)`` Å and how to write it."""

    positions: np.ndarray
    dimensions: np.ndarray | None  # MDAnalysis [a, b, c, α, β, γ], or None for no box
    names: list[str]
    resnames: list[str]
    resids: list[int]
    bonds: list[tuple[int, int]]
    velocities: np.ndarray | None = None
    dt_ps: float = 0.5

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    def universe(self):
        import MDAnalysis as mda

        starts = np.r_[True, np.diff(self.resids) != 0]
        universe = mda.Universe.empty(self.n_atoms, n_residues=int(starts.sum()), atom_resindex=np.cumsum(starts) - 1,
                                      trajectory=True, velocities=self.velocities is not None)
        universe.add_TopologyAttr("names", self.names)
        universe.add_TopologyAttr("types", [n[0] for n in self.names])
        universe.add_TopologyAttr("resnames", np.asarray(self.resnames)[starts])
        universe.add_TopologyAttr("resids", np.asarray(self.resids)[starts])
        if self.bonds:
            universe.add_TopologyAttr("bonds", self.bonds)
        return universe

    def write(self, path: Path, *, wrap: bool = False, topology: Path | None = None, **writer_options) -> Path:
        """Write every frame to ``path`` (format from the extension); ``wrap`` puts each atom into the box."""
        import MDAnalysis as mda
        from MDAnalysis.lib.distances import apply_PBC

        universe = self.universe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if topology is not None:
                self._set_frame(universe, 0, wrap, apply_PBC)
                universe.atoms.write(str(topology), bonds="all")
            with mda.Writer(str(path), self.n_atoms, **writer_options) as writer:
                for t in range(len(self.positions)):
                    self._set_frame(universe, t, wrap, apply_PBC)
                    writer.write(universe.atoms)
        return path

    def _set_frame(self, universe, t: int, wrap: bool, apply_pbc) -> None:
        positions = self.positions[t]
        if wrap:
            positions = apply_pbc(positions.astype(np.float32), self.dimensions)
        universe.atoms.positions = positions
        universe.dimensions = self.dimensions
        if self.velocities is not None:
            universe.atoms.velocities = self.velocities[t]
        universe.trajectory.ts.time = t * self.dt_ps
        universe.trajectory.ts.data["step"] = 10 * t


def waters(n_waters: int = 4, n_frames: int = 12, box: float = 9.0, *, drift: float = 0.5, seed: int = 0,
           velocities: bool = True, dimensions=None) -> System:
    """Up to 8 rigid waters translating and rotating steadily; start inside the box, then cross its faces."""
    rng = np.random.default_rng(seed)
    cells = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)])[:n_waters]
    centres = (cells + 0.5) * box / 2 + rng.uniform(-0.3, 0.3, (n_waters, 3))  # molecules ≥ 3 Å apart
    speeds = rng.normal(0, drift, (n_waters, 3))
    frames = []
    for t in range(n_frames):
        mol = []
        for i in range(n_waters):
            angle = 0.3 * t + i
            c, s = np.cos(angle), np.sin(angle)
            rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
            mol.append(centres[i] + speeds[i] * t + WATER @ rot.T)
        frames.append(np.concatenate(mol))
    positions = np.asarray(frames, dtype=np.float32)
    vel = np.repeat(speeds, 3, axis=0)[None].repeat(n_frames, 0).astype(np.float32) / 0.5 if velocities else None
    return System(positions=positions, dimensions=np.array(dimensions or [box, box, box, 90, 90, 90], dtype=np.float32),
                  names=["OW", "HW1", "HW2"] * n_waters, resnames=["SOL"] * (3 * n_waters),
                  resids=list(np.repeat(np.arange(1, n_waters + 1), 3)),
                  bonds=[(3 * i, 3 * i + k) for i in range(n_waters) for k in (1, 2)], velocities=vel)


