"""``mdforecast models list|show``: the pretrained models shipped with the package."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import JsonOpt, app, emit, flatten
from .tables import Table, show as print_tables

models = typer.Typer(name="models", no_args_is_help=True,
                     help="Pretrained models shipped with mdforecast (use one with --model NAME).")
app.add_typer(models)


def _number(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@models.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Show each shipped pretrained model: system, architecture, atoms, observe → horizon, scale, score."""
    from ..pretrained import list_models

    result = list_models()
    if as_json or not result.models:
        emit(result, as_json)
        return
    table = Table(title="pretrained models (mdforecast predict STORE --model NAME)",
                  caption="MSE: full forecast domain of the model card's test trajectories, Å²; details: "
                          "mdforecast models show NAME",
                  columns=["name", "system", "model", "atoms", "levels", "observe → horizon (frames)", "scale",
                           "MSE (Å²)"], right=frozenset({"atoms", "levels", "MSE (Å²)"}))
    for m in result.models:
        table.add_row(m["name"], m["system"], m["model"], m["atoms"], m["levels"],
                      f"{_number(m['observe'])} → {_number(m['horizon'])}", m["scale"], m["full_domain_mse"])
    print_tables(table)


@models.command("show")
def show(name: Annotated[str, typer.Argument(help="Pretrained model name (see `mdforecast models list`).")],
         as_json: JsonOpt = False) -> None:
    """Show one pretrained model: its files, architecture, training data and model card."""
    from ..pretrained import model_info

    info = model_info(name)
    if as_json:
        emit(info, True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"pretrained model {name}", caption=info["path"], show_header=False)
    table.add_column("key")
    table.add_column("value")
    for section in ("model", "card"):
        for key, value in flatten(info[section], f"{section}.", ".").items():
            table.add_row(key, _number(value))
    Console().print(table)
