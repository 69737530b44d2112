"""Conformations of a molecule without a box: the Kabsch training loss, the options resolved from the data and
recorded, the fused forecast with bond lengths kept, the mean conformation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from mdforecast.conformation import mean_conformation
from mdforecast.constraints import bond_reference
from mdforecast.forecasters.base import Observation
from mdforecast.forecasters.domino import load
from mdforecast.physics import bond_lengths
from mdforecast.scores import kabsch_mse_per_frame, mse_per_frame
from mdforecast.training import _loss, resolve_options, train
from synth import ala2, make_store, tumbling_ala2

TINY = {"observe": 40, "horizon": 60, "epochs": 1, "samples_per_epoch": 4, "val_samples": 2, "fusion_windows": 4}


class _Fixed(torch.nn.Module):
    """Answers fixed predictions, σ(t) = 1: isolates the loss."""

    def __init__(self, pred: torch.Tensor) -> None:
        super().__init__()
        self.pred = pred

    def forward(self, *args):
        return self.pred, torch.zeros((), dtype=self.pred.dtype)

    def scale(self, t):
        return torch.ones(len(t), dtype=torch.float64)


def test_kabsch_loss_equals_the_numpy_scorer_and_ignores_orientation():
    truth = tumbling_ala2(6, seed=3).astype(np.float64)
    pred = truth + np.random.default_rng(0).normal(0, 0.3, truth.shape)
    batch = SimpleNamespace(window=None, sample=None, t=np.ones(6), depth=None, target=torch.as_tensor(truth),
                            group=torch.zeros(6, dtype=torch.int64))
    weights = torch.ones(1, dtype=torch.float64)
    loss = _loss(_Fixed(torch.as_tensor(pred)), batch, weights, 1, 1, 0.0, kabsch=True)
    assert loss.item() == pytest.approx(kabsch_mse_per_frame(pred, truth).mean(), rel=1e-9)
    assert _loss(_Fixed(torch.as_tensor(pred)), batch, weights, 1, 1, 0.0).item() == \
        pytest.approx(mse_per_frame(pred, truth).mean(), rel=1e-9)
    turned = pred @ Rotation.from_euler("xyz", [80, 20, -45], degrees=True).as_matrix().T + 5.0
    assert _loss(_Fixed(torch.as_tensor(turned)), batch, weights, 1, 1, 0.0, kabsch=True).item() == \
        pytest.approx(loss.item(), rel=1e-9)


@pytest.fixture(scope="module")
def molecule(tmp_path_factory):
    root = tmp_path_factory.mktemp("ala2")
    trajs = {f"t{i}": tumbling_ala2(160, seed=i) for i in range(3)}
    store = make_store(root / "s.zarr", ala2(), trajs, dt_ps=1.0, split=(["t0", "t1"], ["t2"]))
    torch.manual_seed(0)
    train(store, root / "run", *resolve_options(TINY, preset="cpu-small"))
    return root, trajs


def test_without_a_box_the_kabsch_loss_and_conformations_are_chosen_and_recorded(molecule):
    root, _ = molecule
    meta = json.loads((root / "run" / "model.json").read_text())
    assert meta["config"]["loss"] == "kabsch" and meta["config"]["conformations"] is True
    bins = meta["training"]["fusion"]["bins"]
    assert len(bins) > 1 and {b["chosen"] for b in bins} <= {"least squares", "persistence"}
    assert all(set(b["weights"]) == {"hierarchy", "linear-ar", "mean"} for b in bins)


def test_the_paper_preset_keeps_the_position_mse():
    config, _ = resolve_options(TINY, preset="paper")
    assert (config.loss, config.conformations) == ("mse", False)
    config, _ = resolve_options(TINY)  # no preset: resolved from the data when training begins
    assert (config.loss, config.conformations) == (None, None)


def test_the_forecast_keeps_the_observed_bond_lengths_and_is_equivariant(molecule):
    root, trajs = molecule
    forecaster = load(root / "run")
    x = trajs["t2"]
    bonds = ala2().bonds
    times = np.arange(40, 100).astype(np.float64)
    pred = forecaster.predict(Observation(x[:40], ala2(), 1.0), times)
    np.testing.assert_allclose(bond_lengths(pred, bonds), np.broadcast_to(bond_reference(x[:40], bonds),
                                                                           (60, len(bonds))), rtol=1e-5)
    rot = Rotation.from_euler("xyz", [10, 70, -30], degrees=True).as_matrix()
    moved = forecaster.predict(Observation((x[:40] @ rot.T + 3.0).astype(np.float32), ala2(), 1.0), times)
    np.testing.assert_allclose(moved, pred @ rot.T + 3.0, atol=2e-3)


def test_mean_conformation_of_rotated_copies_is_the_structure_in_the_last_orientation():
    x = tumbling_ala2(1, seed=4, noise=0.0)[0].astype(np.float64)
    turns = Rotation.random(12, random_state=1).as_matrix()
    frames = np.einsum("kij,nj->kni", turns, x) + np.random.default_rng(2).normal(0, 3, (12, 1, 3))
    np.testing.assert_allclose(mean_conformation(frames), frames[-1], atol=1e-8)
