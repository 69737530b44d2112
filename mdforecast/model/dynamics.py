"""The dynamics level: positions and velocities integrated with learned equivariant forces (velocity Verlet).

The state is every atom's position :math:`x` (Å) and velocity :math:`v` (Å/frame). The acceleration (force
over mass, learned as one quantity, Å/frame²) is evaluated on the *current* positions, with a minimum-image
neighbour list rebuilt at every evaluation (the injectable :data:`~mdforecast.model.graph.NeighborFn`,
default :func:`~mdforecast.model.graph.radius_graph`, O(N)):

.. math::
    a_i = \\sum_{j \\in \\mathcal N(i)} \\phi_{k_i k_j}(r_{ij})\\,\\hat{\\mathbf r}_{ij} + W\\,\\mathbf v^{(L)}_i,
    \\qquad \\phi_{pq}(r) = \\sum_b c_{pqb}\\, e_b(r)

a learned radial pair term per ordered pair of atom kinds (p, q) on the radial basis :math:`e_b`
(:class:`~mdforecast.model.layers.RadialBasis`, smooth at the cutoff), plus a message-passing correction:
L PaiNN interactions started from kind embeddings and zero vectors, whose vector channels
:math:`\\mathbf v^{(L)}_i` are mixed into one by :math:`W` (zero at initialisation, so a fresh correction is
zero). Both terms are built on relative displacements, so the acceleration rotates with the atoms and ignores
translations and atom order. The pair term is linear in :math:`c`, which :func:`fit_pair_force` fits in
closed form to the second differences of training frames.

Velocity Verlet with step :math:`h = 1/\\mathrm{substeps}` frames (symplectic, time-reversible):

.. math::
    x' = x + h v + \\tfrac{h^2}{2} a(x), \\qquad v' = v + \\tfrac{h}{2}\\big(a(x) + a(x')\\big)

It starts at the last observed frame :math:`x_0` with :math:`v_0 = x_0 - x_{-1} + \\tfrac12 a(x_0)` (exact for
an acceleration constant over the last frame); with one substep a step is then
:math:`x_{t+1} = 2x_t - x_{t-1} + a(x_t)`, the second difference the pair term is fitted to.

Shapes: S structures (windows), N atoms, E edges, B radial functions, P = kinds² ordered pairs,
F lead frames.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from .graph import NeighborFn, batch_graphs, radius_graph
from .layers import Interaction, RadialBasis, VectorLinear, vector_norm
from .rigid import RigidBodies

__all__ = ["DynamicsLevel", "fit_pair_force"]


class DynamicsLevel(nn.Module):
    """Learned accelerations and their velocity-Verlet rollout (see the module docstring).

    Args:
        kinds: number of atom kinds. cutoff: neighbour radius, Å. radial: B basis functions of the pair term.
        features, vectors: F, C of the message-passing correction. layers: its interactions (0: pair term only).
        avg_neighbors: mean neighbour count within ``cutoff``. substeps: Verlet steps per frame.
        neighbor_fn: builds the neighbour list.

    Shapes: ``acceleration(x (S, N, 3) Å, kinds (N,), boxes (S, 3, 3) | None) -> (S, N, 3) Å/frame²``;
    ``rollout(previous (S, N, 3), last (S, N, 3), kinds, boxes, frames F) -> (F, S, N, 3) Å`` at leads 1 … F.
    """

    def __init__(self, kinds: int, cutoff: float, radial: int, features: int, vectors: int, layers: int,
                 avg_neighbors: float, substeps: int = 1, neighbor_fn: NeighborFn = radius_graph) -> None:
        super().__init__()
        self.n_kinds, self.cutoff, self.substeps, self.neighbor_fn = kinds, cutoff, substeps, neighbor_fn
        self.basis = RadialBasis(cutoff, radial)
        self.pair = nn.Parameter(torch.zeros(kinds * kinds, radial))
        self.embedding = nn.Embedding(kinds, features)
        self.layers = nn.ModuleList(Interaction(features, vectors, radial, avg_neighbors) for _ in range(layers))
        self.out = VectorLinear(vectors, 1)
        nn.init.zeros_(self.out.weight)

    def _edges(self, x: torch.Tensor, kinds: torch.Tensor, boxes: torch.Tensor | None):
        s, n = x.shape[:2]
        graph = batch_graphs(x, self.cutoff, boxes, self.neighbor_fn)
        src, dst = graph.edge_index
        d = vector_norm(graph.vectors, eps=1e-12)
        all_kinds = kinds.repeat(s)
        pair = all_kinds.index_select(0, dst) * self.n_kinds + all_kinds.index_select(0, src)
        return graph, self.basis(d), graph.vectors / d[:, None], pair

    def acceleration(self, x: torch.Tensor, kinds: torch.Tensor, boxes: torch.Tensor | None) -> torch.Tensor:
        s, n = x.shape[:2]
        graph, radial, unit, pair = self._edges(x, kinds, boxes)
        strength = (radial * self.pair.index_select(0, pair)).sum(-1)  # φ_pq(r_ij), (E,)
        a = x.new_zeros(s * n, 3).index_add_(0, graph.edge_index[1], strength[:, None] * unit)
        if len(self.layers):
            h, v = self.embedding(kinds).repeat(s, 1), None  # zero vectors to start
            for layer in self.layers:
                h, v = layer(h, v, graph, layer.filters(radial), unit)
            a = a + self.out(v)[:, 0]
        return a.reshape(s, n, 3)

    def rollout(self, previous: torch.Tensor, last: torch.Tensor, kinds: torch.Tensor, boxes: torch.Tensor | None,
                frames: int, rigid: RigidBodies | None = None) -> torch.Tensor:
        """With ``rigid``, each step's positions are projected onto the molecules' geometry in ``last``
        (:meth:`~mdforecast.model.rigid.RigidBodies.project`) and the velocity is the projected step's
        (:math:`v' = (x' - x)/h + \\tfrac{h}{2} a(x')`, velocity Verlet when nothing is projected)."""
        h = 1.0 / self.substeps
        x = last
        a = self.acceleration(x, kinds, boxes)
        v = last - previous + 0.5 * a
        template = None if rigid is None else rigid.gather(last, boxes)
        out = []
        for _ in range(frames):
            for _ in range(self.substeps):
                if rigid is None:
                    x = x + h * v + 0.5 * h * h * a
                    a_next = self.acceleration(x, kinds, boxes)
                    v = v + 0.5 * h * (a + a_next)
                else:
                    moved = rigid.project(x + h * v + 0.5 * h * h * a, template, boxes)
                    a_next = self.acceleration(moved, kinds, boxes)
                    v = (moved - x) / h + 0.5 * h * a_next
                    x = moved
                a = a_next
            out.append(x)
        return torch.stack(out)

    def forecast(self, recent: torch.Tensor, kinds: torch.Tensor, box: torch.Tensor | None, frames: int,
                 members: int = 1, spread: float = 0.0, seed: int = 0, rigid: RigidBodies | None = None,
                 at_rest: bool = False) -> torch.Tensor:
        """Mean displacement ``(F, N, 3)`` Å of ``members`` rollouts at leads 1 … ``frames`` from the last of
        ``recent`` ``(M, N, 3)`` Å, the last M ≥ 4 observed frames.

        Member m > 0 starts from a perturbed previous frame,
        :math:`x_{-1} - \\sum_{k=1}^{3} \\xi_{mk} (x_{1-k} - x_{-k})`, with :math:`\\xi_{mk} \\sim \\mathcal N(0,
        \\mathrm{spread}^2)` scalars shared by all atoms (drawn from ``seed``), so the ensemble is equivariant like
        one rollout; the chaos of the dynamics spreads the members, and their mean approaches the conditional mean
        of the future far better than one trajectory does (which decorrelates from the truth within ~50 frames).
        ``rigid``: move those molecules as rigid bodies (:meth:`rollout`); the mean of rigid members is not rigid.
        ``at_rest``: :math:`x_0` replaces :math:`x_{-1}` above (member 0 starts with zero velocity).

        On a CPU with T > 1 torch threads and no gradients, the members are rolled out in min(T, members) groups
        at once, one thread each (their rollouts are independent, so the result is the same): a small system's
        tensors are too small for T threads to share one operation well.
        """
        recent = recent[-4:]
        u = recent[1:].flip(0) - recent[:-1].flip(0)  # (3, N, 3): x_0 − x_−1, x_−1 − x_−2, x_−2 − x_−3
        xi = torch.randn(members, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        xi = (spread * xi).to(recent.dtype).to(recent.device)
        xi[0] = 0.0
        previous = recent[-1 if at_rest else -2][None] - torch.einsum("mk,kni->mni", xi, u)
        last = recent[-1][None].expand(members, -1, -1)
        boxes = None if box is None else box[None].expand(members, -1, -1)

        def run(rows: slice) -> torch.Tensor:
            with torch.no_grad():  # grad mode is per thread: a worker's must be switched off too
                return self.rollout(previous[rows], last[rows], kinds, None if boxes is None else boxes[rows],
                                    frames, rigid)

        threads = torch.get_num_threads()
        if threads < 2 or members < 2 or recent.device.type != "cpu" or torch.is_grad_enabled():
            return (self.rollout(previous, last, kinds, boxes, frames, rigid) - last).mean(1)
        bounds = np.linspace(0, members, min(threads, members) + 1).round().astype(int)
        try:
            torch.set_num_threads(1)
            with ThreadPoolExecutor(len(bounds) - 1) as pool:
                paths = list(pool.map(run, [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]))
        finally:
            torch.set_num_threads(threads)
        return (torch.cat(paths, dim=1) - last).mean(1)

    def extra_repr(self) -> str:
        return (f"kinds={self.n_kinds}, cutoff={self.cutoff} Å, radial={self.basis.n}, "
                f"correction_layers={len(self.layers)}, substeps={self.substeps}")


def fit_pair_force(level: DynamicsLevel, frames: list[tuple[np.ndarray, np.ndarray | None]], kinds: torch.Tensor,
                   ridge: float = 1e-6) -> float:
    """Set ``level.pair`` to the least-squares fit of the pair term to second differences; returns the fitted
    fraction of their variance (R²).

    Every ``(x, box)`` of ``frames`` is three consecutive frames ``x (3, N, 3)`` Å (unwrapped) with the box
    ``(3, 3)`` Å of the middle one (or ``None``); the target is
    :math:`x_{t+1} - 2x_t + x_{t-1}`, the design :math:`\\sum_{j: (k_i, k_j) = (p, q)} e_b(r_{ij})\\hat{\\mathbf r}_{ij}`
    at :math:`x_t`. The normal equations are solved with a ridge λ relative to their mean diagonal.
    """
    p_count = level.pair.shape[0] * level.pair.shape[1]
    gram = torch.zeros(p_count, p_count, dtype=torch.float64)
    cross = torch.zeros(p_count, dtype=torch.float64)
    total = 0.0
    with torch.no_grad():
        for x, box in frames:
            x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
            b = None if box is None else torch.as_tensor(np.asarray(box), dtype=torch.float64)[None]
            graph, radial, unit, pair = level._edges(x[1:2], kinds, b)
            n = x.shape[1]
            columns = pair[:, None] * level.basis.n + torch.arange(level.basis.n)  # (E, B)
            design = torch.zeros(3, n, p_count, dtype=torch.float64)
            values = radial[:, None, :] * unit[:, :, None]  # (E, 3, B)
            index = (graph.edge_index[1][:, None] * p_count + columns).reshape(-1)  # (E·B,) into (N·P·B)
            for c in range(3):
                design[c].view(-1).index_add_(0, index, values[:, c].reshape(-1))
            design = design.permute(1, 0, 2).reshape(-1, p_count)  # rows: atom-major, then coordinate
            target = (x[2] - 2 * x[1] + x[0]).reshape(-1)
            gram += design.T @ design
            cross += design.T @ target
            total += float(target @ target)
    lam = ridge * float(torch.diagonal(gram).mean()) + 1e-12
    coef = torch.linalg.solve(gram + lam * torch.eye(p_count, dtype=torch.float64), cross)
    level.pair.data.copy_(coef.reshape(level.pair.shape).to(level.pair.dtype))
    residual = total - 2 * float(coef @ cross) + float(coef @ gram @ coef)
    return 1.0 - residual / total if total > 0 else math.nan
