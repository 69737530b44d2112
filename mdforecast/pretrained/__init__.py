"""Pretrained models shipped inside the package (docs/pretrained.md).

Each one is a directory ``mdforecast/pretrained/NAME/`` holding a trained model as ``mdforecast train``
writes it (``model.json`` + ``model.safetensors``, docs/model.md) and its model card ``card.json`` (the
protocol and every reduction from it, data seeds and fingerprint, config, hardware, training time, test
scores), as ``benchmarks/pretrain.py`` produces them, and ``truth.zarr``: a sample of one test trajectory
(:func:`embed_truth`) that lets ``mdforecast predict --model NAME`` and ``mdforecast evaluate`` run with no
other input. :data:`PRETRAINED` (name → directory) is discovered from the package's directories at import and
is the single source of the names that ``--model NAME`` and ``mdforecast models`` accept.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import InputError

__all__ = ["PRETRAINED", "ROOT", "DEFAULT", "HOW_TO_PRODUCE", "TRUTH_STRIDE", "discover", "load_pretrained",
           "model_info", "list_models", "ModelList", "embedded_truth", "embed_truth"]

#: the package directory that holds one sub-directory per pretrained model
ROOT = Path(__file__).resolve().parent
#: the model ``mdforecast predict`` uses when given neither a model nor a store
DEFAULT = "lj"
#: stride (frames) of the sample of the whole forecast domain kept in an embedded truth
TRUTH_STRIDE = 20
#: what to tell a user when the model they want is not shipped
HOW_TO_PRODUCE = ("produce one with `python benchmarks/pretrain.py lj --scale protocol --device cuda` "
                  "(docs/pretrained.md), or train your own with `mdforecast train`")


def discover(root: Path = ROOT) -> dict[str, Path]:
    """name → directory for every sub-directory of ``root`` holding ``model.json`` and ``card.json``."""
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and (p / "model.json").is_file() and (p / "card.json").is_file()}


#: name → directory of every shipped pretrained model (``--model NAME``, ``mdforecast models``)
PRETRAINED: dict[str, Path] = discover()


def _directory(name: str) -> Path:
    if name not in PRETRAINED:
        shipped = ", ".join(PRETRAINED) or "none shipped yet"
        raise InputError(f"unknown pretrained model {name!r} (pretrained: {shipped}); see `mdforecast models list`, "
                         f"or {HOW_TO_PRODUCE}")
    return PRETRAINED[name]


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"pretrained file {path} is unreadable ({err}); reinstall mdforecast") from err
    if not isinstance(data, dict):
        raise InputError(f"pretrained file {path} is not a JSON object; reinstall mdforecast")
    return data


def load_pretrained(name: str, *, device: str = "cpu"):
    """The :class:`~mdforecast.checkpoint.DominoForecaster` of pretrained model ``name`` on ``device``, after
    checking its weights against the SHA-256 recorded in its ``model.json`` (a truncated or Git-LFS-pointer
    file is refused with a one-line :class:`InputError`)."""
    from .. import checkpoint
    from ..provenance import sha256

    directory = _directory(name)
    meta, json_path = checkpoint.read_meta(directory)
    weights = json_path.with_name(meta.get("weights", "model.safetensors"))
    if not weights.is_file() or sha256(weights) != meta.get("weights_sha256"):
        raise InputError(f"pretrained model {name}: {weights.name} is missing or does not match the SHA-256 in "
                         "model.json; reinstall mdforecast")
    return checkpoint.load(directory, device=device)


def model_info(name: str) -> dict:
    """Everything known about pretrained model ``name`` without loading its weights: ``name``, ``path``,
    the model (architecture name, config, atom kinds, weights' SHA-256, training data) and the model ``card``."""
    directory = _directory(name)
    meta = _read(directory / "model.json")
    card = _read(directory / "card.json")
    model = {k: meta.get(k) for k in ("name", "config", "kinds", "weights_sha256", "data", "mdforecast_version")}
    return {"name": name, "path": str(directory), "model": model, "card": card}


@dataclasses.dataclass(frozen=True)
class ModelList:
    """The shipped pretrained models (one row each), or none and how to produce them."""

    models: list[dict]

    def summary(self) -> str:
        if not self.models:
            return f"no pretrained models are shipped yet; {HOW_TO_PRODUCE}"
        return "\n".join(f"{m['name']}: {m['model']} for {m['system']} ({m['atoms']} atoms), observe {m['observe']} "
                         f"→ horizon {m['horizon']} frames, scale {m['scale']}" for m in self.models)

    def to_dict(self) -> dict:
        return {"models": self.models, **({} if self.models else {"note": self.summary()})}


def list_models() -> ModelList:
    """One row per shipped pretrained model: name, system, architecture, atoms, observe/horizon (frames),
    the card's scale and its full-domain MSE (Å²) when recorded."""
    rows = []
    for name in PRETRAINED:
        info = model_info(name)
        config, card = info["model"]["config"] or {}, info["card"]
        rows.append({"name": name, "system": card.get("system"), "model": info["model"]["name"],
                     "atoms": card.get("atoms"), "observe": config.get("observe"), "horizon": config.get("horizon"),
                     "levels": len(config.get("strides") or ()), "scale": card.get("scale"),
                     "full_domain_mse": card.get("full_domain_mse"), "path": info["path"]})
    return ModelList(rows)


def embedded_truth(name: str) -> str | None:
    """Path of the truth sample shipped with pretrained model ``name`` (``truth.zarr``), ``None`` if it has none."""
    path = _directory(name) / "truth.zarr"
    return str(path) if path.is_dir() else None


def embed_truth(store, trajectory: str, output, *, observe: int, stride: int = TRUTH_STRIDE) -> list[int]:
    """Write a sample of test ``trajectory`` of ``store`` (and its twins) to a new store ``output``.

    The sample holds every observed frame [0, ``observe``) (what a model and the baselines read), every
    frame of the default scoring windows (:data:`~mdforecast.timespec.TABLE3_HORIZONS` after ``observe``)
    and every ``stride``-th frame of the rest of the trajectory; each stored frame records the frame index it
    stands for, so ``evaluate`` scores exactly those frames. Twins keep the same frames (from their first
    frame on). The store's ``paper_scale`` attribute is the paper-scale normalisation taken from the
    *training* trajectories, which the sample does not hold. Returns the sampled frame indices.
    """
    import numpy as np

    from ..evaluate import paper_scale
    from ..store import Store, writing
    from ..timespec import TABLE3_HORIZONS

    source = store if isinstance(store, Store) else Store.open(store)
    traj = source.trajectory(trajectory)
    keep = np.zeros(traj.n_frames, bool)
    keep[:observe] = True
    keep[observe::stride] = True
    for a, b in TABLE3_HORIZONS:
        keep[observe + a:observe + b] = True
    frames = np.flatnonzero(keep)
    twins = [t for t in source if t.attrs.get("twin_of") == trajectory]
    train = [source.trajectory(n) for n in (source.split or {}).get("train", [])]
    centred = not traj.has_box
    scale = paper_scale(train or [traj], (0, observe), centred, "training trajectories" if train
                        else f"trajectory {trajectory}")
    attrs = {**{k: v for k, v in source.attrs.items() if k == "dataset"},
             "paper_scale": scale, "sample": {"of": str(source.path), "trajectory": trajectory, "observe": observe,
                                              "stride": stride, "windows": [list(w) for w in TABLE3_HORIZONS]}}
    with writing(output, topology=source.topology, attrs=attrs) as out:
        for t, first in [(traj, 0)] + [(twin, int(twin.attrs.get("first_frame", 0))) for twin in twins]:
            local = frames[frames >= first] - first
            local = local[local < t.n_frames]
            with out.add_trajectory(t.name, velocities=False, box=None if not t.has_box else t.boxes(0, 1).shape[1:],
                                    attrs=t.attrs, frame_index=True) as writer:
                writer.append(t.positions()[local], t.times()[local], t.steps()[local],
                              boxes=None if not t.has_box else t.boxes()[local], frames=local.astype(np.float64))
        out.set_split([], [trajectory])
    return frames.tolist()
