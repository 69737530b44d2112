"""``mdforecast train``: fit DoMiNO (or LG-ODE with one level) on a store's training trajectories.

Training data are the store's ``train`` trajectories (all trajectories when the store has no split), never
twins (``twin_of``); the last ``holdout`` of them are held out for model selection (the best validation
epoch is the model written to RUN_DIR). With a single trajectory, selection falls back to the training
loss (said in the history). Windows are cut at random ends; each sample trains on ``segments`` random
finest-level segments and their coarser segments, with the per-level MSE (in units of the displacement
scale σ(t) at each output's lead time) weighted by ``level_weights``.

RUN_DIR gets ``model.safetensors`` + ``model.json`` (the selected model), ``state.safetensors`` +
``state.json`` (the last epoch, for ``--resume``), ``metrics.jsonl`` and ``loss.png``. All randomness is
derived from ``(seed, epoch, sample)``, so a resumed run ends where an uninterrupted one ends, and DDP
processes (``torchrun``) split every batch between them and average gradients; rank 0 writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_model, load_state, save_model, save_state
from .errors import InputError
from .model import Domino, DominoConfig, atom_kinds
from .model.data import Series, draw_samples, make_batch, normalisation
from .pbc import box_matrix
from .progress import progress_bar
from .store import Store

__all__ = ["TrainOptions", "TrainResult", "PRESETS", "DEVICES", "train"]

#: named option sets (``--preset``); every key is a model or training option
PRESETS = {
    "paper": {},
    "cpu-small": {"features": 16, "vectors": 8, "encoder_layers": 1, "radial": 8, "steps": 4, "checkpoint": True,
                  "batch": 4, "samples_per_epoch": 32, "segments": 2, "max_outputs": 10},
}
#: ``--device`` choices
DEVICES = {"auto": None, "cpu": "cpu", "cuda": "cuda"}
_DEFAULT_WEIGHTS = (0.1, 0.2, 0.7)
#: model options a fine-tuning run (``--init``) may change: the time layout, not the weights' shapes
_LAYOUT = {"observe", "horizon", "strides", "levels"}


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
        seed: seeds everything. device: a :data:`DEVICES` key.
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
    device: str = "auto"

    def __post_init__(self) -> None:
        counts = {k: getattr(self, k) for k in ("epochs", "batch", "samples_per_epoch", "segments", "max_outputs",
                                                 "val_samples")}
        bad = [k for k, v in counts.items() if not isinstance(v, int) or v < 1]
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


def split_options(options: dict) -> tuple[dict, dict]:
    """Split a flat option dict into model and training options; one-line error for unknown keys."""
    model_keys = {f.name for f in dataclasses.fields(DominoConfig)} | {"levels"}
    train_keys = {f.name for f in dataclasses.fields(TrainOptions)}
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise InputError(f"unknown options {sorted(unknown)}; known: {sorted(model_keys | train_keys)}")
    return ({k: v for k, v in options.items() if k in model_keys}, {k: v for k, v in options.items() if k in train_keys})


def model_config(options: dict) -> DominoConfig:
    """A :class:`DominoConfig` from options; ``levels`` alone picks the last L of the default strides."""
    options = dict(options)
    levels = options.pop("levels", None)
    strides = options.get("strides")
    if levels is not None:
        if strides is None:
            default = DominoConfig.strides
            if levels > len(default) or levels < 1:
                raise InputError(f"--levels {levels} needs --strides (one stride per level, coarse → fine)")
            options["strides"] = default[-levels:]
        elif len(strides) != levels:
            raise InputError(f"--levels {levels} but {len(strides)} --strides {list(strides)}; give one stride per level")
    for key in ("strides", "lags"):
        if key in options:
            options[key] = tuple(options[key])
    try:
        return DominoConfig(**options)
    except TypeError as err:
        raise InputError(f"invalid model option: {err}") from err


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


def _load_series(store: Store, config: DominoConfig) -> tuple[list[Series], dict]:
    names = store.split["train"] if store.split else store.trajectory_names
    names = [n for n in names if not store.trajectory(n).attrs.get("twin_of")]
    if not names:
        raise InputError(f"store {store.path} has no training trajectories; ingest some or fix its split")
    need = config.observe + config.horizon
    series, fingerprint = [], {}
    for name in names:
        traj = store.trajectory(name)
        if traj.n_frames < need:
            raise InputError(f"trajectory {name!r} has {traj.n_frames} frames but --observe {config.observe} + "
                             f"--horizon {config.horizon} needs {need}; lower them or use longer trajectories")
        boxes = traj.boxes()
        series.append(Series(name, traj.positions(), None if boxes is None else box_matrix(boxes)))
        fingerprint[name] = {"frames": traj.n_frames, "sha256": traj.attrs.get("sha256")}
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
    return series, {"store": str(store.path), "trajectories": fingerprint, "sha256": digest}


def _loss(model, batch, weights: torch.Tensor, levels: int, n_samples: int, kl_weight: float,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Σ_levels w_ℓ · mean over samples of the sample's level-ℓ MSE / σ(t)² (+ KL), σ(t) the training
    data's RMS displacement at each output's lead time; a level's mean is over the samples scored at that
    level (a partial window may end before a coarse level's first output)."""
    pred, kl = model(batch.window, batch.sample, batch.t, batch.depth, generator)
    sigma = (model.module if hasattr(model, "module") else model).scale(torch.as_tensor(batch.t, device=pred.device))
    err = ((pred - batch.target) ** 2).mean(dim=(1, 2)) / sigma.to(pred.dtype) ** 2
    sums = err.new_zeros(n_samples * levels).index_add_(0, batch.group, err)
    counts = err.new_zeros(n_samples * levels).index_add_(0, batch.group, torch.ones_like(err))
    means = (sums / counts.clamp(min=1)).reshape(n_samples, levels)
    scored = (counts > 0).reshape(n_samples, levels).to(means.dtype)
    per_level = (means * scored).sum(0) / scored.sum(0).clamp(min=1)
    return (per_level * weights).sum() + kl_weight * kl


def _plot(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set(xlabel="epoch", ylabel="loss (MSE / σ(t)²)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path.with_name(".loss.png"), dpi=100, format="png")
    plt.close(fig)
    os.replace(path.with_name(".loss.png"), path)


def train(store: str | os.PathLike | Store, run_dir: str | os.PathLike, *, options: dict | None = None,
          preset: str | None = None, resume: bool = False, init: str | os.PathLike | None = None,
          progress: bool = False) -> TrainResult:
    """Train a model on ``store`` into ``run_dir``; see the module docstring.

    Args:
        options: model (:class:`~mdforecast.model.DominoConfig`, plus ``levels``) and training
            (:class:`TrainOptions`) options by name, over the ``preset``'s (a :data:`PRESETS` key).
        resume: continue the run in ``run_dir`` (same options) from its last finished epoch.
        init: a model to fine-tune (run directory or model file); its architecture and scales are kept.
    """
    import torch.distributed as dist

    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    run_dir = Path(run_dir)
    explicit_model, _ = split_options(options or {})
    model_opts, train_opts = split_options({**PRESETS.get(preset or "paper", {}), **(options or {})})
    if resume:
        if not (run_dir / "state.json").exists():
            raise InputError(f"nothing to resume in {run_dir} (no state.json); drop --resume to start a new run")
        saved = json.loads((run_dir / "state.json").read_text())
        model_opts, train_opts = saved["model_options"], {**saved["train_options"], "device": train_opts.get("device", "auto")}
        init = saved.get("init")
    elif (run_dir / "state.json").exists() or (run_dir / "model.json").exists():
        raise InputError(f"{run_dir} already holds a training run; pass --resume to continue it or choose another -o")
    try:
        opts = TrainOptions(**{**train_opts, **({"level_weights": tuple(train_opts["level_weights"])}
                                              if train_opts.get("level_weights") is not None else {})})
    except TypeError as err:
        raise InputError(f"invalid training option: {err}") from err
    device = _device(opts.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if opts.batch % world:
        raise InputError(f"--batch {opts.batch} must be a multiple of the {world} processes")

    torch.manual_seed(opts.seed)
    if init is not None:
        model, _, _ = load_model(init)
        layout = {k: v for k, v in explicit_model.items() if k in _LAYOUT} if not resume else {}
        if set(explicit_model) - _LAYOUT and not resume:
            raise InputError(f"with --init the architecture comes from the checkpoint; drop "
                             f"{sorted(set(explicit_model) - _LAYOUT)} (only {sorted(_LAYOUT)} may change)")
        if resume:
            layout = {k: model_opts[k] for k in _LAYOUT if k in model_opts}
        config = model_config({**model.config.to_dict(), **layout})
        if config.levels != model.config.levels:
            raise InputError(f"--init model has {model.config.levels} levels; fine-tune with the same number")
        state = model.state_dict()
        model = Domino(config, model.norm, model.kinds)
        model.load_state_dict(state)
    else:
        config = model_config(model_opts)
    store = store if isinstance(store, Store) else Store.open(store)
    series, fingerprint = _load_series(store, config)
    n_val = opts.holdout if len(series) > opts.holdout else 0
    train_series, val_series = series[:len(series) - n_val], series[len(series) - n_val:]
    selected_on = "validation" if val_series else "training"
    kinds_all = atom_kinds(store.topology)
    if init is None:
        model = Domino(config, normalisation(train_series, config), sorted(set(kinds_all.tolist())))
    kinds = model.kind_index(kinds_all)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    state = {"epoch": 0, "history": [], "best": None}
    if resume:
        state = load_state(run_dir, model, optimizer)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    weights = torch.as_tensor(opts.weights(config.levels), dtype=torch.float32, device=device)
    training = {**dataclasses.asdict(opts), "level_weights": list(opts.weights(config.levels)),
                "world_size": world, "selected_on": selected_on, "init": None if init is None else str(init),
                "validation": [s.name for s in val_series]}
    model_options = config.to_dict()
    val_samples = draw_samples(val_series or train_series, config, opts.val_samples, seed=(opts.seed, 2**31),
                               partial=opts.partial)
    steps = -(-opts.samples_per_epoch // opts.batch)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    batch_args = dict(segments=opts.segments, max_outputs=opts.max_outputs, device=device,
                      sampling=opts.lead_sampling)
    with progress_bar("training", total=(opts.epochs - state["epoch"]) * steps * opts.batch,
                      enabled=progress and rank == 0, unit="samples") as bar:
        for epoch in range(state["epoch"], opts.epochs):
            samples = draw_samples(train_series, config, steps * opts.batch, seed=(opts.seed, epoch),
                                   partial=opts.partial)
            net.train()
            losses, start = [], time.perf_counter()
            for step in range(steps):
                chunk = samples[step * opts.batch:(step + 1) * opts.batch][rank::world]
                batch = make_batch(train_series, chunk, config, kinds, **batch_args)
                noise = torch.Generator(device=device)  # VAE noise, reproducible on resume
                noise.manual_seed(int(np.random.SeedSequence([opts.seed, epoch, step, rank]).generate_state(1)[0]))
                loss = _loss(net, batch, weights, config.levels, len(chunk), opts.kl_weight, noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), opts.clip)
                optimizer.step()
                losses.append(loss.item())
                bar.advance(opts.batch)
            train_time = time.perf_counter() - start
            val = _validate(model, val_series or train_series, val_samples, config, kinds, weights, opts.batch,
                            batch_args)
            train_loss = float(np.mean(losses)) if world == 1 else _mean_over_ranks(np.mean(losses), device)
            record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": float(val),
                      "samples_per_s": steps * opts.batch / train_time,
                      "lr": opts.lr, "time": time.time()}
            state["history"].append(record)
            state["epoch"] = epoch + 1
            improved = state["best"] is None or val < state["best"]["loss"]
            if improved:
                state["best"] = {"epoch": epoch + 1, "loss": float(val)}
            if rank == 0:
                _log(record, opts.epochs, progress)
                if improved:
                    save_model(run_dir, model, training=training, data=fingerprint, history=state["history"])
                save_state(run_dir, model, optimizer, {"epoch": state["epoch"], "history": state["history"],
                                                       "best": state["best"], "model_options": model_options,
                                                       "train_options": {**dataclasses.asdict(opts)},
                                                       "init": training["init"]})
                _write_metrics(run_dir, state["history"])
    if rank == 0:  # the selected model's JSON carries the whole history
        meta_path = run_dir / "model.json"
        meta = json.loads(meta_path.read_text())
        meta["history"] = state["history"]
        tmp = meta_path.with_name(".model.json.tmp")
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, meta_path)
    if world > 1:
        dist.barrier()
    rate = sum(h["samples_per_s"] for h in state["history"]) / max(len(state["history"]), 1)
    return TrainResult(str(run_dir), "lgode" if config.levels == 1 else "domino", state["epoch"],
                       state["best"]["epoch"], state["best"]["loss"], selected_on, rate, state["history"])


def _validate(model: Domino, series: list[Series], samples: list, config: DominoConfig, kinds: torch.Tensor,
              weights: torch.Tensor, batch: int, batch_args: dict) -> float:
    """The loss (without KL) over fixed validation windows, in evaluation mode (VAE means)."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            chunk = samples[i:i + batch]
            total += len(chunk) * _loss(model, make_batch(series, chunk, config, kinds, **batch_args), weights,
                                        config.levels, len(chunk), 0.0).item()
    return total / len(samples)


def _mean_over_ranks(value: float, device: torch.device) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item() / dist.get_world_size())


def _log(record: dict, epochs: int, enabled: bool) -> None:
    if enabled:
        import typer

        typer.echo(f"epoch {record['epoch']}/{epochs}  train {record['train_loss']:.4g}  "
                   f"validation {record['val_loss']:.4g}  {record['samples_per_s']:.1f} samples/s", err=True)


def _write_metrics(run_dir: Path, history: list[dict]) -> None:
    tmp = run_dir / ".metrics.jsonl"
    tmp.write_text("".join(json.dumps(h) + "\n" for h in history))
    os.replace(tmp, run_dir / "metrics.jsonl")
    _plot(history, run_dir / "loss.png")
