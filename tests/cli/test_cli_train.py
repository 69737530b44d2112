"""``mdforecast train`` on the command line: the small-problem example, config files, bad input."""

from __future__ import annotations

import json

import pytest

from oscillators import make_store


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> str:
    """One 400-frame trajectory, no split."""
    return make_store(tmp_path_factory.mktemp("single") / "one.zarr", n_traj=1, n_frames=400)


def test_small_problem_from_the_issue(cli, single, tmp_path):
    code, out, err = cli("train", single, "-o", str(tmp_path / "run"), "--observe", "100", "--horizon", "300",
                         "--levels", "2", "--strides", "15,1", "--preset", "cpu-small", "--epochs", "1",
                         "--cutoff", "6", "--json", "-q")
    assert code == 0, err
    result = json.loads(out)
    assert result["name"] == "domino" and result["selected_on"] == "training"  # one trajectory: nothing held out
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["config"]["strides"] == [15, 1] and meta["config"]["horizon"] == 300


def test_config_file_and_option_precedence(cli, single, tmp_path):
    config = tmp_path / "train.toml"
    config.write_text('observe = 100\nhorizon = 300\nstrides = [15, 1]\nepochs = 5\ncutoff = 6.0\n'
                      'samples-per-epoch = 4\nbatch = 4\nfeatures = 8\n')
    code, out, err = cli("train", single, "-o", str(tmp_path / "run"), "--config", str(config),
                         "--epochs", "1", "--preset", "cpu-small", "-q")
    assert code == 0, err
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["training"]["epochs"] == 1 and meta["config"]["features"] == 8 and meta["config"]["strides"] == [15, 1]
    yaml_config = tmp_path / "bad.yaml"
    yaml_config.write_text("hidden_size: 3\n")
    code, _, err = cli("train", single, "-o", str(tmp_path / "x"), "--config", str(yaml_config))
    cli.assert_one_line_error(code, err, "unknown options")


@pytest.mark.parametrize("argv,needle", [
    (["--observe", "200", "--horizon", "300", "--strides", "15,1"], "needs 500"),
    (["--observe", "100", "--horizon", "300", "--strides", "15,1", "--device", "tpu"], "unknown device 'tpu'"),
    (["--observe", "100", "--horizon", "300", "--strides", "7,1"], "does not divide"),
    (["--observe", "100", "--horizon", "300", "--strides", "15,1", "--resume"], "nothing to resume"),
    (["--observe", "100", "--horizon", "300", "--strides", "15,1", "--init", "nowhere"], "no model"),
    (["--observe", "100", "--horizon", "300", "--strides", "15,1", "--fusion-data", "nowhere.zarr"],
     "nowhere.zarr does not exist"),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, single, tmp_path, argv, needle):
    code, _, err = cli("train", single, "-o", str(tmp_path / "run"), *argv)
    cli.assert_one_line_error(code, err, needle)
    assert not (tmp_path / "run").exists()


def test_init_from_another_format_version(cli, single, tmp_path):
    model = tmp_path / "old"
    model.mkdir()
    (model / "model.json").write_text(json.dumps({"format": "mdforecast-model", "format_version": 7}))
    code, _, err = cli("train", single, "-o", str(tmp_path / "run"), "--epochs", "1", "--init", str(model))
    cli.assert_one_line_error(code, err, "format version 7")


def test_malformed_strides_is_a_usage_error(cli, single, tmp_path):
    code, _, err = cli("train", single, "-o", str(tmp_path / "run"), "--strides", "15;1")
    assert code == 2 and "--strides" in err


def test_interrupt_says_how_to_resume(cli, single, tmp_path, monkeypatch):
    import mdforecast.training

    def killed(store, run_dir, *args, **kwargs):
        run_dir.mkdir()
        (run_dir / "state.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(mdforecast.training, "train", killed)
    code, _, err = cli("train", single, "-o", str(tmp_path / "run"))
    assert code == 130 and "--resume" in err


def test_help_lists_every_registry_choice(cli):
    from mdforecast.model.ode import SOLVERS
    from mdforecast.training import DEVICES, PRESETS

    code, out, _ = cli("train", "--help")
    text = " ".join(out.split())
    assert code == 0
    for name in [*SOLVERS, *DEVICES, *PRESETS]:
        assert name in text, name


def test_help_shows_defaults_flags_and_what_the_preset_sets(cli):
    from mdforecast.training import PRESETS

    helps = {command: " ".join(cli(*command.split(), "--help")[1].replace("│", " ").split())
             for command in ("ingest", "export", "train", "predict", "evaluate", "datasets make")}
    for command, text in helps.items():
        assert "--no-" not in text.replace("--no-unwrap", ""), command  # booleans are flags
    assert all(f"{key}={value}" in helps["train"] for key, value in PRESETS["cpu-small"].items())
    assert "First frame, 0-based (default: 0)" in helps["export"] and "(default: 1, every frame)" in helps["ingest"]
    assert "rolls out" in helps["predict"] and "the others are never computed" in helps["predict"]
    assert "the default windows stay" in helps["evaluate"]


def test_short_trajectories_get_strides_and_lags_that_fit(cli, single, tmp_path):
    small = ["--preset", "cpu-small", "--epochs", "1", "--samples-per-epoch", "4", "--cutoff", "6"]
    code, out, err = cli("train", single, "-o", str(tmp_path / "a"), "--observe", "12", "--horizon", "30", *small)
    assert code == 0, err
    assert "note: --strides 10,5,1 chosen to fit --horizon 30 with 3 level(s)" in err
    assert json.loads((tmp_path / "a" / "model.json").read_text())["config"]["strides"] == [10, 5, 1]
    code, out, err = cli("train", single, "-o", str(tmp_path / "b"), "--observe", "10", "--horizon", "40",
                         "--strides", "20,1", *small)
    assert code == 0, err
    assert "note: --lags 1,9 chosen to fit --observe 10" in err and "--strides" not in err
    assert json.loads((tmp_path / "b" / "model.json").read_text())["config"]["lags"] == [1, 9]


@pytest.mark.parametrize("argv, needles", [
    (["--observe", "10", "--lags", "1,10"], ["lags [1, 10]", "--lags", "--observe"]),
    (["--horizon", "30", "--strides", "7,1"], ["stride 7", "--strides", "--horizon"]),
])
def test_layout_errors_name_the_option_that_fixes_them(cli, single, tmp_path, argv, needles):
    code, _, err = cli("train", single, "-o", str(tmp_path / "run"), *argv)
    cli.assert_one_line_error(code, err, *needles)


def test_training_progress_is_lines_when_stderr_is_a_file(cli, single, tmp_path):
    code, _, err = cli("train", single, "-o", str(tmp_path / "run"), "--observe", "100", "--horizon", "300",
                       "--levels", "2", "--strides", "15,1", "--preset", "cpu-small", "--epochs", "1",
                       "--samples-per-epoch", "40", "--batch", "4", "--cutoff", "6")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("training: ")]
    assert len(lines) == 1 and lines[0].startswith("training: 40/40 samples (100 %), ") and "samples/s, ETA" in lines[0]
    assert any(line.startswith("epoch 1/1") for line in err.splitlines())
