"""Training with rigid waters (the ``cpu-water`` preset): the dynamics level is fitted with molecules moved rigidly,
the model records it, its fusion is fitted on the held-out trajectory, and its forecast of a test trajectory is exactly
rigid; flexible waters are not."""

import json

import numpy as np
import pytest

from mdforecast.forecasters import Observation
from mdforecast.forecasters.domino import load
from mdforecast.store import Store
from mdforecast.training import resolve_options, train
from oscillators import TINY
from synth import WATER, make_store, rigid_waters, water

OPTIONS = {**TINY, "observe": 30, "context": 30, "cutoff": 5.0, "force_cutoff": 5.0, "force_radial": 8,
           "pair_frames": 20, "fusion_windows": 3, "fusion_bins": 4, "max_rollout": 5}


def water_store(path, flexible: bool = False) -> Store:
    runs = {f"t{k}": rigid_waters(80, 6, seed=k, box=12.0) for k in range(3)}
    if flexible:
        for x in runs.values():
            x[:, 1::3] += 0.03 * np.sin(np.arange(80))[:, None, None]
    return make_store(path, water(6), runs, box=12.0, split=(["t0", "t1"], ["t2"]))


def test_the_water_preset_trains_a_rigid_model(tmp_path, capsys):
    store = water_store(tmp_path / "w.zarr")
    train(store, tmp_path / "run", *resolve_options(OPTIONS, preset="cpu-water"), progress=True)
    assert "6 waters moved as rigid bodies" in capsys.readouterr().err
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    config = meta["config"]
    assert config["rigid_water"] and config["rollout_at_rest"] and config["dynamics"] and config["separate_molecules"]
    # the fusion is fitted on the held-out trajectory, which the dynamics level was not fitted on
    assert meta["training"]["fusion"]["fitted_on"] == "held-out" and meta["training"]["fusion"]["trajectories"] == ["t1"]
    traj = store.trajectory("t2")
    out = load(tmp_path / "run").predict(Observation.from_trajectory(traj, store.topology, observe=30),
                                         np.arange(30, 80, 7.0))
    oh = out.reshape(len(out), 6, 3, 3)[:, :, 1:] - out.reshape(len(out), 6, 3, 3)[:, :, :1]
    np.testing.assert_allclose(np.linalg.norm(oh, axis=-1), np.linalg.norm(WATER[1]), atol=5e-5)


def test_flexible_waters_are_trained_atom_by_atom(tmp_path, capsys):
    store = water_store(tmp_path / "w.zarr", flexible=True)
    with pytest.warns(UserWarning, match="flexible"):  # the fusion's forecasts say so too
        train(store, tmp_path / "run", *resolve_options(OPTIONS, preset="cpu-water"), progress=True)
    err = capsys.readouterr().err
    assert "not treated as rigid" in err and "moved as rigid bodies" not in err
