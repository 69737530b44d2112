"""The registry and each system's build: atoms, topology, box, force field (no dynamics)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from mdforecast.datasets import SYSTEMS, list_systems
from mdforecast.datasets import ala2, lj


@functools.cache
def build(name: str):
    return SYSTEMS[name].build(np.random.default_rng(0))


def test_registry_is_the_four_protocol_systems():
    assert list(SYSTEMS) == ["lj", "tip3p", "tip4p", "ala2"]
    assert [(s.trajectories, s.frames, s.n_test(s.trajectories)) for s in SYSTEMS.values()] == \
        [(8, 10_000, 3)] * 3 + [(3, 10_000, 1)]
    assert SYSTEMS["lj"].frame_ps == pytest.approx(0.1) and SYSTEMS["ala2"].frame_ps == pytest.approx(1.0)


def test_split_keeps_the_protocol_proportion_with_fewer_trajectories():
    lj_spec, ala2_spec = SYSTEMS["lj"], SYSTEMS["ala2"]
    assert [lj_spec.n_test(n) for n in (2, 3, 4, 8, 16)] == [1, 1, 2, 3, 6]
    assert [ala2_spec.n_test(n) for n in (2, 3, 6)] == [1, 1, 2]


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_each_system_builds_with_its_stored_atoms(name):
    b = build(name)
    spec = SYSTEMS[name]
    assert b.topology.n_atoms == spec.n_atoms == len(b.keep)
    assert b.positions.shape == (b.system.getNumParticles(), 3)
    assert (b.topology.masses > 0).all() and b.topology.elements is not None
    assert b.system.usesPeriodicBoundaryConditions() == spec.periodic


def test_lj_box_is_reduced_density_one_half_with_250_atoms():
    b = build("lj")
    edge = b.system.getDefaultPeriodicBoxVectors()[0][0]._value  # nm
    assert b.topology.n_atoms == 250
    assert 250 * (lj.SIGMA_ANGSTROM / (edge * 10)) ** 3 == pytest.approx(0.5, rel=1e-9)
    distances = np.linalg.norm(b.positions[:, None] - b.positions[None], axis=-1)[np.triu_indices(250, 1)]
    assert distances.min() * 10 > 0.9 * lj.SIGMA_ANGSTROM  # random lattice sites: no overlaps to start from


@pytest.mark.parametrize("name", ["tip3p", "tip4p"])
def test_waters_store_real_atoms_only(name):
    b = build(name)
    assert b.topology.n_atoms == 774 and b.topology.composition() == "HOH×258"
    assert list(b.topology.names[:3]) == ["O", "H1", "H2"] and len(b.topology.bonds) == 2 * 258
    assert b.system.getNumParticles() == (1032 if name == "tip4p" else 774)  # TIP4P-Ew: M is a virtual site
    assert "M" not in set(b.topology.names)
    oxygen = b.topology.charges[0]  # TIP4P-Ew's negative charge sits on the (dropped) M site
    assert oxygen == pytest.approx(0.0 if name == "tip4p" else -0.834)
    assert b.topology.charges[1:3] == pytest.approx([0.52422, 0.52422] if name == "tip4p" else [0.417, 0.417])


def test_ala2_has_22_atoms_and_the_peptide_bonds():
    b = build("ala2")
    top = b.topology
    labels = [f"{r}.{n}" for r, n in zip(top.resnames, top.names)]
    assert top.n_atoms == 22 and top.composition() == "ACE×1 ALA×1 NME×1"
    bonds = {frozenset((labels[i], labels[j])) for i, j in top.bonds}
    assert bonds == {frozenset(pair) for pair in ala2.BONDS} and len(bonds) == 21
    for pair in (("ACE.C", "ALA.N"), ("ALA.N", "ALA.CA"), ("ALA.CA", "ALA.CB"), ("ALA.CA", "ALA.C"),
                 ("ALA.C", "NME.N"), ("NME.N", "NME.CH3")):
        assert frozenset(pair) in bonds
    assert top.charges.sum() == pytest.approx(0.0, abs=1e-6)
    assert b.system.getNumConstraints() == 12  # every bond to hydrogen


@pytest.mark.parametrize("phi, psi", [(-80.0, 150.0), (60.0, 40.0), (-150.0, -170.0)])
def test_ala2_builds_l_alanine_with_the_asked_dihedrals(phi, psi):
    _, xyz = ala2.build_topology_positions(phi, psi)
    labels = [f"{r}.{n}" for r, n, _ in ala2.ATOMS]
    at = {label: xyz[i] * 10 for i, label in enumerate(labels)}
    assert dihedral(at["ACE.C"], at["ALA.N"], at["ALA.CA"], at["ALA.C"]) == pytest.approx(phi, abs=1e-6)
    assert dihedral(at["ALA.N"], at["ALA.CA"], at["ALA.C"], at["NME.N"]) == pytest.approx(psi, abs=1e-6)
    assert dihedral(at["ALA.C"], at["ALA.N"], at["ALA.CA"], at["ALA.CB"]) < 0  # L chirality
    bond_lengths = [np.linalg.norm(at[a] - at[b]) for a, b in ala2.BONDS]
    assert 1.0 < min(bond_lengths) and max(bond_lengths) < 1.55


def test_ala2_gbsaobc_force_equals_implicit_obc2_xml():
    import openmm

    topology, positions = ala2.build_topology_positions(-80.0, 150.0)
    results = []
    for implicit in ("gbsaobc", "obc2.xml"):
        system, _ = ala2.create_system(topology, implicit=implicit)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        state = context.getState(getEnergy=True, getForces=True)
        results.append((state.getPotentialEnergy()._value, state.getForces(asNumpy=True)._value))
    (e1, f1), (e2, f2) = results
    assert e1 == pytest.approx(e2, abs=1e-3)  # kJ/mol
    assert np.abs(f1 - f2).max() < 1e-3  # kJ/mol/nm


def test_list_systems_and_cli_json(cli):
    rows = list_systems()
    assert [r["name"] for r in rows] == list(SYSTEMS)
    assert rows[0]["split"] == {"train": [f"traj{i}" for i in range(5)], "test": ["traj5", "traj6", "traj7"]}
    code, out, _ = cli("datasets", "list", "--json")
    assert code == 0 and json.loads(out) == json.loads(json.dumps(rows))


def dihedral(p0, p1, p2, p3) -> float:
    b0, b1, b2 = p0 - p1, p2 - p1, p3 - p2
    b1 = b1 / np.linalg.norm(b1)
    v, w = b0 - b0 @ b1 * b1, b2 - b2 @ b1 * b1
    return float(np.degrees(np.arctan2(np.cross(b1, v) @ w, v @ w)))


def test_estimate_counts_equilibration_frames_and_rounds_of_workers():
    from mdforecast.datasets import estimate_seconds

    speeds = {"workers": 2, "hardware": "test machine", "systems": {
        "lj": {"platform": "CPU", "steps_per_s": 1100, "aggregate_steps_per_s": 2000},
        "ala2": {"platform": "Reference", "steps_per_s": 9000, "aggregate_steps_per_s": 16000}}}
    lj_steps = (5 + 50) / 0.002 + 10_000 * 50  # equilibration + frames, per trajectory
    estimate = estimate_seconds(SYSTEMS["lj"], speeds=speeds)
    assert estimate["seconds"] == pytest.approx(4 * lj_steps / 1000)  # 8 trajectories: 4 rounds of 2 workers
    assert estimate["workers"] == 2 and estimate["hardware"] == "test machine"
    ala2_steps = (5 + 20) / 0.002 + 10_000 * 500
    assert estimate_seconds(SYSTEMS["ala2"], speeds=speeds)["seconds"] == pytest.approx(2 * ala2_steps / 8000)
    assert estimate_seconds(SYSTEMS["tip3p"], speeds=speeds) is None
