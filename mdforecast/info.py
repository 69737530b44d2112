"""``mdforecast info``: what a store holds, without reading any frames."""

from __future__ import annotations

import os

import numpy as np

from .store import Store

__all__ = ["info"]


def info(store: str | os.PathLike | Store) -> dict:
    """A JSON-ready description of a store: format, system, split and one entry per trajectory.

    Reads metadata and the first/last entries of small arrays only; no positions.
    """
    store = store if isinstance(store, Store) else Store.open(store)
    attrs, top = store.attrs, store.topology
    trajectories = []
    for traj in store:
        first_box = traj.boxes(0, 1)
        times = traj.times()
        trajectories.append({
            "name": traj.name, "frames": traj.n_frames, "dt_ps": traj.attrs.get("dt_ps"),
            "time_ps": [float(times[0]), float(times[-1])],
            "box": None if first_box is None else np.round(first_box[0], 4).tolist(),
            "velocities": traj.has_velocities, "unwrapped": traj.attrs.get("unwrapped"),
            "twin_of": traj.attrs.get("twin_of")})
    return {"store": store.path, "format_version": attrs["format_version"],
            "mdforecast_version": attrs.get("mdforecast_version"), "units": attrs["units"],
            "atoms": top.n_atoms, "composition": top.composition(),
            "bonds": None if top.bonds is None else len(top.bonds), "split": store.split,
            "frames": sum(t["frames"] for t in trajectories), "trajectories": trajectories}
