"""The package top: every command is a function there, and importing it does not import torch."""

import subprocess
import sys

import mdforecast


def test_every_command_is_a_function_at_the_top():
    from mdforecast.evaluation import evaluate
    from mdforecast.forecasters import load_forecaster
    from mdforecast.prediction import predict
    from mdforecast.training import resolve_options, train

    assert (mdforecast.train, mdforecast.resolve_options, mdforecast.predict, mdforecast.evaluate, mdforecast.load) \
        == (train, resolve_options, predict, evaluate, load_forecaster)
    assert all(callable(getattr(mdforecast, name)) for name in mdforecast.__all__ if name != "__version__")
    assert set(mdforecast.__all__) <= set(dir(mdforecast))
    assert mdforecast.load("persistence").name == "persistence"


def test_import_and_help_do_not_import_torch():
    code = ("import sys, mdforecast, mdforecast.cli; "
            "assert 'torch' not in sys.modules and 'MDAnalysis' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
