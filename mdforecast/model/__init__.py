"""The DoMiNO model: a hierarchy of latent graph ODEs (``levels=1`` is LG-ODE), optionally with a dynamics level."""

from .domino import CONFORMATION_SOURCES, LOSSES, SOURCES, Domino, DominoConfig, Normalisation, Window
from .features import KIND_FIELDS, atom_kinds, input_vectors

__all__ = ["Domino", "DominoConfig", "Normalisation", "Window", "SOURCES", "CONFORMATION_SOURCES", "LOSSES", "KIND_FIELDS", "atom_kinds",
           "input_vectors"]
