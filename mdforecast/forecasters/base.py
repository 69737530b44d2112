"""The forecaster interface: what DoMiNO, LG-ODE and every baseline implement, and the lead-time rule.

A forecaster sees the observed frames of one trajectory (:class:`Observation`) and answers positions at any
real-valued trajectory frame times after them. Times are **trajectory frame indices** (0-based, float): with
frames [0, 2000) observed, ``times=[2000, 2500.5, 9999]`` asks for the first forecast frame, a point between
frames 2500 and 2501, and the last frame of the protocol's horizon.

Shapes: T observed frames, N atoms, K requested times.
"""

from __future__ import annotations

import abc
import dataclasses

import numpy as np

from ..errors import InputError
from ..store import Trajectory
from ..topology import Topology

__all__ = ["Observation", "Forecaster", "lead_time"]


def lead_time(times: np.ndarray, end: int) -> np.ndarray:
    """Frames ahead of the last observed frame ``end − 1``, ``(K,)`` float64: trajectory frame ``end`` (the
    first forecast frame) is lead time 1."""
    return np.asarray(times, dtype=np.float64) - (end - 1)


@dataclasses.dataclass(frozen=True, eq=False)
class Observation:
    """The observed part of a trajectory.

    Args:
        positions: ``(T, N, 3)`` float32, Å, unwrapped.
        topology: the N atoms' :class:`~mdforecast.topology.Topology`.
        dt_ps: time between frames, ps; ``None`` when the trajectory does not record it.
        start: trajectory frame index of ``positions[0]``.
        boxes: ``(T, 3)`` edges or ``(T, 3, 3)`` vectors, Å; ``None`` without periodic box.
        velocities: ``(T, N, 3)`` float32, Å/ps, or ``None``.
    """

    positions: np.ndarray
    topology: Topology
    dt_ps: float | None
    start: int = 0
    boxes: np.ndarray | None = None
    velocities: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def end(self) -> int:
        """Trajectory frame index of the first frame *after* the observation."""
        return self.start + self.n_frames

    @classmethod
    def from_trajectory(cls, trajectory: Trajectory, topology: Topology, *, observe: int,
                        end: int | None = None) -> "Observation":
        """The ``observe`` frames of ``trajectory`` before frame ``end`` (default ``observe``: frames [0, observe))."""
        end = observe if end is None else end
        if observe < 1:
            raise InputError(f"--observe must be at least 1 frame, got {observe}")
        if end > trajectory.span or end - observe < 0:
            raise InputError(f"trajectory {trajectory.name!r} has {trajectory.span} frames; observing frames "
                             f"[{end - observe}, {end}) needs {end}; lower --observe or use a longer trajectory")
        start = end - observe
        rows = trajectory.rows_of(np.arange(start, end))
        if (rows < 0).any() or (np.diff(rows) != 1).any():
            raise InputError(f"trajectory {trajectory.name!r} is a sample that does not hold every frame of "
                             f"[{start}, {end}); lower --observe to the frames it holds")
        lo, hi = int(rows[0]), int(rows[-1]) + 1
        return cls(positions=trajectory.positions(lo, hi), topology=topology,
                   dt_ps=trajectory.dt_ps, start=start,
                   boxes=trajectory.boxes(lo, hi),
                   velocities=trajectory.velocities(lo, hi) if trajectory.has_velocities else None)


class Forecaster(abc.ABC):
    """Predicts positions at future frame times from an :class:`Observation`.

    Subclasses set :attr:`name` and implement :meth:`predict`; baselines that learn a parameter from
    training trajectories (e.g. damped velocity's decay time) also implement :meth:`fit`.
    """

    #: short name, used by ``--model`` and in score tables
    name: str = "forecaster"
    #: observed frames the forecaster expects (``mdforecast predict``'s default ``--observe``); None: any
    observe: int | None = None
    #: frames after the observation it can forecast (bounds ``predict``'s default ``--until``); None: any
    horizon: int | None = None

    def fit(self, trajectories: list[Trajectory], *, observe: int) -> "Forecaster":
        """Learn from training trajectories (default: nothing to learn). Returns ``self``."""
        return self

    @abc.abstractmethod
    def predict(self, observation: Observation, times: np.ndarray) -> np.ndarray:
        """Positions ``(K, N, 3)`` float32 Å at trajectory frame ``times`` ``(K,)`` (real-valued, ≥ ``observation.end``)."""

    def check(self, topology: Topology, dt_ps: float | None) -> None:
        """Raise :class:`InputError` when this forecaster cannot forecast a system of ``topology`` saved every
        ``dt_ps`` ps (``None``: unknown), e.g. a model trained on other atom kinds or another frame time; the
        default accepts every system."""

    def memory_note(self, n_atoms: int) -> str | None:
        """One line on how the forecaster bounds its memory for ``n_atoms`` atoms, printed before a forecast;
        ``None`` (the default) when there is nothing to say."""
        return None

    def describe(self) -> dict:
        """Provenance recorded with a forecast (name, checkpoint, hash, config, …)."""
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
