"""The ``train`` command: fit DoMiNO (or LG-ODE, ``--levels 1``) on a store."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import protocol
from ..presets import PRESETS, describe
from ..topology import KIND_FIELDS
from .app import JsonOpt, QuietOpt, app, emit, flag


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        example = protocol.strides_text(protocol.LAGS if option == "--lags" else protocol.STRIDES)
        raise typer.BadParameter(f"expected comma-separated frame counts like {example}, got {text!r}",
                                 param_hint=option) from None


def read_config(path: Path) -> dict:
    """Options from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file; keys as the long option names."""
    from ..errors import InputError

    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"config file {path} is not valid TOML: {err}") from err
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise InputError(f"reading {path} needs PyYAML (pip install pyyaml), or write the config as TOML") from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise InputError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from err
    else:
        raise InputError(f"config file {path}: use a .toml, .yaml or .yml file")
    if not isinstance(data, dict):
        raise InputError(f"config file {path} must hold a mapping of option names to values")
    return {str(k).replace("-", "_"): (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}


@app.command()
def train(store: Annotated[str, typer.Argument(help="Store path or URL (its train trajectories are used).")],
          output: Annotated[Path, typer.Option("--output", "-o", help="Run directory to write.")],
          observe: Annotated[Optional[int], typer.Option(
              help=f"Frames observed (default {protocol.OBSERVE}).")] = None,
          horizon: Annotated[Optional[int], typer.Option(
              help=f"Frames forecast (default {protocol.HORIZON}).")] = None,
          levels: Annotated[Optional[int], typer.Option(
              help=f"Levels; 1 is LG-ODE (default {len(protocol.STRIDES)}).")] = None,
          strides: Annotated[Optional[str], typer.Option(
              help=f"Output stride of each level, frames, coarse → fine (default {protocol.strides_text()}, or ones "
                   "that fit a shorter --horizon, said on stderr).")] = None,
          lags: Annotated[Optional[str], typer.Option(
              help=f"Frames looked back for the recent-motion inputs (default {protocol.strides_text(protocol.LAGS)}, each "
                   "capped at --observe − 1).")] = None,
          epochs: Annotated[Optional[int], typer.Option(help="Epochs (default 50).")] = None,
          batch: Annotated[Optional[int], typer.Option(help="Windows per step, all processes (default 8).")] = None,
          lr: Annotated[Optional[float], typer.Option(help="AdamW learning rate (default 5e-4).")] = None,
          samples_per_epoch: Annotated[Optional[int], typer.Option(help="Windows per epoch (default 256).")] = None,
          segments: Annotated[Optional[int], typer.Option(help="Finest-level segments per window (default 5).")] = None,
          features: Annotated[Optional[int], typer.Option(help="Invariant features per atom (default 64).")] = None,
          cutoff: Annotated[Optional[float], typer.Option(help="Neighbour cutoff, Å (default 5).")] = None,
          solver: Annotated[Optional[str], typer.Option(help="Fixed-step ODE solver: rk4, midpoint, euler "
                                                             "(default rk4).")] = None,
          steps: Annotated[Optional[int], typer.Option(help="Solver steps per segment (default 8).")] = None,
          kinds: Annotated[Optional[str], typer.Option(help=(
              f"Topology field naming the atom kinds: {', '.join(KIND_FIELDS)} (default: elements, else the first "
              "field every atom has)."))] = None,
          select: Annotated[str, typer.Option("--select", "-s", help=(
              "MDAnalysis selection of the atoms to train on (e.g. protein); the others are dropped."))] = "all",
          device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
          seed: Annotated[Optional[int], typer.Option(help="Random seed (default 0).")] = None,
          preset: Annotated[Optional[str], typer.Option(help=(
              f"Named option set: {', '.join(PRESETS)} (default: none, the defaults). "
              + "; ".join(describe(name) for name in PRESETS) + "; options given here win."))] = None,
          config: Annotated[Optional[Path], typer.Option(help=(
              "YAML or TOML file of these options (long names as keys); default: none."))] = None,
          init: Annotated[Optional[str], typer.Option(
              help="Model to fine-tune: a pretrained name, run directory or model file (default: none, "
                   "train from scratch).")] = None,
          fusion_data: Annotated[Optional[str], typer.Option(
              help="Store of trajectories of the same system the model is not trained on (all but twins): a "
                   "dynamics level's fusion by lead time is fitted on them (default: on the held-out "
                   "trajectories; on the training ones when none is held out).")] = None,
          resume: Annotated[bool, flag("--resume", help="Continue the killed run in --output.")] = False,
          as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Train a DoMiNO model on a store's training trajectories; writes model, metrics and loss curve."""
    from ..training import resolve_options, train as run

    options = read_config(config) if config is not None else {}
    given = {"observe": observe, "horizon": horizon, "levels": levels, "strides": _ints(strides, "--strides"),
             "lags": _ints(lags, "--lags"),
             "epochs": epochs, "batch": batch, "lr": lr, "samples_per_epoch": samples_per_epoch,
             "segments": segments, "features": features, "cutoff": cutoff, "solver": solver, "steps": steps,
             "kind_field": kinds, "seed": seed}
    options.update({k: v for k, v in given.items() if v is not None})
    # --resume alone continues with the run's own options; options given with it must be the run's
    notes: list[str] = []
    model, training = (None, None) if resume and not options and preset is None and init is None else \
        resolve_options(options, preset=preset, init=init, notes=notes)
    if not quiet:
        for note in notes:
            typer.echo(f"note: {note}", err=True)
    try:
        result = run(store, output, model, training, init=init, resume=resume, select=select, device=device,
                     progress=not quiet, fusion_data=fusion_data)
    except KeyboardInterrupt:
        if (output / "state.json").exists():
            typer.echo(f"interrupted; finished epochs are saved in {output}: rerun the same command with --resume",
                       err=True)
            sys.exit(130)
        raise
    emit(result, as_json)
