"""Frame times and windows as the command line writes them.

Times are **trajectory frame indices** (0-based, real-valued). A bare number is a frame (``2500.5``); a
number with a unit (``1000ps``, ``2.5ns``, ``500fs``) is a time since the trajectory's frame 0 and is turned
into frames with the trajectory's ``dt_ps``. Windows ``A-B`` are half-open ranges of integer frames.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from .errors import InputError

__all__ = ["MAX_TIMES", "UNITS_PS", "parse_time", "parse_times", "parse_range", "Window"]

#: time units accepted after a number, in ps
UNITS_PS = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6, "µs": 1e6}

#: the most times a ``--times`` range may hold (bounds the memory of the list)
MAX_TIMES = 10**7
_NUMBER = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zµ]*)\s*$")


def parse_time(text: str, dt_ps: float | None, *, option: str = "--until") -> float:
    """A frame index from ``'2500.5'`` (frames) or ``'1000ps'`` (time since frame 0; ``dt_ps`` per frame;
    ``None``: the time step is unknown and only frames are accepted)."""
    match = _NUMBER.match(str(text))
    unit = match.group(2) if match else None
    if match is None or (unit and unit not in UNITS_PS and unit not in ("f", "frame", "frames")):
        raise InputError(f"{option} {text!r} is not a time; give frames (2500, 2500.5) or a time with a unit "
                         f"({', '.join(UNITS_PS)}), e.g. 1000ps")
    value = float(match.group(1))
    if unit in UNITS_PS:
        if dt_ps is None:
            raise InputError(f"{option} {text!r} is a time, but the trajectory records no time step; give frames, "
                             "or re-ingest it with --dt PS")
        value = value * UNITS_PS[unit] / dt_ps
    return value


def parse_times(text: str, dt_ps: float | None, *, option: str = "--times") -> np.ndarray:
    """Frame times ``(K,)`` float64 from a comma-separated list of times and ranges ``A:B[:STEP]``.

    A range is half-open like ``--until`` (``2000:2010:0.5`` is 2000, 2000.5, …, 2009.5); each part may
    carry a unit. The result keeps the order given, duplicates removed.
    """
    out: list[float] = []
    for item in str(text).split(","):
        parts = item.split(":")
        if len(parts) == 1:
            out.append(parse_time(parts[0], dt_ps, option=option))
            continue
        if len(parts) not in (2, 3):
            raise InputError(f"{option} part {item!r} is not a time or a range A:B[:STEP]; e.g. 2000:3000:10")
        start, stop = (parse_time(p, dt_ps, option=option) for p in parts[:2])
        step = parse_time(parts[2], dt_ps, option=option) if len(parts) == 3 else 1.0
        if step <= 0 or stop <= start:
            raise InputError(f"{option} range {item!r} is empty; use A:B:STEP with A < B and STEP > 0")
        count = (stop - start) / step
        if not np.isfinite(count) or count > MAX_TIMES:
            raise InputError(f"{option} range {item!r} holds more than {MAX_TIMES:,} times; give a shorter range or "
                             "a larger STEP")
        count = int(np.ceil(count - 1e-9))
        out.extend((start + step * np.arange(count)).tolist())
    times = np.asarray(out, dtype=np.float64)
    _, first = np.unique(times, return_index=True)
    return times[np.sort(first)]


def parse_range(text: str, *, option: str) -> tuple[int, int]:
    """``'A-B'`` → ``(A, B)``: a half-open range of whole frames, ``0 ≤ A < B``."""
    match = re.fullmatch(r"\s*(\d+)\s*-\s*(\d+)\s*", str(text))
    if match is None or int(match.group(1)) >= int(match.group(2)):
        raise InputError(f"{option} {text!r} is not a frame range; give A-B with whole frames A < B, e.g. 4980-5000")
    return int(match.group(1)), int(match.group(2))


@dataclasses.dataclass(frozen=True)
class Window:
    """A half-open range ``[start, stop)`` of trajectory frames, forecast after ``observe_end`` observed frames.

    ``horizon`` names the same frames counted from the end of the observed part (the paper's Table 3).
    """

    start: int
    stop: int
    observe_end: int
    full: bool = False

    @classmethod
    def from_option(cls, text: str, observe_end: int, *, horizon: bool = False) -> "Window":
        """``--window A-B`` (trajectory frames) or ``--horizon A-B`` (frames after the observed part)."""
        a, b = parse_range(text, option="--horizon" if horizon else "--window")
        shift = observe_end if horizon else 0
        return cls(a + shift, b + shift, observe_end)

    @property
    def horizon(self) -> tuple[int, int]:
        return self.start - self.observe_end, self.stop - self.observe_end

    @property
    def label(self) -> str:
        kind = "full " if self.full else ""
        return f"{kind}{self.start}-{self.stop} (horizon {self.horizon[0]}-{self.horizon[1]})"

    def contains(self, frames: np.ndarray) -> np.ndarray:
        """Mask ``(K,)`` of the frame indices inside the window."""
        return (frames >= self.start) & (frames < self.stop)
