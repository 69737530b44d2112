"""timespec: frame times with and without units, ranges, windows and horizons."""

from __future__ import annotations

import numpy as np
import pytest

from mdforecast.errors import InputError
from mdforecast.timespec import Window, parse_range, parse_time, parse_times


@pytest.mark.parametrize("text, frames", [("10000", 10000.0), ("2500.5", 2500.5), ("1000ps", 10000.0),
                                          ("1ns", 10000.0), ("250fs", 2.5), ("1e3ps", 10000.0), ("12frames", 12.0)])
def test_parse_time_frames_and_units(text, frames):
    assert parse_time(text, dt_ps=0.1) == pytest.approx(frames)


@pytest.mark.parametrize("text", ["", "ten", "10 parsecs", "1.2.3", "ps"])
def test_parse_time_refuses_garbage(text):
    with pytest.raises(InputError, match="not a time"):
        parse_time(text, dt_ps=0.1)


def test_parse_times_lists_and_half_open_ranges():
    np.testing.assert_allclose(parse_times("2500.5,2000,3000", 0.1), [2500.5, 2000, 3000])
    np.testing.assert_allclose(parse_times("2000:2002:0.5", 0.1), [2000, 2000.5, 2001, 2001.5])
    np.testing.assert_allclose(parse_times("200ps:200.3ps:0.1ps", 0.1), [2000, 2001, 2002])
    np.testing.assert_allclose(parse_times("5:8,6,9", 1.0), [5, 6, 7, 9])  # duplicates dropped, order kept


@pytest.mark.parametrize("text", ["3:1", "1:5:0", "1:2:3:4"])
def test_parse_times_refuses_empty_or_malformed_ranges(text):
    with pytest.raises(InputError):
        parse_times(text, 1.0)


def test_parse_range():
    assert parse_range("4980-5000", option="--window") == (4980, 5000)
    for bad in ("5000-4980", "10-10", "a-b", "4980", "-5-10"):
        with pytest.raises(InputError, match="--window"):
            parse_range(bad, option="--window")


def test_window_and_horizon_name_the_same_frames():
    by_window = Window.from_option("4980-5000", observe_end=2000)
    by_horizon = Window.from_option("2980-3000", observe_end=2000, horizon=True)
    assert by_window == by_horizon
    assert by_window.horizon == (2980, 3000)
    assert "4980-5000" in by_window.label and "horizon 2980-3000" in by_window.label
    frames = np.arange(4975, 5005, 0.5)
    assert by_window.contains(frames).sum() == 40  # 20 frames at half-frame spacing, half-open
