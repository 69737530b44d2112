"""Periodic boxes: conversions, minimum image and unwrapping.

Boxes come in two shapes. MDAnalysis ``dimensions`` are ``(6,)`` ``[a, b, c, alpha, beta, gamma]``
(Å, degrees); mdforecast stores either edge lengths ``(3,)`` (orthorhombic) or box vectors ``(3, 3)``
(triclinic, one vector per row, Å), the H5MD convention. All functions here are numpy, float64
internally, and accept a leading frame axis where noted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_matrix", "box_vectors", "dimensions_from_box", "is_orthorhombic", "minimum_image", "Unwrapper"]


def is_orthorhombic(dimensions: np.ndarray, atol_deg: float = 1e-3) -> bool:
    """True when the MDAnalysis ``dimensions`` ``[a, b, c, α, β, γ]`` have all angles at 90°."""
    return bool(np.all(np.abs(np.asarray(dimensions[3:6], dtype=float) - 90.0) < atol_deg))


def box_matrix(box: np.ndarray) -> np.ndarray:
    """Box vectors as rows, ``(..., 3, 3)`` Å, from edges ``(..., 3)`` or vectors ``(..., 3, 3)``."""
    box = np.asarray(box, dtype=np.float64)
    if box.shape[-2:] == (3, 3):
        return box
    if box.shape[-1] != 3:
        raise ValueError(f"a box has shape (..., 3) or (..., 3, 3), got {box.shape}")
    out = np.zeros(box.shape[:-1] + (3, 3))
    idx = np.arange(3)
    out[..., idx, idx] = box
    return out


def box_vectors(dimensions: np.ndarray) -> np.ndarray:
    """Box vectors ``(..., 3, 3)`` Å (rows; a along x, b in the xy plane) from ``[a, b, c, α, β, γ]`` ``(..., 6)``."""
    dimensions = np.asarray(dimensions, dtype=np.float64)
    a, b, c = dimensions[..., 0], dimensions[..., 1], dimensions[..., 2]
    alpha, beta, gamma = (np.radians(dimensions[..., k]) for k in (3, 4, 5))
    out = np.zeros(dimensions.shape[:-1] + (3, 3))
    out[..., 0, 0] = a
    out[..., 1, 0] = b * np.cos(gamma)
    out[..., 1, 1] = b * np.sin(gamma)
    out[..., 2, 0] = c * np.cos(beta)
    out[..., 2, 1] = c * (np.cos(alpha) - np.cos(beta) * np.cos(gamma)) / np.sin(gamma)
    out[..., 2, 2] = np.sqrt(np.maximum(c**2 - out[..., 2, 0] ** 2 - out[..., 2, 1] ** 2, 0.0))
    return out


def dimensions_from_box(box: np.ndarray) -> np.ndarray:
    """MDAnalysis ``dimensions`` ``(..., 6)`` float32 from stored edges or vectors."""
    h = box_matrix(box)
    lengths = np.linalg.norm(h, axis=-1)

    def angle(u, v, lu, lv):
        cos = np.sum(u * v, axis=-1) / (lu * lv)
        return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))

    alpha = angle(h[..., 1, :], h[..., 2, :], lengths[..., 1], lengths[..., 2])
    beta = angle(h[..., 0, :], h[..., 2, :], lengths[..., 0], lengths[..., 2])
    gamma = angle(h[..., 0, :], h[..., 1, :], lengths[..., 0], lengths[..., 1])
    return np.concatenate([lengths, np.stack([alpha, beta, gamma], axis=-1)], axis=-1).astype(np.float32)


def minimum_image(delta: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Shift displacements ``(..., atoms, 3)`` Å into the box's minimum image.

    ``box`` is edges ``(3,)``/vectors ``(3, 3)``, or one per leading index. Exact for orthorhombic boxes;
    for triclinic boxes it wraps the fractional coordinates into [-½, ½), which is the minimum image for
    displacements shorter than half the shortest box height (always true between consecutive frames).
    """
    delta = np.asarray(delta, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    if box.shape[-1] == 3 and box.shape[-2:] != (3, 3):  # orthorhombic edges: exact, fast
        edges = box[:, None, :] if box.ndim == 2 else box
        return delta - edges * np.round(delta / edges)
    h = box[:, None] if box.ndim == 3 else box  # one box per frame broadcasts over atoms
    frac = (delta[..., None, :] @ np.linalg.inv(h))[..., 0, :]
    frac -= np.round(frac)
    return (frac[..., None, :] @ h)[..., 0, :]


class Unwrapper:
    """Streams wrapped frames into continuous (unwrapped) positions, one block of frames at a time.

    .. math::
        u_0 = w_0, \\qquad u_t = u_{t-1} + \\operatorname{mic}_{H_t}(w_t - w_{t-1})

    where ``mic`` is the minimum image in the box ``H_t`` of frame *t* (von Bülow, Bullerjahn & Hummer, 2020).
    Each step adds the shortest periodic displacement, so an atom crossing a face keeps moving continuously,
    and molecules made whole in the first frame stay whole. Valid while no atom moves half a box between
    frames. Positions that are already continuous pass through unchanged.

    Args:
        first: the first frame's positions with molecules made whole ``(N, 3)`` Å; default: the first
            frame as given.

    Shapes: ``update(wrapped (T, N, 3) Å, boxes (T, 3) | (T, 3, 3) Å) -> (T, N, 3) float64 Å``; successive
    calls continue where the previous block ended.
    """

    def __init__(self, first: np.ndarray | None = None) -> None:
        self._first = None if first is None else np.asarray(first, dtype=np.float64)
        self._last_wrapped: np.ndarray | None = None
        self._last_unwrapped: np.ndarray | None = None

    def update(self, wrapped: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        wrapped = np.asarray(wrapped, dtype=np.float64)
        boxes = np.asarray(boxes, dtype=np.float64)
        if self._last_wrapped is None:
            start = wrapped[0] if self._first is None else self._first
            steps = minimum_image(np.diff(wrapped, axis=0), boxes[1:])
        else:
            start = self._last_unwrapped
            steps = minimum_image(np.diff(wrapped, axis=0, prepend=self._last_wrapped[None]), boxes)
        unwrapped = np.concatenate([start[None], start + np.cumsum(steps, axis=0)]) \
            if self._last_wrapped is None else start + np.cumsum(steps, axis=0)
        self._last_wrapped, self._last_unwrapped = wrapped[-1], unwrapped[-1]
        return unwrapped
