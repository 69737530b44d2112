"""The ``mdforecast`` command line: parses options, calls the library, prints the result.

One module per group of commands, each registering on :data:`app`. Results go to stdout (one line, or one
JSON document with ``--json``); progress and errors go to stderr. Exit codes: 0 success, 1 a problem with
the input (the message says what to do), 2 a usage error, 130 interrupted by Ctrl-C or SIGTERM (nothing written).
"""

from __future__ import annotations

import signal
import sys

import typer

from ..errors import MDForecastError
from . import data, datasets, forecast, models, train  # noqa: F401  (each registers its commands on the app)
from .app import app

__all__ = ["app", "main"]


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app and turn library errors into one line on stderr and an exit code."""
    sys.unraisablehook = lambda unraisable: None  # MDAnalysis readers print tracebacks from __del__
    # SIGTERM (kill, a batch scheduler) stops a command like Ctrl-C: what it was writing is removed
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
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
    finally:
        signal.signal(signal.SIGTERM, previous)
    if code == 130:
        typer.echo("interrupted; nothing was written", err=True)
    sys.exit(code if isinstance(code, int) else 0)
