"""physics: system detection, geometry, g(r) of an ideal gas, dihedrals, JSD, the metrics end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mdforecast import physics
from mdforecast.errors import InputError
from mdforecast.evaluation import evaluate
from mdforecast.molecules import find_waters
from mdforecast.prediction import predict
from synth import ala2, argon, make_store, random_walk, rigid_waters, water


def test_system_kind_from_topology():
    assert physics.system_kind(water(3), has_box=True) == "water"
    assert physics.system_kind(ala2(), has_box=False) == "peptide"
    assert physics.system_kind(argon(4), has_box=True) == "liquid"
    with pytest.raises(InputError, match="drop --physics"):
        physics.system_kind(argon(4), has_box=False)


def test_ala2_backbone_dihedral_atoms():
    quads = physics.backbone_dihedrals(ala2())
    names = np.array(ala2().names)
    # φ = C(ACE)–N–CA–C(ALA), ψ = N–CA–C(ALA)–N(NME)
    np.testing.assert_array_equal(quads, [[4, 6, 8, 14], [6, 8, 14, 16]])
    assert names[quads].tolist() == [["C", "N", "CA", "C"], ["N", "CA", "C", "N"]]


def test_rigid_water_geometry_is_exact():
    x = rigid_waters(5, n_waters=3)
    bonds, triples = physics.water_geometry(water(3))
    np.testing.assert_allclose(physics.bond_lengths(x, bonds), 0.9572, atol=1e-5)
    np.testing.assert_allclose(physics.angles(x, triples), 104.52, atol=1e-3)


def test_water_geometry_is_that_of_the_waters_molecules_finds():
    """One detector (molecules.find_waters): atoms in any order count, O–H–H that is neither named nor bonded
    like a water does not."""
    perm = np.random.default_rng(1).permutation(12)
    shuffled = water(4).subset(perm)
    bonds, triples = physics.water_geometry(shuffled)
    np.testing.assert_array_equal(triples[:, 1], find_waters(shuffled).atoms[:, 0])
    assert sorted(map(tuple, np.sort(perm[bonds], axis=1).tolist())) == [(3 * w, 3 * w + h) for w in range(4)
                                                                         for h in (1, 2)]
    x = rigid_waters(3, n_waters=4)[:, perm]
    np.testing.assert_allclose(physics.angles(x, triples), 104.52, atol=1e-3)
    anonymous = dataclasses.replace(water(4), resnames=np.array(["MOL"] * 12), bonds=None)
    assert len(physics.water_geometry(anonymous)[1]) == 0
    assert physics.system_kind(anonymous, has_box=True) == "liquid"


def test_dihedrals_match_mdanalysis():
    from MDAnalysis.lib.distances import calc_dihedrals

    x = np.random.default_rng(2).normal(size=(6, 4, 3))
    expected = np.degrees(calc_dihedrals(*(x[:, i].astype(np.float64) for i in range(4))))
    np.testing.assert_allclose(physics.dihedrals(x, np.array([[0, 1, 2, 3]]))[:, 0], expected, atol=1e-8)


def test_jensen_shannon():
    p = np.array([1.0, 2.0, 3.0])
    assert physics.jensen_shannon(p, 2 * p) == pytest.approx(0.0, abs=1e-12)
    assert physics.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)
    assert 0 < physics.jensen_shannon([1, 1], [1, 3]) < 1


def test_rdf_of_an_ideal_gas_is_one():
    rng = np.random.default_rng(0)
    box = 20.0
    x = rng.uniform(0, box, (40, 200, 3))
    r, g = physics.rdf(x, np.full((40, 3), box), r_max=9.0, bin_width=0.5)
    assert r[0] == pytest.approx(0.25) and len(g) == 18
    np.testing.assert_allclose(g[4:], 1.0, atol=0.08)  # past the first shells, counts are plentiful


def test_rdf_uses_the_minimum_image():
    # two atoms 1.2 Å apart across the box face (8.8 Å in the raw coordinates): one pair in the shell [1, 1.5)
    x = np.array([[[0.2, 5.0, 5.0], [9.0, 5.0, 5.0]]])
    r, g = physics.rdf(x, np.array([[10.0, 10.0, 10.0]]), r_max=5.0, bin_width=0.5)
    assert np.flatnonzero(g).tolist() == [2] and r[2] == pytest.approx(1.25)


def test_water_metrics_are_zero_for_a_perfect_forecast_and_see_distortion():
    x = rigid_waters(10, n_waters=4)
    boxes = np.full((10, 3), 12.0)
    same, _ = physics.physics_scores("water", water(4), x, x, boxes, boxes, reference=x[:1].repeat(10, 0))
    assert same["oh_length"]["rms_deviation"] == pytest.approx(0, abs=1e-9)
    assert same["hoh_angle"]["rms_deviation"] == pytest.approx(0, abs=1e-6)
    assert same["g_oo"]["rms_difference"] == pytest.approx(0, abs=1e-12)
    stretched = x.copy()
    stretched[:, 1::3] += 0.1 * (x[:, 1::3] - x[:, 0::3])  # O–H 10 % longer
    worse, _ = physics.physics_scores("water", water(4), stretched, x, boxes, boxes, reference=x[:1].repeat(10, 0))
    assert worse["oh_length"]["forecast_mean"] == pytest.approx(0.9572 * 1.05, rel=1e-4)  # half the bonds
    assert worse["oh_length"]["rms_deviation"] == pytest.approx(0.09572 / np.sqrt(2), rel=1e-4)


@pytest.mark.parametrize("kind", ["liquid", "peptide"])
def test_physics_through_evaluate(tmp_path, kind):
    if kind == "liquid":
        top, box, trajs = argon(20), 12.0, {f"t{i}": random_walk(60, 20, seed=i) for i in range(2)}
    else:
        top, box, trajs = ala2(), None, {f"t{i}": random_walk(60, 22, step=0.05, seed=i) for i in range(2)}
    truth = make_store(tmp_path / "t.zarr", top, trajs, box=box, split=(["t0"], ["t1"]))
    predict(truth, "persistence", tmp_path / "f.zarr", observe=20)
    result = evaluate(tmp_path / "f.zarr", full=True, baselines=[], physics=True)
    numbers = result.windows[-1]["physics"]
    x = truth.trajectory("t1").positions().astype(np.float64)
    if kind == "liquid":
        msd = np.mean(np.sum((x[20:] - x[19]) ** 2, axis=-1))
        assert numbers["msd_from_last_observed"]["truth"] == pytest.approx(msd, rel=1e-6)
        assert numbers["msd_from_last_observed"]["forecast"] == 0.0  # persistence does not move
    else:
        bonds = top.bonds
        forecast_len = np.linalg.norm(x[19, bonds[:, 1]] - x[19, bonds[:, 0]], axis=-1)
        true_len = np.linalg.norm(x[20:, bonds[:, 1]] - x[20:, bonds[:, 0]], axis=-1)
        assert numbers["bond_length"]["rms_deviation"] == pytest.approx(np.sqrt(np.mean((forecast_len - true_len) ** 2)))
        assert 0 <= numbers["phi_psi_jsd_bits"] <= 1
    assert result.physics_kind == kind


def test_closest_nonbonded_pair_by_minimum_image_leaves_bonds_out():
    x = np.array([[[0.5, 5, 5], [9.7, 5, 5], [5, 5, 5]],
                  [[1.0, 5, 5], [3.0, 5, 5], [5, 5, 5]]])  # 2 frames, 3 atoms, Å
    box = np.full((2, 3), 10.0)
    no_bonds, bond = np.zeros((0, 2), np.int64), np.array([[1, 0]])
    np.testing.assert_allclose(physics.closest_nonbonded(x, box, no_bonds, 6.0), [0.8, 2.0], atol=1e-5)
    np.testing.assert_allclose(physics.closest_nonbonded(x, box, bond, 6.0), [4.5, 2.0], atol=1e-5)
    np.testing.assert_allclose(physics.closest_nonbonded(x, None, no_bonds, 6.0), [4.5, 2.0], atol=1e-5)
    np.testing.assert_allclose(physics.closest_nonbonded(x, None, no_bonds, 3.0), [3.0, 2.0])  # none within: cutoff
    assert physics.overlap_limit(x, box, bond) == pytest.approx(physics.GEOMETRY_TOLERANCE["close"] * 2.0, abs=1e-5)


def test_geometry_problems_fire_on_a_collapsed_peptide_and_stay_quiet_on_truth_and_persistence():
    from synth import tumbling_ala2

    x = tumbling_ala2(30, seed=1)
    centre = x.mean(axis=1, keepdims=True)
    collapsed = centre + 0.1 * (x - centre)
    problems = physics.geometry_problems(ala2(), collapsed, x)
    assert set(problems) == {"bond lengths", "overlapping atoms"}
    assert "bond lengths are off" in problems["bond lengths"] and "\n" not in problems["bond lengths"]
    assert physics.geometry_problems(ala2(), x, x) == {}
    assert physics.geometry_problems(ala2(), np.repeat(x[:1], 29, axis=0), x[1:]) == {}  # persistence


def test_geometry_problems_of_water_bent_or_overlapping_in_a_box():
    x = rigid_waters(6, n_waters=4, box=12.0)
    box = np.full((6, 3), 12.0)
    assert physics.geometry_problems(water(4), x, x, box) == {}
    assert physics.geometry_problems(water(4), np.repeat(x[:1], 5, axis=0), x[1:], box[1:]) == {}
    bent = x.copy()
    bent[:, 1] = x[:, 0] + 0.8 * (x[:, 1] - x[:, 0]) + np.array([0.0, 0.0, 0.3])
    assert set(physics.geometry_problems(water(4), bent, x, box)) == {"rigid water"}
    close = x.copy()  # water 1 moved rigidly onto water 0's image across the box face
    close[:, 3:6] = x[:, 0:3] + np.array([12.0 + 0.3, 0.0, 0.0])
    assert set(physics.geometry_problems(water(4), close, x, box)) == {"overlapping atoms"}
    assert physics.geometry_problems(water(4), close, x, None) == {}  # without the box they are 12 Å apart
