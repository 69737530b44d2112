"""The registry of benchmark systems: name → :class:`~mdforecast.datasets.spec.SystemSpec`."""

from __future__ import annotations

from .ala2 import ALA2
from .lj import LJ
from .spec import SystemSpec
from .water import TIP3P, TIP4P

__all__ = ["SYSTEMS"]

#: name → system; the command line's ``datasets make NAME`` choices
SYSTEMS: dict[str, SystemSpec] = {spec.name: spec for spec in (LJ, TIP3P, TIP4P, ALA2)}
