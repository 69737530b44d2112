"""Make the example trajectory shipped in examples/: 60 TIP3P waters (a 12.5 Å box), 200 frames, wrapped per atom.

The frames are written the way many MD engines write them (every atom put back into the box, so molecules
crossing a face are split), which is what `mdforecast ingest` must undo. Run from the repository root:

    python examples/make_water_example.py

It writes examples/water.pdb (topology, first frame) and examples/water.xtc (200 frames, 0.1 ps apart).
"""

from pathlib import Path

import MDAnalysis as mda
import numpy as np
import openmm
from openmm import app, unit

HERE = Path(__file__).resolve().parent
SEED = 2026


def main() -> None:
    forcefield = app.ForceField("tip3p.xml")
    modeller = app.Modeller(app.Topology(), [])
    modeller.addSolvent(forcefield, model="tip3p", boxSize=openmm.Vec3(1.25, 1.25, 1.25) * unit.nanometer)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.PME, nonbondedCutoff=0.6 * unit.nanometer,
                                     constraints=app.HBonds, rigidWater=True)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 2 * unit.femtosecond)
    integrator.setRandomNumberSeed(SEED)
    platform = openmm.Platform.getPlatformByName("CPU")
    simulation = app.Simulation(modeller.topology, system, integrator, platform, {"Threads": "1"})
    simulation.context.setPositions(modeller.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(300 * unit.kelvin, SEED)
    simulation.step(5000)  # 10 ps equilibration

    pdb = HERE / "water.pdb"
    with open(pdb, "w") as handle:
        state = simulation.context.getState(getPositions=True)
        app.PDBFile.writeFile(modeller.topology, state.getPositions(), handle)
    universe = mda.Universe(str(pdb))
    box = np.array(modeller.topology.getPeriodicBoxVectors().value_in_unit(unit.angstrom)).diagonal()
    with mda.Writer(str(HERE / "water.xtc"), universe.atoms.n_atoms) as writer:
        for frame in range(200):
            simulation.step(50)
            state = simulation.context.getState(getPositions=True)
            xyz = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
            universe.atoms.positions = xyz - box * np.floor(xyz / box)  # wrap every atom: split molecules
            universe.dimensions = [*box, 90, 90, 90]
            universe.trajectory.ts.time = (frame + 1) * 0.1
            universe.trajectory.ts.data["step"] = (frame + 1) * 50
            writer.write(universe.atoms)
    print(f"wrote {pdb} and {HERE / 'water.xtc'}: {universe.atoms.n_atoms} atoms, 200 frames")


if __name__ == "__main__":
    main()
