"""What the model reads from the observed frames: atom kinds, input vectors and the last box.

Atoms are identified by **kind**, never by index, so a model transfers to another box size or atom count
of the same kinds. The kind of an atom is the first topology field present for every atom, in the order
:data:`KIND_FIELDS` (force-field type, element, atom name).

Input vectors (equivariant, Å) of a window of T observed frames with positions :math:`x_0..x_{T-1}`:

.. math::
    u_k = x_{T-1} - x_{T-1-\\ell_k} \\ (\\text{lags } \\ell_k), \\qquad
    u_{K} = x_{T-1} - \\tfrac{1}{|I|}\\sum_{t \\in I} x_t

with I a set of ``context`` frames evenly spaced over the window: recent motion (what beats persistence
early) and the offset from the observed mean position (what a bounded coordinate relaxes towards).

Shapes: T frames, N atoms, K = len(lags) + 1 input vectors.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..pbc import box_matrix
from ..topology import Topology

__all__ = ["KIND_FIELDS", "atom_kinds", "input_vectors", "last_box"]

#: topology fields tried, in order, for an atom's kind
KIND_FIELDS = ("types", "elements", "names")


def atom_kinds(topology: Topology) -> np.ndarray:
    """The kind of every atom ``(N,)`` str: the first of :data:`KIND_FIELDS` that is set for all atoms."""
    for field in KIND_FIELDS:
        values = getattr(topology, field)
        if values is not None and all(str(x).strip() for x in values):
            return np.asarray([str(x).strip() for x in values])
    raise InputError("the topology has no atom types, elements or names; ingest it from a file that names its atoms")


def input_vectors(positions: np.ndarray, lags: tuple[int, ...], context: int) -> np.ndarray:
    """Input vectors ``(N, K, 3)`` float32 Å of an observed window ``positions`` ``(T, N, 3)`` Å (unwrapped)."""
    t = positions.shape[0]
    if t <= max(lags):
        raise InputError(f"the observation has {t} frames but the model looks back {max(lags)} frames; "
                         f"observe at least {max(lags) + 1} frames")
    last = positions[-1].astype(np.float64)
    vectors = [last - positions[-1 - lag] for lag in lags]
    idx = np.unique(np.linspace(0, t - 1, min(context, t)).round().astype(np.int64))
    vectors.append(last - positions[idx].astype(np.float64).mean(axis=0))
    return np.stack(vectors, axis=1).astype(np.float32)


def last_box(boxes: np.ndarray | None) -> np.ndarray | None:
    """Box vectors ``(3, 3)`` Å of the last frame of ``boxes`` ``(T, 3)``/``(T, 3, 3)``, or ``None``."""
    return None if boxes is None else box_matrix(np.asarray(boxes)[-1])
