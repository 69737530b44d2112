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
:math:`x_{t+1} = 2x_t - x_{t-1} + a(x_t)`, the second difference the pair term is fitted to. With finer steps
the rollout follows the true path only from the true velocity and with the *instantaneous* force:
:meth:`DynamicsLevel.fit_velocity` finds the :math:`v_0` whose backward integration passes through the last
observed frames, and :func:`fit_pair_force` with ``quadrature`` fits the force along interpolated paths
between frames.

Shapes: S structures (windows), N atoms, E edges, B radial functions, P = kinds² ordered pairs,
F lead frames.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import nn

from .graph import Graph, NeighborFn, batch_graphs, box_heights, box_matrix, radius_graph
from .layers import Interaction, RadialBasis, VectorLinear, vector_norm
from .rigid import RigidBodies

__all__ = ["DynamicsLevel", "fit_pair_force", "TABLE"]

#: a rollout's neighbour-list skin, Å (:class:`_VerletList`)
SKIN = 1.0
#: intervals of the pair term's table from 0 to the cutoff (:meth:`DynamicsLevel.pair_strength`)
TABLE = 8192


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

    def _edges(self, x: torch.Tensor, kinds: torch.Tensor, boxes: torch.Tensor | None,
               neighbours: "_VerletList | None" = None):
        s, n = x.shape[:2]
        graph = batch_graphs(x, self.cutoff, boxes, self.neighbor_fn) if neighbours is None else neighbours(x)
        src, dst = graph.edge_index
        d = vector_norm(graph.vectors, eps=1e-12)
        all_kinds = kinds.repeat(s)
        pair = all_kinds.index_select(0, dst) * self.n_kinds + all_kinds.index_select(0, src)
        return graph, d, graph.vectors / d[:, None], pair

    def _table(self, like: torch.Tensor) -> torch.Tensor:
        """φ of every pair of kinds ``(P, TABLE + 2)`` at r = k · cutoff / TABLE, rebuilt when ``pair`` changes."""
        key = (self.pair._version, self.pair.data_ptr(), like.dtype, like.device)
        if getattr(self, "_tabulated", (None,))[0] != key:
            r = torch.linspace(0.0, self.cutoff, TABLE + 1, dtype=torch.float64, device=like.device)
            with torch.no_grad():
                phi = (self.basis(r) @ self.pair.double().T).T  # float64: the basis follows r's dtype
            self._tabulated = (key, torch.cat([phi, phi.new_zeros(len(phi), 1)], 1).to(like.dtype))
        return self._tabulated[1]

    def pair_strength(self, d: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        """φ_pq(r) ``(E,)`` of edges of lengths ``d (E,)`` Å and kind pairs ``pair (E,)``. Without gradients it is
        interpolated linearly in a table of :data:`TABLE` intervals (relative error ~1e-6 on lj's repulsive wall),
        ~3× faster than the basis: the rollouts' cost."""
        if torch.is_grad_enabled():  # one pass over (E, B): every pair of kinds' φ on every edge, then its own
            return (self.basis(d) @ self.pair.T).gather(1, pair[:, None])[:, 0]
        table = self._table(d)
        position = (d * (TABLE / self.cutoff)).clamp_(max=TABLE)
        k = position.long()
        index = pair * (TABLE + 2) + k
        flat = table.reshape(-1)
        low = flat.index_select(0, index)
        return low + (position - k) * (flat.index_select(0, index + 1) - low)

    def acceleration(self, x: torch.Tensor, kinds: torch.Tensor, boxes: torch.Tensor | None,
                     neighbours: "_VerletList | None" = None) -> torch.Tensor:
        """``neighbours``: a :class:`_VerletList` of these structures (a rollout's), else a fresh neighbour list."""
        s, n = x.shape[:2]
        graph, d, unit, pair = self._edges(x, kinds, boxes, neighbours)
        strength = self.pair_strength(d, pair)  # φ_pq(r_ij), (E,)
        a = x.new_zeros(s * n, 3).index_add_(0, graph.edge_index[1], strength[:, None] * unit)
        if len(self.layers):
            radial = self.basis(d)
            h, v = self.embedding(kinds).repeat(s, 1), None  # zero vectors to start
            for layer in self.layers:
                h, v = layer(h, v, graph, layer.filters(radial), unit)
            a = a + self.out(v)[:, 0]
        return a.reshape(s, n, 3)

    def rollout(self, previous: torch.Tensor | None, last: torch.Tensor, kinds: torch.Tensor,
                boxes: torch.Tensor | None, frames: int, rigid: RigidBodies | None = None,
                velocity: torch.Tensor | None = None, backward: bool = False) -> torch.Tensor:
        """With ``rigid``, each step's positions are projected onto the molecules' geometry in ``last``
        (:meth:`~mdforecast.model.rigid.RigidBodies.project`) and the velocity is the projected step's
        (:math:`v' = (x' - x)/h + \\tfrac{h}{2} a(x')`, velocity Verlet when nothing is projected).
        ``velocity`` ``(S, N, 3)`` Å/frame: the initial velocity :math:`v_0`, in place of the one from ``previous``.
        ``backward``: integrate towards earlier frames (step :math:`-h`; velocity Verlet is time-reversible)."""
        h = (-1.0 if backward else 1.0) / self.substeps
        x = last
        neighbours = _VerletList(self, boxes)
        a = self.acceleration(x, kinds, boxes, neighbours)
        v = last - previous + 0.5 * a if velocity is None else velocity
        template = None if rigid is None else rigid.gather(last, boxes)
        out = []
        for _ in range(frames):
            for _ in range(self.substeps):
                if rigid is None:
                    x = x + h * v + 0.5 * h * h * a
                    a_next = self.acceleration(x, kinds, boxes, neighbours)
                    v = v + 0.5 * h * (a + a_next)
                else:
                    moved = rigid.project(x + h * v + 0.5 * h * h * a, template, boxes)
                    a_next = self.acceleration(moved, kinds, boxes, neighbours)
                    v = (moved - x) / h + 0.5 * h * a_next
                    x = moved
                a = a_next
            out.append(x)
        return torch.stack(out)

    def fit_velocity(self, recent: torch.Tensor, kinds: torch.Tensor, box: torch.Tensor | None,
                     iterations: int = 20) -> torch.Tensor:
        """The initial velocity ``(N, 3)`` Å/frame at the last of ``recent`` ``(M, N, 3)`` Å (M ≥ 4) whose backward
        rollout passes closest to the three frames before it, by least squares:

        .. math::
            v_0 = \\arg\\min_v \\sum_{k=1}^{3} \\lVert \\Phi_{-k}(x_0, v) - x_{-k} \\rVert^2

        (:math:`\\Phi_{-k}`: :meth:`rollout` ``backward`` k frames), solved by L-BFGS from the finite difference
        :math:`(3x_0 - 4x_{-1} + x_{-2})/2`. Equivariant like the force: only relative displacements enter.
        Costs ``iterations`` × 3 frames of rollout and its gradient."""
        recent = recent[-4:].detach()
        last, past = recent[-1][None], recent[:-1].flip(0)[:, None]  # past: x_−1, x_−2, x_−3
        boxes = None if box is None else box[None]
        v = ((3 * recent[-1] - 4 * recent[-2] + recent[-3]) / 2)[None].clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([v], lr=1.0, max_iter=iterations, tolerance_grad=1e-9, tolerance_change=1e-12,
                                      line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            loss = ((self.rollout(None, last, kinds, boxes, 3, velocity=v, backward=True) - past) ** 2).sum()
            (v.grad,) = torch.autograd.grad(loss, v)  # the level's parameters get no gradient
            return loss.detach()

        with torch.enable_grad():
            optimizer.step(closure)
        return v.detach()[0]

    def forecast(self, recent: torch.Tensor, kinds: torch.Tensor, box: torch.Tensor | None, frames: int,
                 members: int = 1, spread: float = 0.0, seed: int = 0, rigid: RigidBodies | None = None,
                 at_rest: bool = False, fit_velocity: bool = False) -> torch.Tensor:
        """Mean displacement ``(F, N, 3)`` Å of ``members`` rollouts at leads 1 … ``frames`` from the last of
        ``recent`` ``(M, N, 3)`` Å, the last M ≥ 4 observed frames.

        Member m > 0 starts from a perturbed previous frame,
        :math:`x_{-1} - \\sum_{k=1}^{3} \\xi_{mk} (x_{1-k} - x_{-k})`, with :math:`\\xi_{mk} \\sim \\mathcal N(0,
        \\mathrm{spread}^2)` scalars shared by all atoms (drawn from ``seed``), so the ensemble is equivariant like
        one rollout; the chaos of the dynamics spreads the members, and their mean approaches the conditional mean
        of the future far better than one trajectory does (which decorrelates from the truth within ~50 frames).
        ``rigid``: move those molecules as rigid bodies (:meth:`rollout`); the mean of rigid members is not rigid.
        ``at_rest``: :math:`x_0` replaces :math:`x_{-1}` above (member 0 starts with zero velocity).
        ``fit_velocity``: member 0 starts from :meth:`fit_velocity`'s :math:`v_0`, member m from
        :math:`v_{0,i} + \\sum_k \\xi_{mki} (x_{1-k,i} - x_{-k,i})`, with scalars drawn per atom i as well: the fitted
        start is exact to ~0.003 Å, and members kicked alike stay alike (lj 80-100: 0.79 of persistence's MSE per
        atom, 0.91 shared, 8 members). Rotations and translations still act on the ensemble as on one rollout; a
        permutation of the atoms changes which atom draws which ξ, so the forecast is permutation-equivariant only
        in distribution.

        On a CPU with T > 1 torch threads and no gradients, the members are rolled out in min(T, members) groups
        at once, one thread each (their rollouts are independent, so the result is the same): a small system's
        tensors are too small for T threads to share one operation well.
        """
        recent = recent[-4:]
        u = recent[1:].flip(0) - recent[:-1].flip(0)  # (3, N, 3): x_0 − x_−1, x_−1 − x_−2, x_−2 − x_−3
        shape = (members, 3, recent.shape[1]) if fit_velocity else (members, 3, 1)
        xi = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        xi = (spread * xi).to(recent.dtype).to(recent.device)
        xi[0] = 0.0
        kick = torch.einsum("mkn,kni->mni", xi, u)
        last = recent[-1][None].expand(members, -1, -1)
        boxes = None if box is None else box[None].expand(members, -1, -1)
        if fit_velocity:
            previous, velocity = None, self.fit_velocity(recent, kinds, box)[None] + kick
        else:
            previous, velocity = recent[-1 if at_rest else -2][None] - kick, None

        def run(rows: slice) -> torch.Tensor:
            with torch.no_grad():  # grad mode is per thread: a worker's must be switched off too
                return self.rollout(None if previous is None else previous[rows], last[rows], kinds,
                                    None if boxes is None else boxes[rows], frames, rigid,
                                    None if velocity is None else velocity[rows])

        threads = torch.get_num_threads()
        if threads < 2 or members < 2 or recent.device.type != "cpu" or torch.is_grad_enabled():
            return (self.rollout(previous, last, kinds, boxes, frames, rigid, velocity) - last).mean(1)
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


class _VerletList:
    """A rollout's neighbour list with a skin (a Verlet list): the pairs within ``cutoff + skin`` of the positions
    it was built at and their periodic images, reused, and pairs beyond ``cutoff`` dropped, until an atom has
    moved more than ``skin / 2`` from there (no pair can then have come within ``cutoff`` unlisted). The skin is
    :data:`SKIN`, or less where the box's half height leaves less room (0: rebuilt at every call).
    Called with positions ``(S, N, 3)`` Å, it returns their :class:`~mdforecast.model.graph.Graph`, with
    gradients through the positions as :func:`~mdforecast.model.graph.batch_graphs`' have."""

    def __init__(self, level: DynamicsLevel, boxes: torch.Tensor | None) -> None:
        self.level, self.boxes, self.reference = level, boxes, None
        room = math.inf if boxes is None else float(box_heights(box_matrix(boxes[0]).double()).min()) / 2
        self.skin = max(0.0, min(SKIN, 0.999 * room - level.cutoff))

    def __call__(self, x: torch.Tensor) -> Graph:
        flat = x.reshape(-1, 3)
        if self.reference is None or float((x.detach() - self.reference).norm(dim=-1).max()) > self.skin / 2:
            self.reference = x.detach().clone()
            graph = batch_graphs(self.reference, self.level.cutoff + self.skin, self.boxes, self.level.neighbor_fn)
            src, dst = graph.edge_index
            self.edges = graph.edge_index
            self.offsets = graph.vectors - (self.reference.reshape(-1, 3)[src] - self.reference.reshape(-1, 3)[dst])
        src, dst = self.edges
        vectors = flat.index_select(0, src) - flat.index_select(0, dst) + self.offsets
        keep = (vectors * vectors).sum(-1) < self.level.cutoff ** 2
        return Graph(self.edges[:, keep], vectors[keep], flat.shape[0])


def _quadrature(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights ``(Q, 5)`` of frames t − 2 … t + 2 in the quartic through them at Q = 2 ``points`` Gauss–Legendre
    nodes s of [−1, 0] and [0, 1], and the nodes' weights ``(Q,)`` times the kernel 1 − |s|."""
    g, w = np.polynomial.legendre.leggauss(points)
    s = np.concatenate([(g - 1) / 2, (g + 1) / 2])
    nodes = np.arange(-2, 3)
    lagrange = np.stack([np.prod([(s - nodes[k]) / (nodes[j] - nodes[k]) for k in range(5) if k != j], axis=0)
                         for j in range(5)], axis=1)
    return lagrange, np.concatenate([w, w]) / 2 * (1 - np.abs(s))


def _pair_design(level: DynamicsLevel, x: torch.Tensor, kinds: torch.Tensor, box: torch.Tensor | None
                 ) -> torch.Tensor:
    """The pair term's design ``(N·3, P·B)`` at positions ``x (N, 3)`` Å: rows atom-major, then coordinate."""
    p_count = level.pair.shape[0] * level.pair.shape[1]
    graph, d, unit, pair = level._edges(x[None], kinds, box)
    radial = level.basis(d)
    columns = pair[:, None] * level.basis.n + torch.arange(level.basis.n)  # (E, B)
    design = torch.zeros(3, x.shape[0], p_count, dtype=torch.float64)
    values = radial[:, None, :] * unit[:, :, None]  # (E, 3, B)
    index = (graph.edge_index[1][:, None] * p_count + columns).reshape(-1)  # (E·B,) into (N·P·B)
    for c in range(3):
        design[c].view(-1).index_add_(0, index, values[:, c].reshape(-1))
    return design.permute(1, 0, 2).reshape(-1, p_count)


def fit_pair_force(level: DynamicsLevel, frames: list[tuple[np.ndarray, np.ndarray | None]], kinds: torch.Tensor,
                   ridge: float = 1e-6, quadrature: int = 0) -> float:
    """Set ``level.pair`` to the least-squares fit of the pair term to second differences; returns the fitted
    fraction of their variance (R²).

    Every ``(x, box)`` of ``frames`` is consecutive frames ``x (3, N, 3)`` Å (unwrapped; ``(5, N, 3)`` with
    ``quadrature``) with the box ``(3, 3)`` Å of the middle one (or ``None``); the target is
    :math:`x_{t+1} - 2x_t + x_{t-1}`, the design :math:`D(x) = \\sum_{j: (k_i, k_j) = (p, q)} e_b(r_{ij})
    \\hat{\\mathbf r}_{ij}` at :math:`x_t`: the force one step per frame needs. ``quadrature`` = K > 0 fits the
    instantaneous force that finer steps need, through the exact identity
    :math:`x(t+1) - 2x(t) + x(t-1) = \\int_{-1}^{1} (1 - |s|)\\, a(x(t+s))\\, ds`: the design is
    :math:`\\sum_q w_q (1 - |s_q|) D(x(t + s_q))` over 2K Gauss–Legendre nodes, with :math:`x(t+s)` the quartic
    through frames t − 2 … t + 2. The normal equations are solved with a ridge λ relative to their mean diagonal.
    """
    p_count = level.pair.shape[0] * level.pair.shape[1]
    gram = torch.zeros(p_count, p_count, dtype=torch.float64)
    cross = torch.zeros(p_count, dtype=torch.float64)
    total = 0.0
    lagrange, weights = _quadrature(quadrature) if quadrature else (None, None)
    with torch.no_grad():
        for x, box in frames:
            x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
            b = None if box is None else torch.as_tensor(np.asarray(box), dtype=torch.float64)[None]
            if quadrature:
                path = torch.einsum("qk,kni->qni", torch.as_tensor(lagrange), x)
                design = sum(w * _pair_design(level, p, kinds, b) for w, p in zip(weights.tolist(), path))
                x = x[1:4]
            else:
                design = _pair_design(level, x[1], kinds, b)
            target = (x[2] - 2 * x[1] + x[0]).reshape(-1)
            gram += design.T @ design
            cross += design.T @ target
            total += float(target @ target)
    lam = ridge * float(torch.diagonal(gram).mean()) + 1e-12
    coef = torch.linalg.solve(gram + lam * torch.eye(p_count, dtype=torch.float64), cross)
    level.pair.data.copy_(coef.reshape(level.pair.shape).to(level.pair.dtype))
    residual = total - 2 * float(coef @ cross) + float(coef @ gram @ coef)
    return 1.0 - residual / total if total > 0 else math.nan
