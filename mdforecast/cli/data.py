"""Commands that move trajectories in and out: ``ingest``, ``info``, ``export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .app import JsonOpt, QuietOpt, SelectOpt, StartOpt, StopOpt, StrideOpt, app, emit, flag
from .tables import Table, show


@app.command()
def ingest(trajectories: Annotated[list[Path], typer.Argument(help="Trajectory files (XTC, TRR, DCD, NetCDF, …).")],
           output: Annotated[str, typer.Option("--output", "-o", help="Store to write (path or URL).")],
           top: Annotated[Optional[Path], typer.Option("--top", "-t", help="Topology file (PDB, GRO, PSF, …); default: the "
                                                                  "trajectory file's own atoms (PDB, GRO, …).")] = None,
           select: SelectOpt = "all", start: StartOpt = None, stop: StopOpt = None, stride: StrideOpt = None,
           name: Annotated[Optional[list[str]], typer.Option(help="Trajectory name; once per file (default: the file "
                                                                  "name without extensions).")] = None,
           append: Annotated[bool, flag("--append", help="Add to an existing store of the same system.")] = False,
           force: Annotated[bool, flag("--force", help="Replace an existing store.")] = False,
           no_unwrap: Annotated[bool, flag("--no-unwrap", help="Keep positions as in the file.")] = False,
           fmt: Annotated[Optional[str], typer.Option("--format", help="Trajectory format when the extension "
                                                      "does not say it (MDAnalysis name: LAMMPS, LAMMPSDUMP, …; default: from the extension).")] = None,
           dt: Annotated[Optional[float], typer.Option(
               "--dt", metavar="PS", help="Time between frames of the file, ps; overrides the file's "
               "(default: the file's, or unknown).")] = None,
           as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Read trajectories (anything MDAnalysis reads) into a store, molecules whole, unwrapped across boxes."""
    from ..ingest import ingest as run

    result = run(trajectories, output, topology=top, select=select, start=start, stop=stop, stride=stride,
                 names=name or None, append=append, force=force, unwrap=not no_unwrap, fmt=fmt, dt_ps=dt,
                 progress=not quiet)
    for note in result.warnings:
        typer.echo(f"warning: {note}", err=True)
    emit(result, as_json)


@app.command()
def info(store: Annotated[str, typer.Argument(help="Store path or URL.")], as_json: JsonOpt = False) -> None:
    """Show a store's system, trajectories and split."""
    from ..info import info as run

    summary = run(store)
    if as_json:
        emit(summary, True)
        return
    table = Table(title=f"{summary['store']}: {summary['atoms']} atoms ({summary['composition']})",
                  columns=["trajectory", "frames", "dt ps", "time ps", "box Å", "vel.", "unwrapped"],
                  right=frozenset({"frames", "dt ps"}),
                  caption=f"format {summary['format_version']}, written by mdforecast "
                          f"{summary['mdforecast_version']}; split: {summary['split'] or 'none'}")
    for t in summary["trajectories"]:
        table.add_row(t["name"] + (f" (twin of {t['twin_of']})" if t["twin_of"] else ""), t["frames"],
                      "?" if t["dt_ps"] is None else t["dt_ps"],
                      f"{t['time_ps'][0]:g}–{t['time_ps'][1]:g}", _box_text(t["box"]), "yes" if t["velocities"] else "no",
                      "yes" if t["unwrapped"] else "no")
    show(table)


def _box_text(box) -> str:
    if box is None:
        return "none"
    if isinstance(box[0], list):  # triclinic vectors: lengths, marked
        return "×".join(f"{sum(x * x for x in row) ** 0.5:.4g}" for row in box) + " triclinic"
    return "×".join(f"{x:.4g}" for x in box)


@app.command()
def export(store: Annotated[str, typer.Argument(help="Store path or URL.")],
           output: Annotated[Path, typer.Option("--output", "-o", help="File to write; its extension names the format.")],
           trajectory: Annotated[Optional[str], typer.Option(help="Trajectory name (default: the first).")] = None,
           select: SelectOpt = "all", start: StartOpt = None, stop: StopOpt = None, stride: StrideOpt = None,
           force: Annotated[bool, flag("--force", help="Replace existing files.")] = False,
           as_json: JsonOpt = False, quiet: QuietOpt = False) -> None:
    """Write a stored trajectory to any MDAnalysis format, with a PDB topology next to it."""
    from ..export import export as run

    emit(run(store, output, trajectory=trajectory, select=select, start=start, stop=stop, stride=stride,
              force=force, progress=not quiet), as_json)
