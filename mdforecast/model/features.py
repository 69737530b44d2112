"""What the model reads from the observed frames: atom kinds, input vectors and the last box.

Atoms are identified by **kind**, never by index, so a model transfers to another box size or atom count
of the same kinds. A model's kinds come from one topology field (:data:`KIND_FIELDS`): chemical elements by
default (written ``Ar``, whatever the file's case: ``AR`` and ``ar`` are argon too), force-field types or atom
names where asked; a model compares kinds case-insensitively, so a trajectory exported by
``mdforecast export`` and ingested again is the same system to it.

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
from ..topology import KIND_FIELDS, Topology

__all__ = ["KIND_FIELDS", "resolve_kind_field", "atom_kinds", "input_vectors", "last_box"]

def resolve_kind_field(topology: Topology, field: str | None = None) -> str:
    """``field`` when ``topology`` sets it for every atom; with ``field=None`` the first of :data:`KIND_FIELDS`
    that it sets. :class:`InputError` otherwise."""
    for name in (field,) if field is not None else KIND_FIELDS:
        values = getattr(topology, name)
        if values is not None and all(str(x).strip() for x in values):
            return name
    if field is not None:
        others = [f for f in KIND_FIELDS if f != field]
        raise InputError(f"the topology does not give every atom its {field}; choose --kinds {' or '.join(others)}, "
                         "or ingest from a topology file that has them")
    raise InputError("the topology has no atom elements, types or names; ingest it from a file that names its atoms")


def atom_kinds(topology: Topology, field: str | None = None) -> np.ndarray:
    """The kind of every atom ``(N,)`` str from topology ``field`` (``None``: :func:`resolve_kind_field`'s choice),
    stripped; elements are written as symbols (``AR`` → ``Ar``)."""
    field = resolve_kind_field(topology, field)
    kinds = [str(x).strip() for x in getattr(topology, field)]
    return np.asarray([k.capitalize() for k in kinds] if field == "elements" else kinds)


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
