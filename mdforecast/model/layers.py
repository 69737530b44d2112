"""Equivariant building blocks shared by the encoder, the latent ODEs and the decoder (PaiNN-style).

Every atom carries invariant scalars ``h`` and equivariant vectors ``v``; rotations act on the last axis
of ``v`` only, so any map that mixes vector *channels* linearly (no bias) and scales them by invariants
is rotation-equivariant, and everything built on relative displacements is translation-invariant.

Shapes: M nodes (S graphs × N atoms), E edges, F scalar features, C vector channels, R radial functions.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .graph import Graph

__all__ = ["RadialBasis", "VectorLinear", "Interaction", "vector_norm", "edge_features", "edge_chunk", "mlp", "recompute"]


def vector_norm(v: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``|v|`` over the last axis, smooth at zero: ``sqrt(|v|² + eps)`` (no NaN gradients)."""
    return torch.sqrt((v * v).sum(-1) + eps)


class RadialBasis(nn.Module):
    """Gaussian radial functions times a cosine cutoff.

    .. math::
        e_k(d) = \\exp\\!\\big(-\\gamma (d - \\mu_k)^2\\big)\\,\\tfrac12\\big(\\cos(\\pi d / r_c) + 1\\big),
        \\quad \\mu_k = k\\,r_c/(R-1),\\ \\gamma = \\big((R-1)/r_c\\big)^2

    The cutoff factor makes every edge fade out smoothly at ``r_c``, so the model is continuous when an
    edge enters or leaves the neighbour list.

    Shapes: ``d (E,) Å -> (E, R)``.
    """

    def __init__(self, cutoff: float, n: int = 16) -> None:
        super().__init__()
        self.cutoff, self.n = cutoff, n
        self.register_buffer("centers", torch.linspace(0.0, cutoff, n), persistent=False)
        self.gamma = ((n - 1) / cutoff) ** 2

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        envelope = 0.5 * (torch.cos(math.pi * d / self.cutoff) + 1.0) * (d < self.cutoff)
        x = d[:, None] - self.centers
        if torch.is_grad_enabled() and d.requires_grad:
            return torch.exp(-self.gamma * x ** 2) * envelope[:, None]
        return x.pow_(2).mul_(-self.gamma).exp_().mul_(envelope[:, None])  # the same arithmetic, in place

    def __repr__(self) -> str:
        return f"RadialBasis(cutoff={self.cutoff} Å, n={self.n})"


class VectorLinear(nn.Module):
    """Channel mixing of vectors without bias: :math:`v'_c = \\sum_{c'} W_{cc'} v_{c'}` (equivariant).

    Shapes: ``(..., C_in, 3) -> (..., C_out, 3)``.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=1.0 / math.sqrt(self.weight.shape[1]))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return torch.einsum("oc,...cx->...ox", self.weight, v)

    def __repr__(self) -> str:
        return f"VectorLinear({self.weight.shape[1]}, {self.weight.shape[0]})"


def edge_features(graph: Graph, basis: RadialBasis) -> tuple[torch.Tensor, torch.Tensor]:
    """Radial functions ``(E, R)`` and unit vectors ``(E, 3)`` of a graph's edges."""
    d = vector_norm(graph.vectors, eps=1e-12)
    return basis(d), graph.vectors / d[:, None]


#: bytes of one per-edge intermediate of :class:`Interaction` (a chunk of edges at a time): below glibc's
#: 32 MiB ceiling for serving a block from the heap, so large graphs reuse freed memory instead of mapping
#: fresh pages for every tensor (measured at 12,000 atoms: half the time of a step went to page faults)
EDGE_CHUNK_BYTES = 16 * 2**20


def edge_chunk(width: int) -> int:
    """Edges per chunk whose ``(edges, width)`` float32 intermediates take :data:`EDGE_CHUNK_BYTES`."""
    return max(1, EDGE_CHUNK_BYTES // (4 * width))


def mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


class Interaction(nn.Module):
    """One PaiNN interaction (message then update), returning the updated ``(h, v)``.

    Message, with :math:`\\mathbf r_{ij}` the minimum-image displacement and :math:`\\hat{\\mathbf r}_{ij}`
    its direction:

    .. math::
        [\\mathbf a, \\mathbf b, \\mathbf c]_{ij} = \\phi(h_j) \\odot W e(|\\mathbf r_{ij}|), \\quad
        h_i \\mathrel{+}= \\tfrac{1}{\\sqrt{\\bar n}}\\sum_j \\mathbf a_{ij}, \\quad
        v_i \\mathrel{+}= \\tfrac{1}{\\sqrt{\\bar n}}\\sum_j \\mathbf b_{ij} \\odot v_j
            + \\mathbf c_{ij} \\otimes \\hat{\\mathbf r}_{ij}

    Update, with :math:`U, V` vector channel mixes:

    .. math::
        [\\alpha, \\beta, \\gamma] = \\psi(h, |Vv|), \\quad v \\mathrel{+}= \\alpha \\odot Uv, \\quad
        h \\mathrel{+}= \\gamma + \\beta \\odot P\\langle Uv, Vv \\rangle

    Args:
        features: F. vectors: C. radial: R. avg_neighbors: :math:`\\bar n`, the mean neighbour count of the
            training data (sums are divided by its square root so scales do not depend on density).

    Shapes: ``h (M, F), v (M, C, 3), graph (E edges), radial (E, R) -> h (M, F), v (M, C, 3)``; ``v = None``:
    zero vectors (the messages skip :math:`\\mathbf b_{ij} \\odot \\mathbf v_j`, which is zero).
    """

    def __init__(self, features: int, vectors: int, radial: int, avg_neighbors: float = 1.0) -> None:
        super().__init__()
        self.features, self.vectors = features, vectors
        self.norm = 1.0 / math.sqrt(max(avg_neighbors, 1.0))
        width = features + 2 * vectors
        self.phi = mlp(features, features, width)
        self.filter = nn.Linear(radial, width)
        self.u, self.v = VectorLinear(vectors, vectors), VectorLinear(vectors, vectors)
        self.psi = mlp(features + vectors, features, vectors + 2 * features)
        self.project = nn.Linear(vectors, features, bias=False)

    def filters(self, radial: torch.Tensor) -> torch.Tensor:
        """Per-edge filters ``W e(d)`` ``(E, F + 2C)``; fixed for a graph, so an ODE computes them once."""
        return self.filter(radial)

    def forward(self, h: torch.Tensor, v: torch.Tensor | None, graph: Graph, filters: torch.Tensor,
                unit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, c = self.features, self.vectors
        phi = self.phi(h)
        summed = h.new_zeros(h.shape[0], f + 3 * c)
        rows = edge_chunk(f + 3 * c)
        # edges in chunks (one split each, so the backward concatenates their gradients once); index_select,
        # not x[src]: its backward is a fast index_add, not an accumulating index_put
        for (src, dst), w, u in zip(graph.edge_index.split(rows, dim=1), filters.split(rows), unit.split(rows)):
            a, b, g = (phi.index_select(0, src) * w).split([f, c, c], dim=-1)
            dv = g[..., None] * u[:, None, :]
            if v is not None:
                dv = b[..., None] * v.index_select(0, src) + dv
            summed.index_add_(0, dst, torch.cat([a, dv.flatten(1)], dim=-1))  # one scatter for scalars and vectors
        summed = summed * self.norm
        h = h + summed[:, :f]
        v = summed[:, f:].view(-1, c, 3) if v is None else v + summed[:, f:].view_as(v)
        uv, vv = self.u(v), self.v(v)
        alpha, beta, gamma = self.psi(torch.cat([h, vector_norm(vv)], dim=-1)).split([c, f, f], dim=-1)
        v = v + alpha[..., None] * uv
        h = h + gamma + beta * self.project((uv * vv).sum(-1))
        return h, v

    def __repr__(self) -> str:
        return f"Interaction(features={self.features}, vectors={self.vectors})"


def recompute(enabled: bool, fn, *args):
    """``fn(*args)``; with ``enabled`` and gradients on, its intermediate activations are not kept but recomputed
    in the backward pass (``torch.utils.checkpoint``), which bounds training memory by the inputs of ``fn``."""
    if enabled and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)
