"""``mdforecast models list|show``: the pretrained models shipped with the package."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import JsonOpt, app, emit
from .tables import Table, number, show as print_tables

models = typer.Typer(name="models", no_args_is_help=True,
                     help="Pretrained models shipped with mdforecast (use one with --model NAME).")
app.add_typer(models)


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
                      f"{number(m['observe'])} → {number(m['horizon'])}", m["scale"], m["full_domain_mse"])
    print_tables(table)


@models.command("show")
def show(name: Annotated[str, typer.Argument(help="Pretrained model name (see `mdforecast models list`).")],
         as_json: JsonOpt = False) -> None:
    """Show one pretrained model's card: what it was trained on, how it does against each baseline, what it is
    fit for (--json: everything, the card in words under "readable")."""
    from ..pretrained import model_info
    from ..pretrained.card import readable_card

    info = model_info(name)
    card = readable_card(info)
    if as_json:
        emit({**info, "readable": card}, True)
        return
    titles = {"mse": "test-trajectory MSE (Å²) and the model's skill (1 − MSE_model/MSE_baseline)",
              "mse_kabsch": "test-trajectory MSE after optimal superposition (Kabsch, Å²) and the model's skill",
              "centred": "test-trajectory MSE of centred positions (Å², the paper's score; the orientation is "
                         "random within picoseconds)"}
    tables = [_score_table(titles[card["metric"]], card["windows"])]
    if card["centred"]:
        tables.append(_score_table(titles["centred"], card["centred"]))
    lines = [card["title"], f"trained on: {card['trained_on']}",
             "differs from PROTOCOL.md in: " + (", ".join(card["reductions"]) or "nothing"),
             *([f"note: {card['note']}"] if card["note"] else []), f"fit for: {card['fit_for']}",
             f"installed at {info['path']}; weights SHA-256 {info['model']['weights_sha256']}", ""]
    print_tables(*lines, *tables, *card["verdicts"])


def _score_table(title: str, windows: list[dict]) -> Table:
    baselines = list(dict.fromkeys(b for w in windows for b in w["baselines"]))
    table = Table(title=title, columns=["window", "horizon", "model", *baselines,
                                        *(f"skill vs {b}" for b in baselines), "chaos floor"],
                  right=frozenset(["model", *baselines, *(f"skill vs {b}" for b in baselines), "chaos floor"]))
    for w in windows:
        table.add_row(("full " if w["full"] else "") + f"{w['window'][0]}-{w['window'][1]}",
                      f"{w['horizon'][0]}-{w['horizon'][1]}", w["model"]["mse"],
                      *(w["baselines"].get(b, {}).get("mse") for b in baselines),
                      *(w["baselines"].get(b, {}).get("skill", {}).get("mse") for b in baselines),
                      None if w["chaos_floor"] is None else w["chaos_floor"]["mse"])
    return table
