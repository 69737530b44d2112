"""Forecasters: the interface (:class:`Forecaster`, :class:`Observation`, :func:`lead_time`), the baselines,
DoMiNO behind it (:class:`DominoForecaster`) and the registry that turns a ``--model`` name into one
(:func:`load_forecaster`).

:class:`DominoForecaster` needs torch and is imported on first use, so the baselines stay torch-free.
"""

from .base import Forecaster, Observation, lead_time
from .baselines import BASELINES
from .registry import default_observe, load_forecaster, load_pretrained, provenance

__all__ = ["Forecaster", "Observation", "lead_time", "BASELINES", "DominoForecaster", "load_forecaster",
           "load_pretrained", "default_observe", "provenance"]


def __getattr__(name: str):
    if name == "DominoForecaster":
        from .domino import DominoForecaster

        return DominoForecaster
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
