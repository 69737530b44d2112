"""The verdict sentences of evaluate: wins and losses in words, lead times in ps, the chaos-floor notes."""

from __future__ import annotations

from mdforecast.verdict import floor_explanation, floor_notes, frames_text, verdict


def entry(skills: dict, *, full=False, floor=None, mse=1.0) -> dict:
    return {"window": [2000, 2020], "horizon": [0, 20], "full": full, "model": {"mse": mse},
            "baselines": {name: {"mse": mse / (1 - s) if s is not None else 0.0, "skill": {"mse": s}}
                          for name, s in skills.items()},
            "chaos_floor": floor}


def test_verdict_says_below_and_behind_with_ps():
    text = verdict(entry({"persistence": 0.36, "damped-velocity": 0.12}), "domino", 0.1)
    assert text == "DoMiNO is 36 % below persistence and 12 % below damped-velocity in MSE over frames 2000–2020 (0–2 ps)"
    text = verdict(entry({"persistence": -0.001, "mean": 0.5, "velocity": None}), "lgode", 0.1)
    assert text == ("LG-ODE is behind persistence by 0.1 %, 50 % below mean and undefined against velocity (its MSE "
                    "is 0) in MSE over frames 2000–2020 (0–2 ps)")


def test_unknown_frame_time_gives_frames_only():
    assert frames_text(entry({}), None) == "frames 2000–2020"
    assert frames_text(entry({}, full=True), None) == "frames 2000–2020 (the full forecast)"
    assert frames_text(entry({}, full=True), 100.0) == "frames 2000–2020 (the full forecast, 0–2000 ps)"
    assert verdict(entry({}), "persistence", None) == "persistence has MSE 1 Å² over frames 2000–2020 (no baseline scored)"


def test_floor_notes_name_what_lies_below_the_floor():
    assert "noisy with one twin" in floor_explanation(1) and "noisy" not in floor_explanation(2)
    assert "twin-vs-truth" not in floor_explanation(2) and "half the MSE" in floor_explanation(2)
    below = entry({"persistence": 0.5}, floor={"mse": 1.5, "frames": 20})  # model 1.0, persistence 2.0
    notes = floor_notes([below, entry({"persistence": 0.5}, floor={"mse": 0.5, "frames": 20}), entry({})], "domino", 0.1)
    assert notes == ["note: over frames 2000–2020 (0–2 ps) the chaos floor (1.5 Å², 20 frames) lies above the forecast "
                     "(DoMiNO): read it as a rough estimate there, not a bound"]
