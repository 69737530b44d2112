"""The typer app every command module registers on, the options they share, and how results are printed."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from ..version import __version__

app = typer.Typer(name="mdforecast", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Forecast molecular dynamics trajectories with DoMiNO.")



def flag(*names: str, help: str):
    """A boolean option shown as the flag itself (``--force``: no ``--no-force``, no type), off by default."""
    return typer.Option(*names, help=help, metavar="")


JsonOpt = Annotated[bool, flag("--json", help="Print one JSON document to stdout.")]
QuietOpt = Annotated[bool, flag("--quiet", "-q", help="No progress bar.")]
StartOpt = Annotated[Optional[int], typer.Option(help="First frame, 0-based (default: 0).")]
StopOpt = Annotated[Optional[int], typer.Option(help="Stop before this frame (default: after the last).")]
StrideOpt = Annotated[Optional[int], typer.Option(help="Keep every N-th frame (default: 1, every frame).")]
SelectOpt = Annotated[str, typer.Option("--select", "-s", help="MDAnalysis atom selection.")]


def emit(result, as_json: bool) -> None:
    """Print a result to stdout: its ``summary()`` line, or ``to_dict()`` (or the dict itself) as JSON."""
    if as_json:
        typer.echo(json.dumps(result.to_dict() if hasattr(result, "to_dict") else result, indent=2))
    else:
        typer.echo(result.summary())


def flatten(values: dict, prefix: str = "", sep: str = " ") -> dict:
    """Nested ``values`` as one level, keys joined by ``sep`` (for the table of physics metrics)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}{sep}", sep))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mdforecast {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, metavar="",
                                                help="Show the version and exit.")] = False) -> None:
    """Forecast molecular dynamics trajectories with DoMiNO."""
