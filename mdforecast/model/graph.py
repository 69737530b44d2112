"""Neighbour lists in torch: minimum-image radius graphs for orthorhombic, triclinic and no boxes.

The graph of a model is built by a *neighbour function* with the signature :data:`NeighborFn`; the model
takes it as an argument, so a user can inject another one without touching the model. The default,
:func:`radius_graph`, searches cell lists with ``vesin-torch``: cost O(N) in the number of atoms.
:func:`radius_graph_all_pairs` computes every pair displacement (cost O(N²), memory bounded by processing
rows in chunks); it is the reference the tests hold the default to.

Edge convention (PyG's ``source_to_target``): ``edge_index[0]`` is the neighbour *j*, ``edge_index[1]``
the centre *i* that receives the message, and ``vectors[e] = mic(x_j - x_i)``, Å. The two functions list
the same edges in different orders (each order is deterministic); the model sums messages per centre, so
its outputs depend on the order only through floating-point rounding.

Shapes: N atoms, E edges, S graphs of a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from vesin_torch import NeighborList

from ..errors import InputError

__all__ = ["Graph", "NeighborFn", "box_matrix", "box_heights", "radius_graph", "radius_graph_all_pairs", "batch_graphs"]

#: ``(positions (N, 3), cutoff Å, box (3, 3) | None) -> (edge_index (2, E) int64, vectors (E, 3))``
NeighborFn = Callable[[torch.Tensor, float, "torch.Tensor | None"], tuple[torch.Tensor, torch.Tensor]]

_ROWS = 2048  # rows of the pair matrix processed at once: memory ≈ _ROWS · N · 27 · 3 floats (triclinic)


def box_matrix(box: torch.Tensor) -> torch.Tensor:
    """Box vectors as rows ``(..., 3, 3)`` from edges ``(..., 3)`` or vectors ``(..., 3, 3)``, Å."""
    if box.shape[-2:] == (3, 3):
        return box
    return torch.diag_embed(box)


def box_heights(box: torch.Tensor) -> torch.Tensor:
    """Spacings ``(3,)`` Å of the box's lattice planes (volume over each face's area) for vectors as rows
    ``(3, 3)`` Å: the minimum image resolves every distance below half the smallest."""
    return torch.linalg.det(box).abs() / torch.linalg.cross(box[[1, 2, 0]], box[[2, 0, 1]]).norm(dim=-1)


def _check_box(box: torch.Tensor, cutoff: float) -> None:
    heights = box_heights(box)
    if bool((2 * cutoff >= heights).any()):
        raise InputError(f"cutoff {cutoff:g} Å is not below half the box height ({heights.min().item() / 2:.2f} Å): "
                         "the minimum image would miss neighbours; lower the model's cutoff or use a bigger box")


def _orthorhombic(box: torch.Tensor) -> bool:
    return bool((box - torch.diag_embed(torch.diagonal(box))).abs().max() == 0)


def radius_graph(positions: torch.Tensor, cutoff: float, box: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs closer than ``cutoff`` under the minimum image of ``box`` (or in vacuum when ``None``),
    found with ``vesin-torch`` cell lists in O(N).

    .. math::
        \\mathbf r_{ij} = \\operatorname{mic}_H(\\mathbf x_j - \\mathbf x_i), \\qquad
        (j \\to i) \\in E \\iff 0 < |\\mathbf r_{ij}| < r_c

    vesin finds the pairs and their periodic shifts :math:`\\mathbf s_{ij} \\in \\mathbb Z^3` (in float64);
    the vectors are computed here, :math:`\\mathbf r_{ij} = \\mathbf x_j - \\mathbf x_i + \\mathbf s_{ij} H`, in
    the dtype of ``positions`` and differentiable with respect to ``positions`` and ``box``. With ``cutoff``
    below half the shortest box height (checked: :class:`~mdforecast.errors.InputError` otherwise) a pair
    has at most one image within the cutoff, the minimum image, so orthorhombic and triclinic boxes are
    exact. vesin searches CPU tensors (with ``torch.get_num_threads()`` threads) and CUDA tensors where
    they are; tensors on other devices are searched on the CPU.

    Args:
        positions: ``(N, 3)`` Å (unwrapped positions are fine).
        cutoff: radius, Å.
        box: ``(3, 3)`` box vectors as rows or ``(3,)`` edges, Å; ``None`` without periodic box.

    Shapes: ``-> edge_index (2, E) int64, vectors (E, 3)`` (same dtype as ``positions``).
    """
    periodic = box is not None
    if periodic:
        box = box_matrix(box.to(positions.dtype))
        _check_box(box, cutoff)
    else:
        box = positions.new_zeros(3, 3)
    device = positions.device if positions.device.type in ("cpu", "cuda") else torch.device("cpu")
    search = NeighborList(cutoff=cutoff, full_list=True, n_threads=torch.get_num_threads())
    i, j, shifts = (q.to(positions.device) for q in
                    search.compute(positions.detach().to(device), box.detach().to(device), periodic, "ijS"))
    vectors = positions.index_select(0, j) - positions.index_select(0, i)
    if periodic:
        vectors = vectors + shifts.to(positions.dtype) @ box
    return torch.stack([j, i]), vectors


def radius_graph_all_pairs(positions: torch.Tensor, cutoff: float, box: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The graph of :func:`radius_graph` from all N² pair displacements: the reference implementation.

    .. math::
        \\mathbf r_{ij} = \\operatorname{mic}_H(\\mathbf x_j - \\mathbf x_i), \\qquad
        (j \\to i) \\in E \\iff 0 < |\\mathbf r_{ij}| < r_c

    Orthorhombic boxes use the exact rounding rule; triclinic boxes wrap fractional coordinates and then
    take the shortest of the 27 neighbouring images, exact whenever ``cutoff`` is below half the shortest
    box height (checked: :class:`~mdforecast.errors.InputError` otherwise). Edges are ordered by centre,
    then neighbour.

    Args:
        positions: ``(N, 3)`` Å (unwrapped positions are fine).
        cutoff: radius, Å.
        box: ``(3, 3)`` box vectors as rows or ``(3,)`` edges, Å; ``None`` without periodic box.

    Shapes: ``-> edge_index (2, E) int64, vectors (E, 3)`` (same dtype as ``positions``).
    """
    n = positions.shape[0]
    box = None if box is None else box_matrix(box.to(positions.dtype))
    if box is not None:
        _check_box(box, cutoff)
        ortho = _orthorhombic(box)
        inverse = torch.linalg.inv(box)
        if not ortho:
            r = torch.tensor([-1.0, 0.0, 1.0], dtype=positions.dtype, device=positions.device)
            shifts = torch.cartesian_prod(r, r, r) @ box  # (27, 3)
    sources, targets, vectors = [], [], []
    for start in range(0, n, _ROWS):
        rows = positions[start:start + _ROWS]
        delta = positions[None, :, :] - rows[:, None, :]  # (R, N, 3): x_j - x_i
        if box is not None:
            frac = delta @ inverse
            delta = (frac - torch.round(frac)) @ box
            if not ortho:
                images = delta[:, :, None, :] + shifts  # (R, N, 27, 3)
                best = (images * images).sum(-1).argmin(-1)
                delta = torch.gather(images, 2, best[..., None, None].expand(-1, -1, 1, 3))[:, :, 0]
        dist2 = (delta * delta).sum(-1)
        centre = torch.arange(start, start + rows.shape[0], device=positions.device)
        mask = dist2 < cutoff * cutoff
        mask[torch.arange(rows.shape[0], device=positions.device), centre] = False
        i, j = mask.nonzero(as_tuple=True)
        sources.append(j)
        targets.append(i + start)
        vectors.append(delta[i, j])
    return torch.stack([torch.cat(sources), torch.cat(targets)]), torch.cat(vectors)


@dataclasses.dataclass(frozen=True)
class Graph:
    """A disjoint union of S graphs of N atoms each (one per ODE segment), nodes numbered ``s * N + i``.

    Args:
        edge_index: ``(2, E)`` int64, ``[source j, target i]``.
        vectors: ``(E, 3)`` Å, minimum-image ``x_j - x_i``.
        n_nodes: S · N.
    """

    edge_index: torch.Tensor
    vectors: torch.Tensor
    n_nodes: int

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]


def batch_graphs(positions: torch.Tensor, cutoff: float, boxes: torch.Tensor | None,
                 neighbor_fn: NeighborFn = radius_graph) -> Graph:
    """One disjoint :class:`Graph` of S structures.

    Args:
        positions: ``(S, N, 3)`` Å.
        cutoff: Å.
        boxes: ``(S, 3, 3)`` box vectors, Å, or ``None`` (no periodic box).
        neighbor_fn: builds one structure's edges, see :func:`radius_graph`.
    """
    s, n = positions.shape[:2]
    index, vectors = [], []
    for k in range(s):
        edges, vec = neighbor_fn(positions[k], cutoff, None if boxes is None else boxes[k])
        index.append(edges + k * n)
        vectors.append(vec)
    return Graph(torch.cat(index, dim=1), torch.cat(vectors), s * n)
