"""``mdforecast datasets list|make``: the benchmark systems, simulated with OpenMM."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..datasets import SYSTEMS
from ..datasets.simulation import PLATFORMS
from .app import JsonOpt, QuietOpt, app, emit
from .tables import Table, show

datasets = typer.Typer(name="datasets", no_args_is_help=True, help="The benchmark systems, generated with OpenMM.")
app.add_typer(datasets)


@datasets.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Show each system: atoms, box, physics, frames, split and estimated generation time."""
    from ..datasets import list_systems

    systems = list_systems()
    if as_json:
        emit(systems, True)
        return
    estimates = [s["estimate"] for s in systems if s["estimate"]]
    caption = "est. time: not measured here; run benchmarks/datasets_speed.py"
    if estimates:
        caption = (f"est. time: {estimates[0]['workers']} workers (--workers) on the measured machine: "
                   f"{estimates[0]['hardware']}")
    table = Table(title="mdforecast datasets make NAME -o STORE", caption=caption,
                  columns=["name", "system", "atoms", "box", "trajectories × frames", "split", "est. time"])
    for s in systems:
        split = f"train {_span(s['split']['train'])}, test {_span(s['split']['test'])}"
        estimate = "not measured" if s["estimate"] is None else f"{s['estimate']['text']} ({s['estimate']['platform']})"
        table.add_row(s["name"], f"{s['title']}\n{s['physics']}", s["atoms"], s["box"],
                      f"{s['trajectories']} × {s['frames']:,}, every {s['frame_ps']:g} ps", split, estimate,
                      end_section=True)
    show(table)


def _span(names: list[str]) -> str:
    first, last = names[0].removeprefix("traj"), names[-1].removeprefix("traj")
    return first if first == last else f"{first}–{last}"


@datasets.command()
def make(name: Annotated[str, typer.Argument(help=f"System: {', '.join(SYSTEMS)}.")],
         output: Annotated[str, typer.Option("--output", "-o", help="Store to write or resume (path or URL).")],
         trajectories: Annotated[Optional[int], typer.Option(
             help="Trajectories (default: the protocol's 8; ala2: 3).")] = None,
         frames: Annotated[Optional[int], typer.Option(
             help="Frames per trajectory (default: the protocol's 10,000).")] = None,
         seed: Annotated[int, typer.Option(help="Trajectory i uses seed + i.")] = 0,
         platform: Annotated[str, typer.Option(help=f"OpenMM platform: {', '.join(PLATFORMS)}.")] = "auto",
         twins: Annotated[int, typer.Option(
             help="Continuations of each test trajectory from its last observed frame.")] = 0,
         workers: Annotated[int, typer.Option(help="Trajectories at once, one process each (CPU: one per core).")] = 1,
         as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Simulate a benchmark system into a store; rerun the same command to resume an interrupted run."""
    from ..datasets import make as run

    try:  # SIGTERM (`kill`) arrives as KeyboardInterrupt too (see mdforecast.cli.main)
        result = run(name, output, trajectories=trajectories, frames=frames, seed=seed, platform=platform,
                     twins=twins, workers=workers, progress=not quiet)
    except KeyboardInterrupt:
        typer.echo(f"interrupted: {_committed(output)} finished trajectories are kept in {output}; run the same "
                   "command again to resume", err=True)
        raise SystemExit(130) from None
    emit(result, as_json)


def _committed(output: str) -> int:
    from ..errors import StoreError
    from ..store import Store

    try:
        return len(Store.open(output).trajectory_names)
    except StoreError:
        return 0
