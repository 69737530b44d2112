"""predict: frame ranges, real-valued times, provenance, MD-file export round trip, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import mdforecast.forecasters.domino as domino
from mdforecast import ingest
from mdforecast.errors import InputError
from mdforecast.forecasters import Forecaster
from mdforecast.prediction import predict
from mdforecast.store import Store
from synth import argon, make_store, random_walk, water


@pytest.fixture
def truth(tmp_path) -> Store:
    trajs = {f"t{i}": random_walk(60, 5, seed=i) for i in range(3)}
    return make_store(tmp_path / "truth.zarr", argon(5), trajs, box=15.0, split=(["t0", "t1"], ["t2"]))


def test_until_means_through_that_frame_and_defaults(tmp_path, truth):
    result = predict(truth, "persistence", tmp_path / "f.zarr", until=50, observe=20)
    forecast = Store.open(tmp_path / "f.zarr")
    traj = forecast.trajectory()
    assert traj.name == "t2" == result.trajectories[0]  # the split's first test trajectory
    np.testing.assert_array_equal(traj.frame_index(), np.arange(20, 50))
    np.testing.assert_array_equal(traj.positions(), np.repeat(truth.trajectory("t2").positions(19, 20), 30, axis=0))
    np.testing.assert_allclose(traj.times(), np.arange(20, 50) * 0.1)
    np.testing.assert_array_equal(traj.steps(), np.arange(20, 50) * 50)
    np.testing.assert_array_equal(traj.boxes(), np.full((30, 3), 15.0, np.float32))  # the last observed box
    assert forecast.topology.same_system(truth.topology)
    assert (result.frames, result.first, result.last, result.observed) == (30, 20.0, 49.0, (0, 20))


def test_until_with_a_unit_and_every(tmp_path, truth):
    predict(truth, "velocity", tmp_path / "f.zarr", until="5ps", every=10, observe=20)  # 5 ps = frame 50
    np.testing.assert_array_equal(Store.open(tmp_path / "f.zarr").trajectory().frame_index(), [20, 30, 40])


def test_non_integer_times_are_recorded_and_forecast(tmp_path, truth):
    predict(truth, "velocity", tmp_path / "f.zarr", times="25.5,20:21:0.25,100.75", observe=20)
    traj = Store.open(tmp_path / "f.zarr").trajectory()
    frames = traj.frame_index()
    np.testing.assert_array_equal(frames, [20, 20.25, 20.5, 20.75, 25.5, 100.75])
    x = truth.trajectory("t2").positions(18, 20).astype(np.float64)
    expected = x[1] + (frames - 19)[:, None, None] * (x[1] - x[0])
    np.testing.assert_allclose(traj.positions(), expected, atol=1e-4)
    np.testing.assert_allclose(traj.times(), frames * 0.1)


def test_provenance(tmp_path, truth):
    predict(truth, "damped-velocity", tmp_path / "f.zarr", until=40, observe=20, trajectories=["t1", "t2"])
    forecast = Store.open(tmp_path / "f.zarr")
    attrs = forecast.attrs["forecast"]
    assert attrs["truth"] == str((tmp_path / "truth.zarr").resolve())
    assert attrs["observed"] == [0, 20] and attrs["trajectories"] == ["t1", "t2"]
    assert attrs["model"]["name"] == "damped-velocity" and attrs["model"]["decay_frames"] > 0
    assert "t0, t1" in attrs["model"]["fitted_on"]  # the split's training trajectories
    assert forecast.trajectory_names == ["t1", "t2"]
    assert forecast.trajectory("t1").attrs["forecast"]["trajectory"] == "t1"


def test_forecast_export_ingest_round_trip(tmp_path, truth):
    result = predict(truth, "velocity", tmp_path / "f.zarr", until=45, observe=20, fmt="dcd")
    assert result.files == [str(tmp_path / "f.dcd"), str(tmp_path / "f.pdb")]
    ingest([tmp_path / "f.dcd"], tmp_path / "back.zarr", topology=tmp_path / "f.pdb", unwrap=False)
    back = Store.open(tmp_path / "back.zarr").trajectory()
    forecast = Store.open(tmp_path / "f.zarr").trajectory()
    np.testing.assert_allclose(back.positions(), forecast.positions(), atol=1e-4)
    np.testing.assert_allclose(back.boxes(), forecast.boxes(), atol=1e-4)


def test_model_default_observe_is_used(tmp_path, truth):
    class Needs30(Forecaster):
        name, observe = "needs30", 30

        def predict(self, observation, times):
            assert observation.n_frames == 30
            return np.repeat(observation.positions[-1:], len(times), axis=0)

    result = predict(truth, Needs30(), tmp_path / "f.zarr", until=40)
    assert result.observed == (0, 30)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "nope"}, "unknown model 'nope'; choose from persistence, mean, velocity, damped-velocity"),
    ({"until": 10}, "nothing to forecast"),
    ({"times": "15,25"}, "inside the observed frames"),
    ({"observe": 61}, "needs 61"),
    ({"trajectories": ["missing"]}, "no trajectory 'missing'"),
    ({"fmt": "nosuchformat"}, "cannot write format"),
    ({"times": "25", "until": 30}, "drop --until"),
    ({"batch": 0}, "--batch"),
])
def test_bad_input_is_one_clear_error_and_writes_nothing(tmp_path, truth, kwargs, message):
    args = {"model": "persistence", "observe": 20, **kwargs}
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        predict(truth, args.pop("model"), tmp_path / "f.zarr", **args)
    assert not (tmp_path / "f.zarr").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["truth.zarr"]


def test_existing_output_needs_force(tmp_path, truth):
    predict(truth, "persistence", tmp_path / "f.zarr", until=30, observe=20)
    with pytest.raises(InputError, match="--force"):
        predict(truth, "persistence", tmp_path / "f.zarr", until=30, observe=20)
    predict(truth, "mean", tmp_path / "f.zarr", until=30, observe=20, force=True)
    assert Store.open(tmp_path / "f.zarr").attrs["forecast"]["model"]["name"] == "mean"


class _Argon(Forecaster):
    """A stand-in for a checkpoint trained on argon: refuses other atom types."""

    name = "argon-model"

    def check(self, topology, dt_ps):
        if set(topology.names) != {"AR"}:
            raise InputError("checkpoint was trained on atom types AR; this system has OW, HW1, HW2")

    def predict(self, observation, times):
        return np.repeat(observation.positions[-1:], len(times), axis=0)


def test_checkpoint_for_other_atom_types_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(domino, "load", lambda path: _Argon())
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    waters = make_store(tmp_path / "w.zarr", water(2), {"w": random_walk(30, 6)}, box=10.0)
    with pytest.raises(InputError, match="trained on atom types AR"):
        predict(waters, str(tmp_path / "model.safetensors"), tmp_path / "f.zarr", observe=10)
    assert not (tmp_path / "f.zarr").exists()
    # the same checkpoint on argon works and records the checkpoint and its hash
    argon_store = make_store(tmp_path / "ar.zarr", argon(3), {"a": random_walk(30, 3)}, box=10.0)
    predict(argon_store, str(tmp_path / "model.safetensors"), tmp_path / "f.zarr", observe=10)
    model = Store.open(tmp_path / "f.zarr").attrs["forecast"]["model"]
    assert model["checkpoint"] == str((tmp_path / "model.safetensors").resolve())
    assert len(model["checkpoint_sha256"]) == 64


def test_existing_md_file_is_refused_before_anything_is_written(tmp_path, truth):
    (tmp_path / "f.xtc").write_bytes(b"old")
    with pytest.raises(InputError, match="f.xtc already exists"):
        predict(truth, "persistence", tmp_path / "f.zarr", until=30, observe=20, fmt="xtc")
    assert not (tmp_path / "f.zarr").exists() and (tmp_path / "f.xtc").read_bytes() == b"old"


def test_store_defaults_to_the_one_the_model_was_trained_on(tmp_path, truth, monkeypatch):
    class Trained(_Argon):
        def describe(self):
            return {"name": "trained", "data": {"store": str(tmp_path / "truth.zarr")}}

    monkeypatch.setattr(domino, "load", lambda path: Trained())
    (tmp_path / "run").mkdir()
    result = predict(None, str(tmp_path / "run"), tmp_path / "f.zarr", until=30, observe=20)
    assert result.truth == str((tmp_path / "truth.zarr").resolve()) and result.trajectories == ["t2"]
    with pytest.raises(InputError, match="give the STORE"):
        predict(None, "persistence", tmp_path / "g.zarr")


def _argon_model(tmp_path, truth: Store) -> str:
    """A DoMiNO run directory with random (acting) weights for the argon ``truth``, its frame time recorded."""
    import torch

    from mdforecast.checkpoint import save_model
    from mdforecast.model import Domino, DominoConfig, Normalisation

    config = DominoConfig(observe=20, horizon=12, strides=(4, 1), features=8, vectors=4, encoder_layers=1, radial=4,
                          steps=2, lags=(1, 4), context=10, cutoff=6.0, checkpoint=False, kind_field="elements")
    torch.manual_seed(0)
    model = Domino(config, Normalisation(1.0, (0.3, 0.6, 0.6), 3.0), ["Ar"])
    for p in model.decoder.parameters():  # the decoder starts at zero (= persistence); make it act
        torch.nn.init.normal_(p, std=0.3)
    run = tmp_path / "run"
    run.mkdir()
    save_model(run, model, dt_ps=truth.trajectory("t2").dt_ps, training={}, data={}, history=[])
    return str(run)


def test_exported_and_ingested_again_forecasts_as_the_original(tmp_path, truth):
    from mdforecast import export

    run = _argon_model(tmp_path, truth)
    export(truth, tmp_path / "t2.trr", trajectory="t2")  # + t2.pdb: atom names AR, elements written by MDAnalysis
    again = ingest([tmp_path / "t2.trr"], tmp_path / "again.zarr", topology=tmp_path / "t2.pdb")
    assert Store.open(again.store).trajectory().dt_ps == pytest.approx(0.1)
    predict(truth, run, tmp_path / "a.zarr", trajectories=["t2"], until=32)
    predict(again.store, run, tmp_path / "b.zarr", until=32)
    a, b = Store.open(tmp_path / "a.zarr").trajectory(), Store.open(tmp_path / "b.zarr").trajectory()
    assert not np.allclose(a.positions(), np.repeat(truth.trajectory("t2").positions(19, 20), 12, axis=0))
    np.testing.assert_allclose(b.positions(), a.positions(), atol=1e-4)


def test_a_model_refuses_another_frame_time_and_an_unknown_one(tmp_path, truth):
    run = _argon_model(tmp_path, truth)
    coarse = make_store(tmp_path / "coarse.zarr", argon(5), {"t": random_walk(60, 5)}, box=15.0, dt_ps=1.0)
    with pytest.raises(InputError, match="frames are 1 ps apart but the model was trained on frames 0.1 ps apart"):
        predict(coarse, run, tmp_path / "f.zarr", until=32)
    unknown = make_store(tmp_path / "unknown.zarr", argon(5), {"t": random_walk(60, 5)}, box=15.0, dt_ps=None)
    with pytest.raises(InputError, match="--dt 0.1"):
        predict(unknown, run, tmp_path / "f.zarr", until=32)
    assert not (tmp_path / "f.zarr").exists()


def test_select_forecasts_and_scores_only_the_selected_atoms(tmp_path):
    from mdforecast.evaluation import evaluate

    waters = {f"t{i}": random_walk(40, 12, seed=i) for i in range(2)}
    store = make_store(tmp_path / "w.zarr", water(4), waters, box=15.0, split=(["t0"], ["t1"]))
    observed = waters["t1"]
    result = predict(store, "persistence", tmp_path / "o.zarr", observe=20, select="name OW")
    forecast = Store.open(tmp_path / "o.zarr")
    assert forecast.topology.n_atoms == 4 and set(forecast.topology.names) == {"OW"}
    np.testing.assert_array_equal(forecast.trajectory().positions(), np.repeat(observed[19:20, ::3], 20, axis=0))
    assert result.frames == 20
    window = evaluate(tmp_path / "o.zarr", window=["30-40"], baselines=["mean"]).windows[0]
    truth = observed[30:40, ::3].astype(np.float64)
    assert window["model"]["mse"] == pytest.approx(np.mean((truth - observed[19, ::3]) ** 2))
    with pytest.raises(InputError, match="matches no atoms"):
        predict(store, "persistence", tmp_path / "x.zarr", observe=20, select="name ZZ")
