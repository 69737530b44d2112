"""What ``mdforecast evaluate`` says in words: one verdict line per window, lead times in ps, and what the
chaos floor is (and where it lies above a forecaster).

Everything here reads the window entries of :class:`~mdforecast.evaluation.Evaluation` (MSE in Å², skill
``1 − MSE_model/MSE_baseline``) and formats them; nothing is computed from positions.
"""

from __future__ import annotations

__all__ = ["display_name", "horizon_ps", "frames_text", "verdict", "floor_explanation", "floor_notes"]

#: how architecture names read in sentences (any other forecaster name reads as itself)
_TITLES = {"domino": "DoMiNO", "lgode": "LG-ODE"}


def display_name(name: str) -> str:
    """``'DoMiNO'`` for ``'domino'``, ``'LG-ODE'`` for ``'lgode'``, any other forecaster name unchanged."""
    return _TITLES.get(name, name)


def horizon_ps(horizon: tuple[int, int] | list[int], dt_ps: float | None) -> list[float] | None:
    """A window's horizon (frames after the observed part, half-open) in ps: ``[a·dt_ps, b·dt_ps]``; ``None``
    when the trajectory's frame time is unknown."""
    return None if dt_ps is None else [horizon[0] * dt_ps, horizon[1] * dt_ps]


def frames_text(entry: dict, dt_ps: float | None) -> str:
    """``'frames 2000–2020 (0–2 ps)'``: a window's trajectory frames [A, B) and, when ``dt_ps`` is known, its
    horizon in ps after the observed part."""
    text = f"frames {entry['window'][0]}–{entry['window'][1]}"
    span = horizon_ps(entry["horizon"], dt_ps)
    lead = "" if span is None else f"{span[0]:g}–{span[1]:g} ps"
    if entry["full"]:
        return f"{text} (the full forecast{', ' + lead if lead else ''})"
    return f"{text} ({lead})" if lead else text


def _percent(fraction: float) -> str:
    """``0.36`` → ``'36 %'``, ``0.001`` → ``'0.1 %'`` (magnitude only)."""
    value = abs(fraction) * 100
    if value >= 10:
        return f"{value:.0f} %" if round(value) < 100 or value >= 100 else f"{value:.3g} %"
    return f"{value:.1f} %" if value >= 0.1 else f"{value:.2g} %"


def _against(name: str, skill: float | None) -> str:
    if skill is None:
        return f"undefined against {name} (its MSE is 0)"
    if skill > 0:
        return f"{_percent(skill)} below {name}"
    if skill < 0:
        return f"behind {name} by {_percent(skill)}"
    return f"level with {name}"


def verdict(entry: dict, model_name: str, dt_ps: float | None, score: str = "MSE") -> str:
    """One sentence for a window: the forecast's MSE against each baseline's, e.g. ``'DoMiNO is 36 % below
    persistence and behind mean by 0.1 % in MSE over frames 2000–2020 (0–2 ps)'`` (below: its MSE is that
    fraction lower; behind by: that fraction higher, relative to the baseline's MSE). ``score`` names the MSE
    in the sentence (e.g. ``'MSE after superposition'``)."""
    where = frames_text(entry, dt_ps)
    name = display_name(model_name)
    parts = [_against(b, v["skill"]["mse"]) for b, v in entry["baselines"].items()]
    if not parts:
        return f"{name} has {score} {entry['model']['mse']:.4g} Å² over {where} (no baseline scored)"
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"{name} is {listed} in {score} over {where}"


def floor_explanation(twins: int) -> str:
    """What the chaos floor is, in one line, for a truth with ``twins`` twin trajectories of the scored ones."""
    runs = "one twin run" if twins == 1 else f"{twins} twin runs"
    noisy = "; noisy with one twin" if twins == 1 else ""
    return (f"chaos floor: half the MSE between the truth and {runs} continued from the last observed state with "
            f"fresh noise (or a tiny perturbation), an estimate of the best MSE any forecaster can reach{noisy}")


def floor_notes(windows: list[dict], model_name: str, dt_ps: float | None) -> list[str]:
    """One note per window where the chaos floor lies above the forecast or a baseline (it estimates a lower
    bound, so there it is too noisy or the twins do not share the truth's conditional spread)."""
    notes = []
    for w in windows:
        floor = w["chaos_floor"]
        if floor is None:
            continue
        scored = {f"the forecast ({display_name(model_name)})": w["model"]["mse"],
                  **{n: b["mse"] for n, b in w["baselines"].items()}}
        below = [n for n, mse in scored.items() if mse is not None and mse < floor["mse"]]
        if below:
            listed = below[0] if len(below) == 1 else ", ".join(below[:-1]) + " and " + below[-1]
            notes.append(f"note: over {frames_text(w, dt_ps)} the chaos floor ({floor['mse']:.4g} Å², "
                         f"{floor['frames']} frames) lies above {listed}: read it as a rough estimate there, not a bound")
    return notes
