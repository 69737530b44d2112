"""DoMiNO and LG-ODE behind the forecaster contract: a model file, loaded, answering any future frame time.

The model files themselves are read and written by :mod:`mdforecast.checkpoint`.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import load_model, model_name
from ..errors import InputError
from ..model import Domino, Window, input_vectors
from ..model.features import last_box
from ..model.rigid import RigidBodies
from ..molecules import RigidGroups, rigid_waters
from ..provenance import sha256
from ..topology import Topology
from .base import Forecaster, Observation, lead_time
from .baselines import linear_ar_displacement

__all__ = ["DominoForecaster", "load"]

_CHUNK = 32  # finest-level segments decoded per forward pass in predict() (fewer for a large system)
#: atoms × finest-level segments solved in one forward pass of predict(): bounds the graphs held at once
#: (about 5 KiB per node with the float32 edge features of ~50 neighbours)
NODES_PER_PASS = 2**18


def segments_per_pass(n_atoms: int) -> int:
    """Finest-level segments ``predict`` solves in one forward pass for ``n_atoms`` atoms (1 to 32)."""
    return max(1, min(_CHUNK, NODES_PER_PASS // max(n_atoms, 1)))


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu", depth: int | None = None) -> "DominoForecaster":
    """A :class:`DominoForecaster` from a run directory, ``model.json`` or ``model.safetensors``, on ``device``
    (``cpu``, ``cuda`` or ``auto``), decoding from levels 0..``depth`` (default: all)."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device} requested but no CUDA GPU is visible to torch; use cpu")
    model, meta, weights = load_model(path, map_location=device)
    return DominoForecaster(model, meta=meta, path=weights, depth=depth)




class DominoForecaster(Forecaster):
    """A trained DoMiNO (or LG-ODE) model behind the :class:`~mdforecast.forecasters.Forecaster` contract.

    ``predict`` solves only the segments that hold the requested times, batched, up to 32 finest-level
    segments per pass. Times are trajectory frame indices ≥ ``observation.end`` (frame ``end + h − 1`` is
    horizon step h; real values are fine). Times past the horizon H are forecast by **rollout**: the
    forecast frames ``[end + H − observe, end + H)`` become the next observation (box: the last observed
    one) and the model forecasts the next H frames from them, and so on; each leg starts from a forecast,
    not from MD, so errors compound past H. ``depth`` decodes from levels 0..depth only (default: all
    levels), the read-out of the ablation L0 / L0+L1 / full.
    """

    def __init__(self, model: Domino, *, meta: dict | None = None, path: str | os.PathLike | None = None,
                 depth: int | None = None) -> None:
        levels = model.config.levels
        if depth is not None and not 0 <= depth < levels:
            raise InputError(f"depth {depth} must be a level of the model's {levels} (0 … {levels - 1})")
        self.depth = levels - 1 if depth is None else depth
        self.model = model.eval()
        self.meta = meta or {}
        self.path = None if path is None else Path(path)
        # the weights file's SHA-256: the one in ``meta``, which :func:`load` checked against ``path``
        # (load_model refuses a mismatch), else hashed here
        self._sha256 = None if path is None else (self.meta.get("weights_sha256") or sha256(path))
        self.name = model_name(model)
        self.observe, self.horizon = model.config.observe, model.config.horizon
        self._rollouts: list[tuple[Observation, Observation]] = []  # (observation, next leg's), newest last
        self._path: tuple[Observation, np.ndarray] | None = None  # the dynamics level's last mean rollout
        self._rigid_of: tuple[Observation, RigidGroups | None] | None = None  # (observation, its rigid waters)
        self._closest_of: tuple[Observation, float] | None = None  # (observation, its molecules' closest pair)
        self._memos: list[tuple[Observation, dict]] = []  # (observation, its hierarchy's memo), newest last

    @property
    def dt_ps(self) -> float | None:
        """Time between the frames the model was trained on, ps (``None``: not recorded)."""
        value = self.meta.get("dt_ps")
        return float(value) if value is not None else None

    def check(self, topology: Topology, dt_ps: float | None) -> None:
        """:class:`InputError` when ``topology`` has atom kinds the model was not trained on, or when frames
        ``dt_ps`` ps apart are not the frame time the model was trained on (lead times are in frames)."""
        self.model.kind_index(topology)
        trained = self.dt_ps
        if trained is None:
            return
        if dt_ps is None:
            raise InputError(f"the trajectory records no time step, and the model was trained on frames {trained:g} ps "
                             f"apart; if its frames are {trained:g} ps apart, ingest it again with --dt {trained:g}")
        if not math.isclose(dt_ps, trained, rel_tol=1e-4):
            stride = dt_ps / trained
            hint = (f"ingest it with --stride {round(1 / stride)} to match, " if stride < 1
                    and math.isclose(1 / stride, round(1 / stride), rel_tol=1e-4) else "")
            raise InputError(f"the trajectory's frames are {dt_ps:g} ps apart but the model was trained on frames "
                             f"{trained:g} ps apart; {hint}forecast a trajectory saved every {trained:g} ps, or train "
                             "a model on this one")

    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        horizon = self.model.config.horizon
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if len(times) and (times.min() < observation.end or not np.isfinite(times).all()):
            raise InputError(f"forecast times must be finite and ≥ {observation.end} (the first frame after the "
                             f"observation); got {times.min():g}–{times.max():g}")
        out = np.empty((len(times), observation.positions.shape[1], 3), dtype=np.float32)
        pending = np.ones(len(times), bool)
        while pending.any():
            leg = pending & (times <= observation.end + horizon - 1)
            if leg.any():
                out[leg] = self._leg(observation, times[leg])
            pending &= ~leg
            if pending.any():
                observation = self._next_observation(observation)
        return out

    def _next_observation(self, observation: Observation) -> Observation:
        """The observation a rollout leg starts from: frames ``[end + H − observe, end + H)``, forecast where
        they lie after ``observation`` (observed ones are kept), with the last observed box. The last few are
        kept, so ``predict`` called batch by batch on the same observation solves each leg once."""
        for previous, following in self._rollouts:
            if previous is observation:
                return following
        end = observation.end + self.model.config.horizon
        frames = np.arange(end - self.model.config.observe, end)
        observed = frames[frames < observation.end]
        positions = np.concatenate([observation.positions[observed - observation.start],
                                    self._leg(observation, frames[frames >= observation.end].astype(np.float64))])
        boxes = None if observation.boxes is None else np.repeat(np.asarray(observation.boxes)[-1:], len(frames), 0)
        following = Observation(positions=positions, topology=observation.topology, dt_ps=observation.dt_ps,
                                start=int(frames[0]), boxes=boxes)
        self._rollouts = [*self._rollouts[-3:], (observation, following)]
        return following

    def _leg(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        """Positions at ``times`` within one horizon of ``observation`` (``end ≤ times ≤ end + H − 1``); with a
        dynamics level, the last observed frame plus the fused displacements of :meth:`sources`; with
        ``conformations``, :func:`mdforecast.conformation.forecast`."""
        if self.model.config.conformations:
            from ..conformation import forecast

            return forecast(observation, times, self.model.lead_fusion, lambda t: self._hierarchy(observation, t))
        if not self.model.config.dynamics:
            return self._rigid_frames(observation, self._hierarchy(observation, times))
        t = lead_time(times, observation.end)
        fusion = self.model.lead_fusion
        used = fusion.weights.cpu().numpy()[fusion.bin(t)] != 0  # (K, J)
        displacements = self.sources(observation, times, used=used.any(0),
                                     rollout=int(t[used[:, 0]].max(initial=0.0) + 1))
        return self._rigid_frames(observation, observation.positions[-1] + fusion.combine(t, displacements))

    def _rigid(self, observation: Observation) -> RigidGroups | None:
        """The observation's rigid waters when the model moves them (``config.rigid_water``) and its frames show
        them rigid (:func:`~mdforecast.molecules.rigid_waters`; a flexible water model warns once per
        observation and is forecast atom by atom)."""
        if not self.model.config.rigid_water:
            return None
        if self._rigid_of is None or self._rigid_of[0] is not observation:
            self._rigid_of = (observation, rigid_waters(observation.topology, observation.positions,
                                                        observation.boxes, log=warnings.warn))
        return self._rigid_of[1]

    def _rigid_frames(self, observation: Observation, positions: np.ndarray) -> np.ndarray:
        """:meth:`_placed` ``positions`` as float32 forecast frames ``(K, N, 3)`` Å."""
        return self._placed(observation, positions).astype(np.float32)

    def _placed(self, observation: Observation, positions: np.ndarray) -> np.ndarray:
        """Frames ``(K, N, 3)`` Å with every rigid molecule superposed from its geometry in the last observed frame
        (:class:`~mdforecast.model.rigid.RigidBodies`) and, with ``separate_molecules``, the molecules translated
        apart until no two reference atoms are closer than in that frame; float64. Frames equal to the last
        observed one (persistence) are returned as they are, and everything when the model moves no rigid
        molecules."""
        groups = self._rigid(observation)
        x0 = observation.positions[-1]
        moved = np.flatnonzero((positions != x0).any(axis=(1, 2))) if groups is not None else []
        out = np.array(positions, dtype=np.float64)
        if len(moved):
            box = last_box(observation.boxes)
            x = torch.as_tensor(out[moved])
            boxes = None if box is None else torch.as_tensor(box)[None].expand(len(moved), -1, -1)
            bodies = RigidBodies.from_groups(groups, x)
            template = bodies.gather(torch.as_tensor(x0, dtype=torch.float64)[None], None if box is None
                                     else boxes[:1])
            placed = bodies.project(x, template, boxes)
            closest = self._closest(observation, bodies, box) if self.model.config.separate_molecules else None
            for chunk in range(0, len(moved) if closest is not None else 0, _CHUNK):  # bounds the pair lists
                rows = slice(chunk, chunk + _CHUNK)  # molecules no closer than in the last observed frame
                placed[rows] = bodies.separate(placed[rows], closest, None if boxes is None else boxes[rows])
            out[moved] = placed.numpy()
        return out

    def _closest(self, observation: Observation, bodies: RigidBodies, box: np.ndarray | None) -> float:
        """The closest pair (Å, minimum image) of the molecules' reference atoms in the last observed frame, once
        per observation."""
        if self._closest_of is None or self._closest_of[0] is not observation:
            x0 = torch.as_tensor(np.asarray(observation.positions[-1], np.float64))
            self._closest_of = (observation, bodies.closest(x0, None if box is None else torch.as_tensor(box)))
        return self._closest_of[1]

    def sources(self, observation: Observation, times: np.ndarray, *, used: np.ndarray | None = None,
                rollout: int | None = None) -> np.ndarray:
        """Displacements ``(J, K, N, 3)`` float64 Å from the last observed frame at ``times`` ``(K,)`` of each of
        :data:`~mdforecast.model.SOURCES` (a dynamics model only): the mean of the dynamics level's rollouts
        (interpolated linearly between frames; zero past ``rollout`` frames), the hierarchy's forecast and the linear
        autoregression. ``used`` ``(J,)`` bool: the sources to compute (the others are zeros). With rigid
        molecules each source's frames are placed as a forecast's are (:meth:`_placed`), so the fusion is fitted
        on what the forecast outputs."""
        model = self.model
        t = lead_time(times, observation.end)
        used = np.ones(3, bool) if used is None else used
        x0 = observation.positions[-1].astype(np.float64)
        out = np.zeros((3, len(t), x0.shape[0], 3))
        if used[0]:
            frames = int(np.ceil(t.max())) if rollout is None else min(int(np.ceil(t.max())), rollout)
            path = self._dynamics_path(observation, frames)[:frames + 1]  # leads 0 … frames
            inside = t <= frames
            lo = np.floor(t[inside]).astype(np.int64).clip(0, frames - 1)
            frac = (t[inside] - lo)[:, None, None]
            out[0, inside] = (1 - frac) * path[lo] + frac * path[lo + 1]
        if used[1]:
            out[1] = self._hierarchy(observation, times) - x0
        if used[2]:
            out[2] = linear_ar_displacement(observation.positions, model.lead_fusion.ar.cpu().numpy(), t)
        if self._rigid(observation) is not None:  # each source as a forecast of it is output: rigid, kept apart
            for j in np.flatnonzero(used):
                out[j] = self._placed(observation, x0 + out[j]) - x0
        return out

    def _dynamics_path(self, observation: Observation, frames: int) -> np.ndarray:
        """The dynamics level's mean displacement ``(F + 1, N, 3)`` float64 Å at leads 0 … F ≥ ``frames`` from the
        last observed frame. One rollout per observation: the first runs at least to the fusion's
        ``rollout_frames`` and to the end of the last lead bin where the rollout's weight is non-zero
        (:meth:`~mdforecast.model.fusion.LeadFusion.reach`), and a shorter request is a prefix of it (the rollout
        is deterministic), so ``predict`` called batch by batch rolls out once, whatever the batches."""
        if self._path is not None and self._path[0] is observation and len(self._path[1]) > frames:
            return self._path[1]
        model = self.model
        frames = max(frames, int(model.lead_fusion.rollout_frames), model.lead_fusion.reach(0))
        param = next(model.parameters())
        box = last_box(observation.boxes)
        rigid = self._rigid(observation)
        with torch.no_grad():
            path = model.dynamics.forecast(
                torch.as_tensor(observation.positions[-4:], dtype=param.dtype, device=param.device),
                model.kind_index(observation.topology).to(param.device),
                None if box is None else torch.as_tensor(box, dtype=param.dtype, device=param.device),
                frames, model.config.members, model.config.spread,
                rigid=None if rigid is None else RigidBodies.from_groups(rigid, param),
                at_rest=model.config.rollout_at_rest, fit_velocity=model.config.fit_velocity)
        path = np.concatenate([np.zeros((1,) + path.shape[1:]), path.double().cpu().numpy()])
        self._path = (observation, path)
        return path

    def _memo(self, observation: Observation) -> dict:
        """The hierarchy's memo of ``observation`` (:meth:`Domino.forward`): its encoding and solved coarse
        segments, kept for the last two observations (a batch of ``predict`` may span two rollout legs)."""
        for seen, memo in self._memos:
            if seen is observation:
                return memo
        memo: dict = {}
        self._memos = [*self._memos[-1:], (observation, memo)]
        return memo

    def _hierarchy(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        """The hierarchy's positions at ``times`` within one horizon of ``observation``; the encoding and the
        coarse levels' segments are solved once per observation (:meth:`_memo`), so ``predict`` called batch by
        batch solves each of them once."""
        config, model = self.model.config, self.model
        t = lead_time(times, observation.end)
        param = next(model.parameters())
        kinds = model.kind_index(observation.topology).to(param.device)
        observed = observation.positions[-config.observe:]
        box = last_box(observation.boxes)
        as_tensor = lambda x: torch.as_tensor(np.asarray(x)[None], dtype=param.dtype, device=param.device)  # noqa: E731
        window = Window(kinds, as_tensor(observed[-1]), as_tensor(input_vectors(observed, config.lags, config.context)),
                        None if box is None else as_tensor(box))
        out = np.empty((len(t), observation.positions.shape[1], 3), dtype=np.float32)
        depth = self.depth
        finest = model.hierarchy.segment_of(depth, t)
        unique = np.unique(finest)
        memo = self._memo(observation)
        with torch.no_grad():
            chunk = segments_per_pass(observation.positions.shape[1])
            for start in range(0, len(unique), chunk):
                sel = np.isin(finest, unique[start:start + chunk])
                positions, _ = model(window, np.zeros(sel.sum(), np.int64), t[sel], np.full(sel.sum(), depth),
                                     memo=memo)
                out[sel] = positions.float().cpu().numpy()
        return out

    def memory_note(self, n_atoms: int) -> str | None:
        """The model's automatic memory bounds for ``n_atoms`` atoms (:meth:`Domino.memory_note`) and the
        finest segments solved per pass, in one line; ``None`` for a small system."""
        note = self.model.memory_note(n_atoms)
        return None if note is None else f"{note}, {segments_per_pass(n_atoms)} finest segment(s) per pass"

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": None if self.path is None else str(self.path),
                "sha256": self._sha256, "config": self.model.config.to_dict(),
                "normalisation": self.model.norm.to_dict(), "kinds": list(self.model.kinds),
                "dt_ps": self.dt_ps, "data": self.meta.get("data"), "depth": self.depth}
