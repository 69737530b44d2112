"""The benchmark protocol's time layout (PROTOCOL.md "The forecasting task"), in one place.

Observe frames [0, :data:`OBSERVE`), forecast the next :data:`HORIZON` frames, DoMiNO levels with output
strides :data:`STRIDES` (coarse → fine), and the windows scored by default: the first frames, then the
paper's Table 3 (:data:`WINDOWS`, frames counted after the observed part). The model's defaults, the
baselines' default ``--observe``, ``evaluate``'s default windows and the help texts all read these.
"""

from __future__ import annotations

__all__ = ["OBSERVE", "HORIZON", "STRIDES", "LAGS", "WINDOWS", "strides_text"]

#: observed frames [0, OBSERVE)
OBSERVE = 2000
#: forecast frames after the observed part: [OBSERVE, OBSERVE + HORIZON)
HORIZON = 8000
#: output stride of each DoMiNO level, frames, coarse → fine
STRIDES = (400, 20, 1)
#: frames DoMiNO looks back from the last observed frame for its recent-motion inputs
LAGS = (1, 10)
#: windows scored by default, ``(a, b)`` half-open, frames after the observed part: the first 20 frames, then Table 3
WINDOWS = ((0, 20), (80, 100), (180, 200), (980, 1000), (1980, 2000), (2980, 3000), (4980, 5000), (7980, 8000))


def strides_text(strides: tuple[int, ...] = STRIDES) -> str:
    """``'400,20,1'``: strides (or lags) as the command line writes them."""
    return ",".join(str(s) for s in strides)
