"""``mdforecast train``: fit DoMiNO (or LG-ODE with one level) on a store's training trajectories.

Training data are the store's ``train`` trajectories (all trajectories when the store has no split), never
twins (``twin_of``); the last ``holdout`` of them are held out for model selection (the best validation
epoch is the model written to RUN_DIR). With a single trajectory, selection falls back to the training
loss (said in the history). A model with a dynamics level fits its fusion by lead time
(:func:`~mdforecast.fitting.fit_fusion`) on trajectories it was not fitted on: those of a ``fusion_data`` store
(``--fusion-data``, every trajectory but twins), else the held-out ones; with neither (``holdout`` 0 or one
trajectory) on the training trajectories, which overrates the sources far out (said in the log and in
``model.json``'s ``training.fusion``). Windows are cut at random ends; each sample trains on ``segments`` random
finest-level segments and their coarser segments, with the per-level MSE (in units of the displacement
scale σ(t) at each output's lead time) weighted by ``level_weights``.

RUN_DIR gets ``model.safetensors`` + ``model.json`` (the selected model), ``state.safetensors`` +
``state.json`` (the last epoch, for ``--resume``), ``metrics.jsonl`` and ``loss.png``. All randomness is
derived from ``(seed, epoch, sample)``, so a resumed run ends where an uninterrupted one ends, and DDP
processes (``torchrun``) split every batch between them and average gradients; rank 0 writes.

The model records the frame time of its training trajectories (``dt_ps``), which must agree: lead times
are counted in frames, so a model only forecasts trajectories saved at that frame time.

:func:`train` takes typed options (:class:`~mdforecast.model.DominoConfig`, :class:`TrainOptions`);
:func:`resolve_options` makes them from option names and values (command-line flags, a config file, a preset).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .checkpoint import LEGACY_KINDS, load_model, load_state, read_state, save_model, save_state
from .errors import InputError
from .conformation import fit_conformation_fusion
from .fitting import fit_dynamics, fit_fusion
from .model import Domino, DominoConfig, atom_kinds
from .model.data import Series, draw_samples, make_batch, normalisation
from .mdio import select_indices
from .molecules import RigidGroups, bonds, rigid_waters
from .model.features import resolve_kind_field
from .model.superpose import kabsch_msd
from .pbc import box_matrix
from .plots import plot_loss
from .presets import PRESETS
from .progress import progress_bar
from .store import Store

__all__ = ["TrainOptions", "TrainResult", "PRESETS", "DEVICES", "resolve_options", "model_config", "fitting_strides",
           "fitting_lags", "train"]

#: ``--device`` choices
DEVICES = {"auto": None, "cpu": "cpu", "cuda": "cuda"}
_DEFAULT_WEIGHTS = (0.1, 0.2, 0.7)
_LOG_STEPS = 10  # optimiser steps between progress lines when stderr is a file or a pipe
#: model options a fine-tuning run (``--init``) may change: the time layout, not the weights' shapes
_LAYOUT = {"observe", "horizon", "strides", "levels"}
#: model options resolved from the data when training begins (``None`` until then)
_RESOLVED = ("kind_field", "loss", "conformations")
#: model options of the dynamics level, which a fine-tuning run may add to a model without one
_DYNAMICS = {"dynamics", "force_cutoff", "force_radial", "force_layers", "substeps", "members", "spread", "ar_lags",
             "fusion_bins", "rigid_water", "rollout_at_rest", "separate_molecules", "fit_velocity"}


#: the largest value of each count of :class:`TrainOptions` (samples are drawn and batched in memory)
_COUNT_LIMITS = {"epochs": 10**6, "batch": 4096, "samples_per_epoch": 10**7, "segments": 1000, "max_outputs": 10**4,
                 "val_samples": 10**5, "pair_frames": 10**7, "force_steps": 10**7, "rollout_steps": 10**7,
                 "rollout_frames": 10**4, "fusion_windows": 10**5, "max_rollout": 10**6}
#: counts that may be zero (epochs 0: only a dynamics level is fitted)
_MAY_BE_ZERO = {"epochs", "force_steps", "rollout_steps"}


@dataclasses.dataclass(frozen=True)
class TrainOptions:
    """Optimisation options (the model's are :class:`~mdforecast.model.DominoConfig`).

    Args:
        epochs, batch (windows per step, all processes together), lr, weight_decay, clip (gradient norm).
        samples_per_epoch: windows drawn per epoch. segments: finest-level segments per window.
        max_outputs: output times scored per segment. level_weights: loss weight per level (default
            0.1, 0.2, 0.7 for 3 levels; the last L of them, normalised, for fewer; ∝ level + 1 for more).
        kl_weight: weight of the VAE's KL term. holdout: training trajectories held out for selection.
        partial: also draw windows whose horizon runs past the trajectory's end, scored where the data
            are (:mod:`mdforecast.model.data`); without it a trajectory of observe + horizon frames is one window.
        lead_sampling: ``uniform`` (the paper) draws finest segments and scored output times uniformly over
            the horizon; ``log`` draws them with probability ∝ 1/lead time, so the early horizon, where a
            forecaster can beat persistence in a liquid, is trained as often as the far one.
        val_samples: validation windows (fixed for the run).
        seed: seeds everything.
        pair_frames, force_steps, rollout_steps, rollout_frames, dynamics_lr, fusion_windows, max_rollout: the
            dynamics level's fit (:mod:`mdforecast.fitting`): frames of the closed-form pair term, teacher-forced
            one-frame steps, backpropagated rollouts of ``rollout_frames`` frames (``batch`` windows each), their
            learning rate, windows of the fusion fit (of the ``fusion_data`` or held-out trajectories) and the
            longest rollout it considers (frames).
            Models without a dynamics level ignore them; with one, ``epochs`` may be 0 (hierarchy not trained).
    """

    epochs: int = 50
    batch: int = 8
    lr: float = 5e-4
    weight_decay: float = 1e-3
    clip: float = 10.0
    samples_per_epoch: int = 256
    segments: int = 5
    max_outputs: int = 20
    level_weights: tuple[float, ...] | None = None
    kl_weight: float = 1e-3
    holdout: int = 1
    partial: bool = True
    lead_sampling: str = "uniform"
    val_samples: int = 16
    seed: int = 0
    pair_frames: int = 300
    force_steps: int = 200
    rollout_steps: int = 40
    rollout_frames: int = 20
    dynamics_lr: float = 1e-3
    fusion_windows: int = 8
    max_rollout: int = 200

    def __post_init__(self) -> None:
        counts = {k: getattr(self, k) for k in _COUNT_LIMITS}
        bad = [k for k, v in counts.items() if not isinstance(v, int) or v < (0 if k in _MAY_BE_ZERO else 1)]
        big = [f"{k} ≤ {_COUNT_LIMITS[k]:,}" for k, v in counts.items() if k not in bad and v > _COUNT_LIMITS[k]]
        if big:
            raise InputError(f"training options too large (they bound memory and time): {', '.join(big)}; got {counts}")
        if self.lead_sampling not in ("uniform", "log"):
            raise InputError(f"lead_sampling must be 'uniform' or 'log', got {self.lead_sampling!r}")
        if bad or self.lr <= 0 or self.clip <= 0 or self.holdout < 0:
            raise InputError(f"training options {bad or ['lr', 'clip', 'holdout']} must be positive "
                             f"(got {counts}, lr={self.lr}, clip={self.clip}, holdout={self.holdout})")

    def weights(self, levels: int) -> np.ndarray:
        if self.level_weights is not None:
            w = np.asarray(self.level_weights, dtype=np.float64)
            if len(w) != levels or (w < 0).any() or w.sum() <= 0:
                raise InputError(f"level_weights {list(w)} must be {levels} non-negative numbers, not all zero")
        else:
            w = np.asarray(_DEFAULT_WEIGHTS[-levels:] if levels <= 3 else np.arange(1, levels + 1), dtype=np.float64)
        return w / w.sum()


@dataclasses.dataclass(frozen=True)
class TrainResult:
    run_dir: str
    name: str
    epochs: int
    best_epoch: int
    best_loss: float
    selected_on: str
    samples_per_s: float
    history: list[dict]

    def summary(self) -> str:
        return (f"trained {self.name} for {self.epochs} epochs → {self.run_dir} (best epoch {self.best_epoch}, "
                f"{self.selected_on} loss {self.best_loss:.4g}, {self.samples_per_s:.1f} samples/s)")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_options(options: Mapping | None = None, *, preset: str | None = None,
                    init: str | os.PathLike | None = None,
                    notes: list[str] | None = None) -> tuple[DominoConfig, TrainOptions]:
    """Typed options from option names and values (as the command line and config files give them).

    Args:
        options: model (:class:`~mdforecast.model.DominoConfig` fields, plus ``levels``: the last L of the
            default strides) and training (:class:`TrainOptions`) options by name; one-line error for others.
        preset: a :data:`PRESETS` key whose options lie under ``options`` (none: the defaults, which are the
            ``paper`` preset's but for a molecule without a box, trained and decoded as a conformation).
        init: a model to fine-tune (a pretrained name, run directory or model file): the model options come
            from it, and only its time layout
            (``observe``, ``horizon``, ``strides``, ``levels``) may be given.
        notes: a list that gets one line per default changed to fit (strides or lags chosen to fit a short
            horizon or observation; :func:`model_config`).
    """
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    options = dict(options or {})
    model_keys = {f.name for f in dataclasses.fields(DominoConfig)} | {"levels"}
    train_keys = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise InputError(f"unknown options {sorted(unknown)}; known: {sorted(model_keys | train_keys)}")
    merged = {**(PRESETS[preset] if preset else {}), **options}
    train_opts = {k: v for k, v in merged.items() if k in train_keys}
    if train_opts.get("level_weights") is not None:
        train_opts["level_weights"] = tuple(train_opts["level_weights"])
    try:
        opts = TrainOptions(**train_opts)
    except TypeError as err:
        raise InputError(f"invalid training option: {err}") from err
    if init is None:
        return model_config({k: v for k, v in merged.items() if k in model_keys}, notes), opts
    given = {k for k in options if k in model_keys}
    if given - _LAYOUT - _DYNAMICS:
        raise InputError(f"with --init the architecture comes from the checkpoint; drop {sorted(given - _LAYOUT - _DYNAMICS)} "
                         f"(only {sorted(_LAYOUT)} and the dynamics level's options may change)")
    base = _initial_model(init)
    added = {k: merged[k] for k in merged if k in _DYNAMICS}  # a preset may add the dynamics level
    config = model_config({**base.config.to_dict(), **added, **{k: options[k] for k in given}})
    if config.levels != base.config.levels:
        raise InputError(f"--init model has {base.config.levels} levels; fine-tune with the same number")
    return config, opts


def model_config(options: dict, notes: list[str] | None = None) -> DominoConfig:
    """A :class:`DominoConfig` from options; ``levels`` alone picks the last L of the default strides.

    When ``strides`` (or ``lags``) are not given and the defaults do not fit ``horizon`` (or ``observe``),
    ones that fit are chosen (:func:`fitting_strides`, :func:`fitting_lags`) and a line saying which is
    appended to ``notes``."""
    options = dict(options)
    levels = options.pop("levels", None)
    strides = options.get("strides")
    observe = options.get("observe", DominoConfig.observe)
    horizon = options.get("horizon", DominoConfig.horizon)
    if levels is not None and strides is not None and len(strides) != levels:
        raise InputError(f"--levels {levels} but {len(strides)} --strides {list(strides)}; give one stride per level")
    if strides is None:
        levels = len(DominoConfig.strides) if levels is None else levels
        if levels < 1:
            raise InputError(f"--levels must be at least 1, got {levels}")
        default = DominoConfig.strides[-levels:] if levels <= len(DominoConfig.strides) else None
        if default is not None and _fits(horizon, default):
            options["strides"] = default
        else:
            options["strides"] = fitting_strides(horizon, levels)
            _note(notes, f"--strides {','.join(map(str, options['strides']))} chosen to fit --horizon {horizon} with "
                         f"{levels} level(s); give --strides to choose others")
    if "lags" not in options and max(DominoConfig.lags) >= observe > 1:
        options["lags"] = fitting_lags(observe)
        _note(notes, f"--lags {','.join(map(str, options['lags']))} chosen to fit --observe {observe} (the default "
                     f"{','.join(map(str, DominoConfig.lags))} looks back further); give --lags to choose others")
    try:
        return DominoConfig(**options)
    except TypeError as err:
        raise InputError(f"invalid model option: {err}") from err


def _note(notes: list[str] | None, text: str) -> None:
    if notes is not None:
        notes.append(text)


def _fits(horizon: int, strides: tuple[int, ...]) -> bool:
    spans = (horizon, *strides[:-1])
    return all(span % stride == 0 for span, stride in zip(spans, strides))


def fitting_strides(horizon: int, levels: int) -> tuple[int, ...]:
    """Strides (frames, coarse → fine, the finest 1) of ``levels`` levels that tile ``horizon`` frames: each
    level's stride a divisor of the one before (the first of ``horizon``), chosen so every level has about
    the same number of outputs per segment, ``horizon^(1/levels)`` (the default 400, 20, 1 over 8000 has 20)."""
    if horizon < 1 or levels < 1:
        raise InputError(f"--horizon ({horizon}) and --levels ({levels}) must be positive")
    strides, span = [], horizon
    for remaining in range(levels, 1, -1):
        target = span ** ((remaining - 1) / remaining)
        divisors = [d for d in range(1, span + 1) if span % d == 0]
        span = min(divisors, key=lambda d: (abs(np.log(d / target)), -d))
        strides.append(span)
    return (*strides, 1)


def fitting_lags(observe: int) -> tuple[int, ...]:
    """Look-back lags (frames) for ``observe`` observed frames: the default ones, each capped at ``observe − 1``."""
    return tuple(sorted({min(lag, observe - 1) for lag in DominoConfig.lags}))


def _initial_model(init: str | os.PathLike) -> Domino:
    """The model to fine-tune: a pretrained name (``mdforecast models list``), a run directory or a model file."""
    from .pretrained import PRETRAINED

    return load_model(PRETRAINED.get(str(init), init))[0]


def _device(name: str) -> torch.device:
    if name not in DEVICES:
        raise InputError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda but no CUDA GPU is visible to torch; use --device cpu or auto")
    if DEVICES[name] is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def _same_frame_time(a: float | None, b: float | None) -> bool:
    """Whether frames ``a`` and ``b`` ps apart are one frame time (within a relative 1e-4; ``None``, no time
    recorded, agrees only with ``None``): lead times are counted in frames, so trajectories must share it."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-4)


def _load_series(store: Store, config: DominoConfig, split: bool = True) -> tuple[list[Series], dict, float | None]:
    """The training trajectories (``split`` False: every trajectory) as :class:`Series`, their fingerprint, and
    their common frame time (ps); twins (``twin_of``) are never among them."""
    names = store.split["train"] if store.split and split else store.trajectory_names
    names = [n for n in names if not store.trajectory(n).attrs.get("twin_of")]
    if not names:
        raise InputError(f"store {store.path} has no training trajectories; ingest some or fix its split")
    need = config.observe + config.horizon
    series, fingerprint, times = [], {}, {}
    for name in names:
        traj = store.trajectory(name)
        if traj.n_frames < need:
            raise InputError(f"trajectory {name!r} has {traj.n_frames} frames but --observe {config.observe} + "
                             f"--horizon {config.horizon} needs {need}; lower them or use longer trajectories")
        positions, boxes = traj.positions(), traj.boxes()
        bad = ~np.isfinite(positions).all(axis=(1, 2))
        if boxes is not None:
            bad |= ~np.isfinite(boxes.reshape(len(boxes), -1)).all(axis=1)
        if bad.any():
            raise InputError(f"trajectory {name!r} of {store.path} has NaN or infinite positions or boxes (first at "
                             f"frame {int(np.flatnonzero(bad)[0])}); a model trained on them is NaN: repair or "
                             "re-ingest the trajectory, or leave it out of the split")
        series.append(Series(name, positions, None if boxes is None else box_matrix(boxes)))
        fingerprint[name] = {"frames": traj.n_frames, "sha256": traj.attrs.get("sha256"),
                             # the stored data's own checksum; absent from stores written before it (and then left
                             # out, so that their fingerprints stay what they were)
                             **({"positions_sha256": traj.attrs["positions_sha256"]}
                                if traj.attrs.get("positions_sha256") else {})}
        times[name] = traj.dt_ps
    dt_ps = times[names[0]]
    if not all(_same_frame_time(t, dt_ps) for t in times.values()):
        listed = ", ".join(f"{n} {'?' if t is None else f'{t:g}'}" for n, t in times.items())
        raise InputError(f"the training trajectories are saved at different frame times (ps: {listed}); a model "
                         "counts lead times in frames, so train on trajectories of one frame time")
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    return series, {"store": str(store.path), "trajectories": fingerprint, "sha256": digest}, dt_ps


def _differences(given, saved) -> list[str]:
    """Names of the dataclass fields where ``given`` and ``saved`` differ."""
    return [f.name for f in dataclasses.fields(given) if getattr(given, f.name) != getattr(saved, f.name)]


def _resolve(run_dir: Path, config: DominoConfig | None, options: TrainOptions | None, init, resume: bool
             ) -> tuple[DominoConfig, TrainOptions, str | None]:
    """The run's config, options and fine-tuning source: given, saved in ``run_dir`` (``resume``) or the
    checkpoint's architecture (``init``)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(f"-o {run_dir} is a file; a run is a directory: choose another -o")
    if not resume:
        if (run_dir / "state.json").exists() or (run_dir / "model.json").exists():
            raise InputError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another -o")
        if init is not None and config is not None:
            base = _initial_model(init).config
            changed = set(_differences(config, base)) - _LAYOUT - _DYNAMICS
            if changed:
                raise InputError(f"with --init the architecture comes from the checkpoint; drop {sorted(changed)} "
                                 f"(only {sorted(_LAYOUT)} and the dynamics level's options may change)")
        elif init is not None:
            config = _initial_model(init).config
        return config or DominoConfig(), options or TrainOptions(), None if init is None else str(init)
    if not (run_dir / "state.json").exists():
        raise InputError(f"nothing to resume in {run_dir} (no state.json); drop --resume to start a new run")
    saved = read_state(run_dir)
    try:
        saved_config = DominoConfig.from_dict({"kind_field": LEGACY_KINDS, **saved["model_options"]})
        saved_opts = {k: v for k, v in saved["train_options"].items() if k != "device"}  # runs before 0.2 saved it
        saved_options = TrainOptions(**{**saved_opts, "level_weights": None if saved_opts.get("level_weights") is None
                                        else tuple(saved_opts["level_weights"])})
    except (TypeError, AttributeError) as err:
        raise InputError(f"{run_dir}/state.json holds damaged options ({err}); the run cannot be resumed: start a "
                         "new run with another -o") from err
    if config is not None:  # options resolved from the data when the run began
        config = dataclasses.replace(config, **{k: getattr(saved_config, k) for k in _RESOLVED
                                                if getattr(config, k) is None})
    changed = (_differences(config, saved_config) if config is not None else []) + \
              (_differences(options, saved_options) if options is not None else [])
    if changed:
        raise InputError(f"--resume continues {run_dir} with its own options, but {', '.join(sorted(changed))} "
                         "differ; give the options of the interrupted run (or none), or start a new run with another -o")
    return saved_config, saved_options, saved.get("init")


@dataclasses.dataclass
class _Run:
    """Everything an epoch needs, set up once (:func:`_set_up`)."""

    run_dir: Path
    config: DominoConfig
    opts: TrainOptions
    model: Domino
    net: torch.nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    state: dict  # epoch, history, best; saved in state.json
    train_series: list[Series]
    val_series: list[Series]
    val_samples: list
    kinds: torch.Tensor
    weights: torch.Tensor
    device: torch.device
    world: int
    rank: int
    dt_ps: float | None
    training: dict  # recorded in model.json
    fingerprint: dict

    @property
    def steps(self) -> int:
        return -(-self.opts.samples_per_epoch // self.opts.batch)

    @property
    def batch_args(self) -> dict:
        return dict(segments=self.opts.segments, max_outputs=self.opts.max_outputs, device=self.device,
                    sampling=self.opts.lead_sampling)


def _molecule_options(config: DominoConfig, series: list[Series], topology) -> DominoConfig:
    """``loss`` and ``conformations`` resolved from the data where not given: without a periodic box the
    Kabsch loss, and the conformation decode when the topology has bonds (:class:`~mdforecast.model.DominoConfig`)."""
    boxed = series[0].boxes is not None
    bonded = len(bonds(topology)) > 0
    config = dataclasses.replace(
        config, loss=config.loss or ("mse" if boxed else "kabsch"),
        conformations=(not boxed and bonded and not config.dynamics) if config.conformations is None
        else config.conformations)
    if config.conformations and not bonded:
        raise InputError("conformations keeps bond lengths, but the store's topology has no bonds; ingest the "
                         "trajectories with a topology that has them, or train with conformations off")
    return config


def _set_up(store: Store, run_dir: Path, config: DominoConfig, opts: TrainOptions, init: str | None,
            resume: bool, device: str) -> _Run:
    """Devices and processes, data, model (new, or the ``init`` checkpoint's weights), optimiser and state."""
    import torch.distributed as dist

    device = _device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if opts.batch % world:
        raise InputError(f"--batch {opts.batch} must be a multiple of the {world} processes")
    torch.manual_seed(opts.seed)
    config = dataclasses.replace(config, kind_field=resolve_kind_field(store.topology, config.kind_field))
    series, fingerprint, dt_ps = _load_series(store, config)
    config = _molecule_options(config, series, store.topology)
    n_val = opts.holdout if len(series) > opts.holdout else 0
    train_series, val_series = series[:len(series) - n_val], series[len(series) - n_val:]
    if init is not None:
        base = _initial_model(init)
        model = Domino(config, base.norm, base.kinds)
        own = model.state_dict()  # a fusion fitted for another horizon is fitted again here, not kept
        kept = {k: v for k, v in base.state_dict().items()
                if not (k.startswith("lead_fusion.") and k in own and own[k].shape != v.shape)}
        missing, unexpected = model.load_state_dict(kept, strict=False)
        if unexpected or any(not k.startswith(("dynamics.", "lead_fusion.")) for k in missing):
            raise InputError(f"--init model {init} does not fit this architecture (missing {missing}, unexpected "
                             f"{unexpected}); fine-tune with its own options")
    else:
        kinds = sorted(set(atom_kinds(store.topology, config.kind_field).tolist()))
        model = Domino(config, normalisation(train_series, config), kinds)
    kinds = model.kind_index(store.topology)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    state = load_state(run_dir, model, optimizer) if resume else {"epoch": 0, "history": [], "best": None}
    training = {**dataclasses.asdict(opts), "device": device.type, "level_weights": list(opts.weights(config.levels)),
                "world_size": world, "selected_on": "validation" if val_series else "training", "init": init,
                "validation": [s.name for s in val_series]}
    val_samples = draw_samples(val_series or train_series, config, opts.val_samples, seed=(opts.seed, 2**31),
                               partial=opts.partial)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    return _Run(run_dir, config, opts, model, torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model,
                optimizer, state, train_series, val_series, val_samples, kinds,
                torch.as_tensor(opts.weights(config.levels), dtype=torch.float32, device=device), device, world, rank,
                dt_ps, training, fingerprint)


def _epoch(run: _Run, epoch: int, bar) -> dict:
    """Train one epoch and validate; returns its record for the history."""
    opts, config = run.opts, run.config
    samples = draw_samples(run.train_series, config, run.steps * opts.batch, seed=(opts.seed, epoch),
                           partial=opts.partial)
    run.net.train()
    losses, start = [], time.perf_counter()
    for step in range(run.steps):
        chunk = samples[step * opts.batch:(step + 1) * opts.batch][run.rank::run.world]
        batch = make_batch(run.train_series, chunk, config, run.kinds, **run.batch_args)
        noise = torch.Generator(device=run.device)  # VAE noise, reproducible on resume
        noise.manual_seed(int(np.random.SeedSequence([opts.seed, epoch, step, run.rank]).generate_state(1)[0]))
        loss = _loss(run.net, batch, run.weights, config.levels, len(chunk), opts.kl_weight, noise,
                     kabsch=config.loss == "kabsch")
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), opts.clip)
        run.optimizer.step()
        losses.append(loss.item())
        bar.advance(opts.batch)
    train_time = time.perf_counter() - start
    val = _validate(run.model, run.val_series or run.train_series, run.val_samples, config, run.kinds, run.weights,
                    opts.batch, run.batch_args)
    train_loss = float(np.mean(losses)) if run.world == 1 else _mean_over_ranks(np.mean(losses), run.device)
    return {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": float(val),
            "samples_per_s": run.steps * opts.batch / train_time, "lr": opts.lr, "time": time.time()}


def _save_epoch(run: _Run, record: dict, progress: bool) -> None:
    """Append ``record`` to the history; rank 0 writes the model when it improved, the state and the metrics."""
    state = run.state
    state["history"].append(record)
    state["epoch"] = record["epoch"]
    improved = state["best"] is None or record["val_loss"] < state["best"]["loss"]
    if improved:
        state["best"] = {"epoch": record["epoch"], "loss": record["val_loss"]}
    if run.rank != 0:
        return
    _log(record, run.opts.epochs, progress)
    if improved:
        save_model(run.run_dir, run.model, dt_ps=run.dt_ps, training=run.training, data=run.fingerprint,
                   history=state["history"])
    save_state(run.run_dir, run.model, run.optimizer, {"epoch": state["epoch"], "history": state["history"],
                                                       "best": state["best"], "model_options": run.config.to_dict(),
                                                       "train_options": dataclasses.asdict(run.opts),
                                                       "init": run.training["init"],
                                                       "dynamics": state.get("dynamics")})
    _write_metrics(run.run_dir, state["history"])


def _write_run(run: _Run) -> TrainResult:
    """The selected model's JSON gets the whole history (rank 0); the result of the run."""
    import torch.distributed as dist

    state = run.state
    if run.rank == 0:
        meta_path = run.run_dir / "model.json"
        meta = json.loads(meta_path.read_text())
        meta["history"] = state["history"]
        tmp = meta_path.with_name(".model.json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    if run.world > 1:
        dist.barrier()
    rate = sum(h["samples_per_s"] for h in state["history"]) / max(len(state["history"]), 1)
    return TrainResult(str(run.run_dir), "lgode" if run.config.levels == 1 else "domino", state["epoch"],
                       state["best"]["epoch"], state["best"]["loss"], run.training["selected_on"], rate,
                       state["history"])


def train(store: str | os.PathLike | Store, run_dir: str | os.PathLike, config: DominoConfig | None = None,
          options: TrainOptions | None = None, *, init: str | os.PathLike | None = None, resume: bool = False,
          select: str = "all", device: str = "auto", progress: bool = False,
          fusion_data: str | os.PathLike | Store | None = None) -> TrainResult:
    """Train a model on ``store`` into ``run_dir``; see the module docstring.

    Args:
        config: the model (default :class:`~mdforecast.model.DominoConfig`'s defaults; with ``init``: the
            checkpoint's, whose time layout ``config`` may change). options: :class:`TrainOptions`.
            :func:`resolve_options` makes both from names, presets and config files.
        resume: continue the run in ``run_dir`` from its last finished epoch, with its own options (given
            options must equal them, but for ``device``).
        init: a model to fine-tune (a pretrained name, run directory or model file); its architecture, scales
            and atom kinds are kept.
        select: MDAnalysis selection of the atoms to train on (e.g. ``'protein'``); the others are dropped.
        device: a :data:`DEVICES` key (``auto``: CUDA when torch sees a GPU); a run may resume on another.
        fusion_data: a store of trajectories of the same system and frame time that the model is not trained
            on (every one but twins): a dynamics level's fusion by lead time is fitted on them (default: on the
            held-out trajectories; the module docstring).
    """
    run_dir = Path(run_dir)
    config, opts, init = _resolve(run_dir, config, options, init, resume)
    if opts.epochs == 0 and not config.dynamics:
        raise InputError("--epochs 0 trains nothing without a dynamics level; give at least 1 epoch")
    store = store if isinstance(store, Store) else Store.open(store)
    if select != "all":
        store = store.subset(select_indices(store.topology, select, store.path))
    created = not run_dir.exists()
    try:
        run = _set_up(store, run_dir, config, opts, init, resume, device)
        run.training["select"] = select
        fusion_series = _fusion_series(run, store, fusion_data, select)
        log = (lambda message: print(message, file=sys.stderr)) if progress and run.rank == 0 else (lambda m: None)
        note = run.model.memory_note(store.topology.n_atoms)
        if note:
            log(note)
        if run.config.dynamics and run.state.get("dynamics") is None:
            run.state["dynamics"] = fit_dynamics(
                run.model, run.train_series, run.kinds, pair_frames=opts.pair_frames, force_steps=opts.force_steps,
                rollout_steps=opts.rollout_steps, rollout_frames=opts.rollout_frames, batch=opts.batch,
                lr=opts.dynamics_lr, seed=opts.seed, rigid=_rigid_waters(run, store, log), log=log)
        with progress_bar("training", total=(opts.epochs - run.state["epoch"]) * run.steps * opts.batch,
                          enabled=progress and run.rank == 0, unit="samples",
                          log_every=_LOG_STEPS * opts.batch) as bar:
            for epoch in range(run.state["epoch"], opts.epochs):
                _save_epoch(run, _epoch(run, epoch, bar), progress)
        if run.config.dynamics or run.config.conformations:
            _fuse(run, store, fusion_series, log)
    except BaseException:
        if created and not (run_dir / "state.json").exists() and not (run_dir / "model.json").exists():
            _remove_unfinished(run_dir)
        raise
    return _write_run(run)


def _rigid_waters(run: _Run, store: Store, log) -> RigidGroups | None:
    """The store's waters if the model moves them rigidly and every training trajectory shows them rigid."""
    if not run.config.rigid_water:
        return None
    groups = [rigid_waters(store.topology, s.positions, s.boxes, log=log) for s in run.train_series]
    if groups and all(g is not None for g in groups):
        log(f"dynamics: {groups[0].n_molecules} waters moved as rigid bodies")
        return groups[0]
    return None


def _fusion_series(run: _Run, store: Store, fusion_data, select: str) -> list[Series] | None:
    """The trajectories of the ``fusion_data`` store (``None``: none given), checked against the training data:
    the same atoms (after ``select``), frame time and enough frames."""
    if fusion_data is None:
        return None
    other = fusion_data if isinstance(fusion_data, Store) else Store.open(fusion_data)
    if select != "all":
        other = other.subset(select_indices(other.topology, select, other.path))
    mine, theirs = store.topology, other.topology
    if mine.n_atoms != theirs.n_atoms or not np.array_equal(mine.names, theirs.names):
        raise InputError(f"--fusion-data {other.path} holds {theirs.n_atoms} atoms, the training store "
                         f"{store.path} {mine.n_atoms} (or other atom names); give a store of the same system")
    series, fingerprint, dt_ps = _load_series(other, run.config, split=False)
    if not _same_frame_time(dt_ps, run.dt_ps):
        raise InputError(f"--fusion-data {other.path} is saved every {dt_ps} ps, the training trajectories every "
                         f"{run.dt_ps} ps; give trajectories of the training frame time")
    run.training["fusion_data"] = fingerprint
    return series


def _fuse(run: _Run, store: Store, fusion_series: list[Series] | None, log) -> None:
    """Fit the fusion (the dynamics level's, or the conformations') on the selected model (the best epoch's
    hierarchy) and write it as the run's model. The dynamics level's fusion is fitted on ``fusion_series``, else
    on the held-out trajectories, else (said in the log) on the training ones."""
    if run.state["best"] is not None:  # the hierarchy of the best epoch (the dynamics level is the same in all)
        best, _, _ = load_model(run.run_dir, map_location=run.device)
        run.model.load_state_dict(best.state_dict())
    else:
        run.state["best"] = {"epoch": 0, "loss": run.state["dynamics"]["rollout_mse"] or 0.0}
        run.training["selected_on"] = "training"
    if run.config.conformations:  # fitted on every training trajectory, the held-out one too
        run.training["fusion"] = fit_conformation_fusion(run.model, fusion_series or run.train_series + run.val_series,
                                                         store.topology, windows=run.opts.fusion_windows,
                                                         seed=run.opts.seed, log=log)
    else:
        run.training["dynamics"] = run.state["dynamics"]
        on, series = ("fusion data", fusion_series) if fusion_series else ("held-out", run.val_series) \
            if run.val_series else ("training (in-sample: the sources look better there than they are)",
                                    run.train_series)
        log(f"fusion: fitted on the {on} trajectories {', '.join(s.name for s in series)}")
        run.training["fusion"] = {"fitted_on": on, **fit_fusion(
            run.model, series, store.topology, windows=run.opts.fusion_windows, max_rollout=run.opts.max_rollout,
            seed=run.opts.seed, ar_series=run.train_series, log=log)}
    if run.rank == 0:
        save_model(run.run_dir, run.model, dt_ps=run.dt_ps, training=run.training, data=run.fingerprint,
                   history=run.state["history"])


#: what a run directory holds before its first epoch's state is saved
_FIRST_EPOCH_FILES = ("model.safetensors", "model.json", ".model.safetensors.tmp", ".model.json.tmp",
                      "state.safetensors", ".state.safetensors.tmp", ".state.json.tmp")


def _remove_unfinished(run_dir: Path) -> None:
    """Remove a run directory this run created when it stopped before its first epoch was saved (nothing to
    resume); files it did not write keep the directory."""
    for name in _FIRST_EPOCH_FILES:
        (run_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def _loss(model, batch, weights: torch.Tensor, levels: int, n_samples: int, kl_weight: float,
          generator: torch.Generator | None = None, kabsch: bool = False) -> torch.Tensor:
    """Σ_levels w_ℓ · mean over samples of the sample's level-ℓ MSE / σ(t)² (+ KL), σ(t) the training
    data's RMS displacement at each output's lead time; a level's mean is over the samples scored at that
    level (a partial window may end before a coarse level's first output). ``kabsch``: each output's MSE after
    superposing it onto the true frame (:func:`~mdforecast.model.superpose.kabsch_msd`), the conformation's."""
    pred, kl = model(batch.window, batch.sample, batch.t, batch.depth, generator)
    sigma = (model.module if hasattr(model, "module") else model).scale(torch.as_tensor(batch.t, device=pred.device))
    mse = kabsch_msd(pred, batch.target) if kabsch else ((pred - batch.target) ** 2).mean(dim=(1, 2))
    err = mse / sigma.to(pred.dtype) ** 2
    sums = err.new_zeros(n_samples * levels).index_add_(0, batch.group, err)
    counts = err.new_zeros(n_samples * levels).index_add_(0, batch.group, torch.ones_like(err))
    means = (sums / counts.clamp(min=1)).reshape(n_samples, levels)
    scored = (counts > 0).reshape(n_samples, levels).to(means.dtype)
    per_level = (means * scored).sum(0) / scored.sum(0).clamp(min=1)
    return (per_level * weights).sum() + kl_weight * kl



def _validate(model: Domino, series: list[Series], samples: list, config: DominoConfig, kinds: torch.Tensor,
              weights: torch.Tensor, batch: int, batch_args: dict) -> float:
    """The loss (without KL) over fixed validation windows, in evaluation mode (VAE means)."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            chunk = samples[i:i + batch]
            total += len(chunk) * _loss(model, make_batch(series, chunk, config, kinds, **batch_args), weights,
                                        config.levels, len(chunk), 0.0, kabsch=config.loss == "kabsch").item()
    return total / len(samples)


def _mean_over_ranks(value: float, device: torch.device) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item() / dist.get_world_size())


def _log(record: dict, epochs: int, enabled: bool) -> None:
    """One line per epoch on stderr (the log; results go to stdout)."""
    if enabled:
        print(f"epoch {record['epoch']}/{epochs}  train {record['train_loss']:.4g}  "
              f"validation {record['val_loss']:.4g}  {record['samples_per_s']:.1f} samples/s", file=sys.stderr)


def _write_metrics(run_dir: Path, history: list[dict]) -> None:
    tmp = run_dir / ".metrics.jsonl"
    tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    os.replace(tmp, run_dir / "metrics.jsonl")
    plot_loss(history, run_dir / "loss.png")
