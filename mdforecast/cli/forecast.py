"""Commands that forecast and score: ``predict``, ``evaluate``."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import protocol
from ..forecasters import BASELINES
from ..pretrained import DEFAULT
from .app import JsonOpt, QuietOpt, app, emit, flag, flatten
from .tables import Table, show


@app.command()
def predict(store: Annotated[Optional[str], typer.Argument(
                help=("Truth store to forecast (default: the test-trajectory sample shipped with a pretrained "
                      "model, else the store the model was trained on)."))] = None,
            model: Annotated[Optional[str], typer.Option("--model", "-m", help=(
                "Run directory, checkpoint, a pretrained name (`mdforecast models list`), or a baseline: "
                f"{', '.join(BASELINES)}. Default without a STORE: the pretrained {DEFAULT} model."))] = None,
            output: Annotated[str, typer.Option("--output", "-o", help="Forecast store to write.")] = "forecast.zarr",
            until: Annotated[Optional[str], typer.Option(help=(
                "Forecast frames [observed end, UNTIL): frames (10000) or a time since frame 0 (1000ps). Past a "
                "model's horizon the forecast rolls out: forecast frames become the next observation, leg by leg. "
                "Default: the end of the truth trajectory, or the model's horizon if sooner."))] = None,
            times: Annotated[Optional[str], typer.Option(help=(
                "Instead of --until: frame times, any real values: 2500.5,3000 or ranges START:STOP:STEP (250ps:300ps:1ps). Default: none, --until decides."))] = None,
            every: Annotated[int, typer.Option(help=(
                "Forecast only every N-th frame of the --until range (the others are never computed; a "
                "hierarchical model still solves each segment that holds a requested frame)."))] = 1,
            trajectory: Annotated[Optional[list[str]], typer.Option(help=(
                "Trajectory to forecast; repeat for several (default: the first test trajectory, else the first)."))] = None,
            observe: Annotated[Optional[int], typer.Option(help=(
                f"Observe N frames, [0, N) or before --from (default: the model's; baselines: {protocol.OBSERVE}, "
                "or a fifth of a shorter trajectory, at most the frames before --from)."))] = None,
            from_frame: Annotated[Optional[int], typer.Option("--from", metavar="FRAME", help=(
                "Forecast from this trajectory frame: observe frames [FRAME − N, FRAME) and forecast FRAME on "
                "(default: N, from the start of the trajectory)."))] = None,
            select: Annotated[str, typer.Option("--select", "-s", help=(
                "MDAnalysis selection of the atoms to forecast (e.g. protein); the others are dropped."))] = "all",
            fmt: Annotated[Optional[str], typer.Option("--format", help=(
                "Also write an MD file next to the store (xtc, dcd, trr, nc, pdb, …) with a PDB topology. Default: "
                "none, the store only."))] = None,
            device: Annotated[Optional[str], typer.Option(help=(
                "Torch device for a model (cpu, cuda, cuda:1). Default: cpu; baselines run in numpy."))] = None,
            batch: Annotated[int, typer.Option(help=(
                "Forecast frames per model call (bounds memory; DoMiNO decodes up to 32 finest segments, 640 "
                "frames, per pass)."))] = 640,
            force: Annotated[bool, flag("--force", help="Replace existing output.")] = False,
            as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Forecast a trajectory from its observed frames into a new store (and optionally an MD file)."""
    from ..prediction import predict as run

    if store is not None and model is None:  # a usage error (exit 2); the default model is for no STORE only
        raise typer.BadParameter("required with a STORE (without one, the pretrained default is used)",
                                 param_hint="--model")
    emit(run(store, model, output, trajectories=trajectory, until=until, times=times, every=every, observe=observe,
             from_frame=from_frame, select=select, fmt=fmt, device=device, batch=batch, force=force,
             progress=not quiet), as_json)


@app.command()
def evaluate(forecast: Annotated[str, typer.Argument(help="Forecast store written by `mdforecast predict`.")] = "forecast.zarr",
             truth: Annotated[Optional[str], typer.Option(help=(
                 "Truth store (default: the one the forecast's provenance records)."))] = None,
             window: Annotated[Optional[list[str]], typer.Option(help=(
                 "Trajectory frames A-B, half-open (4980-5000); repeat for several. Default, with no --window or "
                 "--horizon: the horizons " + ", ".join(f"{a}-{b}" for a, b in protocol.WINDOWS) + " that lie in the "
                 "forecast, and the full range."))] = None,
             horizon: Annotated[Optional[list[str]], typer.Option(help=(
                 "Frames A-B after the observed part, the paper's Table 3 naming (2980-3000); repeatable. Default: "
                 "as for --window."))] = None,
             full: Annotated[bool, flag("--full", help=(
                 "Also score every forecast frame, as one more window (without --window/--horizon the default "
                 "windows stay)."))] = False,
             baselines: Annotated[str, typer.Option(help=(
                 f"Comma-separated baselines to score on the same frames: {', '.join(BASELINES)}, LABEL:RUN_DIR "
                 "(e.g. lgode:runs/lgode), or 'none'."))] = ",".join(BASELINES),
             physics: Annotated[bool, flag("--physics", help=(
                 "Physics metrics: g(r)/MSD (liquids), O–H/H–O–H/g_OO (water), bonds and φ/ψ JSD (peptides)."))] = False,
             plot: Annotated[Optional[str], typer.Option(help=(
                 "Write MSE against horizon (log-log) to FILE.png ('-': PNG to stdout); with --physics also "
                 "FILE-physics.png. Default: no plot."))] = None,
             as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Score a forecast against the truth per window: MSE (Å²), paper-scale MSE, baselines, skill, chaos floor."""
    from ..evaluation import evaluate as run
    from ..plots import physics_plot_path, plot_mse, plot_physics

    if as_json and plot == "-":
        raise typer.BadParameter("--plot - and --json both write to stdout; give --plot a file", param_hint="--plot")
    names = [] if baselines.strip().lower() == "none" else [b.strip() for b in baselines.split(",") if b.strip()]
    result = run(forecast, truth=truth, window=window or (), horizon=horizon or (), full=full, baselines=names,
                 physics=physics, progress=not quiet)
    if plot is not None:
        plot_mse(result, plot)
        written = [plot]
        if physics and plot != "-":
            plot_physics(result, physics_plot_path(plot))
            written.append(physics_plot_path(plot))
        if not quiet and plot != "-":
            typer.echo(f"wrote {', '.join(written)}", err=True)
    for line in result.geometry_warnings:
        typer.echo(f"warning: {line}", err=True)
    if plot == "-":
        return
    if as_json:
        emit(result, True)
        return
    _print_table(result)


def _print_table(result) -> None:
    """The scores as a table (rows: forecast, baselines, chaos floor per window), the physics table, then the
    verdict of every window and the notes on the chaos floor."""
    from ..verdict import display_name, horizon_ps

    kabsch = "mse_kabsch" in result.metrics
    name = display_name(result.model.get("name", "model"))
    table = Table(title=f"{name} forecast of {', '.join(result.trajectories)} "
                        f"(observed frames [{result.observed[0]}, {result.observed[1]}))",
                  columns=["window", "horizon" if result.dt_ps is None else "horizon (ps)", "frames", "predictor", "MSE (Å²)",
                           *(["Kabsch MSE (Å²)"] if kabsch else []), "paper MSE", "model skill vs it",
                           *(["Kabsch skill vs it"] if kabsch else [])],
                  right=frozenset({"frames", "MSE (Å²)", "Kabsch MSE (Å²)", "paper MSE", "model skill vs it",
                                   "Kabsch skill vs it"}),
                  caption=("MSE of centred positions; Kabsch: after optimal superposition. " if result.centred else "")
                  + f"Paper scale: positions mapped to [-1, 1] by {result.paper_scale['low']:.2f} to "
                    f"{result.paper_scale['high']:.2f} Å ({result.paper_scale['source']}). "
                    "Skill = 1 − MSE_model/MSE_baseline" + (" (Kabsch skill: of the Kabsch MSE)" if kabsch else "")
                    + ". Windows: trajectory frames [A, B), horizon = after the "
                    "observed part" + ("." if result.dt_ps is None else f", in ps at {result.dt_ps:g} ps per frame."))
    for w in result.windows:
        rows = [("forecast", w["model"], None)]
        rows += [(name, b, b["skill"]) for name, b in w["baselines"].items()]
        if w["chaos_floor"] is not None:
            rows.append((f"chaos floor ({w['chaos_floor']['frames']} fr.)", w["chaos_floor"], None))
        span = horizon_ps(w["horizon"], result.dt_ps)
        horizon = f"{w['horizon'][0]}-{w['horizon'][1]}" + ("" if span is None else f" ({span[0]:g}–{span[1]:g})")
        for i, (name, values, skill) in enumerate(rows):
            first = i == 0
            table.add_row(("full " if w["full"] else "") + f"{w['window'][0]}-{w['window'][1]}" if first else "",
                          horizon if first else "", w["frames"] if first else "", name, values["mse"],
                          *([values["mse_kabsch"]] if kabsch else []), values["mse_paper"],
                          "" if skill is None else skill["mse"],
                          *(["" if skill is None else skill["mse_kabsch"]] if kabsch else []),
                          end_section=i == len(rows) - 1)
    items: list = [table]
    if result.physics_kind is not None:
        keys = list(flatten(result.windows[0]["physics"]))
        physics = Table(title=f"physics ({result.physics_kind}): forecast vs truth", columns=["window", *keys],
                        right=frozenset(keys))
        for w in result.windows:
            flat = flatten(w["physics"])
            physics.add_row(("full " if w["full"] else "") + f"{w['window'][0]}-{w['window'][1]}",
                            *(flat[k] for k in keys))
        items.append(physics)
    show(*items, *(w["verdict"] for w in result.windows), *result.notes)
