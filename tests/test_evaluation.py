"""evaluate: scores equal independent numpy computations; windows, baselines, chaos floor, JSON, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mdforecast import scores
from mdforecast.errors import InputError
from mdforecast.evaluation import SCHEMA_VERSION, evaluate
from mdforecast.forecasters import Forecaster
from mdforecast.prediction import predict
from mdforecast.store import Store
from synth import ala2, argon, make_store, random_walk, tumbling_ala2, water

OBSERVE = 20


class Oracle(Forecaster):
    """Answers the true frames, changed by ``transform`` (a test double with known error)."""

    name = "oracle"

    def __init__(self, truth: np.ndarray, transform) -> None:
        self.truth, self.transform = truth.astype(np.float64), transform

    def predict(self, observation, times):
        return self.transform(self.truth[np.asarray(times).astype(int)], times).astype(np.float32)


@pytest.fixture
def truth(tmp_path) -> Store:
    trajs = {f"t{i}": random_walk(80, 6, seed=i) for i in range(3)}
    twin_rng = np.random.default_rng(7)
    for k in range(2):  # twins: continuations of t2 from its last observed frame
        trajs[f"t2-twin{k}"] = (trajs["t2"][OBSERVE - 1] + np.cumsum(twin_rng.normal(0, 0.3, (60, 6, 3)), axis=0)
                                ).astype(np.float32)
    attrs = {f"t2-twin{k}": {"twin_of": "t2", "first_frame": OBSERVE} for k in range(2)}
    return make_store(tmp_path / "truth.zarr", argon(6), trajs, box=25.0, split=(["t0", "t1"], ["t2"]), attrs=attrs)


def noisy(truth: Store, tmp_path, **kwargs) -> tuple[str, np.ndarray]:
    x = truth.trajectory("t2").positions()
    rng = np.random.default_rng(11)
    model = Oracle(x, lambda frames, t: frames + rng.normal(0, 0.4, frames.shape))
    predict(truth, model, tmp_path / "f.zarr", observe=OBSERVE, **kwargs)
    return str(tmp_path / "f.zarr"), x


def test_mse_equals_numpy_and_baselines_skill(tmp_path, truth):
    path, x = noisy(truth, tmp_path)
    result = evaluate(path, window=["30-40"], baselines=["persistence", "mean"])
    forecast = Store.open(path).trajectory().positions(10, 20).astype(np.float64)  # frames 30..39
    w = result.windows[0]
    assert (w["window"], w["horizon"], w["frames"], w["full"]) == ([30, 40], [10, 20], 10, False)
    mse = np.mean((forecast - x[30:40]) ** 2)
    assert w["model"]["mse"] == pytest.approx(mse, rel=1e-10)
    persistence = np.mean((x[OBSERVE - 1] - x[30:40].astype(np.float64)) ** 2)
    mean = np.mean((x[:OBSERVE].astype(np.float64).mean(axis=0) - x[30:40]) ** 2)
    assert w["baselines"]["persistence"]["mse"] == pytest.approx(persistence, rel=1e-6)
    assert w["baselines"]["mean"]["mse"] == pytest.approx(mean, rel=1e-6)
    assert w["baselines"]["mean"]["skill"]["mse"] == pytest.approx(1 - mse / mean, rel=1e-6)
    train = np.concatenate([truth.trajectory(n).positions(0, OBSERVE) for n in ("t0", "t1")])
    low, high = float(train.min()), float(train.max())
    assert (result.paper_scale["low"], result.paper_scale["high"]) == (low, high)
    assert w["model"]["mse_paper"] == pytest.approx(np.mean(((forecast - x[30:40]) * 2 / (high - low)) ** 2), rel=1e-8)


def test_each_trajectory_is_scored_alone_as_well_as_pooled(tmp_path, truth):
    x1, x2 = (truth.trajectory(n).positions().astype(np.float64) for n in ("t1", "t2"))
    model = Oracle(x2, lambda frames, t: frames)  # exact on t2; on t1 it answers t2's frames
    predict(truth, model, tmp_path / "f.zarr", observe=OBSERVE, trajectories=["t1", "t2"])
    w = evaluate(tmp_path / "f.zarr", window=["30-40"], baselines=["persistence"]).windows[0]
    per = w["per_trajectory"]
    assert per["t2"]["model"] == 0.0
    assert per["t1"]["model"] == pytest.approx(np.mean((x2[30:40] - x1[30:40]) ** 2), rel=1e-6)
    assert per["t1"]["persistence"] == pytest.approx(np.mean((x1[OBSERVE - 1] - x1[30:40]) ** 2), rel=1e-6)
    assert w["model"]["mse"] == pytest.approx((per["t1"]["model"] + per["t2"]["model"]) / 2, rel=1e-10)


def test_persistence_mse_equals_the_msd(tmp_path):
    # uniform motion: the displacement after τ frames is v·τ exactly, so MSD(τ) = <|v|²> τ²
    rng = np.random.default_rng(0)
    v = rng.normal(0, 0.2, (6, 3))
    x = (rng.uniform(0, 10, (6, 3)) + np.arange(60)[:, None, None] * v).astype(np.float32)
    truth = make_store(tmp_path / "t.zarr", argon(6), {"a": x}, box=30.0)
    predict(truth, "persistence", tmp_path / "f.zarr", observe=OBSERVE)
    result = evaluate(tmp_path / "f.zarr", horizon=["5-15"], baselines=[])
    tau = np.arange(25, 35) - (OBSERVE - 1)
    msd = np.mean(np.sum(v.astype(np.float64) ** 2, axis=1)) * np.mean(tau ** 2.0)
    assert result.windows[0]["model"]["mse"] == pytest.approx(msd / 3, rel=1e-4)  # MSE is per coordinate


def test_window_and_horizon_namings_give_the_same_scores(tmp_path, truth):
    path, _ = noisy(truth, tmp_path)
    by_window = evaluate(path, window=["50-60"], baselines=["persistence"]).to_dict()["windows"]
    by_horizon = evaluate(path, horizon=["30-40"], baselines=["persistence"]).to_dict()["windows"]
    assert by_window == by_horizon
    assert by_window[0]["label"] == "50-60 (horizon 30-40)"


def test_chaos_floor_from_twins(tmp_path, truth):
    path, x = noisy(truth, tmp_path)
    result = evaluate(path, window=["40-50"], baselines=[])
    twins = [truth.trajectory(f"t2-twin{k}").positions(20, 30).astype(np.float64) for k in range(2)]
    expected = np.mean([np.mean((t - x[40:50]) ** 2) for t in twins]) / 2
    floor = result.windows[0]["chaos_floor"]
    assert floor["mse"] == pytest.approx(expected, rel=1e-10) and floor["frames"] == 10


def test_default_windows_and_full(tmp_path, truth):
    path, _ = noisy(truth, tmp_path)  # frames 20..79: horizons 0-60
    result = evaluate(path, baselines=[])
    assert [(w["horizon"], w["full"]) for w in result.windows] == [([0, 20], False), ([0, 60], True)]
    assert result.windows[1]["frames"] == 60
    kept = evaluate(path, baselines=[], full=True)  # --full alone keeps the default windows
    assert [(w["horizon"], w["full"]) for w in kept.windows] == [([0, 20], False), ([0, 60], True)]
    only = evaluate(path, baselines=[], horizon=["0-10"], full=True)
    assert [(w["horizon"], w["full"]) for w in only.windows] == [([0, 10], False), ([0, 60], True)]


def test_non_integer_frames_are_not_scored(tmp_path, truth):
    path, _ = noisy(truth, tmp_path, times="20:40:0.5")
    result = evaluate(path, full=True, baselines=[])
    assert result.windows[-1]["frames"] == 20  # the 20 whole frames of 40 forecast times


def test_systems_without_box_are_centred_and_superposed(tmp_path):
    x = random_walk(40, 5, seed=4)
    truth = make_store(tmp_path / "t.zarr", argon(5), {"a": x})
    rot = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    shift = Oracle(x, lambda f, t: f + np.array([3.0, -1.0, 2.0]))
    turn = Oracle(x, lambda f, t: f @ rot.T)
    for name, model in (("shift", shift), ("turn", turn)):
        predict(truth, model, tmp_path / f"{name}.zarr", observe=OBSERVE)
    shifted = evaluate(tmp_path / "shift.zarr", full=True, baselines=[]).windows[-1]["model"]
    turned = evaluate(tmp_path / "turn.zarr", full=True, baselines=[]).windows[-1]["model"]
    assert shifted["mse"] == pytest.approx(0, abs=1e-10) and shifted["mse_kabsch"] == pytest.approx(0, abs=1e-8)
    assert turned["mse"] > 1.0 and turned["mse_kabsch"] == pytest.approx(0, abs=1e-8)


def test_json_document_schema(tmp_path, truth):
    path, _ = noisy(truth, tmp_path)
    doc = json.loads(json.dumps(evaluate(path, window=["30-40"], full=True, physics=True).to_dict()))
    assert set(doc) == {"schema_version", "forecast", "truth", "model", "trajectories", "observed", "centred",
                        "metrics", "paper_scale", "windows", "physics_kind", "dt_ps", "twins", "notes",
                        "geometry_warnings"}
    assert doc["dt_ps"] == pytest.approx(0.1) and doc["twins"] == 2 and doc["notes"][0].startswith("chaos floor: ")
    assert doc["schema_version"] == SCHEMA_VERSION and doc["metrics"] == ["mse"] and doc["observed"] == [0, OBSERVE]
    assert set(doc["paper_scale"]) == {"low", "high", "factor", "source"}
    for w in doc["windows"]:
        assert set(w) == {"label", "window", "horizon", "full", "frames", "model", "baselines", "chaos_floor",
                          "physics", "horizon_ps", "verdict", "per_trajectory"}
        assert w["horizon_ps"] == pytest.approx([h * 0.1 for h in w["horizon"]]) and w["verdict"].startswith("oracle is")
        assert set(w["model"]) == {"mse", "mse_paper"}
        assert list(w["baselines"]) == ["persistence", "mean", "velocity", "damped-velocity", "linear-ar"]
        assert set(w["baselines"]["persistence"]) == {"mse", "mse_paper", "skill"}
        assert set(w["chaos_floor"]) == {"mse", "mse_paper", "frames"}
        assert set(w["physics"]) == {"g_r", "msd_from_last_observed"}


def test_bad_inputs(tmp_path, truth):
    path, _ = noisy(truth, tmp_path)
    with pytest.raises(InputError, match="outside the scoreable forecast frames"):
        evaluate(path, window=["70-90"])
    with pytest.raises(InputError, match="outside the scoreable forecast frames"):
        evaluate(path, horizon=["0-5"], window=["5-15"])  # inside the observation
    waters = make_store(tmp_path / "w.zarr", water(2), {"t2": random_walk(80, 6)}, box=10.0)
    with pytest.raises(InputError, match="different systems"):
        evaluate(path, truth=waters)
    other = make_store(tmp_path / "o.zarr", argon(6), {"x": random_walk(80, 6)}, box=25.0)
    with pytest.raises(InputError, match="has no trajectory 't2'"):
        evaluate(path, truth=other)
    with pytest.raises(InputError, match="not a forecast"):
        evaluate(truth)
    with pytest.raises(InputError, match="unknown model 'nope'"):
        evaluate(path, baselines=["nope"])
    with pytest.raises(InputError, match="A-B"):
        evaluate(path, window=["40"])
    with pytest.raises(InputError, match="twice or reserved"):
        evaluate(path, baselines=["mean", "mean"])


def test_checkpoint_baseline_with_a_label(tmp_path, truth, monkeypatch):
    import mdforecast.forecasters.domino as domino
    from mdforecast.forecasters.baselines import Persistence

    monkeypatch.setattr(domino, "load", lambda path: Persistence())  # a stand-in for a trained LG-ODE run directory
    (tmp_path / "lgode-run").mkdir()
    path, _ = noisy(truth, tmp_path)
    w = evaluate(path, window=["30-40"], baselines=["persistence", f"lgode:{tmp_path / 'lgode-run'}"]).windows[0]
    assert list(w["baselines"]) == ["persistence", "lgode"]
    assert w["baselines"]["lgode"]["mse"] == w["baselines"]["persistence"]["mse"]


def test_missing_recorded_truth_asks_for_truth(tmp_path, truth):
    path, _ = noisy(truth, tmp_path)
    moved = tmp_path / "elsewhere.zarr"
    (tmp_path / "truth.zarr").rename(moved)
    with pytest.raises(InputError, match="pass --truth STORE"):
        evaluate(path)
    assert evaluate(path, truth=moved, window=["30-40"], baselines=[]).windows[0]["frames"] == 10


def test_sparse_forecast_windows_reach_its_end(tmp_path, truth):
    path, x = noisy(truth, tmp_path, every=10)  # frames 20, 30, …, 70: the forecast covers [20, 80)
    w = evaluate(path, window=["60-80"], baselines=[]).windows[0]
    forecast = Store.open(path).trajectory().positions(4, 6).astype(np.float64)  # frames 60 and 70
    assert w["frames"] == 2 and w["model"]["mse"] == pytest.approx(np.mean((forecast - x[[60, 70]]) ** 2))
    with pytest.raises(InputError, match="outside"):
        evaluate(path, window=["70-90"], baselines=[])


def test_physics_of_an_exact_sparse_forecast_reads_the_same_frames_as_the_truth(tmp_path, truth):
    x = truth.trajectory("t2").positions().astype(np.float64)
    predict(truth, Oracle(x, lambda f, t: f), tmp_path / "e.zarr", observe=OBSERVE, every=3)  # frames 20, 23, …
    physics = evaluate(tmp_path / "e.zarr", window=["30-80"], baselines=[], physics=True).windows[0]["physics"]
    frames = np.arange(32, 80, 3)
    msd = np.mean(np.sum((x[frames] - x[OBSERVE - 1]) ** 2, axis=-1))
    assert physics["msd_from_last_observed"]["forecast"] == pytest.approx(msd, rel=1e-6)
    assert physics["msd_from_last_observed"]["truth"] == pytest.approx(msd, rel=1e-6)
    assert physics["g_r"]["rms_difference"] == 0.0


@pytest.fixture
def molecule(tmp_path) -> tuple[Store, np.ndarray]:
    x = tumbling_ala2(60, seed=2)
    trajs = {"a": tumbling_ala2(60, seed=1), "b": x}
    return make_store(tmp_path / "m.zarr", ala2(), trajs, dt_ps=1.0, split=(["a"], ["b"])), x


def test_kabsch_skill_is_exact_and_a_collapsed_forecast_is_warned_about(tmp_path, molecule):
    truth, x = molecule
    centre = lambda f: f.mean(axis=1, keepdims=True)  # noqa: E731
    predict(truth, Oracle(x, lambda f, t: centre(f) + 0.2 * (f - centre(f))), tmp_path / "c.zarr", observe=OBSERVE)
    result = evaluate(tmp_path / "c.zarr", window=["30-40"], baselines=["persistence"])
    w = result.windows[0]
    forecast = Store.open(tmp_path / "c.zarr").trajectory().positions(10, 20)
    model = scores.kabsch_mse_per_frame(forecast, x[30:40]).mean()
    persistence = scores.kabsch_mse_per_frame(np.repeat(x[OBSERVE - 1:OBSERVE], 10, axis=0), x[30:40]).mean()
    assert w["model"]["mse_kabsch"] == pytest.approx(model, rel=1e-9)
    assert w["baselines"]["persistence"]["skill"]["mse_kabsch"] == pytest.approx(1 - model / persistence, rel=1e-6)
    assert len(result.geometry_warnings) == 2 and "bond lengths are off" in result.geometry_warnings[0]
    assert "overlap" in result.geometry_warnings[1]
    predict(truth, "persistence", tmp_path / "p.zarr", observe=OBSERVE)
    assert evaluate(tmp_path / "p.zarr", full=True, baselines=[]).geometry_warnings == []
    predict(truth, Oracle(x, lambda f, t: f), tmp_path / "t.zarr", observe=OBSERVE)
    assert evaluate(tmp_path / "t.zarr", full=True, baselines=[]).geometry_warnings == []
