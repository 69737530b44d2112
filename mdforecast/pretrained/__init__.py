"""Pretrained models shipped inside the package (docs/pretrained.md).

Each one is a directory ``mdforecast/pretrained/NAME/`` holding a trained model as ``mdforecast train``
writes it (``model.json`` + ``model.safetensors``, docs/model.md) and its model card ``card.json`` (the
protocol and every reduction from it, data seeds and fingerprint, config, hardware, training time, test
scores), as ``benchmarks/pretrain.py`` produces them, and ``truth.zarr``: a sample of one test trajectory
(:func:`~mdforecast.pretrained.sample.embed_truth`) that lets ``mdforecast predict --model NAME`` and ``mdforecast evaluate`` run with no
other input. :data:`PRETRAINED` (name → directory) is discovered from the package's directories at import and
is the single source of the names that ``--model NAME`` and ``mdforecast models`` accept.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..errors import InputError

__all__ = ["PRETRAINED", "ROOT", "DEFAULT", "HOW_TO_PRODUCE", "discover", "directory", "model_info", "list_models",
           "ModelList", "embedded_truth"]

#: the package directory that holds one sub-directory per pretrained model
ROOT = Path(__file__).resolve().parent
#: the model ``mdforecast predict`` uses when given neither a model nor a store
DEFAULT = "lj"
#: what to tell a user when the model they want is not shipped
HOW_TO_PRODUCE = ("produce one with `python benchmarks/pretrain.py lj --scale protocol --device cuda` "
                  "(docs/pretrained.md), or train your own with `mdforecast train`")


def discover(root: Path = ROOT) -> dict[str, Path]:
    """name → directory for every sub-directory of ``root`` holding ``model.json`` and ``card.json``."""
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and (p / "model.json").is_file() and (p / "card.json").is_file()}


#: name → directory of every shipped pretrained model (``--model NAME``, ``mdforecast models``)
PRETRAINED: dict[str, Path] = discover()


def directory(name: str) -> Path:
    """The package directory of pretrained model ``name``; :class:`InputError` naming the shipped ones."""
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


def model_info(name: str) -> dict:
    """Everything known about pretrained model ``name`` without loading its weights: ``name``, ``path`` (where
    it is installed), the model (architecture name, config, atom kinds, frame time ``dt_ps`` in ps, weights'
    SHA-256, training data) and the model ``card``. The training store is named by its file name only: the
    path it had on the machine that trained the model means nothing here."""
    folder = directory(name)
    meta = _read(folder / "model.json")
    card = _read(folder / "card.json")
    model = {k: meta.get(k) for k in ("name", "config", "kinds", "dt_ps", "weights_sha256", "data",
                                      "mdforecast_version")}
    for data in (model["data"], (card.get("data") or {}).get("fingerprint")):
        if isinstance(data, dict) and isinstance(data.get("store"), str):
            data["store"] = Path(data["store"]).name
    return {"name": name, "path": str(folder), "model": model, "card": card}


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
    path = directory(name) / "truth.zarr"
    return str(path) if path.is_dir() else None
