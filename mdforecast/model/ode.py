"""Latent graph ODEs on normalised local time, solved on a fixed grid.

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

The fixed-step solvers (:data:`SOLVERS`) are written out here in the arithmetic of torchdiffeq's fixed-grid
ones (``rk4`` is its 3/8-rule variant, four evaluations per step), which the tests hold them to to the bit:
the same solutions without importing torchdiffeq, which imports SciPy's integrators (a fraction of a second
of every forecast's start-up).

Shapes: G = steps + 1 grid points, S segments, N atoms, M = S·N nodes, F features, C vector channels,
Q queries.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .graph import Graph
from .layers import Interaction, RadialBasis, edge_features

__all__ = ["SOLVERS", "LatentODE", "integrate", "interpolate"]

State = tuple[torch.Tensor, ...]
_THIRD = 1 / 3


def _euler(f: Callable[[State], State], y: State, dt: torch.Tensor) -> State:
    return tuple(x + dt * a for x, a in zip(y, f(y)))


def _midpoint(f: Callable[[State], State], y: State, dt: torch.Tensor) -> State:
    half = 0.5 * dt
    mid = tuple(x + a * half for x, a in zip(y, f(y)))
    return tuple(x + dt * a for x, a in zip(y, f(mid)))


def _rk4(f: Callable[[State], State], y: State, dt: torch.Tensor) -> State:
    """The 3/8 rule: :math:`y + \\tfrac{dt}{8}(k_1 + 3k_2 + 3k_3 + k_4)`."""
    k1 = f(y)
    k2 = f(tuple(x + dt * a * _THIRD for x, a in zip(y, k1)))
    k3 = f(tuple(x + dt * (b - a * _THIRD) for x, a, b in zip(y, k1, k2)))
    k4 = f(tuple(x + dt * (a - b + c) for x, a, b, c in zip(y, k1, k2, k3)))
    return tuple(x + (a + 3 * (b + c) + d) * dt * 0.125 for x, a, b, c, d in zip(y, k1, k2, k3, k4))


#: fixed-step solvers by name (the single source of the ``--solver`` choices): one step ``(f, y, dt) -> y'``
SOLVERS = {"rk4": _rk4, "midpoint": _midpoint, "euler": _euler}


def integrate(f: Callable[[State], State], y: State, grid: torch.Tensor, solver: str) -> State:
    """The states ``(G, ...)`` at the points of ``grid`` ``(G,)``, one step of ``solver`` between neighbours,
    of the autonomous field ``f`` from ``y`` at ``grid[0]``."""
    step, states = SOLVERS[solver], [y]
    for t0, t1 in zip(grid[:-1], grid[1:]):
        states.append(step(f, states[-1], t1 - t0))
    return tuple(torch.stack(parts) for parts in zip(*states))


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
        self.solver, self.steps, self.checkpoint = solver, steps, checkpoint
        self._bound: tuple | None = None

    def _field(self, bound: tuple, h: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        graph, filters, unit = bound
        h = nn.functional.layer_norm(h, h.shape[-1:])
        v = v / torch.sqrt((v * v).sum(-1).mean(-1) + 1e-6)[:, None, None]
        h1, v1 = h, v
        for layer, f in zip(self.layers, filters):
            h1, v1 = layer(h1, v1, graph, f, unit)
        return h1 - h, v1 - v

    def forward(self, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The field at ``state`` (autonomous: it does not depend on τ)."""
        bound = self._bound  # the recomputation in the backward pass runs after solve() has returned
        if self.checkpoint and torch.is_grad_enabled():
            return checkpoint(lambda h, v: self._field(bound, h, v), *state, use_reentrant=False)
        return self._field(bound, *state)

    def solve(self, h: torch.Tensor, v: torch.Tensor, graph: Graph) -> tuple[torch.Tensor, torch.Tensor]:
        radial, unit = edge_features(graph, self.basis)
        self._bound = (graph, [layer.filters(radial) for layer in self.layers], unit)
        try:
            grid = torch.linspace(0.0, 1.0, self.steps + 1, dtype=h.dtype, device=h.device)
            hs, vs = integrate(self, (h, v), grid, self.solver)
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
