"""Periodic boxes: conversions, minimum image and unwrapping.

Boxes come in two shapes. MDAnalysis ``dimensions`` are ``(6,)`` ``[a, b, c, alpha, beta, gamma]``
(Å, degrees); mdforecast stores either edge lengths ``(3,)`` (orthorhombic) or box vectors ``(3, 3)``
(triclinic, one vector per row, Å), the H5MD convention. All functions here are numpy, float64
internally, and accept a leading frame axis where noted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_matrix", "box_vectors", "dimensions_from_box", "is_orthorhombic", "reduced_basis", "image_distance",
           "minimum_image", "Unwrapper"]


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


#: Voronoi-relevant lattice vectors of a Selling-reduced basis ``b1, b2, b3`` (coefficients; ± each)
_RELEVANT = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=np.float64)
_RELEVANT = np.concatenate([_RELEVANT, -_RELEVANT])
_PAIRS = np.array([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])


def reduced_basis(box: np.ndarray) -> np.ndarray:
    """Selling-reduced vectors ``(..., 3, 3)`` Å (rows) spanning the same lattice as ``box``.

    Selling's reduction turns the superbase ``b1, b2, b3, b0 = -(b1 + b2 + b3)`` into one whose vectors meet
    at right or obtuse angles (all ``bi·bj ≤ 0``). The Voronoi cell of such a lattice (the minimum-image
    region) is bounded by the 14 lattice vectors ``±(sums of 1, 2 or 3 of b1, b2, b3)`` (Conway & Sloane,
    Proc. R. Soc. A 436, 1992), which makes :func:`minimum_image` exact in any triclinic box.
    """
    h = box_matrix(box)
    volume = np.abs(np.linalg.det(h))
    if np.any(~(volume > 1e-9 * np.linalg.norm(h, axis=-1).prod(axis=-1))):  # NaN too
        raise ValueError("a flat box (box vectors in one plane, or not finite) has no periodic images")
    superbase = np.concatenate([h, -h.sum(axis=-2, keepdims=True)], axis=-2).reshape(-1, 4, 3)
    scale = np.einsum("mik,mik->m", superbase, superbase)
    for _ in range(10_000):  # each step lowers the sum of squared lengths; MD boxes need a handful
        dots = np.einsum("mpk,mpk->mp", superbase[:, _PAIRS[:, 0]], superbase[:, _PAIRS[:, 1]])
        worst = dots.argmax(axis=1)
        todo = np.nonzero(dots[np.arange(len(dots)), worst] > 1e-12 * scale)[0]
        if not len(todo):
            return superbase[:, :3].reshape(h.shape)
        i, j = _PAIRS[worst[todo], 0], _PAIRS[worst[todo], 1]
        bi = superbase[todo, i].copy()
        superbase[todo] += bi[:, None, :]  # b_k += b_i for the two others; j and i are fixed next
        superbase[todo, j] -= bi
        superbase[todo, i] = -bi
    raise ValueError("box reduction did not converge")


def _is_edges(box: np.ndarray, per_frame: bool | None) -> bool:
    """Whether ``box`` holds orthorhombic edges (else vectors); a lone ``(3, 3)`` is vectors unless
    ``per_frame`` says it is three frames' edges."""
    if per_frame is None:
        return box.shape[-2:] != (3, 3)
    return box.ndim == (2 if per_frame else 1)


def image_distance(box: np.ndarray, *, per_frame: bool | None = None) -> np.ndarray:
    """Distance from a point to its nearest periodic image ``(...,)`` Å (the shortest lattice vector).

    A displacement is unambiguously its own minimum image when shorter than half of this. ``per_frame``: see
    :func:`minimum_image`.
    """
    box = np.asarray(box, dtype=np.float64)
    if _is_edges(box, per_frame):
        return box.min(axis=-1)
    lattice = _RELEVANT @ reduced_basis(box)
    return np.sqrt(np.einsum("...ik,...ik->...i", lattice, lattice).min(axis=-1))


def minimum_image(delta: np.ndarray, box: np.ndarray, *, per_frame: bool | None = None) -> np.ndarray:
    """The shortest periodic image of displacements ``(..., atoms, 3)`` Å, exact in any box.

    ``box`` is edges ``(3,)``/vectors ``(3, 3)``, or one per frame (``(T, 3)``/``(T, 3, 3)`` with ``delta``
    ``(T, atoms, 3)``); ``per_frame=True`` says it has the frame axis, which a ``(3, 3)`` box otherwise does
    not (three frames' edges look like one box's vectors). Orthorhombic edges: round each coordinate.
    Triclinic vectors: round the fractional coordinates in the Selling-reduced basis (:func:`reduced_basis`);
    a displacement still longer than half the image distance then steps by the relevant lattice vector that
    shortens it most, until none does (the Voronoi cell). Returns float64.
    """
    delta = np.asarray(delta, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    edges = _is_edges(box, per_frame)
    per_frame = box.ndim == (2 if edges else 3)
    if edges:  # orthorhombic: rounding is exact
        box = box[:, None, :] if per_frame else box
        return delta - box * np.round(delta / box)
    basis = reduced_basis(box)  # per frame: (T, N, 3) @ (T, 3, 3) multiplies frame by frame
    out = delta - np.round(delta @ np.linalg.inv(basis)) @ basis
    lattice = _RELEVANT @ basis  # (14, 3) or (T, 14, 3)
    quarter = np.einsum("...ik,...ik->...i", lattice, lattice).min(axis=-1) / 4  # (image distance / 2)²
    far = np.nonzero(np.einsum("...k,...k->...", out, out) > (quarter[:, None] if per_frame else quarter))
    if len(far[0]):
        x = out[far]
        lat = lattice[far[0]] if per_frame else lattice
        while True:
            candidates = x[:, None, :] - lat
            lengths = np.einsum("mik,mik->mi", candidates, candidates)
            best = lengths.argmin(axis=1)
            shorter = lengths[np.arange(len(x)), best] < np.einsum("mk,mk->m", x, x) * (1 - 1e-12)
            if not shorter.any():
                break
            x[shorter] = candidates[shorter, best[shorter]]
        out[far] = x
    return out


class Unwrapper:
    """Streams wrapped frames into unwrapped ones with every bonded molecule whole, one block at a time.

    Each molecule (connected fragment of the bond graph) has a reference atom, its lowest-index atom *r*,
    followed by the minimum image of its step in the box ``H_t`` of each frame (von Bülow, Bullerjahn &
    Hummer, 2020), so it crosses faces continuously and NPT box changes stay right; the molecule's other
    atoms are placed around it along a spanning tree of its bonds, each bond by its minimum image:

    .. math::
        u_{r,0} = w_{r,0}, \\qquad u_{r,t} = u_{r,t-1} + \\operatorname{mic}_{H_t}(w_{r,t} - w_{r,t-1}),
        \\qquad u_{c,t} = u_{p,t} + \\operatorname{mic}_{H_t}(w_{c,t} - w_{p,t})

    for each tree bond from parent *p* to child *c*. A molecule is therefore whole in every frame, whatever
    images its atoms had in the file, and positions that are already continuous pass through unchanged.
    Valid while no reference atom moves half the image distance (:func:`image_distance`) between frames;
    :attr:`long_steps` counts reference steps longer than 0.4 of it, a sign of too sparsely saved frames.

    Computed as ``u = w + (lattice shift)`` for a whole block of frames at once, with no loop over frames or
    bond depths: the reference atoms' shifts are a running sum (float64, so nothing drifts over long files)
    of their steps' image shifts; every other atom adds the image shifts of the bonds on its path to the
    reference atom, summed by pointer jumping (log2 of the tree depth passes: none for water, whose
    hydrogens hang on the oxygen). The result does not depend on where blocks end.

    Args:
        n_atoms: atoms per frame, N.
        bonds: ``(B, 2)`` atom indices; default none (every atom is its own molecule).

    Shapes: ``update(wrapped (T, N, 3) Å, boxes (T, 3) | (T, 3, 3) Å) -> (T, N, 3) float32 Å``; successive
    calls continue where the previous block ended.
    """

    #: reference steps longer than this fraction of the image distance are counted in :attr:`long_steps`
    LONG_STEP = 0.4

    def __init__(self, n_atoms: int, bonds: np.ndarray | None = None) -> None:
        self.roots, up = _spanning_forest(n_atoms, bonds)
        # columns of a frame's flat (3N,) coordinates: gathering 4-byte columns is numpy's fast path
        self._root_columns = _columns(self.roots)
        self._parent_columns = _columns(up)
        # pointer jumping: after round k every atom holds the bond shifts of the first 2**k bonds up its path
        self._jumps, ancestor = [], up
        while not np.array_equal(ancestor[ancestor], ancestor):
            self._jumps.append(_columns(ancestor))
            ancestor = ancestor[ancestor]
        molecule = np.empty(n_atoms, np.int64)
        molecule[self.roots] = np.arange(len(self.roots))
        self._molecule_columns = _columns(molecule[ancestor])  # ancestor: now each atom's reference atom
        self._last_wrapped: np.ndarray | None = None  # reference atoms, last frame, (R, 3) float32
        self._offset: np.ndarray | None = None  # what unwrapping added to them so far, (3R,) float64
        self.n_steps = 0
        self.long_steps = 0

    def update(self, wrapped: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        wrapped = np.ascontiguousarray(wrapped, dtype=np.float32)
        boxes = np.asarray(boxes)
        n_frames, n_roots = len(wrapped), len(self.roots)
        flat = wrapped.reshape(n_frames, -1)
        ref = np.take(flat, self._root_columns, axis=1)  # (T, 3R)
        if self._last_wrapped is None:  # the first frame is its own start: a zero step
            self._last_wrapped, self._offset = ref[0], np.zeros(ref.shape[1])
            self.n_steps -= n_roots
        moves = np.empty_like(ref)
        np.subtract(ref[1:], ref[:-1], out=moves[1:])
        np.subtract(ref[0], self._last_wrapped, out=moves[0])
        # u_t = u_{t-1} + mic(w_t - w_{t-1}) = w_t + (the image shifts so far): positions stay float32, the
        # running sum of shifts (whole box vectors) is float64
        shifts = _image_shifts(moves, boxes, np.float64)
        moves += shifts  # the minimum-image steps
        squared = (moves * moves).reshape(n_frames, n_roots, 3)
        squared = squared[..., 0] + squared[..., 1] + squared[..., 2]
        limit = self.LONG_STEP * image_distance(boxes, per_frame=True)
        self.long_steps += int(np.count_nonzero(squared > (limit ** 2)[:, None]))
        self.n_steps += n_frames * n_roots
        shifts[0] += self._offset
        for t in range(1, n_frames):  # a running sum, frame by frame (np.cumsum along frames is slower)
            np.add(shifts[t], shifts[t - 1], out=shifts[t])
        self._last_wrapped, self._offset = ref[-1], shifts[-1].copy()

        # every atom: the shifts of the bonds up to its reference atom (reference atoms: a zero bond), ...
        out = np.take(flat, self._parent_columns, axis=1)
        np.subtract(flat, out, out=out)
        out = _image_shifts(out, boxes, np.float32)
        for columns in self._jumps:
            out += np.take(out, columns, axis=1)
        # ... plus the reference atom's own shift, plus its wrapped position
        out += np.take(shifts.astype(np.float32), self._molecule_columns, axis=1)
        out += flat
        return out.reshape(wrapped.shape)


def _columns(atoms: np.ndarray) -> np.ndarray:
    """The columns ``(3K,)`` of atoms ``(K,)`` in frames flattened to ``(3N,)`` coordinates."""
    return (3 * np.asarray(atoms, dtype=np.int64)[:, None] + np.arange(3)).ravel()


def _image_shifts(delta: np.ndarray, boxes: np.ndarray, dtype) -> np.ndarray:
    """Whole box vectors ``(T, 3M)`` (``dtype``) that take displacements ``delta`` ``(T, 3M)`` Å, float32 (M
    displacements per frame, flattened), to their minimum image in boxes ``(T, 3)``/``(T, 3, 3)`` Å:
    ``minimum_image(delta) - delta``. Orthorhombic edges: rounded in float32, multiplied in ``dtype``;
    triclinic: :func:`minimum_image`."""
    n_frames = len(delta)
    if boxes.ndim == 2:
        edges = boxes.astype(dtype)
        if (edges == edges[0]).all():  # one box for the block (NVT): one row of factors
            edges = edges[:1]
        # per column (x, y, z, x, y, z, ...): broadcasting a (T, 1, 3) box over atoms is several times slower
        edges = np.take(edges, np.arange(delta.shape[1]) % 3, axis=1)
        images = np.multiply(delta, (1.0 / edges).astype(np.float32))
        np.rint(images, out=images)
        images = images.astype(dtype, copy=False)
        images *= -edges
        return images
    delta = delta.reshape(n_frames, -1, 3)
    return (minimum_image(delta, boxes, per_frame=True) - delta).astype(dtype, copy=False).reshape(n_frames, -1)


def _spanning_forest(n_atoms: int, bonds: np.ndarray | None):
    """Reference atoms ``(R,)`` and each atom's parent ``(N,)`` in a spanning tree of its molecule (connected
    fragment of ``bonds``) rooted at the reference atom (reference atoms: their own parent).

    Numpy only (scipy's graph module costs more to import than a short trajectory takes to ingest): the
    lowest atom index spreads along bonds to label each molecule, then one breadth-first step per depth
    places the next shell of atoms of every molecule at once.
    """
    bonds = np.zeros((0, 2), dtype=np.int64) if bonds is None else np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    tail, head = np.r_[bonds[:, 0], bonds[:, 1]], np.r_[bonds[:, 1], bonds[:, 0]]  # both directions
    labels = np.arange(n_atoms)
    while True:  # each atom takes its neighbours' lowest label, then its label's label (pointer jumping)
        spread = labels.copy()
        np.minimum.at(spread, tail, labels[head])
        spread = spread[spread]
        if np.array_equal(spread, labels):
            break
        labels = spread
    roots = np.flatnonzero(labels == np.arange(n_atoms))  # lowest index of each molecule
    order = np.argsort(tail, kind="stable")
    neighbours, first = head[order], np.searchsorted(tail[order], np.arange(n_atoms + 1))  # adjacency (CSR)
    placed = np.zeros(n_atoms, dtype=bool)
    placed[roots] = True
    up, shell = np.arange(n_atoms), roots
    while True:  # the next shell: unplaced neighbours of the last one, each with one parent
        counts = first[shell + 1] - first[shell]
        total = int(counts.sum())
        if not total:
            break
        at = np.repeat(first[shell] - np.cumsum(counts) + counts, counts) + np.arange(total)
        reached, source = neighbours[at], np.repeat(shell, counts)
        new = ~placed[reached]
        shell, pick = np.unique(reached[new], return_index=True)
        if not len(shell):
            break
        placed[shell] = True
        up[shell] = source[new][pick]
    return roots, up
