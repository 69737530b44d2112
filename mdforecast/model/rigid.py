"""Rigid molecules in torch: each molecule's template superposed onto where a step put its atoms.

The projection of positions :math:`x` onto rigid molecules replaces molecule m's atoms by its template
:math:`T_m` (its geometry in a reference frame: for a forecast, the last observed frame) rotated and translated
onto them,

.. math::
    x_m \\leftarrow \\bar x_m + R_m (T_m - \\bar T_m), \\qquad
    R_m = \\arg\\min_{R \\in SO(3)} \\sum_k w_k |R(T_{mk} - \\bar T_m) - (x_{mk} - \\bar x_m)|^2

(weighted centroids :math:`\\bar x`, weights :math:`w` the atoms' masses; the Kabsch fit of
:func:`~mdforecast.model.superpose.superpose`). It is the rigid placement closest to the atoms in the
mass-weighted least-squares sense, so the molecule's centre of mass stays where the step put it; exact in one
step (O–H and H–O–H are the template's to rounding), equivariant under rotations, translations and any
permutation of molecules, and a molecule already in the template's shape is left where it is. A molecule's atoms
are first placed by minimum image around its reference atom, so one split across box faces stays whole.

Shapes: S structures, N atoms, M molecules, K atoms per molecule.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..molecules import RigidGroups
from ..pbc import minimum_image
from .graph import NeighborFn, batch_graphs, box_heights, box_matrix, radius_graph
from .superpose import superpose

__all__ = ["RigidBodies"]


class RigidBodies:
    """The rigid molecules of a system, as tensors on the model's device.

    Args:
        atoms: ``(M, K)`` int64 atom indices, the reference atom first. weights: ``(M, K)`` superposition weights.

    Shapes: ``gather(x (S, N, 3), boxes (S, 3, 3) | None) -> (S, M, K, 3)``;
    ``project(x (S, N, 3), template (S, M, K, 3), boxes) -> (S, N, 3)`` Å.
    """

    def __init__(self, atoms: torch.Tensor, weights: torch.Tensor) -> None:
        self.atoms, self.weights = atoms, weights
        self._flat = atoms.reshape(-1)

    @classmethod
    def from_groups(cls, groups: RigidGroups, like: torch.Tensor) -> "RigidBodies":
        """The groups' tensors with ``like``'s device (weights in its dtype)."""
        return cls(torch.as_tensor(groups.atoms, device=like.device),
                   torch.as_tensor(groups.weights, dtype=like.dtype, device=like.device))

    def gather(self, x: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        """Each molecule's atoms, placed by minimum image around its reference atom (box vectors as rows)."""
        m = x[:, self.atoms]  # (S, M, K, 3)
        if boxes is None:
            return m
        ref, boxes = m[:, :, :1], boxes.to(x.dtype)
        delta = m - ref
        frac = torch.einsum("smki,sij->smkj", delta, torch.linalg.inv(boxes))
        return ref + delta - torch.einsum("smkj,sji->smki", torch.round(frac), boxes)

    def project(self, x: torch.Tensor, template: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        """``x`` with every molecule replaced by its ``template`` superposed onto it (module docstring)."""
        placed = superpose(template.expand(x.shape[0], -1, -1, -1), self.gather(x, boxes), self.weights)
        return x.index_copy(1, self._flat, placed.reshape(x.shape[0], -1, 3))

    def closest(self, x: torch.Tensor, box: torch.Tensor | None, search: float = 4.0,
                neighbor_fn: NeighborFn = radius_graph) -> float:
        """The closest distance (Å, minimum image) between two molecules' reference atoms in the structure ``x``
        ``(N, 3)`` Å (``box`` ``(3, 3)`` vectors as rows, or ``None``); 1e9 with fewer than two molecules.

        Pairs are listed within ``search`` Å with ``neighbor_fn`` (O(M)), the radius doubled until one is found;
        once it would reach half the shortest box height, which a neighbour list cannot search, every pair is
        compared (:func:`~mdforecast.pbc.minimum_image`): a box that sparse holds few molecules."""
        o = x[self.atoms[:, 0]]
        if len(o) < 2:
            return 1e9
        limit = math.inf
        if box is not None:
            box = box_matrix(box.to(o.dtype))
            limit = float(box_heights(box).min()) / 2
        radius = search
        while radius < limit:
            graph = batch_graphs(o[None], radius, None if box is None else box[None], neighbor_fn)
            if graph.n_edges:
                return float(graph.vectors.norm(dim=-1).min())
            radius *= 2
        d = (o[None] - o[:, None]).cpu().numpy()
        d = minimum_image(d.reshape(-1, 3), box.cpu().numpy()).reshape(d.shape)
        return float((np.linalg.norm(d, axis=-1) + np.eye(len(o)) * 1e9).min())

    def separate(self, x: torch.Tensor, closest: float, boxes: torch.Tensor | None, sweeps: int = 200,
                 skin: float = 1.0, neighbor_fn: NeighborFn = radius_graph) -> torch.Tensor:
        """``x`` with molecules translated rigidly apart until no two reference atoms are closer than ``closest``
        Å (minimum image): each sweep moves both molecules of every such pair by half the shortfall, and 1e-4 Å
        more, along their separation, at most ``sweeps`` sweeps. A blended forecast (a mean of futures) draws
        neighbours together; real molecules do not overlap. Equivariant, and a structure without such a pair is
        returned as it is.

        The pairs come from a Verlet list: the reference atoms' pairs within ``closest + skin`` (``neighbor_fn``,
        vesin cell lists by default: O(M) per structure), listed again once a molecule has moved more than
        ``skin / 2`` since the listing, so no pair closer than ``closest`` is missed; a pair keeps the periodic
        image it was listed with."""
        ref, k = self.atoms[:, 0], self.atoms.shape[1]
        o = x[:, ref]  # (S, M, 3)
        shift = torch.zeros_like(o)  # each molecule's translation
        listed = None
        for _ in range(sweeps):
            if listed is None or bool(((shift - listed).norm(dim=-1) > skin / 2).any()):
                listed = shift.clone()
                graph = batch_graphs(o + shift, closest + skin, None if boxes is None else boxes.to(x.dtype),
                                     neighbor_fn)
                j, i = graph.edge_index  # nodes s · M + m, both directions of every pair
                image = graph.vectors - ((o + shift).reshape(-1, 3)[j] - (o + shift).reshape(-1, 3)[i])
            now = (o + shift).reshape(-1, 3)
            d = now[j] - now[i] + image  # x_j − x_i, minimum image as listed
            r = d.norm(dim=-1)
            short = r < closest
            if not bool(short.any()):
                break
            push = (0.5 * (closest - r[short] + 1e-4) / r[short].clamp_min(1e-6))[:, None] * d[short]
            shift = shift.reshape(-1, 3).index_add(0, i[short], -push).reshape(shift.shape)  # each side moves away
        return x.index_add(1, self.atoms.reshape(-1), shift[:, :, None, :].expand(-1, -1, k, -1).reshape(
            x.shape[0], -1, 3))

    def __repr__(self) -> str:
        return f"RigidBodies(molecules={self.atoms.shape[0]}, atoms_per_molecule={self.atoms.shape[1]})"
