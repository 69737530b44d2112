"""DoMiNO assembled: encoder → hierarchy of latent graph ODEs → attention fusion → equivariant decoder.

``levels = 1`` is LG-ODE (one latent graph ODE over the whole horizon) through the same code path.
A forward pass answers a batch of *queries* (window b, lead time t in frames, depth d): it plans the
segments those queries need (:meth:`Hierarchy.plan`), solves every level's segments of all windows
together as one disjoint graph, and decodes positions. The level-0 graph is the last observed frame; a
finer segment's graph is the geometry decoded by the coarser levels at its start (not differentiated
through, like any neighbour list). All graphs use the minimum image of the window's last box.

Shapes: B windows, N atoms, K input vectors, Q queries, L levels, F features, C vector channels.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .. import protocol
from ..errors import InputError
from ..topology import Topology
from .features import KIND_FIELDS, atom_kinds
from .graph import NeighborFn, batch_graphs, radius_graph
from .encoder import Encoder
from .dynamics import DynamicsLevel
from .fusion import EquivariantDecoder, LeadFusion, LevelFusion
from .hierarchy import DownScale, Hierarchy, Plan
from .layers import RadialBasis, edge_chunk, recompute
from .ode import SOLVERS, LatentODE, interpolate

__all__ = ["DominoConfig", "Normalisation", "Window", "Domino", "SOURCES", "CONFORMATION_SOURCES", "LOSSES"]

#: the displacement sources a dynamics model fuses by lead time, in the order of ``LeadFusion.weights``' columns
SOURCES = ("dynamics", "hierarchy", "linear-ar")
#: the sources a model with ``conformations`` fuses (:mod:`mdforecast.conformation`), in the same way
CONFORMATION_SOURCES = ("hierarchy", "linear-ar", "mean")
#: ``loss`` choices: the MSE of positions (the paper's) or the MSE after optimal superposition (Kabsch)
LOSSES = ("mse", "kabsch")


#: bytes of the per-level states of the queries decoded at once (:meth:`Domino.decode_chunk`): a few MiB, so the
#: decoder's intermediates stay in the CPU's caches (64 MiB took ~30 % more CPU time to decode the shipped lj
#: model's 250 atoms; the decoded values do not depend on it)
DECODE_BYTES = 4 * 2**20

#: the largest value of each integer model option (bounds memory and time; the paper's are far below)
_LIMITS = {"observe": 10**6, "horizon": 10**7, "features": 4096, "vectors": 1024, "encoder_layers": 64,
           "ode_layers": 64, "radial": 1024, "context": 10**6, "steps": 1000}


@dataclasses.dataclass(frozen=True)
class DominoConfig:
    """Architecture and time layout. Frame counts are frames of the training trajectories.

    Args:
        observe: frames observed. horizon: frames forecast (H).
        strides: output stride of each level, frames, coarse → fine (``levels = len(strides)``).
        features: F invariant features per atom. vectors: C equivariant vector channels per atom.
        encoder_layers: interactions in the encoder. ode_layers: interactions per ODE evaluation.
        cutoff: neighbour radius, Å. radial: R radial basis functions.
        lags: frames looked back for the recent-motion inputs. context: frames averaged for the mean input.
        solver: a :data:`~mdforecast.model.ode.SOLVERS` name. steps: fixed solver steps per segment.
        vae: Gaussian latent with KL (see :class:`~mdforecast.model.encoder.Encoder`).
        checkpoint: recompute ODE activations in the backward pass (less memory, one more forward pass).
        kind_field: the topology field that names the atom kinds (:data:`~mdforecast.model.features.KIND_FIELDS`):
            ``elements`` (chemical elements, any case), ``types`` (force-field types) or ``names``; ``None``:
            the first of them that the training topology sets for every atom (training records which).
        dynamics: add the dynamics level (:class:`~mdforecast.model.dynamics.DynamicsLevel`) and fuse it with the
            hierarchy and a linear autoregression by lead time (:class:`~mdforecast.model.fusion.LeadFusion`);
            ``False`` (the default, and every model saved before it existed) is the paper's DoMiNO.
        force_cutoff: the dynamics level's neighbour radius, Å. force_radial: radial functions of its pair term.
        force_layers: interactions of its message-passing correction (0: pair term only).
        substeps: velocity-Verlet steps per frame. members: rollouts averaged (an equivariant ensemble).
        spread: relative perturbation of the members' initial velocities. ar_lags: displacement vectors of the
        linear autoregression. fusion_bins: log-spaced lead bins of the fusion weights.
        loss: the training loss, ``mse`` (positions, the paper's) or ``kabsch`` (the MSE after optimal superposition
            of each predicted frame onto the true one: the conformation, for a molecule that tumbles); ``None``:
            chosen when training begins, ``kabsch`` for trajectories without a periodic box, else ``mse``.
        conformations: decode a molecule's conformation (:mod:`mdforecast.conformation`): the hierarchy, the linear
            autoregression and the observed mean conformation fused by lead time (all weights zero: persistence),
            then every bond projected onto its observed length; ``None``: chosen when training begins, on for
            trajectories without a box whose topology has bonds. Not combined with ``dynamics``.
        rigid_water: move waters as rigid bodies (:mod:`mdforecast.molecules`, :mod:`mdforecast.model.rigid`):
            the dynamics level projects each step onto the molecules' geometry in the last observed frame, and
            every forecast frame is projected onto it last, so O–H and H–O–H are exact; applied only when the
            observed frames show rigid waters. ``False`` (the default, and every model saved before it existed):
            atoms are forecast one by one.
        separate_molecules: with ``rigid_water``, translate molecules rigidly apart after the projection until no
            two oxygens are closer than in the last observed frame (:meth:`~mdforecast.model.rigid.RigidBodies.
            separate`; sweeps over close pairs, slow for hundreds of waters).
        rollout_at_rest: start the dynamics level's rollouts at rest (:math:`v_0 = \\tfrac12 a(x_0)`) instead of
            from the last two frames' velocity: for frames far apart compared with the velocities' memory (water
            at 0.1 ps, librations ~50 fs), where :math:`x_0 - x_{-1}` is noise and the rollout's skill is the drift
            of the learned forces.
        fit_velocity: start the rollouts from the velocity whose backward integration passes through the last
            three observed frames (:meth:`~mdforecast.model.dynamics.DynamicsLevel.fit_velocity`) instead of
            :math:`x_0 - x_{-1} + \\tfrac12 a(x_0)`, and fit the pair term to the instantaneous force (a quadrature
            of second differences, :func:`~mdforecast.model.dynamics.fit_pair_force`) instead of the force of one
            step per frame: with ``substeps`` > 1 the rollout then follows the true path for tens of frames
            (docs/model.md). Costs one L-BFGS fit of 3 frames of rollout per forecast.
    """

    observe: int = protocol.OBSERVE
    horizon: int = protocol.HORIZON
    strides: tuple[int, ...] = protocol.STRIDES
    features: int = 64
    vectors: int = 16
    encoder_layers: int = 2
    ode_layers: int = 1
    cutoff: float = 5.0
    radial: int = 16
    lags: tuple[int, ...] = protocol.LAGS
    context: int = 50
    solver: str = "rk4"
    steps: int = 8
    vae: bool = False
    checkpoint: bool = True
    kind_field: str | None = None
    dynamics: bool = False
    force_cutoff: float = 8.5
    force_radial: int = 25
    force_layers: int = 1
    substeps: int = 2
    members: int = 8
    spread: float = 0.02
    ar_lags: int = 3
    fusion_bins: int = 24
    loss: str | None = None
    conformations: bool | None = None
    rigid_water: bool = False
    rollout_at_rest: bool = False
    separate_molecules: bool = False
    fit_velocity: bool = False

    def __post_init__(self) -> None:
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 1 <= value <= limit:
                raise InputError(f"model option {name} must be a whole number from 1 to {limit:,}, got {value!r}")
        if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in (*self.strides, *self.lags)):
            raise InputError(f"strides {list(self.strides)} and lags {list(self.lags)} must be whole numbers of frames")
        if not (isinstance(self.cutoff, numbers.Real) and math.isfinite(self.cutoff)):
            raise InputError(f"cutoff must be a finite distance in Å, got {self.cutoff!r}")
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        object.__setattr__(self, "lags", tuple(int(s) for s in self.lags))
        Hierarchy(self.horizon, self.strides)  # raises on an impossible layout
        if self.kind_field is not None and self.kind_field not in KIND_FIELDS:
            raise InputError(f"unknown atom-kind field {self.kind_field!r}; choose one of {', '.join(KIND_FIELDS)}")
        if self.solver not in SOLVERS:
            raise InputError(f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if not self.lags or min(self.lags) < 1 or max(self.lags) >= self.observe:
            raise InputError(f"lags {list(self.lags)} must be between 1 and --observe − 1 = {self.observe - 1} frames; "
                             "give --lags inside that range, or a larger --observe")
        if min(self.features, self.vectors, self.radial, self.steps, self.context) < 1 or self.cutoff <= 0:
            raise InputError("features, vectors, radial, steps, context and cutoff must be positive")
        if min(self.force_radial, self.substeps, self.members, self.ar_lags, self.fusion_bins) < 1 or \
                self.force_cutoff <= 0 or self.force_layers < 0 or self.spread < 0:
            raise InputError("force_radial, substeps, members, ar_lags, fusion_bins and force_cutoff must be positive, "
                             "force_layers and spread non-negative")
        if self.loss not in (None, *LOSSES):
            raise InputError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.conformations not in (None, True, False):
            raise InputError(f"conformations must be true or false, got {self.conformations!r}")
        if self.conformations and self.dynamics:
            raise InputError("the dynamics level and the conformation fusion are not combined; turn one of "
                             "dynamics and conformations off")
        for name in ("rigid_water", "rollout_at_rest", "separate_molecules", "fit_velocity"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.fit_velocity and (self.rollout_at_rest or self.rigid_water):
            raise InputError("fit_velocity starts the rollouts from a fitted velocity: not with rollout_at_rest "
                             "or rigid_water; turn one of them off")
        if self.ar_lags >= self.observe:
            raise InputError(f"ar_lags {self.ar_lags} must be below --observe {self.observe}")

    @property
    def levels(self) -> int:
        return len(self.strides)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "strides": list(self.strides), "lags": list(self.lags)}

    @classmethod
    def from_dict(cls, d: dict) -> "DominoConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown model options {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclasses.dataclass(frozen=True)
class Normalisation:
    """Scales learned from training data (saved with the model).

    Args:
        displacement: RMS displacement over the horizon, Å.
        inputs: RMS of each input vector, Å ``(K,)``.
        avg_neighbors: mean neighbour count within the cutoff.
        lead, rms: the RMS displacement ``rms`` (Å) at lead times ``lead`` (frames, increasing): the unit
            σ(t) of the decoder and of the training loss at lead time t, interpolated log-log and held
            constant beyond the ends. Empty: σ(t) = ``displacement`` at every t (models saved before σ(t) existed).
    """

    displacement: float
    inputs: tuple[float, ...]
    avg_neighbors: float
    lead: tuple[float, ...] = ()
    rms: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {"displacement": self.displacement, "inputs": list(self.inputs), "avg_neighbors": self.avg_neighbors,
                "lead": list(self.lead), "rms": list(self.rms)}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalisation":
        return cls(float(d["displacement"]), tuple(float(x) for x in d["inputs"]), float(d["avg_neighbors"]),
                   tuple(float(x) for x in d.get("lead", ())), tuple(float(x) for x in d.get("rms", ())))


@dataclasses.dataclass(frozen=True)
class Window:
    """B observed windows of one system, as tensors.

    Args:
        kinds: ``(N,)`` int64 kind indices. last: ``(B, N, 3)`` last observed positions, Å.
        inputs: ``(B, N, K, 3)`` input vectors, Å. boxes: ``(B, 3, 3)`` box vectors, Å, or ``None``.
    """

    kinds: torch.Tensor
    last: torch.Tensor
    inputs: torch.Tensor
    boxes: torch.Tensor | None = None


class Domino(nn.Module):
    """The DoMiNO forecaster network.

    Args:
        config: :class:`DominoConfig`. norm: :class:`Normalisation`. kinds: the atom-kind vocabulary.
        neighbor_fn: builds the neighbour list (default :func:`~mdforecast.model.graph.radius_graph`,
            O(N) cell lists; :func:`~mdforecast.model.graph.radius_graph_all_pairs` is the O(N²) reference).

    Shapes: ``forward(window, sample (Q,), t (Q,) frames, depth (Q,)) -> positions (Q, N, 3) Å, kl ()``.
    """

    def __init__(self, config: DominoConfig, norm: Normalisation, kinds: Sequence[str],
                 neighbor_fn: NeighborFn = radius_graph) -> None:
        super().__init__()
        if len(norm.inputs) != len(config.lags) + 1:
            raise InputError(f"normalisation has {len(norm.inputs)} input scales, the config needs {len(config.lags) + 1}")
        self.config, self.norm, self.kinds = config, norm, tuple(kinds)
        self.neighbor_fn = neighbor_fn
        self.hierarchy = Hierarchy(config.horizon, config.strides)
        f, c = config.features, config.vectors
        basis = RadialBasis(config.cutoff, config.radial)
        self.encoder = Encoder(len(self.kinds), len(norm.inputs), f, c, config.encoder_layers, basis,
                               norm.avg_neighbors, config.vae, config.checkpoint)
        self.odes = nn.ModuleList(LatentODE(f, c, basis, norm.avg_neighbors, config.ode_layers, config.solver,
                                            config.steps, config.checkpoint) for _ in range(config.levels))
        self.downscale = nn.ModuleList(DownScale(level, f, c) for level in range(1, config.levels))
        self.fusion = LevelFusion(config.levels, f, c)
        self.decoder = EquivariantDecoder(f, c)
        if config.dynamics:
            # neighbours scale with the volume of the cutoff sphere
            ratio = (config.force_cutoff / config.cutoff) ** 3
            self.dynamics = DynamicsLevel(len(self.kinds), config.force_cutoff, config.force_radial, f, c,
                                          config.force_layers, norm.avg_neighbors * ratio, config.substeps,
                                          neighbor_fn)
        if config.dynamics or config.conformations:
            self.lead_fusion = LeadFusion(config.horizon, config.fusion_bins, len(self.sources), config.ar_lags)
        self.register_buffer("input_scale", torch.tensor(norm.inputs), persistent=False)
        lead, rms = (norm.lead, norm.rms) if norm.lead else ((1.0,), (norm.displacement,))
        self.register_buffer("log_lead", torch.log(torch.tensor(lead, dtype=torch.float64)), persistent=False)
        self.register_buffer("log_rms", torch.log(torch.tensor(rms, dtype=torch.float64)), persistent=False)

    @property
    def sources(self) -> tuple[str, ...]:
        """The displacement sources its lead fusion weighs (the columns of ``lead_fusion.weights``)."""
        return CONFORMATION_SOURCES if self.config.conformations else SOURCES

    def scale(self, t: torch.Tensor) -> torch.Tensor:
        """σ(t), Å ``(Q,)``: the training data's RMS displacement at lead times ``t`` ``(Q,)`` frames."""
        x = torch.log(t.to(self.log_lead.dtype).clamp(min=1e-6))
        x = x.clamp(self.log_lead[0], self.log_lead[-1])
        if len(self.log_lead) == 1:
            return torch.exp(self.log_rms[0]).expand(t.shape)
        k = torch.searchsorted(self.log_lead, x.contiguous()).clamp(1, len(self.log_lead) - 1)
        x0, x1 = self.log_lead[k - 1], self.log_lead[k]
        y0, y1 = self.log_rms[k - 1], self.log_rms[k]
        return torch.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))

    def kind_index(self, topology: Topology) -> torch.Tensor:
        """Indices ``(N,)`` int64 of ``topology``'s atom kinds (its field ``config.kind_field``, compared
        case-insensitively) in the vocabulary; :class:`InputError` for a kind never trained on."""
        kinds = atom_kinds(topology, self.config.kind_field)
        lookup = {k.casefold(): i for i, k in enumerate(self.kinds)}
        unknown = sorted({str(k) for k in kinds if k.casefold() not in lookup})
        if unknown:
            raise InputError(f"atom {self.config.kind_field} {unknown} are not in the model's vocabulary "
                             f"{list(self.kinds)}; train (or fine-tune with --init) on data that contains them")
        return torch.tensor([lookup[k.casefold()] for k in kinds], dtype=torch.int64)

    def _graph(self, positions: torch.Tensor, boxes: torch.Tensor | None):
        return batch_graphs(positions.detach(), self.config.cutoff, boxes, self.neighbor_fn)

    def _decode(self, hs: list[torch.Tensor], vs: list[torch.Tensor], depth: torch.Tensor,
                t: torch.Tensor) -> torch.Tensor:
        """Displacements ``(Q, N, 3)`` Å at lead times ``t`` ``(Q,)`` from per-level states (levels beyond a
        query's depth are zeros), in units of σ(t)."""
        pad = self.config.levels - len(hs)
        h = torch.stack(hs + [torch.zeros_like(hs[0])] * pad, dim=1)
        v = torch.stack(vs + [torch.zeros_like(vs[0])] * pad, dim=1)
        out = self.decoder(*self.fusion(h, v, depth))
        return out * self.scale(t).to(out.dtype)[:, None, None]

    def forward(self, window: Window, sample: np.ndarray, t: np.ndarray, depth: np.ndarray,
                generator: torch.Generator | None = None, memo: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``memo`` (inference on one ``window``, no gradients): the encoding and the solved segments of every
        level coarser than the finest one planned, kept across calls with the same ``window`` and reused, so
        queries answered call by call solve each coarse segment once (the caller keeps one memo per window)."""
        b, n = window.last.shape[:2]
        device = window.last.device
        if memo is not None and "encoded" in memo:
            h0, v0, kl = memo["encoded"]
        else:
            graph0 = self._graph(window.last, window.boxes)
            inputs = (window.inputs / self.input_scale[:, None]).reshape(b * n, -1, 3)
            h0, v0, kl = self.encoder(window.kinds.repeat(b), inputs, graph0, generator)
            h0, v0 = h0.reshape(b, n, -1), v0.reshape(b, n, -1, 3)
            if memo is not None:
                memo["encoded"] = (h0, v0, kl)
        plan: Plan = self.hierarchy.plan(sample, t, depth)
        grids: list[tuple[torch.Tensor, torch.Tensor]] = []
        for p, level in enumerate(plan.levels):
            kept = memo is not None and p < len(plan.levels) - 1
            keys = [(p, *k) for k in zip(level.sample.tolist(), level.index.tolist())]
            new = [r for r, key in enumerate(keys) if not kept or key not in memo]
            if new:
                hg, vg = self._solve_level(window, grids, level, p, np.asarray(new, np.int64), h0, v0)
                if kept:
                    memo.update({keys[r]: (hg[:, k], vg[:, k]) for k, r in enumerate(new)})
            if len(new) < len(keys):
                hg = torch.stack([memo[key][0] for key in keys], dim=1)
                vg = torch.stack([memo[key][1] for key in keys], dim=1)
            grids.append((hg, vg))
        rows = [torch.as_tensor(np.maximum(r, 0), device=device) for r in plan.rows]
        taus = [torch.as_tensor(tau, device=device) for tau in plan.tau]
        depth_t, t_t = torch.as_tensor(depth, device=device), torch.as_tensor(t, device=device)
        flat = [x for grid in grids for x in grid]
        chunks = [recompute(self.config.checkpoint, self._read_out, q, depth_t, t_t, rows, taus, *flat)
                  for q in torch.arange(len(t), device=device).split(self.decode_chunk(n))]
        positions = window.last[torch.as_tensor(sample, device=device)] + torch.cat(chunks)
        return positions, kl

    def _solve_level(self, window: Window, grids: list, level, p: int, rows: np.ndarray, h0: torch.Tensor,
                     v0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Solve segments ``rows`` of level ``p``'s plan from the coarser levels' ``grids``: states on the solver
        grid, ``(G, U, N, F)`` and ``(G, U, N, C, 3)``."""
        n, device = window.last.shape[1], window.last.device
        seg_sample = torch.as_tensor(level.sample[rows], device=device)
        if p == 0:
            h, v, geometry = h0[seg_sample], v0[seg_sample], window.last[seg_sample]
        else:
            hs, vs = self._states(grids, [r[rows] for r in level.parent_rows], [tau[rows] for tau in level.parent_tau],
                                  device)
            depth_p = torch.full((len(rows),), p - 1, dtype=torch.int64, device=device)
            start = torch.as_tensor(level.index[rows] * self.hierarchy.spans[p], device=device)
            with torch.no_grad():  # only the neighbour list is built on it
                geometry = window.last[seg_sample] + self._decode(hs, vs, depth_p, start)
            h, v = self.downscale[p - 1](hs, vs)
        u = len(rows)
        boxes = None if window.boxes is None else window.boxes[seg_sample]
        hg, vg = self.odes[p].solve(h.reshape(u * n, -1), v.reshape(u * n, -1, 3), self._graph(geometry, boxes))
        return hg.reshape(hg.shape[0], u, n, -1), vg.reshape(vg.shape[0], u, n, -1, 3)

    def decode_chunk(self, n_atoms: int) -> int:
        """Queries decoded at once for ``n_atoms`` atoms: their per-level states, ``(queries, L, N, F + 3C)``
        float32, take at most :data:`DECODE_BYTES` (tens of queries of a small system; one of a large one). In
        training with ``checkpoint``, each chunk's decoder activations are recomputed in the backward pass."""
        c = self.config
        return max(1, DECODE_BYTES // (4 * n_atoms * c.levels * (c.features + 3 * c.vectors)))

    def memory_note(self, n_atoms: int) -> str | None:
        """The automatic memory bounds at ``n_atoms`` atoms in one line, or ``None`` where a graph fits one
        chunk of edges (a small system: nothing is split)."""
        c = self.config
        edges = edge_chunk(c.features + 3 * c.vectors)
        if n_atoms * self.norm.avg_neighbors <= edges:
            return None
        return (f"{n_atoms:,} atoms: message passing in chunks of {edges:,} edges, decoding {self.decode_chunk(n_atoms)} "
                "lead time(s) at a time" + (" (activations recomputed in the backward pass)" if c.checkpoint else ""))

    def _read_out(self, q: torch.Tensor, depth: torch.Tensor, t: torch.Tensor, rows: list, taus: list,
                  *flat: torch.Tensor) -> torch.Tensor:
        """Displacements ``(len(q), N, 3)`` Å of queries ``q``: every level's state interpolated at the queries'
        times (zero beyond a query's depth), fused and decoded."""
        hs, vs = [], []
        for p in range(len(flat) // 2):
            hg, vg = flat[2 * p], flat[2 * p + 1]
            live = (depth[q] >= p).to(hg.dtype)
            hs.append(interpolate(hg, rows[p][q], taus[p][q]) * live[:, None, None])
            vs.append(interpolate(vg, rows[p][q], taus[p][q]) * live[:, None, None, None])
        return self._decode(hs, vs, depth[q], t[q])

    @staticmethod
    def _states(grids, rows: list[np.ndarray], taus: list[np.ndarray], device) -> tuple[list, list]:
        hs, vs = [], []
        for (hg, vg), r, tau in zip(grids, rows, taus):
            r, tau = torch.as_tensor(r, device=device), torch.as_tensor(tau, device=device)
            hs.append(interpolate(hg, r, tau))
            vs.append(interpolate(vg, r, tau))
        return hs, vs

    def extra_repr(self) -> str:
        c = self.config
        return f"levels={c.levels}, strides={list(c.strides)}, horizon={c.horizon}, kinds={list(self.kinds)}"
