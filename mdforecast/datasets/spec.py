"""What a benchmark system is: its protocol (:class:`SystemSpec`) and a built OpenMM instance (:class:`Built`).

A spec holds the numbers of PROTOCOL.md for one system and a ``build`` function that turns a random generator
into a fresh random initial state. Nothing here imports OpenMM at module level, so the registry (and the
command line's ``--help``) stays fast; builders import it when called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ..topology import Topology

__all__ = ["SystemSpec", "Built", "topology_from_openmm", "forcefield_types"]


@dataclasses.dataclass(frozen=True)
class Built:
    """One random initial state of a system, ready for OpenMM.

    Args:
        system: the ``openmm.System`` (no barostat; the simulation adds it for NPT equilibration).
        positions: ``(P, 3)`` float64, nm, for all P OpenMM particles (virtual sites included).
        topology: the stored atoms' :class:`~mdforecast.topology.Topology` (virtual sites dropped).
        keep: ``(N,)`` int64 indices of the stored atoms among the P particles.
    """

    system: object
    positions: np.ndarray
    topology: Topology
    keep: np.ndarray


@dataclasses.dataclass(frozen=True)
class SystemSpec:
    """A benchmark system and its simulation protocol (PROTOCOL.md). Units in the field names.

    ``build(rng)`` returns a :class:`Built` whose random parts (positions where they make sense) come from
    the ``numpy`` generator ``rng``. ``auto_platforms`` is the order in which ``--platform auto`` tries
    OpenMM platforms. The default split puts the last ``test_trajectories`` of ``trajectories`` in the
    test set; twins continue test trajectories from the last observed frame (``frames // 5 - 1``).
    """

    name: str
    title: str
    n_atoms: int
    box: str
    physics: str
    build: Callable[[np.random.Generator], Built]
    temperature_k: float
    thermostat: str  # "nose-hoover" (deterministic) or "langevin" (stochastic)
    coupling_per_ps: float  # Nosé–Hoover collision frequency or Langevin friction, 1/ps
    timestep_ps: float
    steps_per_frame: int
    thermalize_ps: float  # equilibration 1: Langevin (5/ps) from the minimised state, NPT with ``pressure_bar``
    nvt_ps: float  # equilibration 2: the production thermostat at constant volume, until frame 0
    pressure_bar: float | None = None
    trajectories: int = 8
    test_trajectories: int = 3
    frames: int = 10_000
    auto_platforms: tuple[str, ...] = ("CUDA", "OpenCL", "CPU")
    periodic: bool = True

    @property
    def frame_ps(self) -> float:
        return self.timestep_ps * self.steps_per_frame

    @property
    def stochastic(self) -> bool:
        """True when the thermostat draws random numbers (twins then get fresh noise, not a perturbation)."""
        return self.thermostat == "langevin"

    def equilibration_steps(self, equilibration_ps: float | None = None) -> tuple[int, int]:
        """``(thermalize_steps, nvt_steps)`` before frame 0; ``equilibration_ps`` rescales both to that total."""
        first, second = self.thermalize_ps, self.nvt_ps
        if equilibration_ps is not None:
            scale = equilibration_ps / (first + second)
            first, second = first * scale, second * scale
        return round(first / self.timestep_ps), round(second / self.timestep_ps)

    def n_test(self, trajectories: int) -> int:
        """Test trajectories out of ``trajectories``: the protocol's proportion, at least one, at least one train."""
        share = self.test_trajectories / self.trajectories
        return int(min(trajectories - 1, max(1, round(trajectories * share))))

    def protocol(self) -> dict:
        """The physical settings, JSON-ready: what a store records and a resumed run must match."""
        return {"temperature_k": self.temperature_k, "thermostat": self.thermostat,
                "coupling_per_ps": self.coupling_per_ps, "timestep_ps": self.timestep_ps,
                "steps_per_frame": self.steps_per_frame, "frame_ps": self.frame_ps,
                "thermalize_ps": self.thermalize_ps, "nvt_ps": self.nvt_ps, "pressure_bar": self.pressure_bar,
                "physics": self.physics}


def topology_from_openmm(topology, system, *, types: list[str] | None = None) -> tuple[Topology, np.ndarray]:
    """The stored atoms' topology and their particle indices, from an OpenMM ``Topology`` and ``System``.

    Virtual sites (massless particles such as TIP4P's M) are dropped. Masses (u) come from the system,
    charges (e) from its ``NonbondedForce``; ``types`` defaults to the element symbols.
    """
    import openmm

    atoms = list(topology.atoms())
    masses = np.array([system.getParticleMass(i).value_in_unit(openmm.unit.dalton) for i in range(len(atoms))])
    keep = np.array([i for i in range(len(atoms)) if not system.isVirtualSite(i) and masses[i] > 0], dtype=np.int64)
    nonbonded = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    charges = np.zeros(len(atoms))
    if nonbonded:
        charges = np.array([nonbonded[0].getParticleParameters(i)[0].value_in_unit(openmm.unit.elementary_charge)
                            for i in range(len(atoms))])
    elements = [a.element.symbol if a.element is not None else "" for a in atoms]
    bonds = np.array([[b[0].index, b[1].index] for b in topology.bonds()], dtype=np.int64).reshape(-1, 2)
    full = Topology(names=np.array([a.name for a in atoms]), resnames=np.array([a.residue.name for a in atoms]),
                    resids=np.array([a.residue.index + 1 for a in atoms], dtype=np.int64),
                    types=np.array(types if types is not None else elements), elements=np.array(elements),
                    masses=masses, charges=charges, bonds=bonds)
    return full.subset(keep), keep


def forcefield_types(forcefield, topology) -> list[str]:
    """The force field's atom type of every particle (``protein-CT``, ``tip3p-O``), matched by atom name."""
    types = []
    for residue, template in zip(topology.residues(), forcefield.getMatchingTemplates(topology)):
        by_name = {atom.name: atom.type for atom in template.atoms}
        types += [by_name[atom.name] for atom in residue.atoms()]
    return types
