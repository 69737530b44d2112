"""The four benchmark systems of PROTOCOL.md, generated reproducibly with OpenMM.

:data:`SYSTEMS` is the registry (name → :class:`~mdforecast.datasets.spec.SystemSpec`) and the single
source of the command line's choices. :func:`make` simulates a system into a store, resumably;
:func:`list_systems` describes each system with the generation time estimated from the speeds that
``benchmarks/datasets_speed.py`` measured (``data/speeds.json``).
"""

from __future__ import annotations

import json
import math
from importlib import resources

from .generate import MakeResult, make, trajectory_names
from .spec import SystemSpec
from .systems import SYSTEMS

__all__ = ["SYSTEMS", "SystemSpec", "list_systems", "make", "MakeResult", "measured_speeds", "estimate_seconds"]

def measured_speeds() -> dict | None:
    """The speeds ``benchmarks/datasets_speed.py`` measured (hardware, OpenMM version, steps/s per system),
    or ``None`` if it has not been run."""
    path = resources.files(__name__).joinpath("data").joinpath("speeds.json")
    return json.loads(path.read_text()) if path.is_file() else None


def estimate_seconds(spec: SystemSpec, *, trajectories: int | None = None, frames: int | None = None,
                     speeds: dict | None = None) -> dict | None:
    """Estimated wall time of ``make`` on the measured machine: ``{"seconds", "text", "workers", "platform",
    "hardware"}`` with as many workers as it has cores (its recommended ``--workers``), or ``None``."""
    speeds = measured_speeds() if speeds is None else speeds
    if not speeds or spec.name not in speeds["systems"]:
        return None
    measured = speeds["systems"][spec.name]
    trajectories = spec.trajectories if trajectories is None else trajectories
    frames = spec.frames if frames is None else frames
    steps = sum(spec.equilibration_steps()) + frames * spec.steps_per_frame
    workers = min(speeds["workers"], trajectories)
    per_worker = measured["aggregate_steps_per_s"] / speeds["workers"]
    seconds = math.ceil(trajectories / workers) * steps / per_worker
    text = f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.0f} min"
    return {"seconds": seconds, "text": text, "workers": workers, "platform": measured["platform"],
            "hardware": speeds["hardware"]}


def list_systems() -> list[dict]:
    """One JSON-ready description per system: atoms, box, physics, frames, split and estimated time."""
    speeds = measured_speeds()
    out = []
    for spec in SYSTEMS.values():
        train, test, _ = trajectory_names(spec, spec.trajectories, twins=0)
        out.append({"name": spec.name, "title": spec.title, "atoms": spec.n_atoms, "box": spec.box,
                    "physics": spec.physics, "trajectories": spec.trajectories, "frames": spec.frames,
                    "frame_ps": spec.frame_ps, "timestep_ps": spec.timestep_ps,
                    "equilibration_ps": spec.thermalize_ps + spec.nvt_ps,
                    "split": {"train": train, "test": test},
                    "estimate": estimate_seconds(spec, speeds=speeds)})
    return out
