"""Pretrained models: every shipped weight forecasts on the CPU; the registry, ``mdforecast models`` and
``--model NAME`` work, exercised with a tiny model trained here and registered in a temporary directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mdforecast.errors import InputError
from mdforecast.evaluation import evaluate
from mdforecast.forecasters import Observation, load_forecaster, load_pretrained
from mdforecast.prediction import predict
from mdforecast.pretrained import PRETRAINED, discover, embedded_truth, list_models
from mdforecast.pretrained import ROOT as PRETRAINED_ROOT
from mdforecast.pretrained.sample import embed_truth
from mdforecast.store import Store, writing
from mdforecast.topology import Topology
from mdforecast.training import resolve_options, train
import benchmark_scripts
from synth import argon, make_store

torch.set_num_threads(1)  # tiny tensors; the test machine's cores are shared
BOX = 12.0  # Å
TINY = {"observe": 16, "horizon": 24, "strides": (6, 1), "features": 8, "vectors": 4, "encoder_layers": 1,
        "radial": 4, "steps": 2, "lags": (1, 4), "context": 16, "cutoff": 5.0, "checkpoint": False, "batch": 4,
        "samples_per_epoch": 8, "segments": 1, "max_outputs": 4, "val_samples": 4, "epochs": 1, "seed": 0}


def _argon_store(path: Path, n_atoms: int = 8, n_frames: int = 60) -> str:
    """3 random-walk argon trajectories (train t0, t1; test t2) in a cubic box of ``BOX`` Å, 0.1 ps frames."""
    trajectories = {}
    for k in range(3):
        rng = np.random.default_rng(k)
        start = rng.uniform(0, BOX, (n_atoms, 3))
        trajectories[f"t{k}"] = (start + np.cumsum(rng.normal(0, 0.2, (n_frames, n_atoms, 3)), 0)).astype(np.float32)
    make_store(path, argon(n_atoms), trajectories, box=BOX, split=(["t0", "t1"], ["t2"]))
    return str(path)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[str, Path]:
    """A store and a DoMiNO run directory (2 levels, one epoch) trained on it."""
    root = tmp_path_factory.mktemp("tiny")
    store = _argon_store(root / "argon.zarr")
    train(store, root / "run", *resolve_options(TINY))
    return store, root / "run"


@pytest.fixture
def registered(tiny_run, tmp_path, monkeypatch) -> Path:
    """The tiny model registered as pretrained model ``toy`` (a temporary package directory)."""
    directory = tmp_path / "pretrained" / "toy"
    directory.mkdir(parents=True)
    for name in ("model.json", "model.safetensors"):
        shutil.copyfile(tiny_run[1] / name, directory / name)
    (directory / "card.json").write_text(json.dumps({"system": "argon-test", "atoms": 8, "scale": "test",
                                                     "full_domain_mse": 1.5}))
    monkeypatch.setitem(PRETRAINED, "toy", directory)
    return directory


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_every_shipped_model_loads_and_forecasts_a_few_frames_on_the_cpu(name):
    """Runs once per shipped weight (none yet): a synthetic observation of the card's atom count and box."""
    forecaster = load_forecaster(name)
    card = json.loads((PRETRAINED[name] / "card.json").read_text())
    kinds = forecaster.model.kinds
    n_atoms, box = card["atoms"], card.get("box")
    types = np.array([kinds[i % len(kinds)] for i in range(n_atoms)])
    # a model that keeps bond lengths (conformations) needs bonds: those of its shipped sample
    bonds = Store.open(embedded_truth(name)).topology.bonds if forecaster.model.config.conformations else None
    topology = Topology(names=types, resnames=types, resids=np.arange(1, n_atoms + 1), types=types, elements=types,
                        bonds=bonds)
    forecaster.check(topology, forecaster.dt_ps)
    rng = np.random.default_rng(0)
    edge = box[0] if box else 3.0 * n_atoms ** (1 / 3)
    start = rng.uniform(0, edge, (n_atoms, 3))
    positions = (start + np.cumsum(rng.normal(0, 0.1, (forecaster.observe, n_atoms, 3)), 0)).astype(np.float32)
    boxes = None if not box else np.tile(np.asarray(box, np.float32), (forecaster.observe, 1))
    observation = Observation(positions, topology, dt_ps=0.1, boxes=boxes)
    times = observation.end + np.array([0.0, 1.0, 2.0, forecaster.horizon - 1.0])
    out = forecaster.predict(observation, times)
    assert out.shape == (4, n_atoms, 3) and np.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(n for n in PRETRAINED if embedded_truth(n)))
def test_every_shipped_truth_sample_forecasts_and_scores_with_no_other_input(name, tmp_path):
    """The design card's example on each shipped model, cut to the first window: predict, then evaluate."""
    out = tmp_path / "forecast.zarr"
    observe = load_forecaster(name).observe
    result = predict(None, name, out, times=f"{observe}:{observe + 20}")
    assert result.truth == str(Path(embedded_truth(name)).resolve()) and result.frames == 20
    scores = evaluate(out, window=[f"{observe}-{observe + 20}"])
    window = scores.windows[0]
    assert window["frames"] == 20 * len(scores.trajectories) and np.isfinite(window["model"]["mse"])
    twins = json.loads((PRETRAINED[name] / "card.json").read_text())["data"]["twins"]
    assert (window["chaos_floor"] is not None) == (twins > 0)  # the sample keeps the twins
    assert scores.paper_scale["source"].endswith("training trajectories")


def _with_twin(store: str) -> str:
    """Add ``t2-twin1``, a perturbed continuation of test trajectory t2 from its frame 15."""
    source = Store.open(store).trajectory("t2")
    positions = source.positions(15) + np.random.default_rng(9).normal(0, 0.05, (45, 8, 3)).astype(np.float32)
    with writing(store, topology=Store.open(store).topology, mode="append") as out:
        with out.add_trajectory("t2-twin1", velocities=False, box=(3,),
                                attrs={"dt_ps": 0.1, "twin_of": "t2", "first_frame": 15}) as w:
            w.append(positions, source.times(15), source.steps(15), boxes=source.boxes(15))
    return store


def test_a_truth_sample_scores_exactly_what_the_whole_truth_scores_on_its_frames(tmp_path):
    store = _with_twin(_argon_store(tmp_path / "argon.zarr"))
    frames = embed_truth(store, "t2", tmp_path / "sample.zarr", observe=16, stride=5)
    assert frames == [*range(16), *range(16, 36), 36, 41, 46, 51, 56]  # observed, window 0-20, every 5th after
    sample = Store.open(tmp_path / "sample.zarr")
    assert sample.trajectory("t2").span == 57 and sample.trajectory("t2").n_frames == len(frames)
    np.testing.assert_array_equal(sample.trajectory("t2-twin1").frame_index(), np.array(frames[15:]) - 15)
    predict(store, "persistence", tmp_path / "f.zarr", observe=16)
    baselines = ["persistence", "mean", "velocity"]
    whole = evaluate(tmp_path / "f.zarr", window=["16-36", "46-47"], full=True, baselines=baselines)
    part = evaluate(tmp_path / "f.zarr", truth=tmp_path / "sample.zarr", window=["16-36", "46-47"], full=True,
                    baselines=baselines)
    assert part.paper_scale == whole.paper_scale  # taken from the training trajectories, stored with the sample
    for w_whole, w_part in zip(whole.windows[:2], part.windows[:2]):
        assert w_part["frames"] == w_whole["frames"]
        assert w_part["model"] == w_whole["model"] and w_part["baselines"] == w_whole["baselines"]
        assert w_whole["chaos_floor"] is not None and w_part["chaos_floor"] == w_whole["chaos_floor"]
    assert part.windows[2]["full"] and part.windows[2]["frames"] == len(frames) - 16  # only the sampled frames
    truth, forecast = Store.open(store).trajectory("t2"), Store.open(tmp_path / "f.zarr").trajectory("t2")
    kept = np.array(frames[16:])
    expected = ((forecast.positions()[kept - 16] - truth.positions()[kept]) ** 2).mean()
    assert part.windows[2]["model"]["mse"] == pytest.approx(expected, rel=1e-6)
    with pytest.raises(InputError, match="does not hold every frame"):
        Observation.from_trajectory(sample.trajectory("t2-twin1"), sample.topology, observe=25)


def test_predict_without_store_or_model_uses_the_default_model_and_its_truth_sample(cli, tiny_run, registered,
                                                                                    tmp_path, monkeypatch, capsys):
    import mdforecast.prediction as predict_module

    embed_truth(tiny_run[0], "t2", registered / "truth.zarr", observe=16)
    monkeypatch.setattr(predict_module, "DEFAULT", "toy")
    monkeypatch.chdir(tmp_path)
    assert cli.code("predict", "--until", "40", "--quiet") == 0
    forecast = Store.open("forecast.zarr")
    assert forecast.attrs["forecast"]["truth"] == str((registered / "truth.zarr").resolve())
    assert forecast.attrs["forecast"]["model"]["pretrained"] == "toy"
    expected = predict(tiny_run[0], "toy", tmp_path / "direct.zarr", until=40)
    np.testing.assert_array_equal(forecast.trajectory("t2").positions(),
                                  Store.open(expected.output).trajectory("t2").positions())
    # a forecast made elsewhere: its recorded truth path is gone, the pretrained name still finds the sample
    moved = Store.open("forecast.zarr", mode="r+")
    moved.update_attrs(forecast={**moved.attrs["forecast"], "truth": "/elsewhere/truth.zarr"})
    capsys.readouterr()
    assert cli.code("evaluate", "--window", "16-36", "--json", "--quiet") == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["truth"] == str(registered / "truth.zarr") and scores["windows"][0]["frames"] == 20
    assert cli.code("predict", tiny_run[0], "--until", "40", "-o", "x.zarr", "--quiet") == 2
    assert "--model" in capsys.readouterr().err and not Path("x.zarr").exists()
    with pytest.raises(InputError, match="give --model to forecast a STORE"):
        predict(tiny_run[0], None, tmp_path / "y.zarr")


def test_registry_discovers_only_complete_model_directories(registered, tmp_path):
    (tmp_path / "pretrained" / "incomplete").mkdir()
    shutil.copyfile(registered / "model.json", tmp_path / "pretrained" / "incomplete" / "model.json")  # no card
    assert discover(tmp_path / "pretrained") == {"toy": registered}


def test_no_shipped_model_directory_lacks_its_card():
    """A model directory in the package without ``card.json`` (or ``model.json``) would be silently invisible."""
    shipped = {p.parent for pattern in ("*/model.json", "*/model.safetensors", "*/card.json")
               for p in PRETRAINED_ROOT.glob(pattern)}
    assert shipped == set(discover(PRETRAINED_ROOT).values())


def test_predict_with_a_pretrained_name_equals_the_run_directory(cli, tiny_run, registered, tmp_path):
    store, run = tiny_run
    by_name = predict(store, "toy", tmp_path / "a.zarr", until=40)
    by_path = predict(store, str(run), tmp_path / "b.zarr", until=40)
    assert by_name.frames == by_path.frames == 24
    a, b = Store.open(tmp_path / "a.zarr"), Store.open(tmp_path / "b.zarr")
    np.testing.assert_array_equal(a.trajectory("t2").positions(), b.trajectory("t2").positions())
    provenance = a.attrs["forecast"]["model"]
    assert provenance["pretrained"] == "toy" and provenance["checkpoint"] == str(registered / "model.safetensors")
    assert provenance["checkpoint_sha256"] != b.attrs["forecast"]["model"]["checkpoint_sha256"]  # card.json counts
    assert cli.code("predict", store, "-m", "toy", "-o", str(tmp_path / "c.zarr"), "--quiet") == 0


def test_unknown_model_lists_baselines_and_pretrained_names(registered, monkeypatch):
    with pytest.raises(InputError, match=r"unknown model 'nope'; choose from persistence, .* toy \(pretrained\)"):
        load_forecaster("nope")
    monkeypatch.delitem(PRETRAINED, "toy")
    for name in list(PRETRAINED):
        monkeypatch.delitem(PRETRAINED, name)
    with pytest.raises(InputError, match=r"none shipped yet \(pretrained\)"):
        load_forecaster("nope")


def test_corrupt_pretrained_weights_are_refused_in_one_line(cli, tiny_run, registered, tmp_path, capsys):
    weights = registered / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + bytes(8))
    with pytest.raises(InputError, match="does not match the SHA-256"):
        load_pretrained("toy")
    assert cli.code("predict", tiny_run[0], "-m", "toy", "-o", str(tmp_path / "f.zarr"), "--quiet") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "reinstall mdforecast" in err and not (tmp_path / "f.zarr").exists()


def test_models_list_and_show(cli, registered, capsys):
    assert cli.code("models", "list", "--json") == 0
    rows = [m for m in json.loads(capsys.readouterr().out)["models"] if m["name"] == "toy"]
    assert len(rows) == 1
    assert rows[0] | {"path": None} == {"name": "toy", "system": "argon-test", "model": "domino", "atoms": 8,
                                         "observe": 16, "horizon": 24, "levels": 2, "scale": "test",
                                         "full_domain_mse": 1.5, "path": None}
    assert cli.code("models", "list") == 0
    assert "toy" in capsys.readouterr().out
    assert cli.code("models", "show", "toy", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["card"]["system"] == "argon-test" and info["model"]["config"]["strides"] == [6, 1]
    assert info["model"]["weights_sha256"] == json.loads((registered / "model.json").read_text())["weights_sha256"]
    assert cli.code("models", "show", "toy") == 0
    out = capsys.readouterr().out
    assert "toy: DoMiNO (2 levels, strides 6,1 frames) for argon-test, 8 atoms" in out
    assert "observes 16 frames" in out and "records no test scores" in out
    assert cli.code("models", "show", "nope") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown pretrained model 'nope'" in err and "toy" in err


def test_models_list_says_none_are_shipped_and_how_to_make_them(cli, monkeypatch, capsys):
    for name in list(PRETRAINED):
        monkeypatch.delitem(PRETRAINED, name)
    assert list_models().models == []
    assert cli.code("models", "list") == 0
    out = capsys.readouterr().out
    assert "no pretrained models are shipped yet" in out and "benchmarks/pretrain.py" in out
    assert cli.code("models", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out)["models"] == []


def test_pretrain_plan_records_every_reduction_from_the_protocol():
    pretrain = benchmark_scripts.load("pretrain")
    assert pretrain.plan("lj", "protocol", "cuda")["reductions"] == {}
    assert pretrain.plan("ala2", "protocol", "cuda")["data"] == {"trajectories": 3, "frames": 10000, "twins": 2}
    tiny = pretrain.plan("lj", "tiny", "cpu")
    assert tiny["reductions"]["frames"] == {"protocol": 10000, "used": 1500}
    assert tiny["reductions"]["option features"] == {"protocol": 64, "used": 16}
    assert tiny["reductions"]["option cutoff"] == {"protocol": 8.5, "used": 6.0}
    assert tiny["models"]["lgode"]["options"]["levels"] == 1 and tiny["models"]["domino"]["options"]["levels"] == 3
    longer = pretrain.plan("ala2", "cpu-small", "cpu", epochs=100)
    assert longer["reductions"]["option epochs"] == {"protocol": 50, "used": 100}
    assert longer["models"]["lgode"]["options"]["epochs"] == 100


def test_pretrain_plan_gives_the_fusion_trajectories_of_its_own_where_the_scale_asks(tiny_run):
    """cpu-water-fusion and cpu-dynamics fit the fusion on trajectories simulated with other seeds (stage
    fusion-data); cpu-water keeps it on the held-out training trajectory, and the note says which."""
    pretrain = benchmark_scripts.load("pretrain")
    fused = pretrain.plan("tip4p", "cpu-water-fusion", "cpu", init=tiny_run[1])
    water = pretrain.plan("tip4p", "cpu-water", "cpu", init=tiny_run[1])
    assert fused["models"]["domino"]["fusion_data"] == {"trajectories": 2, "seed_offset": pretrain.FUSION_SEED}
    assert "fusion_data" not in water["models"]["domino"]
    assert {k: v for k, v in fused["models"]["domino"].items() if k != "fusion_data"} == water["models"]["domino"]
    assert "2 trajectories" in pretrain.SCALES["cpu-water-fusion"]["note"]
    assert "16 windows of traj1" in pretrain.SCALES["cpu-water"]["note"]
    assert pretrain.plan("lj", "cpu-dynamics", "cpu", init=tiny_run[1])["models"]["domino"]["fusion_data"][
        "trajectories"] == 16
    assert "96 windows of 16 trajectories" in pretrain.SCALES["cpu-dynamics"]["note"]
    # the reductions are the model card's, so they name DoMiNO's preset and options, not the scale's LG-ODE ones
    assert water["reductions"]["preset"]["used"] == "cpu-water" and water["models"]["lgode"]["preset"] == "cpu-small"
    assert water["reductions"]["option rigid_water"]["used"] is True


def test_pretrain_ship_writes_a_discoverable_model_and_refuses_tiny_runs(tiny_run, tmp_path):
    pretrain = benchmark_scripts.load("pretrain")
    root = tmp_path / "out" / "argon"
    shutil.copytree(tiny_run[1], root / "runs" / "domino")
    shutil.copytree(tiny_run[0], root / "argon.zarr")
    trained = {"epochs": 1, "best_epoch": 1, "best_loss": 1.0, "selected_on": "validation", "wall_s": 1.0}
    rows = [{"window": "16-36 (horizon 0-20)", "frames": 20, "model": 2.0},
            {"window": "full 16-40", "frames": 24, "model": 3.0}]
    record = {"system": "argon", "scale": "cpu-small", "seed": 0, "reductions": {}, "hardware": {},
              "mdforecast": "0", "data": {"trajectories": 3}, "finished": "now",
              "models": {"domino": {"preset": "cpu-small"}},
              "stages": {"data": {"n_atoms": 8, "split": {}, "platform": "CPU"}, "train-domino": trained,
                         "train-lgode": trained, "evaluate-domino": {"mse": rows},
                         "fresh": {"seed": 1000, "trajectory": ["traj1"], "mse": rows}}}
    (root / "pretrain.json").write_text(json.dumps(record))
    target = pretrain.ship(root, tmp_path / "pkg" / "argon")
    assert discover(tmp_path / "pkg") == {"argon": target}
    card = json.loads((target / "card.json").read_text())
    assert card["full_domain_mse"] == 3.0 and card["atoms"] == 8 and card["config"]["strides"] == [6, 1]
    assert card["box"] == [BOX] * 3 and card["fresh"]["seed"] == 1000
    assert card["truth"] == {"file": "truth.zarr", "trajectory": "t2", "frames": 16 + 20 + 2, "stride": 20, "twins": 0}
    assert Store.open(target / "truth.zarr").trajectory("t2").frame_index()[-1] == 56
    (root / "pretrain.json").write_text(json.dumps({**record, "scale": "tiny"}))
    with pytest.raises(SystemExit, match="tiny"):
        pretrain.ship(root, tmp_path / "pkg" / "again")


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_models_show_is_a_readable_card_without_build_paths(cli, name, capsys):
    assert cli.code("models", "show", name) == 0
    out = capsys.readouterr().out
    card = json.loads((PRETRAINED[name] / "card.json").read_text())
    assert "/work/pretrain" not in out and "trained on: " in out and "fit for: " in out
    assert "below persistence" in out or "behind persistence" in out
    assert repr(card["scores"][0]["persistence"]) in out  # a pipe gets every digit
    assert cli.code("models", "show", name, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert "/work/pretrain" not in json.dumps(doc) and doc["card"]["scores"] == card["scores"]
    assert doc["model"]["data"]["store"] == f"{name}.zarr" and len(doc["readable"]["verdicts"]) == len(card["scores"])


def test_a_card_with_conformation_scores_judges_the_conformation_and_keeps_the_centred_mse(cli, capsys):
    from mdforecast.pretrained import model_info
    from mdforecast.pretrained.card import readable_card

    info = model_info("ala2")
    rows = info["card"]["scores"]
    assert all(row.get("kabsch") for row in rows)
    card = readable_card(info)
    assert card["metric"] == "mse_kabsch" and "Scored as a conformation" in card["fit_for"]
    first = card["windows"][0]
    assert first["model"]["mse"] == rows[0]["kabsch"]["model"]
    assert first["baselines"]["persistence"]["skill"]["mse"] == 1 - rows[0]["kabsch"]["model"] / rows[0]["kabsch"]["persistence"]
    assert card["centred"][0]["model"]["mse"] == rows[0]["model"]
    assert all("in MSE after superposition over" in v for v in card["verdicts"])
    without = readable_card({**info, "card": {**info["card"], "scores": [
        {k: v for k, v in row.items() if k != "kabsch"} for row in rows]}})
    assert without["metric"] == "mse" and without["centred"] is None and without["windows"][0]["model"]["mse"] == rows[0]["model"]
    assert cli.code("models", "show", "ala2") == 0
    out = capsys.readouterr().out
    assert "after optimal superposition" in out and "centred positions" in out
