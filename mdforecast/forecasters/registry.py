"""Names → forecasters: the baselines, the pretrained models shipped with the package, and model files.

:func:`load_forecaster` is the one place a ``--model`` / ``--baselines`` name becomes a
:class:`~mdforecast.forecasters.Forecaster`; :func:`provenance` is what a forecast records of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .. import protocol
from ..errors import InputError
from ..provenance import sha256, sha256_files
from ..store import Trajectory
from .base import Forecaster
from .baselines import BASELINES

__all__ = ["load_forecaster", "load_pretrained", "default_observe", "provenance"]


def load_forecaster(spec: str | Forecaster, *, train_trajectories: Sequence[Trajectory] = (),
                    observe: int = protocol.OBSERVE, device: str | None = None) -> Forecaster:
    """The forecaster ``spec`` names: a baseline of :data:`~mdforecast.forecasters.BASELINES` (fitted on frames
    [0, ``observe``) of ``train_trajectories`` when it learns something), a pretrained model of
    :data:`~mdforecast.pretrained.PRETRAINED` (a name wins over a same-named path: give that as ``./NAME``) or
    a run directory / model file (:func:`mdforecast.forecasters.domino.load`, on ``device`` when given).
    A Forecaster passes through."""
    from ..pretrained import PRETRAINED

    if isinstance(spec, Forecaster):
        return spec
    if spec in BASELINES:
        return BASELINES[spec]().fit(list(train_trajectories), observe=observe)
    if spec in PRETRAINED:
        return load_pretrained(spec, device=device or "cpu")
    path = Path(spec)
    if not path.exists():
        raise InputError(f"unknown model {spec!r}; choose from {', '.join(BASELINES)} (baselines), "
                         f"{', '.join(PRETRAINED) or 'none shipped yet'} (pretrained), or give a run directory or "
                         "model file")
    from . import domino

    return domino.load(path) if device is None else domino.load(path, device=device)


def load_pretrained(name: str, *, device: str = "cpu") -> Forecaster:
    """The :class:`~mdforecast.forecasters.DominoForecaster` of pretrained model ``name`` on ``device`` (a
    truncated or Git-LFS-pointer weights file is refused with a one-line :class:`InputError`)."""
    from .. import checkpoint
    from ..pretrained import directory
    from . import domino

    folder = directory(name)
    meta, json_path = checkpoint.read_meta(folder)
    weights = json_path.with_name(meta.get("weights", "model.safetensors"))
    if not weights.is_file() or sha256(weights) != meta.get("weights_sha256"):
        raise InputError(f"pretrained model {name}: {weights.name} is missing or does not match the SHA-256 in "
                         "model.json; reinstall mdforecast")
    return domino.load(folder, device=device)


def default_observe(forecaster: Forecaster | None, n_frames: int) -> int:
    """Observed frames when ``--observe`` is not given: the model's own number; for baselines (which take any)
    the protocol's :data:`~mdforecast.protocol.OBSERVE`, capped at a fifth of a shorter trajectory (at least 2,
    for the velocity baselines), the protocol's observe/predict ratio."""
    if forecaster is not None and forecaster.observe is not None:
        return forecaster.observe
    return min(protocol.OBSERVE, max(2, n_frames // 5))


def _files_hash(path: Path) -> str:
    """SHA-256 of a model file, or of a run directory's top-level ``*.safetensors`` and ``*.json`` files
    (not the resumable training state ``state.*``, which changes without changing the model)."""
    if path.is_file():
        return sha256_files([path], path.parent)
    return sha256_files(sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".json") and p.stem != "state"),
                        path)


def provenance(forecaster: Forecaster, spec: str | Forecaster) -> dict:
    """What a forecast records of its forecaster: ``describe()``, plus for a model file or pretrained name its
    resolved path, the hash of its files and the pretrained name."""
    from ..pretrained import PRETRAINED

    described = forecaster.describe()
    if not isinstance(spec, Forecaster) and spec not in BASELINES:
        path = PRETRAINED.get(spec, Path(spec))
        described = {"checkpoint": str(path.resolve()), **described, "checkpoint_sha256": _files_hash(path),
                     **({"pretrained": spec} if spec in PRETRAINED else {})}
    return described
