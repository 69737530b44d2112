"""mdforecast: forecast molecular dynamics trajectories with DoMiNO, a hierarchy of latent graph ODEs.

The Python API mirrors the command line: every command is a function here. Heavy libraries (MDAnalysis,
torch) are imported inside the functions that need them, so ``mdforecast --help`` stays fast.
"""

__version__ = "0.1.0"

from .errors import MDForecastError  # noqa: E402
from .export import export  # noqa: E402
from .info import info  # noqa: E402
from .ingest import ingest  # noqa: E402
from .store import Store  # noqa: E402

__all__ = ["__version__", "ingest", "info", "export", "Store", "MDForecastError"]
