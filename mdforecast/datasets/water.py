"""``tip3p`` and ``tip4p``: 258 rigid waters in a cubic periodic box, PME electrostatics, 9 Å cutoff.

The waters come from OpenMM's pre-equilibrated box (``Modeller.addSolvent``), in a cube of 20.7 Å that the
1 bar equilibration shrinks to liquid density. TIP4P-Ew's massless M site is a virtual site: OpenMM places it
from O, H1, H2 at every step, and it is not stored (774 real atoms for both models). Each trajectory's
initial state differs by its Maxwell–Boltzmann velocities, its barostat and thermostat history and the NPT
equilibration (20 ps, about ten times water's structural relaxation time); the starting box is the same.
"""

from __future__ import annotations

import numpy as np

from .spec import Built, SystemSpec, forcefield_types, topology_from_openmm

__all__ = ["TIP3P", "TIP4P", "N_WATERS"]

N_WATERS = 258
CUTOFF_NM = 0.9


def _builder(forcefield_file: str, model: str):
    def build(rng: np.random.Generator) -> Built:  # noqa: ARG001 (the water box itself is not random)
        import openmm
        from openmm import app

        forcefield = app.ForceField(forcefield_file)
        modeller = app.Modeller(app.Topology(), [])
        modeller.addSolvent(forcefield, model=model, numAdded=N_WATERS, neutralize=False)
        system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME,
                                         nonbondedCutoff=CUTOFF_NM * openmm.unit.nanometer,
                                         constraints=app.HBonds, rigidWater=True)
        topology, keep = topology_from_openmm(modeller.topology, system,
                                              types=forcefield_types(forcefield, modeller.topology))
        positions = np.array(modeller.positions.value_in_unit(openmm.unit.nanometer))
        return Built(system=system, positions=positions, topology=topology, keep=keep)

    return build


def _spec(name: str, title: str, forcefield_file: str, model: str) -> SystemSpec:
    return SystemSpec(
        name=name, title=title, n_atoms=3 * N_WATERS, box="cubic, set by 1 bar equilibration",
        physics="rigid (SETTLE), PME, 9 Å cutoff; NVT 300 K, Nosé–Hoover chain 1/ps, after 20 ps at 1 bar",
        build=_builder(forcefield_file, model), temperature_k=300.0, thermostat="nose-hoover",
        coupling_per_ps=1.0, timestep_ps=0.002, steps_per_frame=50, thermalize_ps=20.0, nvt_ps=5.0,
        pressure_bar=1.0)


TIP3P = _spec("tip3p", "TIP3P water", "tip3p.xml", "tip3p")
TIP4P = _spec("tip4p", "TIP4P-Ew water", "tip4pew.xml", "tip4pew")
