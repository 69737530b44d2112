"""Model files: ``model.safetensors`` (weights) + ``model.json`` (everything else), and the forecaster.

``model.json`` holds ``format`` (``"mdforecast-model"``), ``format_version``, the mdforecast version, the
model name (``domino``, or ``lgode`` for one level), the full model config, the normalisation, the
atom-kind vocabulary, the training options, the data fingerprint, the history, and the sha256 of the
weights file. Loading reads JSON and safetensors only: nothing is ever unpickled. The resumable training
state (weights + AdamW moments) is a second pair, ``state.safetensors`` + ``state.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .errors import FormatVersionError, InputError
from .forecaster import Forecaster, Observation
from .provenance import sha256
from .model import Domino, DominoConfig, Normalisation, Window, atom_kinds, input_vectors
from .model.features import last_box

__all__ = ["FORMAT_VERSION", "DominoForecaster", "save_model", "load_model", "load", "save_state", "load_state"]

#: version of the model file layout; a reader refuses files with a larger number
FORMAT_VERSION = 1
_FORMAT = "mdforecast-model"
_CHUNK = 32  # finest-level segments decoded per forward pass in predict()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def model_name(model: Domino) -> str:
    return "lgode" if model.config.levels == 1 else "domino"


def save_model(run_dir: str | os.PathLike, model: Domino, *, training: dict, data: dict, history: list[dict],
               stem: str = "model") -> Path:
    """Write ``STEM.safetensors`` and ``STEM.json`` into ``run_dir`` (weights first, each file atomically)."""
    run_dir = Path(run_dir)
    weights = run_dir / f"{stem}.safetensors"
    _write_tensors(weights, model.state_dict())
    meta = {"format": _FORMAT, "format_version": FORMAT_VERSION, "mdforecast_version": __version__,
            "name": model_name(model), "config": model.config.to_dict(), "normalisation": model.norm.to_dict(),
            "kinds": list(model.kinds), "training": training, "data": data, "history": history,
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
    """The :class:`Domino` network of a model file, its metadata and the weights path."""
    meta, json_path = read_meta(path)
    weights = json_path.with_name(meta["weights"])
    try:
        config = DominoConfig.from_dict({**meta["config"], "strides": tuple(meta["config"]["strides"]),
                                         "lags": tuple(meta["config"]["lags"])})
        model = Domino(config, Normalisation.from_dict(meta["normalisation"]), meta["kinds"])
        state = load_file(str(weights), device=str(map_location))
        model.load_state_dict(state)
    except (KeyError, TypeError, SafetensorError, FileNotFoundError, RuntimeError) as err:
        raise InputError(f"model {json_path} is incomplete or corrupt ({type(err).__name__}: {err}); retrain it") from err
    return model.to(map_location), meta, weights


def load(path: str | os.PathLike, *, device: str | torch.device = "cpu", depth: int | None = None) -> "DominoForecaster":
    """A :class:`DominoForecaster` from a run directory, ``model.json`` or ``model.safetensors``, on ``device``
    (``cpu``, ``cuda`` or ``auto``), decoding from levels 0..``depth`` (default: all)."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device} requested but no CUDA GPU is visible to torch; use cpu")
    model, meta, weights = load_model(path, map_location=device)
    return DominoForecaster(model, meta=meta, path=weights, depth=depth)


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


def load_state(run_dir: str | os.PathLike, model: Domino, optimizer: torch.optim.Optimizer) -> dict:
    """Restore :func:`save_state` into ``model`` and ``optimizer``; returns the JSON part."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "state.json").read_text())
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise FormatVersionError(f"{run_dir}/state.json is from a newer mdforecast; upgrade to resume it")
    tensors = load_file(str(run_dir / "state.safetensors"), device=str(next(model.parameters()).device))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    return meta


class DominoForecaster(Forecaster):
    """A trained DoMiNO (or LG-ODE) model behind the :class:`~mdforecast.forecaster.Forecaster` contract.

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
        self._sha256 = None if path is None else sha256(path)
        self.name = model_name(model)
        self.observe, self.horizon = model.config.observe, model.config.horizon
        self._rollouts: list[tuple[Observation, Observation]] = []  # (observation, next leg's), newest last

    def check(self, topology) -> None:
        """:class:`InputError` when ``topology`` has atom kinds the model was not trained on."""
        self.model.kind_index(atom_kinds(topology))

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
        """Positions at ``times`` within one horizon of ``observation`` (``end ≤ times ≤ end + H − 1``)."""
        config, model = self.model.config, self.model
        t = times - (observation.end - 1)
        param = next(model.parameters())
        kinds = model.kind_index(atom_kinds(observation.topology)).to(param.device)
        observed = observation.positions[-config.observe:]
        box = last_box(observation.boxes)
        as_tensor = lambda x: torch.as_tensor(np.asarray(x)[None], dtype=param.dtype, device=param.device)  # noqa: E731
        window = Window(kinds, as_tensor(observed[-1]), as_tensor(input_vectors(observed, config.lags, config.context)),
                        None if box is None else as_tensor(box))
        out = np.empty((len(t), observation.positions.shape[1], 3), dtype=np.float32)
        depth = self.depth
        finest = model.hierarchy.segment_of(depth, t)
        unique = np.unique(finest)
        with torch.no_grad():
            for start in range(0, len(unique), _CHUNK):
                sel = np.isin(finest, unique[start:start + _CHUNK])
                positions, _ = model(window, np.zeros(sel.sum(), np.int64), t[sel], np.full(sel.sum(), depth))
                out[sel] = positions.float().cpu().numpy()
        return out

    def describe(self) -> dict:
        return {"name": self.name, "checkpoint": None if self.path is None else str(self.path),
                "sha256": self._sha256, "config": self.model.config.to_dict(),
                "normalisation": self.model.norm.to_dict(), "kinds": list(self.model.kinds),
                "data": self.meta.get("data"), "depth": self.depth}
