"""The ``mdforecast`` command line: parses options, calls the library, prints the result.

One module per group of commands, each registering on :data:`app`. Results go to stdout (one line, or one
JSON document with ``--json``); progress and errors go to stderr. Exit codes: 0 success, 1 a problem with
the input (the message says what to do), 2 a usage error, 130 interrupted (nothing written).
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from ..errors import MDForecastError

app = typer.Typer(name="mdforecast", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Forecast molecular dynamics trajectories with DoMiNO.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
StartOpt = Annotated[Optional[int], typer.Option(help="First frame (0-based).")]
StopOpt = Annotated[Optional[int], typer.Option(help="Stop before this frame.")]
StrideOpt = Annotated[Optional[int], typer.Option(help="Keep every N-th frame.")]
SelectOpt = Annotated[str, typer.Option("--select", "-s", help="MDAnalysis atom selection.")]


def emit(result, as_json: bool) -> None:
    """Print a result to stdout: its ``summary()`` line, or ``to_dict()`` (or the dict itself) as JSON."""
    if as_json:
        typer.echo(json.dumps(result.to_dict() if hasattr(result, "to_dict") else result, indent=2))
    else:
        typer.echo(result.summary())


def flatten(values: dict, prefix: str = "", sep: str = " ") -> dict:
    """Nested ``values`` as one level, keys joined by ``sep`` (for tables of metrics and model cards)."""
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
def _root(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False) -> None:
    """Forecast molecular dynamics trajectories with DoMiNO."""


from . import data  # noqa: E402,F401  (registers its commands)
from . import datasets  # noqa: E402,F401  (registers datasets list, datasets make)
from . import forecast  # noqa: E402,F401  (registers predict, evaluate)
from . import train  # noqa: E402,F401  (registers train)
from . import models  # noqa: E402,F401  (registers models list, models show)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn library errors into one line on stderr and an exit code."""
    sys.unraisablehook = lambda unraisable: None  # MDAnalysis readers print tracebacks from __del__
    try:
        code = app(args=argv, prog_name="mdforecast", standalone_mode=False)  # returns Exit/abort codes
    except typer.Abort:
        code = 130
    except typer.TyperException as err:  # usage errors: exit 2
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        code = 130
    except MDForecastError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
    if code == 130:
        typer.echo("interrupted; nothing was written", err=True)
    sys.exit(code if isinstance(code, int) else 0)
