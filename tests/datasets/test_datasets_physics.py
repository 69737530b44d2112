"""Short runs of each system: temperature, rigid water geometry, unwrapped positions, equilibration."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mdforecast.datasets import SYSTEMS
from mdforecast.datasets.simulation import Job, resolve_platform, run

R_KJ_MOL_K = 0.0083144626
#: (equilibration ps, frames, relative temperature tolerance of the mean over the frames)
SHORT = {"lj": (2.0, 100, 0.03), "tip3p": (1.5, 12, 0.04), "tip4p": (1.5, 12, 0.04), "ala2": (5.0, 200, 0.07)}


@functools.cache
def simulate(name: str, seed: int = 0) -> dict:
    """A short trajectory of ``name`` through the dataset code path, frames kept in memory."""
    equilibration_ps, frames, _ = SHORT[name]
    out = []
    attrs = run(Job(name, "test", seed, frames, resolve_platform(SYSTEMS[name]), equilibration_ps),
                lambda *frame: out.append(frame))
    positions, times, steps, velocities = (np.concatenate([f[i] for f in out]) for i in range(4))
    boxes = None if out[0][4] is None else np.concatenate([f[4] for f in out])
    return {"positions": positions, "velocities": velocities, "times": times, "steps": steps, "boxes": boxes,
            "attrs": attrs}


def kinetic_temperature(name: str, velocities: np.ndarray) -> np.ndarray:
    """T per frame from velocities (Å/ps) and masses (u): 2 KE / (dof R), dof = 3N − constraints − 3."""
    built = SYSTEMS[name].build(np.random.default_rng(0))
    dof = 3 * built.topology.n_atoms - built.system.getNumConstraints() - 3  # the COM motion is removed
    kinetic = 0.5 * (built.topology.masses[None, :, None] * velocities.astype(np.float64) ** 2).sum(axis=(1, 2))
    return 2 * kinetic * 0.01 / (dof * R_KJ_MOL_K)  # 1 u Å²/ps² = 0.01 kJ/mol


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_kinetic_temperature_is_the_target(name):
    spec, run_ = SYSTEMS[name], simulate(name)
    temperature = kinetic_temperature(name, run_["velocities"])
    assert temperature.mean() == pytest.approx(spec.temperature_k, rel=SHORT[name][2])
    assert run_["positions"].dtype == np.float32 and np.isfinite(run_["positions"]).all()


@pytest.mark.parametrize("name", list(SYSTEMS))
def test_frames_are_evenly_spaced_from_time_zero(name):
    spec, run_ = SYSTEMS[name], simulate(name)
    frames = len(run_["times"])
    np.testing.assert_array_equal(run_["steps"], np.arange(frames) * spec.steps_per_frame)
    np.testing.assert_allclose(run_["times"], np.arange(frames) * spec.frame_ps, atol=1e-9)


@pytest.mark.parametrize("name", ["tip3p", "tip4p"])
def test_water_stays_rigid(name):
    xyz = simulate(name)["positions"].astype(np.float64)
    oxygen, h1, h2 = xyz[:, 0::3], xyz[:, 1::3], xyz[:, 2::3]
    oh = np.concatenate([np.linalg.norm(h1 - oxygen, axis=-1), np.linalg.norm(h2 - oxygen, axis=-1)])
    np.testing.assert_allclose(oh, 0.9572, atol=1e-3)
    u, v = h1 - oxygen, h2 - oxygen
    angle = np.degrees(np.arccos((u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)))
    np.testing.assert_allclose(angle, 104.52, atol=0.1)


@pytest.mark.parametrize("name", ["lj", "tip3p", "tip4p"])
def test_positions_are_unwrapped_and_the_box_recorded_every_frame(name):
    run_ = simulate(name)
    boxes, xyz = run_["boxes"], run_["positions"]
    assert boxes.shape == (len(xyz), 3) and np.allclose(boxes, boxes[:, :1])  # cubic, one per frame
    step = np.abs(np.diff(xyz, axis=0)).max()
    assert step < 0.25 * boxes.min()  # no jump across the box between frames
    if name == "lj":
        assert boxes[0, 0] == pytest.approx(27.0255, abs=1e-3)
    else:  # the barostat moved the box during equilibration, towards liquid density
        assert boxes[0, 0] != pytest.approx(20.7070, abs=1e-3)


@pytest.mark.slow
def test_frame_zero_is_equilibrated_not_the_minimised_structure():
    """Frame 0's potential energy is typical of the run and far above the energy minimum (tip3p)."""
    import openmm

    run_ = simulate("tip3p")
    built = SYSTEMS["tip3p"].build(np.random.default_rng(0))
    context = openmm.Context(built.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))

    def energy(positions_angstrom, box_angstrom) -> float:
        context.setPeriodicBoxVectors(*np.diag(box_angstrom / 10))
        context.setPositions(positions_angstrom.astype(np.float64) / 10)
        return context.getState(getEnergy=True).getPotentialEnergy()._value  # kJ/mol

    energies = np.array([energy(x, box) for x, box in zip(run_["positions"], run_["boxes"])])
    context.setPositions(built.positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    minimum = context.getState(getEnergy=True).getPotentialEnergy()._value
    assert abs(energies[0] - energies.mean()) < 4 * energies.std()
    assert energies[0] - minimum > 0.7 * (energies.mean() - minimum) > 0


def test_ala2_keeps_its_bonds_and_chirality():
    from mdforecast.datasets.ala2 import ATOMS, BONDS

    from test_datasets_systems import dihedral

    xyz = simulate("ala2")["positions"].astype(np.float64)
    index = {f"{r}.{n}": i for i, (r, n, _) in enumerate(ATOMS)}
    lengths = np.array([np.linalg.norm(xyz[:, index[a]] - xyz[:, index[b]], axis=-1) for a, b in BONDS])
    assert 0.95 < lengths.min() and lengths.max() < 1.65
    cb = [dihedral(*(f[index[k]] for k in ("ALA.C", "ALA.N", "ALA.CA", "ALA.CB"))) for f in xyz[::20]]
    assert max(cb) < 0  # still L-alanine
