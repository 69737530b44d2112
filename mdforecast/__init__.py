"""mdforecast: forecast molecular dynamics trajectories with DoMiNO, a hierarchy of latent graph ODEs.

The Python API mirrors the command line: every command is a function here.

- :func:`ingest` (``mdforecast ingest``), :func:`info`, :func:`export`: trajectory files ↔ stores (:class:`Store`);
- :func:`train` (``mdforecast train``; typed options from :func:`resolve_options`);
- :func:`load`: a forecaster by name (a baseline, a pretrained model, a run directory or model file);
- :func:`predict` and :func:`evaluate` (``mdforecast predict`` / ``evaluate``).

The functions that need torch (``train``, ``resolve_options``, ``predict``, ``evaluate``, ``load``) are
imported on first use, so ``import mdforecast`` and ``mdforecast --help`` stay fast.
"""

from .version import __version__  # noqa: E402
from .errors import MDForecastError  # noqa: E402
from .export import export  # noqa: E402
from .info import info  # noqa: E402
from .ingest import ingest  # noqa: E402
from .store import Store  # noqa: E402

#: name → (module, attribute) of the functions imported on first use
_LAZY = {"train": ("training", "train"), "resolve_options": ("training", "resolve_options"),
         "predict": ("prediction", "predict"), "evaluate": ("evaluation", "evaluate"),
         "load": ("forecasters", "load_forecaster")}

__all__ = ["__version__", "ingest", "info", "export", "train", "resolve_options", "load", "predict", "evaluate",
           "Store", "MDForecastError"]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
