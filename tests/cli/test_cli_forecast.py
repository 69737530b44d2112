"""The predict and evaluate commands: stdout/stderr discipline, JSON, plots, exit codes."""

from __future__ import annotations

import json

import pytest

from synth import argon, make_store, random_walk


@pytest.fixture
def truth(tmp_path) -> str:
    trajs = {f"t{i}": random_walk(60, 5, seed=i) for i in range(3)}
    make_store(tmp_path / "truth.zarr", argon(5), trajs, box=15.0, split=(["t0", "t1"], ["t2"]))
    return str(tmp_path / "truth.zarr")


def test_predict_then_evaluate_json(cli, tmp_path, truth, capsys):
    forecast = str(tmp_path / "f.zarr")
    assert cli.code("predict", truth, "-m", "damped-velocity", "--until", "5ps", "--observe", "20", "-o", forecast,
                "--json", "--quiet") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["frames"] == 30 and err == ""
    assert cli.code("evaluate", forecast, "--horizon", "0-10", "--window", "40-50", "--json", "--quiet") == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert [w["label"] for w in doc["windows"]] == ["20-30 (horizon 0-10)", "40-50 (horizon 20-30)"]
    assert err == ""


def test_evaluate_table_and_plots(cli, tmp_path, truth, capsys):
    forecast = str(tmp_path / "f.zarr")
    assert cli.code("predict", truth, "-m", "persistence", "--observe", "20", "-o", forecast, "-q") == 0
    capsys.readouterr()
    plot = tmp_path / "mse.png"
    assert cli.code("evaluate", forecast, "--full", "--physics", "--plot", str(plot), "--baselines", "mean,velocity") == 0
    out, err = capsys.readouterr()
    assert "persistence forecast of t2" in out and "velocity" in out and "physics (liquid)" in out
    assert f"wrote {plot}" in err
    for path in (plot, tmp_path / "mse-physics.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_to_stdout(cli, tmp_path, truth, capsysbinary):
    forecast = str(tmp_path / "f.zarr")
    assert cli.code("predict", truth, "-m", "mean", "--observe", "20", "-o", forecast, "-q") == 0
    capsysbinary.readouterr()
    assert cli.code("evaluate", forecast, "--plot", "-", "-q") == 0
    assert capsysbinary.readouterr().out[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("argv, code, message", [
    (["predict", "{truth}", "-m", "nope", "-o", "{tmp}/f.zarr"], 1, "unknown model 'nope'"),
    (["predict", "{truth}", "-m", "mean", "-o", "{tmp}/f.zarr", "--until", "soon"], 1, "is not a time"),
    (["predict", "{truth}", "-o", "{tmp}/f.zarr"], 2, "--model"),
    (["evaluate", "{tmp}/missing.zarr"], 1, "does not exist"),
    (["evaluate", "{truth}"], 1, "not a forecast"),
])
def test_bad_input_exits_non_zero_with_one_line(cli, tmp_path, truth, capsys, argv, code, message):
    assert cli.code(*[a.format(truth=truth, tmp=tmp_path) for a in argv]) == code
    out, err = capsys.readouterr()
    assert message in err and out == ""
    if code == 1:
        assert err.count("\n") == 1 and err.startswith("error: ")


@pytest.fixture
def twinned(tmp_path) -> str:
    """Like ``truth``, plus one twin of the test trajectory t2 from its last observed frame (19)."""
    import numpy as np

    trajs = {f"t{i}": random_walk(60, 5, seed=i) for i in range(3)}
    steps = np.random.default_rng(9).normal(0, 0.3, (40, 5, 3))
    trajs["t2-twin"] = (trajs["t2"][19] + np.cumsum(steps, axis=0)).astype(np.float32)
    make_store(tmp_path / "twinned.zarr", argon(5), trajs, box=15.0, split=(["t0", "t1"], ["t2"]),
               attrs={"t2-twin": {"twin_of": "t2", "first_frame": 20}})
    return str(tmp_path / "twinned.zarr")


def test_evaluate_speaks_a_verdict_per_window_with_ps(cli, tmp_path, twinned):
    forecast = str(tmp_path / "f.zarr")
    assert cli("predict", twinned, "-m", "mean", "--observe", "20", "-o", forecast, "-q")[0] == 0
    code, out, _ = cli("evaluate", forecast, "--horizon", "0-10", "--full", "--baselines", "persistence", "--json", "-q")
    doc = json.loads(out)
    assert doc["schema_version"] == 1 and doc["dt_ps"] == pytest.approx(0.1) and doc["twins"] == 1
    for w in doc["windows"]:  # the old keys stay; horizon_ps and verdict are new
        assert {"label", "window", "horizon", "full", "frames", "model", "baselines", "chaos_floor"} <= set(w)
    first, full = doc["windows"]
    assert first["horizon_ps"] == pytest.approx([0.0, 1.0]) and full["horizon_ps"] == pytest.approx([0.0, 4.0])
    skill = first["baselines"]["persistence"]["skill"]["mse"]
    words = f"{abs(skill) * 100:.0f} % below persistence" if skill > 0 else "behind persistence by"
    assert first["verdict"].startswith(f"mean is {words}") and first["verdict"].endswith("over frames 20–30 (0–1 ps)")
    assert "half the MSE between the truth and one twin run" in doc["notes"][0]
    code, out, _ = cli("evaluate", forecast, "--horizon", "0-10", "--full", "--baselines", "persistence", "-q")
    lines = out.splitlines()
    assert code == 0 and first["verdict"] in lines and full["verdict"] in lines and doc["notes"][0] in lines
    assert "0-10 (0–1)" in out


def test_evaluate_table_in_a_pipe_is_never_cut(cli, tmp_path, truth, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    forecast = str(tmp_path / "a-forecast-with-a-long-name.zarr")
    assert cli("predict", truth, "-m", "damped-velocity", "--observe", "20", "-o", forecast, "-q")[0] == 0
    code, out, _ = cli("evaluate", forecast, "--physics", "-q")
    assert code == 0 and "…" not in out
    _, doc, _ = cli("evaluate", forecast, "--physics", "--json", "-q")
    doc = json.loads(doc)
    for w in doc["windows"]:  # every digit of every number
        assert repr(w["model"]["mse"]) in out and repr(w["baselines"]["persistence"]["skill"]["mse"]) in out
        assert repr(w["physics"]["g_r"]["rms_difference"]) in out
    assert all(len(line) > 60 for line in out.splitlines() if "persistence" in line)


def test_predict_from_the_middle_and_evaluate_the_recorded_observation(cli, tmp_path, twinned):
    import numpy as np

    from mdforecast import Store

    forecast = str(tmp_path / "mid.zarr")
    code, out, err = cli("predict", twinned, "-m", "persistence", "--from", "30", "--observe", "10", "-o", forecast,
                         "--json", "-q")
    assert code == 0, err
    assert json.loads(out)["observed"] == [20, 30] and json.loads(out)["first"] == 30
    stored = Store.open(forecast)
    assert stored.attrs["forecast"]["observed"] == [20, 30]
    truth = Store.open(twinned).trajectory("t2").positions()
    assert np.array_equal(stored.trajectory().positions(0, 1)[0], truth[29])  # persistence of frame FRAME − 1
    doc = json.loads(cli("evaluate", forecast, "--horizon", "0-10", "--json", "-q")[1])
    first = doc["windows"][0]
    assert doc["observed"] == [20, 30] and first["window"] == [30, 40]
    assert first["baselines"]["persistence"]["mse"] == pytest.approx(first["model"]["mse"], rel=1e-12)
    assert doc["twins"] == 0 and first["chaos_floor"] is None  # the twin branches at frame 20, not 30
    code, _, err = cli("predict", twinned, "-m", "persistence", "--from", "5", "--observe", "10", "-o",
                       str(tmp_path / "x.zarr"))
    cli.assert_one_line_error(code, err, "--from 5", "--observe")


def test_evaluate_shows_kabsch_skill_and_warns_once_per_broken_geometry(cli, tmp_path, capsys):
    import numpy as np

    from mdforecast.forecasters import Forecaster
    from mdforecast.prediction import predict
    from synth import ala2, tumbling_ala2

    x = tumbling_ala2(60, seed=2)
    truth = make_store(tmp_path / "m.zarr", ala2(), {"a": tumbling_ala2(60, seed=1), "b": x}, dt_ps=1.0,
                       split=(["a"], ["b"]))

    class Collapse(Forecaster):
        """The last observed frame shrunk to a tenth about its centroid."""

        name = "collapse"

        def predict(self, observation, times):
            last = observation.positions[-1]
            return np.repeat((last.mean(axis=0) + 0.1 * (last - last.mean(axis=0)))[None], len(times), 0)

    predict(truth, Collapse(), tmp_path / "f.zarr", observe=20)
    assert cli.code("evaluate", str(tmp_path / "f.zarr"), "--baselines", "persistence", "-q") == 0
    out, err = capsys.readouterr()
    assert "Kabsch skill vs it" in out and "Kabsch MSE" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("warning: forecast") for line in lines)
    assert "bond lengths" in lines[0] and "overlap" in lines[1]
