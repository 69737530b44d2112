"""The DoMiNO model: a hierarchy of latent graph ODEs (``levels=1`` is LG-ODE)."""

from .domino import Domino, DominoConfig, Normalisation, Window
from .features import KIND_FIELDS, atom_kinds, input_vectors

__all__ = ["Domino", "DominoConfig", "Normalisation", "Window", "KIND_FIELDS", "atom_kinds", "input_vectors"]
