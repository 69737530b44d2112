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
    dimensions: np.ndarray | None  # MDAnalysis [a, b, c, α, β, γ], one row per frame (T, 6), or None for no box
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
        """Write every frame to ``path`` (format from the extension); ``wrap`` puts each atom into the box
        (``True`` or ``"atom"``), or each residue, shifted as a whole with its first atom (``"molecule"``)."""
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

    def box(self, t: int) -> np.ndarray | None:
        """The MDAnalysis dimensions of frame ``t``."""
        if self.dimensions is None or np.ndim(self.dimensions) == 1:
            return self.dimensions
        return self.dimensions[t]

    def _set_frame(self, universe, t: int, wrap: bool | str, apply_pbc) -> None:
        positions, box = self.positions[t].astype(np.float32), self.box(t)
        if wrap == "molecule":
            first = np.r_[0, np.flatnonzero(np.diff(self.resids)) + 1]
            shift = apply_pbc(positions[first], box) - positions[first]
            positions = positions + np.repeat(shift, np.diff(np.r_[first, len(positions)]), axis=0)
        elif wrap:
            positions = apply_pbc(positions, box)
        universe.atoms.positions = positions
        universe.dimensions = box
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


#: GROMACS' compact boxes of image distance d: rhombic dodecahedron (xy-square) and truncated octahedron
COMPACT_BOXES = {"dodecahedron": [60.0, 60.0, 90.0], "truncated octahedron": [70.528779, 109.471221, 70.528779]}


def sparse_waters(box: str, n_waters: int = 30, n_frames: int = 25, d: float = 20.0, *, step: float = 0.3,
                  npt: float = 0.01, seed: int = 0) -> System:
    """Rigid waters saved sparsely in a compact box: each frame every water moves ``step`` × d in a random
    direction and takes a random orientation (uncorrelated, as 10–100 ps apart); with ``npt`` the box edges
    scale by up to that fraction from frame to frame. Unwrapped truth; ``write(wrap=...)`` wraps it."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_frames, n_waters, 3))
    directions[0] = rng.uniform(0, d, (n_waters, 3)) / (step * d)  # frame 0: random places
    directions[1:] /= np.linalg.norm(directions[1:], axis=-1, keepdims=True)
    centres = np.cumsum(step * d * directions, axis=0)
    q = rng.normal(size=(n_frames, n_waters, 4))
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rot = np.stack([np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
                    np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
                    np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], -2)
    positions = (centres[:, :, None, :] + np.einsum("twij,aj->twai", rot, WATER)).reshape(n_frames, -1, 3)
    scale = 1 + npt * np.sin(0.9 * np.arange(n_frames))
    dimensions = np.array([[d * s, d * s, d * s, *COMPACT_BOXES[box]] for s in scale], dtype=np.float32)
    return System(positions=positions.astype(np.float32), dimensions=dimensions, names=["OW", "HW1", "HW2"] * n_waters,
                  resnames=["SOL"] * (3 * n_waters), resids=list(np.repeat(np.arange(1, n_waters + 1), 3)),
                  bonds=[(3 * i, 3 * i + k) for i in range(n_waters) for k in (1, 2)], dt_ps=100.0)
