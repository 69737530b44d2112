"""Model files: ``model.safetensors`` (weights) + ``model.json`` (everything else); reading and writing only.

``model.json`` holds ``format`` (``"mdforecast-model"``), ``format_version``, the mdforecast version, the
model name (``domino``, or ``lgode`` for one level), the full model config (``kind_field``: which topology
field names the atom kinds), the normalisation, the atom-kind vocabulary, ``dt_ps`` (the time between the frames
the model was trained on, ps; ``null`` when the training data did not record it), the training options, the
data fingerprint, the history, and the sha256 of the weights file. Loading reads JSON and safetensors only:
nothing is ever unpickled. The resumable training state (weights + AdamW moments) is a second pair,
``state.safetensors`` + ``state.json``. The forecaster built on a model file is
:class:`mdforecast.forecasters.DominoForecaster`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .version import __version__
from .errors import FormatVersionError, InputError
from .model import Domino, DominoConfig, Normalisation
from .provenance import sha256

__all__ = ["FORMAT_VERSION", "LEGACY_KINDS", "model_name", "save_model", "read_meta", "load_model", "save_state", "read_state", "load_state"]

#: version of the model file layout; a reader refuses files with a larger number
FORMAT_VERSION = 1
_FORMAT = "mdforecast-model"
#: the kind field of model files written before ``config.kind_field`` existed (the first field every topology had)
LEGACY_KINDS = "types"


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def model_name(model: Domino) -> str:
    """``lgode`` for one level, else ``domino``."""
    return "lgode" if model.config.levels == 1 else "domino"


def save_model(run_dir: str | os.PathLike, model: Domino, *, dt_ps: float | None, training: dict, data: dict,
               history: list[dict], stem: str = "model") -> Path:
    """Write ``STEM.safetensors`` and ``STEM.json`` into ``run_dir`` (weights first, each file atomically);
    ``dt_ps``: the frame time of the training trajectories, ps (``None``: unknown)."""
    run_dir = Path(run_dir)
    weights = run_dir / f"{stem}.safetensors"
    _write_tensors(weights, model.state_dict())
    meta = {"format": _FORMAT, "format_version": FORMAT_VERSION, "mdforecast_version": __version__,
            "name": model_name(model), "config": model.config.to_dict(), "normalisation": model.norm.to_dict(),
            "kinds": list(model.kinds), "dt_ps": dt_ps, "training": training, "data": data, "history": history,
            "weights": weights.name, "weights_sha256": sha256(weights)}
    path = run_dir / f"{stem}.json"
    _write_json(path, meta)
    return path


def _meta_path(path: Path) -> Path:
    if path.is_dir():
        path = path / "model.json"
    elif path.suffix == ".safetensors":
        path = path.with_suffix(".json")
    if not path.exists():
        raise InputError(f"no model at {path}; pass a run directory written by `mdforecast train`, its model.json, "
                         "or a name from `mdforecast models list`")
    return path


def read_meta(path: str | os.PathLike) -> tuple[dict, Path]:
    """The checked JSON of a model (run directory, ``.json`` or ``.safetensors`` path) and its path."""
    path = _meta_path(Path(path))
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is not an mdforecast model file ({err}); pass a run directory from `mdforecast train`") from err
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise InputError(f"{path} is not an mdforecast model file; pass a run directory from `mdforecast train`")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise FormatVersionError(f"{path} has model format version {version!r}; this mdforecast ({__version__}) "
                                 f"reads version {FORMAT_VERSION}: pip install -U mdforecast, or retrain")
    return meta, path


def load_model(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> tuple[Domino, dict, Path]:
    """The :class:`Domino` network of a model file, its metadata and the weights path; the weights must match
    the SHA-256 that ``model.json`` records."""
    meta, json_path = read_meta(path)
    name = meta.get("weights", "model.safetensors")
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise InputError(f"{json_path} names weights {name!r} outside its directory; a model's weights lie beside "
                         "its model.json: restore the run directory or retrain")
    weights = json_path.with_name(name)
    recorded = meta.get("weights_sha256")
    if recorded is not None and weights.is_file() and sha256(weights) != recorded:
        raise InputError(f"{weights} does not match the SHA-256 recorded in {json_path.name}: the weights were "
                         "changed or damaged; restore the run directory or retrain")
    try:
        config = DominoConfig.from_dict({"kind_field": LEGACY_KINDS, **meta["config"]})
        model = Domino(config, Normalisation.from_dict(meta["normalisation"]), meta["kinds"])
        state = load_file(str(weights), device=str(map_location))
        model.load_state_dict(state)
    except (KeyError, TypeError, SafetensorError, FileNotFoundError, RuntimeError) as err:
        raise InputError(f"model {json_path} is incomplete or corrupt ({type(err).__name__}: {err}); retrain it") from err
    return model.to(map_location), meta, weights


def save_state(run_dir: str | os.PathLike, model: Domino, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """The resumable training state: weights and AdamW moments as safetensors, the rest as JSON."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    run_dir = Path(run_dir)
    _write_tensors(run_dir / "state.safetensors", tensors)
    _write_json(run_dir / "state.json", {"format": "mdforecast-train-state", "format_version": FORMAT_VERSION,
                                        "param_groups": opt["param_groups"], **state})


def read_state(run_dir: str | os.PathLike) -> dict:
    """The checked JSON part of the training state in ``run_dir`` (``state.json``)."""
    path = Path(run_dir) / "state.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is unreadable or corrupt ({type(err).__name__}); the run cannot be resumed: "
                         "start a new run with another -o") from err
    version = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(version, int) or meta.get("format") != "mdforecast-train-state" or \
            not {"model_options", "train_options", "param_groups", "epoch"} <= set(meta):
        raise InputError(f"{path} is not an mdforecast training state; the run cannot be resumed: start a new run "
                         "with another -o")
    if version > FORMAT_VERSION:
        raise FormatVersionError(f"{path} is from a newer mdforecast; upgrade to resume it")
    return meta


def load_state(run_dir: str | os.PathLike, model: Domino, optimizer: torch.optim.Optimizer) -> dict:
    """Restore :func:`save_state` into ``model`` and ``optimizer``; returns the JSON part."""
    run_dir = Path(run_dir)
    meta = read_state(run_dir)
    try:
        tensors = load_file(str(run_dir / "state.safetensors"), device=str(next(model.parameters()).device))
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        slots: dict[int, dict] = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                slots.setdefault(int(index), {})[name] = value
        optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    except (SafetensorError, OSError, RuntimeError, KeyError, ValueError, TypeError) as err:
        raise InputError(f"{run_dir / 'state.safetensors'} is missing or corrupt ({type(err).__name__}); the run "
                         "cannot be resumed: start a new run with another -o") from err
    return meta
