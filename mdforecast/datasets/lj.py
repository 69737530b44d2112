"""``lj``: 250 argon atoms, Lennard-Jones, cubic periodic box at reduced density ρ* = N σ³ / L³ = 0.5.

.. math::
    U(r) = 4 \\varepsilon \\left[ (\\sigma / r)^{12} - (\\sigma / r)^{6} \\right], \\qquad r < r_c = 3 \\sigma

with the long-range dispersion correction for the truncated tail. Random initial state: 250 of the sites of
a 7 × 7 × 7 simple cubic lattice (spacing L / 7 ≈ 1.13 σ, so no two atoms overlap), chosen at random and
jittered by 0.02 σ.
"""

from __future__ import annotations

import numpy as np

from ..topology import Topology
from .spec import Built, SystemSpec

__all__ = ["LJ", "N_ATOMS", "SIGMA_ANGSTROM", "EPSILON_KJ_MOL", "MASS_U", "DENSITY", "box_edge_angstrom"]

N_ATOMS = 250
SIGMA_ANGSTROM = 3.405
EPSILON_KJ_MOL = 0.996
MASS_U = 39.948
DENSITY = 0.5  # reduced number density ρ* = N σ³ / V
_LATTICE = 7  # sites per edge: 343 ≥ 250


def box_edge_angstrom() -> float:
    """L = (N / ρ*)^(1/3) σ ≈ 27.03 Å."""
    return (N_ATOMS / DENSITY) ** (1 / 3) * SIGMA_ANGSTROM


def build(rng: np.random.Generator) -> Built:
    """A random non-overlapping argon configuration and its OpenMM system (NonbondedForce, cutoff 3σ)."""
    import openmm

    edge_nm, sigma_nm = box_edge_angstrom() / 10, SIGMA_ANGSTROM / 10
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(edge_nm, 0, 0), openmm.Vec3(0, edge_nm, 0),
                                        openmm.Vec3(0, 0, edge_nm))
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(3 * sigma_nm)
    force.setUseSwitchingFunction(False)
    force.setUseDispersionCorrection(True)
    for _ in range(N_ATOMS):
        system.addParticle(MASS_U)
        force.addParticle(0.0, sigma_nm, EPSILON_KJ_MOL)
    system.addForce(force)
    system.addForce(openmm.CMMotionRemover())

    sites = np.stack(np.meshgrid(*[np.arange(_LATTICE)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)
    chosen = sites[rng.choice(len(sites), N_ATOMS, replace=False)]
    positions = (chosen + 0.5) * (edge_nm / _LATTICE) + rng.normal(0.0, 0.02 * sigma_nm, (N_ATOMS, 3))
    topology = Topology(names=np.full(N_ATOMS, "Ar"), resnames=np.full(N_ATOMS, "AR"),
                        resids=np.arange(1, N_ATOMS + 1, dtype=np.int64), types=np.full(N_ATOMS, "Ar"),
                        elements=np.full(N_ATOMS, "Ar"), masses=np.full(N_ATOMS, MASS_U),
                        charges=np.zeros(N_ATOMS), bonds=np.zeros((0, 2), dtype=np.int64))
    return Built(system=system, positions=positions, topology=topology, keep=np.arange(N_ATOMS))


LJ = SystemSpec(
    name="lj", title="Lennard-Jones argon", n_atoms=N_ATOMS, box=f"cubic {box_edge_angstrom():.2f} Å (ρ* = 0.5)",
    physics="LJ cut at 3σ + dispersion correction; NVT 100 K, Nosé–Hoover chain 25/ps",
    build=build, temperature_k=100.0, thermostat="nose-hoover", coupling_per_ps=25.0, timestep_ps=0.002,
    steps_per_frame=50, thermalize_ps=5.0, nvt_ps=50.0)
