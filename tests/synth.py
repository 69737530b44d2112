"""Tiny synthetic stores for the forecast tests, written with mdforecast.store.writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mdforecast.store import Store, writing
from mdforecast.topology import Topology

WATER = np.array([[0.0, 0.0, 0.0], [0.9572, 0.0, 0.0], [-0.23998, 0.92663, 0.0]])  # O, H1, H2 Å (104.52°)
ALA2_NAMES = ["HH31", "CH3", "HH32", "HH33", "C", "O", "N", "H", "CA", "HA", "CB", "HB1", "HB2", "HB3", "C", "O",
              "N", "H", "C", "H1", "H2", "H3"]
ALA2_RES = ["ACE"] * 6 + ["ALA"] * 10 + ["NME"] * 6


def argon(n_atoms: int = 6) -> Topology:
    names = np.array(["AR"] * n_atoms)
    return Topology(names=names, resnames=names.copy(), resids=np.arange(1, n_atoms + 1), types=names.copy(),
                    elements=np.array(["Ar"] * n_atoms), masses=np.full(n_atoms, 39.948))


def water(n_waters: int = 4) -> Topology:
    return Topology(names=np.array(["OW", "HW1", "HW2"] * n_waters), resnames=np.array(["SOL"] * 3 * n_waters),
                    resids=np.repeat(np.arange(1, n_waters + 1), 3),
                    elements=np.array(["O", "H", "H"] * n_waters),
                    bonds=np.array([(3 * i, 3 * i + k) for i in range(n_waters) for k in (1, 2)]))


def ala2() -> Topology:
    resids = np.array([1] * 6 + [2] * 10 + [3] * 6)
    elements = np.array([n[0] for n in ALA2_NAMES])
    bonds = [(0, 1), (1, 2), (1, 3), (1, 4), (4, 5), (4, 6), (6, 7), (6, 8), (8, 9), (8, 10), (10, 11), (10, 12),
             (10, 13), (8, 14), (14, 15), (14, 16), (16, 17), (16, 18), (18, 19), (18, 20), (18, 21)]
    return Topology(names=np.array(ALA2_NAMES), resnames=np.array(ALA2_RES), resids=resids, elements=elements,
                    bonds=np.array(bonds))


def random_walk(n_frames: int, n_atoms: int, *, step: float = 0.3, seed: int = 0, start=None) -> np.ndarray:
    """Brownian positions ``(T, N, 3)`` float32 Å: Gaussian steps of ``step`` Å per coordinate and frame."""
    rng = np.random.default_rng(seed)
    origin = rng.uniform(0, 10, (n_atoms, 3)) if start is None else start
    return (origin + np.cumsum(rng.normal(0, step, (n_frames, n_atoms, 3)), axis=0)).astype(np.float32)


def rigid_waters(n_frames: int, n_waters: int = 4, *, seed: int = 0, box: float = 12.0) -> np.ndarray:
    """Rigid waters diffusing and rotating, ``(T, 3·n_waters, 3)`` float32 Å."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(2, box - 2, (n_waters, 3)) + np.cumsum(rng.normal(0, 0.2, (n_frames, n_waters, 3)), axis=0)
    angles = np.cumsum(rng.normal(0, 0.2, (n_frames, n_waters)), axis=0)
    c, s = np.cos(angles), np.sin(angles)
    rot = np.zeros((n_frames, n_waters, 3, 3))
    rot[..., 0, 0], rot[..., 0, 1], rot[..., 1, 0], rot[..., 1, 1], rot[..., 2, 2] = c, -s, s, c, 1
    mols = centres[:, :, None, :] + np.einsum("twij,aj->twai", rot, WATER)
    return mols.reshape(n_frames, 3 * n_waters, 3).astype(np.float32)


def make_store(path: Path, topology: Topology, trajectories: dict[str, np.ndarray], *, box: float | None = None,
               dt_ps: float | None = 0.1, split: tuple[list[str], list[str]] | None = None,
               attrs: dict[str, dict] | None = None) -> Store:
    """A store at ``path`` with ``trajectories`` (name → positions ``(T, N, 3)`` Å), a constant cubic ``box`` Å
    (or none), frames every ``dt_ps`` (``None``: no time step recorded); per-trajectory extra ``attrs`` (e.g. twins' ``twin_of``/``first_frame``)."""
    with writing(path, topology=topology) as store:
        for name, positions in trajectories.items():
            extra = (attrs or {}).get(name, {})
            n = len(positions)
            t0 = extra.get("first_frame", 0)
            with store.add_trajectory(name, velocities=False, box=None if box is None else (3,),
                                      attrs={"dt_ps": dt_ps, "unwrapped": True, **extra}) as writer:
                writer.append(positions, (t0 + np.arange(n)) * (dt_ps or 0.0), (t0 + np.arange(n)) * 50,
                              boxes=None if box is None else np.full((n, 3), box, np.float32))
        if split is not None:
            store.set_split(*split)
    return Store.open(path)


def tumbling_ala2(n_frames: int, *, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    """Alanine dipeptide (:func:`ala2` atoms) whose backbone φ/ψ wander, tumbling as a whole (random-walk
    rotations, ~0.1 rad per frame) and drifting, with Gaussian noise of ``noise`` Å: ``(T, 22, 3)`` float32 Å."""
    from scipy.spatial.transform import Rotation

    from mdforecast.datasets.ala2 import _coordinates

    rng = np.random.default_rng(seed)
    phi = -70.0 + np.cumsum(rng.normal(0, 3.0, n_frames))
    psi = 140.0 + np.cumsum(rng.normal(0, 3.0, n_frames))
    steps = Rotation.from_rotvec(rng.normal(0, 0.1, (n_frames, 3)))
    turn, out = Rotation.identity(), []
    for k in range(n_frames):
        turn = steps[k] * turn
        x = _coordinates(phi[k], psi[k])
        out.append(turn.apply(x - x.mean(0)))
    drift = np.cumsum(rng.normal(0, 0.05, (n_frames, 1, 3)), axis=0)
    return (np.array(out) + drift + rng.normal(0, noise, (n_frames, 22, 3))).astype(np.float32)
