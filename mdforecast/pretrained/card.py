"""A pretrained model's card in words (``mdforecast models show``): what it was trained on, how well it does
against each baseline window by window, and what it is fit for.

Read from ``card.json`` and ``model.json`` (:func:`mdforecast.pretrained.model_info`); MSE in Å², lead
times in frames and ps. Skill in a window means an MSE below both persistence and the observed mean
(FIELD.md: below min(persistence, mean)). Where the card scores the conformation too (a molecule without a box,
whose orientation is random within picoseconds: ``kabsch`` in its rows), the verdicts and "fit for" use the MSE
after optimal superposition, and the centred MSE is kept beside it (``centred``).
"""

from __future__ import annotations

from ..verdict import display_name, frames_text, verdict

__all__ = ["readable_card"]

_NOT_BASELINES = {"window", "frames", "model", "chaos floor", "kabsch"}


def _window(text: str, observe: int) -> dict:
    """``'2000-2020 (horizon 0-20)'`` or ``'full 2000-10000'`` → window, horizon and full, as evaluate writes them."""
    full = text.startswith("full ")
    a, b = (int(x) for x in text.removeprefix("full ").split(" ")[0].split("-"))
    return {"window": [a, b], "horizon": [a - observe, b - observe], "full": full}


def _entries(scores: list[dict], observe: int) -> list[dict]:
    """The card's test scores as window entries of :class:`~mdforecast.evaluation.Evaluation` (MSE, skill)."""
    out = []
    for row in scores:
        baselines = {name: {"mse": mse, "skill": {"mse": None if not mse else 1.0 - row["model"] / mse}}
                     for name, mse in row.items() if name not in _NOT_BASELINES and mse is not None}
        floor = row.get("chaos floor")
        out.append({**_window(row["window"], observe), "frames": row["frames"], "model": {"mse": row["model"]},
                    "baselines": baselines, "chaos_floor": None if floor is None else {"mse": floor}})
    return out


def _minutes(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds / 60:.0f} min"


def readable_card(info: dict) -> dict:
    """The card of ``info`` (:func:`~mdforecast.pretrained.model_info`) in words: ``title``, ``trained_on``,
    ``reductions`` (how it differs from PROTOCOL.md), ``windows`` (entries with MSE Å² and skill per baseline;
    after superposition where ``metric`` is ``mse_kabsch``, with the centred MSE's entries in ``centred``),
    ``verdicts`` (one line per window), ``fit_for`` and the card's ``note``."""
    card, model = info["card"], info["model"]
    config = model.get("config") or {}
    observe, horizon, strides = config.get("observe"), config.get("horizon"), config.get("strides") or []
    dt_ps = model.get("dt_ps")
    name = display_name(model.get("name") or "model")
    kinds = ", ".join(model.get("kinds") or []) or "?"
    title = (f"{info['name']}: {name} ({len(strides)} levels, strides {','.join(map(str, strides))} frames) for "
             f"{card.get('system')}, {card.get('atoms')} atoms of kinds {kinds}")
    data, hardware = card.get("data") or {}, card.get("hardware") or {}
    run = (card.get("training") or {}).get(model.get("name") or "", {})
    parts = []
    if data:
        split = data.get("split") or {}
        parts.append(f"{len(split.get('train', []))} of {data.get('trajectories')} simulated trajectories × "
                     f"{data.get('frames')} frames (seed {data.get('seed')}, OpenMM {data.get('platform')}, "
                     f"{data.get('twins')} twin(s) per test trajectory)")
    if run:
        parts.append(f"{run.get('epochs')} epochs (best {run.get('best_epoch')}, selected on "
                     f"{run.get('selected_on')}) in {_minutes(run.get('wall_s'))}")
    if hardware:
        parts.append(f"on {hardware.get('cpu_cores')} CPU cores ({hardware.get('cpu')}), "
                     f"{hardware.get('gpu') or 'no GPU'}")
    parts.append(f"scale {card.get('scale')}" + (f", preset {card['preset']}" if card.get("preset") else ""))
    trained_on = "; ".join(parts)
    reductions = [f"{key.removeprefix('option ')} {v['used']} (protocol {v['protocol']})"
                  for key, v in (card.get("reductions") or {}).items()]
    rows = card.get("scores") or []
    conformation = bool(rows) and all(row.get("kabsch") for row in rows)
    centred = _entries(rows, observe or 0)
    windows = _entries([{**row["kabsch"], "window": row["window"], "frames": row["frames"]} for row in rows],
                       observe or 0) if conformation else centred
    skilled = [w for w in windows if not w["full"] and w["model"]["mse"] < min(
        w["baselines"].get(b, {"mse": float("inf")})["mse"] for b in ("persistence", "mean"))]
    every = f"saved every {dt_ps:g} ps" if dt_ps is not None else "of the frame time it was trained on"
    ps = (lambda frames: "" if dt_ps is None or frames is None else f" ({frames * dt_ps:g} ps)")
    fit_for = (f"forecasting {card.get('system')} trajectories {every} (lead times count frames): it observes "
               f"{observe} frames{ps(observe)} and forecasts {horizon}{ps(horizon)}, rolling out leg by leg beyond. ")
    if conformation:
        fit_for += "Scored as a conformation (MSE after optimal superposition, Kabsch). "
    if not windows:
        fit_for += "Its card records no test scores."
    elif skilled:
        gains = [w["baselines"]["persistence"]["skill"]["mse"] for w in skilled if "persistence" in w["baselines"]]
        by = f" (its MSE {100 * min(gains):.2g}–{100 * max(gains):.2g} % below persistence's)" if gains else ""
        if len(skilled) == sum(not w["full"] for w in windows):
            fit_for += ("It beats both persistence and the observed mean in every window scored on its test "
                        f"trajectory{by}.")
        else:
            fit_for += ("It beats both persistence and the observed mean on its test trajectory over "
                        + "; ".join(frames_text(w, dt_ps) for w in skilled) + f"{by}, and in no other window scored.")
    else:
        fit_for += ("It beats both persistence and the observed mean in none of the scored windows: as a point "
                    "forecast it is no better than those baselines at this scale.")
    return {"title": title, "trained_on": trained_on, "reductions": reductions, "windows": windows,
            "metric": "mse_kabsch" if conformation else "mse", "centred": centred if conformation else None,
            "verdicts": [verdict(w, model.get("name") or "model", dt_ps,
                                 "MSE after superposition" if conformation else "MSE") for w in windows], "fit_for": fit_for,
            "note": card.get("note"), "dt_ps": dt_ps}
