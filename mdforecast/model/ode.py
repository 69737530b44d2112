"""Latent graph ODEs on normalised local time, solved on a fixed grid with torchdiffeq.

Each level integrates its own vector field over τ ∈ [0, 1] (τ = (t − segment start)/span), on a graph
fixed for the segment:

.. math::
    \\frac{d(h, v)}{d\\tau} = f_\\theta(h, v; G) = \\mathrm{Interaction}(\\bar h, \\bar v; G) - (\\bar h, \\bar v),
    \\quad \\bar h = \\mathrm{LayerNorm}(h), \\ \\bar v_i = v_i / \\mathrm{rms}_c |v_{ic}|

(the increment of one or more PaiNN interactions, so the field is equivariant like the state). Evaluating
it on normalised states keeps the rates O(1) whatever the state's size, so the latent cannot blow up in
finite time (the interaction's products of vectors would otherwise make the field super-linear). The
solution is kept at the ``steps + 1`` grid points τ = k/steps of a fixed-step solver; a state at any real τ
is the linear interpolation between grid points, so the model answers continuous times at no extra cost.
With ``checkpoint=True`` each evaluation of f keeps only its input for the backward pass and recomputes
the edge messages there, which bounds training memory by the ODE *states* instead of the edge activations.

Shapes: G = steps + 1 grid points, S segments, N atoms, M = S·N nodes, F features, C vector channels,
Q queries.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint

from .graph import Graph
from .layers import Interaction, RadialBasis, edge_features, recompute

__all__ = ["SOLVERS", "LatentODE", "interpolate"]

#: fixed-step solvers of torchdiffeq by name (the single source of the ``--solver`` choices)
SOLVERS = {"rk4": "rk4", "midpoint": "midpoint", "euler": "euler"}


class LatentODE(nn.Module):
    """The vector field of one level and its solver.

    Args: features F, vectors C, basis, avg_neighbors, layers (interactions per evaluation), solver
    (a :data:`SOLVERS` key), steps per segment, checkpoint.

    Shapes: ``solve(h (M, F), v (M, C, 3), graph) -> H (G, M, F), V (G, M, C, 3)``.
    """

    def __init__(self, features: int, vectors: int, basis: RadialBasis, avg_neighbors: float, layers: int = 1,
                 solver: str = "rk4", steps: int = 8, checkpoint: bool = False) -> None:
        super().__init__()
        self.basis = basis
        self.layers = nn.ModuleList(Interaction(features, vectors, basis.n, avg_neighbors) for _ in range(layers))
        self.solver, self.steps, self.checkpoint = SOLVERS[solver], steps, checkpoint
        self._bound: tuple | None = None

    def _field(self, bound: tuple, h: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        graph, filters, unit = bound
        h = nn.functional.layer_norm(h, h.shape[-1:])
        v = v / torch.sqrt((v * v).sum(-1).mean(-1) + 1e-6)[:, None, None]
        h1, v1 = h, v
        for layer, f in zip(self.layers, filters):
            h1, v1 = layer(h1, v1, graph, f, unit)
        return h1 - h, v1 - v

    def forward(self, tau: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        bound = self._bound  # the recomputation in the backward pass runs after solve() has returned
        return recompute(self.checkpoint, lambda h, v: self._field(bound, h, v), *state)

    def solve(self, h: torch.Tensor, v: torch.Tensor, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        radial, unit = edge_features(graph, self.basis)
        self._bound = (graph, [layer.filters(radial) for layer in self.layers], unit)
        try:
            grid = torch.linspace(0.0, 1.0, self.steps + 1, dtype=h.dtype, device=h.device)
            hs, vs = odeint(self, (h, v), grid, method=self.solver)
        finally:
            self._bound = None
        return hs, vs

    def __repr__(self) -> str:
        return f"LatentODE(layers={len(self.layers)}, solver={self.solver!r}, steps={self.steps}, checkpoint={self.checkpoint})"


def interpolate(grid: torch.Tensor, segment: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """States of segments ``segment`` at local times ``tau``, linear between grid points.

    Args:
        grid: ``(G, S, N, ...)`` solution on τ = 0, 1/(G−1), …, 1.
        segment: ``(Q,)`` int64 rows of S. tau: ``(Q,)`` in [0, 1].

    Shapes: ``-> (Q, N, ...)``.
    """
    steps = grid.shape[0] - 1
    x = tau.to(grid.dtype).clamp(0.0, 1.0) * steps
    lo = x.floor().long().clamp(max=steps - 1)
    w = (x - lo).reshape((-1,) + (1,) * (grid.dim() - 2))
    return (1 - w) * grid[lo, segment] + w * grid[lo + 1, segment]
