"""``ala2``: alanine dipeptide (ACE-ALA-NME, 22 atoms) in OBC2 implicit solvent, amber14 (ff14SB).

The molecule is built from internal coordinates (standard bond lengths and angles, trans peptide bonds,
L-alanine) with AMBER atom names in AMBER order (as tleap writes the molecule), so trajectories from AMBER
tools line up atom by atom. Random initial state: the
backbone dihedrals φ and ψ are drawn uniformly from (−180°, 180°]; minimisation removes any clash.

Implicit solvent is OpenMM's built-in ``GBSAOBCForce`` (the OBC2 model) with the radii and scale factors of
``implicit/obc2.xml`` (mbondi2), solvent dielectric 78.5: the same energies as that file's ``CustomGBForce``
(tested), far faster on the Reference platform, which is the fastest platform for 22 atoms.
"""

from __future__ import annotations

import numpy as np

from .spec import Built, SystemSpec, forcefield_types, topology_from_openmm

__all__ = ["ALA2", "ATOMS", "BONDS", "build_topology_positions", "create_system"]

#: the 22 atoms in AMBER order: (residue, atom name, element)
ATOMS = [("ACE", "HH31", "H"), ("ACE", "CH3", "C"), ("ACE", "HH32", "H"), ("ACE", "HH33", "H"), ("ACE", "C", "C"),
         ("ACE", "O", "O"), ("ALA", "N", "N"), ("ALA", "H", "H"), ("ALA", "CA", "C"), ("ALA", "HA", "H"),
         ("ALA", "CB", "C"), ("ALA", "HB1", "H"), ("ALA", "HB2", "H"), ("ALA", "HB3", "H"), ("ALA", "C", "C"),
         ("ALA", "O", "O"), ("NME", "N", "N"), ("NME", "H", "H"), ("NME", "CH3", "C"), ("NME", "HH31", "H"),
         ("NME", "HH32", "H"), ("NME", "HH33", "H")]
#: the 21 covalent bonds, as pairs of "RES.NAME"
BONDS = [("ACE.HH31", "ACE.CH3"), ("ACE.CH3", "ACE.HH32"), ("ACE.CH3", "ACE.HH33"), ("ACE.CH3", "ACE.C"),
         ("ACE.C", "ACE.O"), ("ACE.C", "ALA.N"), ("ALA.N", "ALA.H"), ("ALA.N", "ALA.CA"), ("ALA.CA", "ALA.HA"),
         ("ALA.CA", "ALA.CB"), ("ALA.CB", "ALA.HB1"), ("ALA.CB", "ALA.HB2"), ("ALA.CB", "ALA.HB3"),
         ("ALA.CA", "ALA.C"), ("ALA.C", "ALA.O"), ("ALA.C", "NME.N"), ("NME.N", "NME.H"), ("NME.N", "NME.CH3"),
         ("NME.CH3", "NME.HH31"), ("NME.CH3", "NME.HH32"), ("NME.CH3", "NME.HH33")]
#: internal coordinates in dependency order: atom d, placed from a, b, c with |cd| = bond (Å), angle b–c–d and
#: dihedral a–b–c–d (degrees); "phi" and "psi" are drawn per initial state. Peptide bonds trans (ω = 180°),
#: L-alanine (dihedral C–N–CA–CB = −122.5°).
_ZMATRIX = [
    ("ALA.CA", "ACE.CH3", "ACE.C", "ALA.N", 1.458, 121.7, 180.0),
    ("ALA.C", "ACE.C", "ALA.N", "ALA.CA", 1.525, 111.2, "phi"),
    ("NME.N", "ALA.N", "ALA.CA", "ALA.C", 1.335, 116.2, "psi"),
    ("NME.CH3", "ALA.CA", "ALA.C", "NME.N", 1.449, 121.9, 180.0),
    ("ACE.O", "ALA.CA", "ALA.N", "ACE.C", 1.229, 122.7, 0.0),
    ("ALA.O", "NME.CH3", "NME.N", "ALA.C", 1.229, 122.7, 0.0),
    ("ALA.H", "ACE.O", "ACE.C", "ALA.N", 1.01, 119.8, 180.0),
    ("NME.H", "ALA.O", "ALA.C", "NME.N", 1.01, 119.8, 180.0),
    ("ALA.HA", "ALA.C", "ALA.N", "ALA.CA", 1.09, 109.5, 118.0),
    ("ALA.CB", "ALA.C", "ALA.N", "ALA.CA", 1.53, 110.5, -122.5),
    *[(f"ALA.HB{k + 1}", "ALA.N", "ALA.CA", "ALA.CB", 1.09, 109.5, 60.0 + 120.0 * k) for k in range(3)],
    *[(f"ACE.HH3{k + 1}", "ALA.N", "ACE.C", "ACE.CH3", 1.09, 109.5, 120.0 * k) for k in range(3)],
    *[(f"NME.HH3{k + 1}", "ALA.C", "NME.N", "NME.CH3", 1.09, 109.5, 120.0 * k) for k in range(3)],
]
_SOLVENT_DIELECTRIC = 78.5  # implicit/obc2.xml's default (GBSAOBCForce's own default is 78.3)


def _place(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float, dihedral: float) -> np.ndarray:
    """The point d at ``bond`` from c with angle b–c–d and dihedral a–b–c–d (natural extension frame)."""
    bc = (c - b) / np.linalg.norm(c - b)
    normal = np.cross(b - a, bc)
    normal /= np.linalg.norm(normal)
    theta, phi = np.radians(angle), np.radians(dihedral)
    local = np.array([-bond * np.cos(theta), bond * np.sin(theta) * np.cos(phi), bond * np.sin(theta) * np.sin(phi)])
    return c + local[0] * bc + local[1] * np.cross(normal, bc) + local[2] * normal


def _coordinates(phi: float, psi: float) -> np.ndarray:
    """Positions ``(22, 3)`` Å in :data:`ATOMS` order, for backbone dihedrals ``phi``, ``psi`` (degrees)."""
    angle = np.radians(180.0 - 116.2)  # seed CH3–C–N in the xy plane: |CH3–C| 1.52 Å, angle CH3–C–N 116.2°
    xyz = {"ACE.CH3": np.zeros(3), "ACE.C": np.array([1.52, 0.0, 0.0])}
    xyz["ALA.N"] = xyz["ACE.C"] + 1.335 * np.array([np.cos(angle), np.sin(angle), 0.0])
    for atom, a, b, c, bond, ang, dih in _ZMATRIX:
        dih = {"phi": phi, "psi": psi}.get(dih, dih)
        xyz[atom] = _place(xyz[a], xyz[b], xyz[c], bond, ang, dih)
    return np.array([xyz[f"{res}.{name}"] for res, name, _ in ATOMS])


def build_topology_positions(phi: float, psi: float):
    """An OpenMM ``Topology`` of ACE-ALA-NME (AMBER names and order) and positions ``(22, 3)`` nm."""
    from openmm import app

    topology = app.Topology()
    chain = topology.addChain()
    residues, atoms = {}, {}
    for res, name, element in ATOMS:
        if res not in residues:
            residues[res] = topology.addResidue(res, chain)
        atoms[f"{res}.{name}"] = topology.addAtom(name, app.Element.getBySymbol(element), residues[res])
    for a, b in BONDS:
        topology.addBond(atoms[a], atoms[b])
    return topology, _coordinates(phi, psi) / 10.0


def create_system(topology, *, implicit: str = "gbsaobc"):
    """amber14 + OBC2 implicit solvent, no cutoff, H-bond constraints. ``implicit``: ``"gbsaobc"`` (OpenMM's
    ``GBSAOBCForce``, used for the dataset) or ``"obc2.xml"`` (the ``CustomGBForce`` of implicit/obc2.xml)."""
    import openmm
    from openmm import app

    files = ["amber14-all.xml"] + (["implicit/obc2.xml"] if implicit == "obc2.xml" else [])
    forcefield = app.ForceField(*files)
    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    if implicit == "gbsaobc":
        from openmm.app.internal.customgbforces import GBSAOBC2Force

        nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
        gb = openmm.GBSAOBCForce()
        gb.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
        gb.setSolventDielectric(_SOLVENT_DIELECTRIC)
        for i, (radius, scale) in enumerate(GBSAOBC2Force.getStandardParameters(topology)):
            gb.addParticle(nonbonded.getParticleParameters(i)[0], radius, scale)
        system.addForce(gb)
    return system, forcefield


def build(rng: np.random.Generator) -> Built:
    """ACE-ALA-NME with random φ, ψ and its amber14 + OBC2 system."""
    phi, psi = rng.uniform(-180.0, 180.0, size=2)
    topology, positions = build_topology_positions(phi, psi)
    system, forcefield = create_system(topology)
    stored, keep = topology_from_openmm(topology, system, types=forcefield_types(forcefield, topology))
    return Built(system=system, positions=positions, topology=stored, keep=keep)


ALA2 = SystemSpec(
    name="ala2", title="alanine dipeptide", n_atoms=len(ATOMS), box="none (implicit solvent)",
    physics="amber14 (ff14SB) + OBC2 implicit solvent, H-bond constraints; Langevin 300 K, friction 1/ps",
    build=build, temperature_k=300.0, thermostat="langevin", coupling_per_ps=1.0, timestep_ps=0.002,
    steps_per_frame=500, thermalize_ps=5.0, nvt_ps=20.0, trajectories=3, test_trajectories=1,
    auto_platforms=("Reference",), periodic=False)
