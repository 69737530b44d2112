"""Training end to end on the oscillator system: skill, run directory, checkpoints, resume, LG-ODE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import mdforecast.training as train_module
from mdforecast.checkpoint import save_model
from mdforecast.forecasters.domino import DominoForecaster, load
from mdforecast.errors import FormatVersionError, InputError
from mdforecast.forecasters import Observation
from mdforecast.model import Domino, DominoConfig, Normalisation
from mdforecast.store import Store
from mdforecast.training import resolve_options, train
from oscillators import TINY


@pytest.mark.slow
def test_tiny_system_trains_and_beats_persistence_on_test_trajectory(osc_store, tmp_path):
    run = tmp_path / "run"
    result = train(osc_store, run, *resolve_options({**TINY, "epochs": 10}))
    assert result.selected_on == "validation" and result.epochs == 10
    meta = json.loads((run / "model.json").read_text())
    # trained on the train split only, selected on a held-out training trajectory, never on test
    assert set(meta["data"]["trajectories"]) == {"t0", "t1", "t2"} and meta["training"]["validation"] == ["t2"]
    assert meta["format_version"] == 1 and meta["name"] == "domino" and meta["kinds"] == ["A", "B"]
    assert meta["normalisation"]["displacement"] > 0 and len(meta["history"]) == 10
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 10
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < 0.5 * losses[0]

    forecaster = load(run)
    assert forecaster.describe()["sha256"] == meta["weights_sha256"]
    store = Store.open(osc_store)
    test = store.trajectory("t3")
    model_mse, persistence_mse = [], []
    for end in (60, 100, 150):
        obs = Observation.from_trajectory(test, store.topology, observe=48, end=end)
        times = np.arange(end, end + 24)
        truth = test.positions(end, end + 24)
        model_mse.append(((forecaster.predict(obs, times) - truth) ** 2).mean())
        persistence_mse.append(((obs.positions[-1] - truth) ** 2).mean())
    assert np.mean(model_mse) < 0.3 * np.mean(persistence_mse)


def _model(levels: int = 2) -> Domino:
    config = DominoConfig(observe=20, horizon=12, strides=(4, 1)[-levels:] if levels < 3 else (6, 2, 1),
                          features=8, vectors=4, encoder_layers=1, radial=4, steps=2, lags=(1,), context=5,
                          cutoff=6.0, checkpoint=False)
    torch.manual_seed(1)
    model = Domino(config, Normalisation(0.5, (0.1, 0.4), 2.0), ["A", "B"])
    for p in model.decoder.parameters():
        torch.nn.init.normal_(p, std=0.3)
    return model


def test_checkpoint_round_trip_and_errors(tmp_path):
    from oscillators import oscillators, topology

    model = _model()
    save_model(tmp_path, model, dt_ps=0.1, training={"seed": 0}, data={"sha256": "x"}, history=[])
    obs = Observation(positions=oscillators(12, 20, seed=5), topology=topology(12), dt_ps=0.1,
                      boxes=np.full((20, 3), 20.0))
    times = np.array([20.0, 25.5, 31.0])
    expected = DominoForecaster(model).predict(obs, times)
    for path in (tmp_path, tmp_path / "model.json", tmp_path / "model.safetensors"):
        loaded = load(path)
        np.testing.assert_array_equal(loaded.predict(obs, times), expected)
    assert loaded.describe()["name"] == "domino" and loaded.describe()["config"]["strides"] == [4, 1]
    assert loaded.dt_ps == 0.1 and loaded.describe()["dt_ps"] == 0.1

    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(FormatVersionError, match="format version 99"):
        load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="not an mdforecast model"):
        load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps(meta))
    (tmp_path / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="does not match the SHA-256"):  # tampered or damaged weights
        load(tmp_path)
    from mdforecast.provenance import sha256

    (tmp_path / "model.json").write_text(json.dumps({**meta, "weights_sha256": sha256(tmp_path / "model.safetensors")}))
    with pytest.raises(InputError, match="corrupt"):
        load(tmp_path)
    with pytest.raises(InputError, match="no model"):
        load(tmp_path / "missing")


def test_resume_after_kill_ends_where_an_uninterrupted_run_ends(osc_store, tmp_path, monkeypatch):
    options = {**TINY, "epochs": 3, "samples_per_epoch": 16, "vae": True}  # VAE noise must replay too
    train(osc_store, tmp_path / "full", *resolve_options(options))

    calls = []
    real = train_module._write_metrics

    def killed_after_two_epochs(run_dir, history):
        real(run_dir, history)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "_write_metrics", killed_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train(osc_store, tmp_path / "killed", *resolve_options(options))
    monkeypatch.setattr(train_module, "_write_metrics", real)
    assert json.loads((tmp_path / "killed" / "state.json").read_text())["epoch"] == 2
    with pytest.raises(InputError, match="--resume"):
        train(osc_store, tmp_path / "killed", *resolve_options(options))
    result = train(osc_store, tmp_path / "killed", *resolve_options(options), resume=True)
    assert result.epochs == 3 and len(result.history) == 3
    for name in ("model.safetensors", "state.safetensors"):
        a, b = load_file(str(tmp_path / "full" / name)), load_file(str(tmp_path / "killed" / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key  # bitwise: deterministic under the seed


def test_lgode_is_one_level_of_the_same_code(osc_store, tmp_path):
    result = train(osc_store, tmp_path / "lg", *resolve_options({**TINY, "levels": 1, "strides": (1,), "epochs": 1,
                                                                  "samples_per_epoch": 8}))
    assert result.name == "lgode"
    forecaster = load(tmp_path / "lg")
    assert forecaster.describe()["name"] == "lgode" and len(forecaster.model.odes) == 1
    # fine-tuning keeps the architecture and may change the time layout
    tuning = resolve_options({"epochs": 1, "samples_per_epoch": 8, "horizon": 12}, init=tmp_path / "lg")
    tuned = train(osc_store, tmp_path / "ft", *tuning, init=tmp_path / "lg")
    meta = json.loads((tmp_path / "ft" / "model.json").read_text())
    assert tuned.name == "lgode" and meta["config"]["horizon"] == 12 and meta["training"]["init"] == str(tmp_path / "lg")
    assert meta["normalisation"] == json.loads((tmp_path / "lg" / "model.json").read_text())["normalisation"]
    with pytest.raises(InputError, match="architecture comes from the checkpoint"):
        resolve_options({"features": 4}, init=tmp_path / "lg")
    with pytest.raises(InputError, match="architecture comes from the checkpoint"):
        train(osc_store, tmp_path / "ft2", *resolve_options({**TINY, "features": 4}), init=tmp_path / "lg")


def test_vacuum_system_without_box_trains_and_forecasts(tmp_path):
    from oscillators import make_store

    store = make_store(tmp_path / "vac.zarr", n_traj=2, n_frames=100, box=None)
    train(store, tmp_path / "run", *resolve_options({**TINY, "epochs": 1, "samples_per_epoch": 8}))
    s = Store.open(store)
    obs = Observation.from_trajectory(s.trajectory("t1"), s.topology, observe=48)
    assert obs.boxes is None
    assert load(tmp_path / "run").predict(obs, np.array([48.0, 60.5])).shape == (2, 12, 3)


def test_bad_options_are_clear_errors(osc_store, tmp_path):
    with pytest.raises(InputError, match="needs 272"):
        train(osc_store, tmp_path / "a", *resolve_options({**TINY, "observe": 48, "horizon": 224, "strides": (8, 1)}))
    with pytest.raises(InputError, match="unknown device"):
        train(osc_store, tmp_path / "b", *resolve_options(TINY), device="tpu")
    with pytest.raises(InputError, match="unknown options"):
        train(osc_store, tmp_path / "c", *resolve_options({**TINY, "hiden": 3}))
    with pytest.raises(InputError, match="does not divide"):
        train(osc_store, tmp_path / "d", *resolve_options({**TINY, "strides": (5, 1)}))
    with pytest.raises(InputError, match="unknown preset"):
        train(osc_store, tmp_path / "e", *resolve_options(TINY, preset="huge"))
    assert not any((tmp_path / name).exists() for name in "abcde")  # nothing written


def test_partial_windows_multiply_the_windows_of_short_trajectories_and_stay_inside_the_data():
    """A trajectory of exactly observe + horizon frames is one full window but horizon − S + 1 partial ones;
    every scored lead time of a partial window lies inside the trajectory, at every level."""
    from mdforecast.model.data import Series, draw_samples, make_batch

    config = DominoConfig(observe=20, horizon=60, strides=(20, 4, 1), lags=(1,), context=5, cutoff=6.0)
    rng = np.random.default_rng(0)
    series = [Series(f"s{k}", rng.normal(0, 1, (80, 3, 3)).astype(np.float32), None) for k in range(2)]
    full = draw_samples(series, config, 50, seed=(1,))
    assert {s.end for s in full} == {20}
    partial = draw_samples(series, config, 400, seed=(1,), partial=True)
    ends = {s.end for s in partial}
    assert min(ends) == 20 and max(ends) == 80 - 4 and len(ends) > 40  # the finest span S is 4 frames
    batch = make_batch(series, partial, config, torch.zeros(3, dtype=torch.int64), segments=2, max_outputs=5)
    ends_q = np.array([partial[i].end for i in batch.sample])
    assert (ends_q + batch.t - 1 <= 79).all() and batch.t.min() >= 1
    for b, s in enumerate(partial):
        np.testing.assert_array_equal(batch.target[batch.sample == b].numpy(),
                                      series[s.traj].positions[s.end + batch.t[batch.sample == b].astype(int) - 1])
    late = [b for b, s in enumerate(partial) if s.end > 80 - 20]  # less than level 0's first output left
    assert late and not np.isin(batch.depth[np.isin(batch.sample, late)], [0]).any()


def test_a_level_missing_from_some_samples_is_averaged_over_the_samples_that_have_it():
    class Fixed(torch.nn.Module):
        norm = Normalisation(1.0, (1.0,), 1.0)

        def forward(self, window, sample, t, depth, generator=None):
            return torch.zeros(len(t), 1, 3), torch.tensor(0.0)

        def scale(self, t):
            return torch.ones(len(t))

    from types import SimpleNamespace

    # sample 0: level 0 error 4, level 1 error 1; sample 1: level 1 only, error 9
    target = torch.tensor([[[2.0] * 3], [[1.0] * 3], [[3.0] * 3]])
    batch = SimpleNamespace(window=None, sample=np.array([0, 0, 1]), t=np.array([1.0, 1.0, 1.0]),
                            depth=np.array([0, 1, 1]), target=target, group=torch.tensor([0, 1, 3]))
    loss = train_module._loss(Fixed(), batch, torch.tensor([0.5, 0.5]), levels=2, n_samples=2, kl_weight=0.0)
    assert loss.item() == pytest.approx(0.5 * 4.0 + 0.5 * (1.0 + 9.0) / 2)


def test_log_lead_sampling_trains_the_early_horizon_as_often_as_the_far_one():
    from mdforecast.model.data import _queries
    from mdforecast.model.hierarchy import Hierarchy

    hierarchy = Hierarchy(8000, (400, 20, 1))

    def early_fraction(sampling: str) -> float:
        rng = np.random.default_rng(0)
        t = np.concatenate([_queries(hierarchy, rng, 2, 10, 8000, sampling)[0] for _ in range(300)])
        return float((t <= 200).mean())

    uniform, log = early_fraction("uniform"), early_fraction("log")
    assert uniform < 0.1 and log > 0.3  # lead times within 20 ps: ~2 % of the horizon
    with pytest.raises(InputError, match="lead_sampling"):
        train_module.TrainOptions(lead_sampling="sqrt")


def test_the_decoder_unit_follows_the_training_rms_displacement_at_each_lead_time():
    """A random walk's RMS displacement grows as √t: σ(t) reproduces it, so an output of the same size means
    'a typical displacement at that lead time' early and far out alike."""
    from mdforecast.model.data import Series, normalisation

    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 0.1, (2, 3000, 40, 3)), axis=1).astype(np.float32)  # 0.1 Å per frame per axis
    config = DominoConfig(observe=100, horizon=1000, strides=(100, 10, 1), lags=(1,), context=5, cutoff=6.0)
    norm = normalisation([Series(f"w{k}", walk[k], None) for k in range(2)], config)
    model = Domino(config, norm, ["A"])
    sigma = model.scale(torch.tensor([1.0, 10.0, 100.0, 1000.0])).numpy()
    np.testing.assert_allclose(sigma, 0.1 * np.sqrt([1, 10, 100, 1000]), rtol=0.2)  # per component, like the MSE
    assert model.scale(torch.tensor([0.0, 5000.0])).tolist() == pytest.approx([sigma[0], sigma[-1]], rel=1e-6)
    old = Normalisation.from_dict({"displacement": 2.0, "inputs": [1.0, 1.0], "avg_neighbors": 3.0})
    assert Domino(config, old, ["A"]).scale(torch.tensor([1.0, 700.0])).tolist() == [2.0, 2.0]


def test_a_shipped_water_model_fine_tunes_on_other_water(tmp_path):
    """Kinds are elements, so a TIP3P model takes any water (here: synthetic rigid waters named OW/HW1/HW2)."""
    from synth import make_store, rigid_waters, water

    trajectories = {f"t{k}": rigid_waters(40, seed=k, box=14.0) for k in range(2)}  # above 2 × tip3p's 6 Å force cutoff
    store = make_store(tmp_path / "w.zarr", water(4), trajectories, box=14.0)
    layout = {"observe": 24, "horizon": 8, "strides": (4, 2, 1), "epochs": 1, "samples_per_epoch": 4, "batch": 4,
              "val_samples": 2, "segments": 1, "max_outputs": 2}
    result = train(store, tmp_path / "run", *resolve_options(layout, init="tip3p"), init="tip3p")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert result.epochs == 1 and meta["kinds"] == ["H", "O"] and meta["training"]["init"] == "tip3p"
    assert meta["config"]["features"] == 16 and meta["dt_ps"] == 0.1  # tip3p's architecture; the data's frame time


def test_select_trains_on_the_selected_atoms_only(tmp_path):
    from synth import make_store, rigid_waters, water

    trajectories = {f"t{k}": rigid_waters(80, seed=k) for k in range(2)}
    store = make_store(tmp_path / "w.zarr", water(4), trajectories, box=12.0)
    options = {**TINY, "observe": 48, "horizon": 24, "epochs": 1, "samples_per_epoch": 8, "cutoff": 5.0}
    train(store, tmp_path / "run", *resolve_options(options), select="name OW")
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["kinds"] == ["O"] and meta["training"]["select"] == "name OW"


def test_strides_and_lags_fit_a_short_layout_and_say_so():
    from mdforecast.training import fitting_strides, model_config

    assert fitting_strides(8000, 3) == (400, 20, 1) and fitting_strides(30, 3) == (10, 5, 1)
    for horizon, levels in [(30, 2), (7, 3), (1000, 4), (1, 2)]:
        strides = fitting_strides(horizon, levels)
        spans = (horizon, *strides[:-1])
        assert len(strides) == levels and strides[-1] == 1 and all(a % b == 0 for a, b in zip(spans, strides))
    notes: list[str] = []
    assert model_config({}, notes).strides == (400, 20, 1) and notes == []  # the defaults fit: nothing said
    config = model_config({"observe": 10, "horizon": 30, "levels": 2}, notes)
    assert config.strides == (6, 1) and config.lags == (1, 9) and len(notes) == 2
    assert model_config({"horizon": 2000, "levels": 2}).strides == (20, 1)  # the last two defaults still fit


DYNAMICS = {"dynamics": True, "force_cutoff": 6.0, "force_radial": 8, "members": 2, "fusion_bins": 6,
            "pair_frames": 20, "force_steps": 2, "rollout_steps": 1, "rollout_frames": 3, "fusion_windows": 12,
            "max_rollout": 10}


def test_a_dynamics_level_is_fitted_fused_and_reloaded(osc_store, tmp_path):
    result = train(osc_store, tmp_path / "run", *resolve_options({**TINY, **DYNAMICS, "epochs": 0}))
    assert result.epochs == 0 and result.selected_on == "training"
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["config"]["dynamics"] and 0 <= meta["training"]["fusion"]["rollout_frames"] <= 10
    assert meta["training"]["dynamics"]["pair_r2"] <= 1.0
    forecaster = load(tmp_path / "run")
    assert forecaster.model.lead_fusion.weights.abs().sum() > 0  # fitted, reloaded with the model
    store = Store.open(osc_store)
    obs = Observation.from_trajectory(store.trajectory("t3"), store.topology, observe=48)
    assert forecaster.predict(obs, np.array([48.0, 50.5, 70.0])).shape == (3, 12, 3)
    # a paper model gains a dynamics level with --init: its hierarchy is kept as it was
    paper = _model()
    (tmp_path / "paper").mkdir()
    save_model(tmp_path / "paper", paper, dt_ps=0.1, training={}, data={}, history=[])
    config, options = resolve_options({**DYNAMICS, "epochs": 0}, init=tmp_path / "paper")
    assert config.dynamics and config.features == paper.config.features
    train(osc_store, tmp_path / "tuned", config, options, init=tmp_path / "paper")
    tuned = load(tmp_path / "tuned").model.state_dict()
    for key, value in paper.state_dict().items():
        torch.testing.assert_close(tuned[key], value)


def test_the_fusion_is_fitted_on_trajectories_the_model_was_not_fitted_on(osc_store, tmp_path):
    from oscillators import make_store

    options = {**TINY, **DYNAMICS, "epochs": 0}
    train(osc_store, tmp_path / "held", *resolve_options(options))  # holdout 1: t2 (t3 is the test split)
    fusion = json.loads((tmp_path / "held" / "model.json").read_text())["training"]["fusion"]
    assert fusion["fitted_on"] == "held-out" and fusion["trajectories"] == ["t2"]
    assert fusion["autoregression_trajectories"] == ["t0", "t1"]
    other = make_store(tmp_path / "fusion.zarr", n_traj=2, n_frames=120, seed=10)  # names t0, t1 as well
    train(osc_store, tmp_path / "given", *resolve_options({**options, "holdout": 0}), fusion_data=other)
    meta = json.loads((tmp_path / "given" / "model.json").read_text())["training"]
    assert meta["fusion"]["fitted_on"] == "fusion data" and meta["fusion"]["trajectories"] == ["t0", "t1"]
    assert meta["fusion_data"]["store"] == other and all(b["groups"] <= b["windows"] for b in meta["fusion"]["bins"])
    assert meta["fusion"]["autoregression_trajectories"] == ["t0", "t1", "t2"]
    train(osc_store, tmp_path / "alone", *resolve_options({**options, "holdout": 0}))
    fusion = json.loads((tmp_path / "alone" / "model.json").read_text())["training"]["fusion"]
    assert fusion["fitted_on"].startswith("training (in-sample") and fusion["trajectories"] == ["t0", "t1", "t2"]
    # another system's store is refused before anything is fitted, and leaves no run behind
    small = make_store(tmp_path / "small.zarr", n_traj=2, n_atoms=6, n_frames=120)
    with pytest.raises(InputError, match="--fusion-data .* 6 atoms"):
        train(osc_store, tmp_path / "bad", *resolve_options(options), fusion_data=small)
    assert not (tmp_path / "bad").exists()


def test_training_and_fusion_trajectories_share_one_frame_time(osc_store, tmp_path):
    """Lead times count frames: a store mixing frame times (or one without a time step beside one with) is
    refused, for training and as --fusion-data, before a run directory exists; within 1e-4 they are one."""
    from oscillators import oscillators, topology
    from synth import make_store

    trajs = {f"t{k}": oscillators(12, 120, seed=k) for k in range(3)}
    config, options = resolve_options({**TINY, **DYNAMICS, "epochs": 0})

    def store(name, dt=0.1, **t1):  # every trajectory `dt` ps apart, t1 as its attributes say
        return make_store(tmp_path / f"{name}.zarr", topology(12), trajs, box=20.0, dt_ps=dt, attrs={"t1": t1})

    assert train_module._load_series(store("near", dt_ps=0.1 * (1 + 5e-5)), config)[2] == 0.1
    assert train_module._load_series(store("untimed", dt=None), config)[2] is None
    for name, t1 in (("mixed", {"dt_ps": 0.2}), ("half-timed", {"dt_ps": None})):
        with pytest.raises(InputError, match="different frame times"):
            train(store(name, **t1), tmp_path / name, config, options)
        assert not (tmp_path / name).exists()
    with pytest.raises(InputError, match="--fusion-data .* every 0.2 ps"):
        train(osc_store, tmp_path / "fused", config, options, fusion_data=store("slow", dt=0.2))
    assert not (tmp_path / "fused").exists()


def test_zero_epochs_need_a_dynamics_level(osc_store, tmp_path):
    with pytest.raises(InputError, match="epochs 0 trains nothing"):
        train(osc_store, tmp_path / "a", *resolve_options({**TINY, "epochs": 0}))
