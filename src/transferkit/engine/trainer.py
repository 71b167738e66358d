"""The one training loop. Every strategy trains through :class:`Trainer`.

A *task* (a strategy) supplies:
    ``module``                      the nn.Module holding every trainable part (model, heads, critics)
    ``configure_optimizer()``       an optimizer over *all* of ``module``'s parameters in named groups;
                                    frozen parameters (requires_grad=False) get no gradient and are
                                    skipped, so unfreezing needs no new optimizer
    ``training_step(batch)``        -> {"loss": scalar tensor, other logged terms}
    ``validation_metrics(loader)``  -> {"val_accuracy": ..., ...}   (optional)
    callback hooks                  ``on_epoch_start(trainer, epoch)`` etc. (optional, see callbacks.py)

Device, precision and multi-process data parallelism come from Lightning Fabric. The trainer adds
schedules, gradient clipping, divergence checks, per-epoch checkpoints with exact resume, signal-safe
interruption, progress bars and CSV/TensorBoard logs.
"""
from __future__ import annotations

import json
import math
import signal
import threading
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..errors import DivergenceError, TransferkitError, check_choice
from ..utils import atomic_path, progress_bar, seed_everything, write_json
from .allocator import release_free_memory
from .loaders import PairedLoader, batch_to
from .memory import batch_length, split_batch
from .schedules import make_scheduler

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed", "bf16-true", "64-true")
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
_FABRICS: dict = {}


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after SIGINT/SIGTERM once a resumable checkpoint is saved."""


def resolve_precision(precision: str, accelerator: str) -> str:
    check_choice("Trainer", "precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "32-true"


def _runs_on_cpu(accelerator: str) -> bool:
    if accelerator == "cpu":
        return True
    if accelerator in ("auto", None):
        mps = getattr(torch.backends, "mps", None)
        return not torch.cuda.is_available() and not (mps is not None and mps.is_available())
    return False


def effective_precision(precision: str, accelerator: str, warn: bool = True) -> str:
    """The precision that actually runs: 'auto' resolved, and '16-mixed' on a CPU (which has no fp16
    autocast; Lightning would silently switch to bf16) downgraded to 'bf16-mixed' with a warning."""
    prec = resolve_precision(precision, accelerator)
    if prec == "16-mixed" and _runs_on_cpu(accelerator):
        if warn:
            warnings.warn("precision='16-mixed' is not supported on the CPU (no fp16 autocast there); running "
                          "'bf16-mixed' instead.", stacklevel=3)
        return "bf16-mixed"
    return prec


def get_fabric(accelerator: str = "auto", devices: int = 1, precision: str = "auto"):
    """One launched Fabric per configuration and process (``launch`` may only run once). It holds no loggers: each
    Trainer writes to its own (metric loggers log on the global rank zero only)."""
    from lightning_fabric import Fabric

    precision = effective_precision(precision, accelerator)
    key = (accelerator, devices, precision)
    if key not in _FABRICS:
        strategy = "auto"
        if isinstance(devices, int) and devices > 1:
            from lightning_fabric.strategies import DDPStrategy

            strategy = DDPStrategy(find_unused_parameters=True,
                                   process_group_backend="gloo" if accelerator == "cpu" or not torch.cuda.is_available() else None)
        fabric = Fabric(accelerator=accelerator, devices=devices, precision=precision, strategy=strategy)
        fabric.launch()
        _FABRICS[key] = fabric
    return _FABRICS[key]


class _StepModule(nn.Module):
    """Routes the task's training step through Fabric's wrapper (autocast, DDP gradient sync)."""

    def __init__(self, task):
        super().__init__()
        self.net = task.module
        self._task = [task]

    def forward(self, batch):
        return self._task[0].training_step(batch)


class Trainer:
    """Run ``task`` for ``max_epochs`` over ``train_loader``.

    Args:
        max_epochs: epochs (one pass over the loader each).
        accelerator, devices, precision: passed to Lightning Fabric; precision 'auto' is bf16-mixed
            (fp16 where bf16 is missing) on CUDA and 32-true on CPU. ``devices>1`` runs DDP (gloo on CPU);
            Fabric then re-launches the current command once per extra process.
        scheduler: 'cosine' (with ``warmup_epochs``), 'onecycle', 'linear' or 'constant'.
        grad_clip: max global gradient norm, or None.
        checkpoint_dir: where ``last.ckpt`` (every epoch and on interruption) and logs go.
        resume: continue from ``checkpoint_dir/last.ckpt`` when it exists.
        nan_policy: 'skip' a non-finite step (stop after ``max_bad_steps`` in a row) or 'stop' at once.
        loggers: any of 'csv', 'tensorboard' (written under ``checkpoint_dir/logs``).
        micro_batch_size: split each loaded batch into micro-batches of at most this many images and accumulate
            their gradients (each loss weighted by its share of the batch) before one optimizer step: the
            memory of a micro-batch, the gradient of the whole batch (see engine.memory). None: no split.
    """

    def __init__(self, *, max_epochs: int = 10, accelerator: str = "auto", devices: int = 1, precision: str = "auto",
                 scheduler: str = "cosine", warmup_epochs: float = 0.0, grad_clip: float | None = None,
                 callbacks=(), checkpoint_dir=None, resume: bool = False, seed: int = 0, progress: bool = True,
                 loggers=("csv",), nan_policy: str = "skip", max_bad_steps: int = 3, max_steps_per_epoch: int | None = None,
                 channels_last: bool = False, micro_batch_size: int | None = None):
        check_choice("Trainer", "nan_policy", nan_policy, ("skip", "stop"))
        self.max_epochs, self.accelerator, self.devices, self.precision = max_epochs, accelerator, devices, precision
        self.scheduler_name, self.warmup_epochs, self.grad_clip = scheduler, warmup_epochs, grad_clip
        self.callbacks = list(callbacks)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.resume, self.seed, self.progress = resume, seed, progress
        self.logger_names, self.nan_policy, self.max_bad_steps = tuple(loggers or ()), nan_policy, max_bad_steps
        self.max_steps_per_epoch, self.micro_batch_size = max_steps_per_epoch, micro_batch_size
        self.channels_last = channels_last  # NHWC weights and 4-D input batches (faster convs with AMP on GPU)
        self.history: list[dict] = []
        self.epoch = 0
        self.global_step = 0
        self.should_stop = False
        self.interrupted_by = None  # the signal's name once SIGINT/SIGTERM arrived (set by _SignalGuard)
        self._partial = self._resume_partial = None  # running sums of an interrupted epoch

    # -- helpers available to tasks and callbacks ----------------------------------------------
    @property
    def is_global_zero(self) -> bool:
        return self.fabric.is_global_zero

    @property
    def device(self) -> torch.device:
        return self.fabric.device

    def print(self, *args) -> None:
        if self.progress and self.fabric.is_global_zero:
            tqdm.write(" ".join(str(a) for a in args))

    def autocast(self):
        return self.fabric.autocast()

    # -- the loop --------------------------------------------------------------------------------
    def fit(self, task, train_loader, val_loader=None) -> list[dict]:
        self.fabric = fabric = get_fabric(self.accelerator, self.devices, self.precision)
        self.metric_loggers = self._make_loggers()
        self.precision_ = effective_precision(self.precision, self.accelerator, warn=False)  # what actually runs
        self.task = task
        self._config = run_config(task, train_loader) if self.checkpoint_dir else {}
        seed_everything(self.seed + fabric.global_rank)
        self.module = task.module
        if self.channels_last:
            task.module.to(memory_format=torch.channels_last)
        step_module = _StepModule(task)
        optimizer = task.configure_optimizer()
        self._wrapped, self.optimizer = fabric.setup(step_module, optimizer)
        train_loader = self._setup_loader(train_loader)
        steps_per_epoch = len(train_loader) if self.max_steps_per_epoch is None else min(len(train_loader), self.max_steps_per_epoch)
        self.total_steps = max(1, steps_per_epoch * self.max_epochs)
        self.scheduler = make_scheduler(self.optimizer, self.scheduler_name, self.total_steps,
                                        int(self.warmup_epochs * steps_per_epoch))
        hooks = [task, *self.callbacks]
        start_epoch, skip_batches, rng_state = self._maybe_resume(hooks)
        self._call(hooks, "on_fit_start", self)
        bad_steps = 0
        with _SignalGuard(self):
            for epoch in range(start_epoch, self.max_epochs):
                self.epoch = epoch
                seed_everything(self.seed * 1000 + epoch * 7 + fabric.global_rank)
                self._set_epoch(train_loader, epoch)
                self._call(hooks, "on_epoch_start", self, epoch)
                task.module.train()
                sums, count, t0 = {}, 0, time.perf_counter()
                if skip_batches and self._resume_partial:  # the interrupted epoch's running sums
                    sums, count = dict(self._resume_partial["sums"]), int(self._resume_partial["count"])
                bar = progress_bar(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{self.max_epochs}", leave=False,
                                   enabled=self.progress and fabric.is_global_zero, unit="batch", dynamic_ncols=True)
                for i, batch in enumerate(train_loader):
                    if i >= steps_per_epoch:
                        break
                    if i < skip_batches:  # resuming mid-epoch: replay the order, skip done batches
                        bar.update(1)
                        if i == skip_batches - 1 and rng_state is not None:
                            torch.set_rng_state(rng_state)
                        continue
                    logs = self._step(batch)
                    if logs is None:
                        bad_steps += 1
                        if bad_steps >= self.max_bad_steps or self.nan_policy == "stop":
                            self._diverged(epoch, i)
                        continue
                    bad_steps = 0
                    for k, v in logs.items():
                        sums[k] = sums.get(k, 0.0) + v
                    count += 1
                    self._call(hooks, "on_batch_end", self, logs)
                    bar.set_postfix(loss=f"{logs['loss']:.4f}")
                    bar.update(1)
                    if self.interrupted_by is not None:
                        bar.close()
                        self._partial = {"sums": dict(sums), "count": count}
                        self._interrupt(epoch, i + 1)
                bar.close()
                skip_batches, rng_state = 0, None
                epoch_logs = {"epoch": epoch, **{f"train_{k}": v / max(1, count) for k, v in sums.items()},
                              "lr": self.optimizer.param_groups[0]["lr"], "time_s": time.perf_counter() - t0}
                if val_loader is not None and hasattr(task, "validation_metrics"):
                    task.module.eval()
                    with torch.inference_mode(), fabric.autocast():
                        epoch_logs.update(task.validation_metrics(val_loader))
                self._call(hooks, "on_epoch_end", self, epoch, epoch_logs)
                if fabric.device.type == "cpu":
                    release_free_memory()  # back to the OS unless glibc keeps them for the next epoch (see there)
                self.history.append(epoch_logs)
                scalars = {k: v for k, v in epoch_logs.items() if isinstance(v, (int, float))}
                for logger in self.metric_loggers:  # Lightning loggers write on the global rank zero only
                    logger.log_metrics(scalars, step=epoch)
                self.print(_format_logs(epoch_logs))
                self.save_checkpoint(epoch + 1, 0)
                if self.should_stop:
                    break
        self._call(hooks, "on_fit_end", self)
        for logger in self.metric_loggers:
            logger.finalize("success")
        return self.history

    def _step(self, batch) -> dict | None:
        fabric = self.fabric
        batch = batch_to(batch, fabric.device)
        if self.channels_last:
            batch = _to_channels_last(batch)
        parts = split_batch(batch, self.micro_batch_size) if self.micro_batch_size else [batch]
        total = batch_length(batch) if len(parts) > 1 else None
        out: dict = {}
        for j, part in enumerate(parts):
            share = batch_length(part) / total if total else 1.0
            with fabric.no_backward_sync(self._wrapped, enabled=j < len(parts) - 1):  # DDP syncs the last only
                part_out = self._wrapped(part)
                loss = part_out["loss"]
                if loss.requires_grad:
                    fabric.backward(loss * share if share != 1.0 else loss)
            for k, v in part_out.items():  # the batch's logs: the micro-batches' values weighted by their share
                if isinstance(v, torch.Tensor) and v.numel() == 1:
                    v = v.detach() * share
                    out[k] = out[k] + v if k in out else v
                elif k not in out:
                    out[k] = v
        loss = out["loss"]
        norm = None
        if self.grad_clip:
            norm = fabric.clip_gradients(self._wrapped, self.optimizer, max_norm=self.grad_clip, error_if_nonfinite=False)
        elif not self._uses_grad_scaler():  # (fp16's GradScaler skips non-finite gradients itself)
            grads = [p.grad for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            norm = torch.nn.utils.get_total_norm(grads, error_if_nonfinite=False) if grads else None
        finite = torch.isfinite(loss.detach())
        if norm is not None:
            finite = finite & torch.isfinite(torch.as_tensor(norm, device=finite.device))
        if not bool(finite):  # one host sync per step: a NaN/inf loss, or a finite loss with NaN/inf gradients
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.global_step += 1
        return {k: float(v.detach()) if isinstance(v, torch.Tensor) else float(v) for k, v in out.items()
                if isinstance(v, (torch.Tensor, int, float)) and (not isinstance(v, torch.Tensor) or v.numel() == 1)}

    def _uses_grad_scaler(self) -> bool:
        return effective_precision(self.precision, self.accelerator, warn=False) == "16-mixed" and self.fabric.device.type == "cuda"

    def _diverged(self, epoch, batch):
        lrs = sorted({g["lr"] for g in self.optimizer.param_groups})
        prec = resolve_precision(self.precision, self.accelerator)
        hint = (" fp16 overflow is likely: try precision='bf16-mixed' or '32-true'."
                if prec.startswith("16") and self.fabric.device.type == "cuda" else "")
        where = (f" The last good checkpoint is {self.checkpoint_path} (resume=True continues from it)."
                 if self.checkpoint_path is not None and self.checkpoint_path.exists() else "")
        raise DivergenceError(
            f"The loss became NaN/inf at epoch {epoch + 1}, batch {batch + 1} ({self.max_bad_steps if self.nan_policy == 'skip' else 1} "
            f"non-finite step(s) in a row). The learning rate is the usual cause (current: {lrs[-1]:.3g}); lower it, "
            f"or set grad_clip.{hint}{where}")

    # -- loaders ----------------------------------------------------------------------------------
    def _setup_loader(self, loader):
        if self.fabric.world_size > 1:
            if isinstance(loader, DataLoader):
                return self.fabric.setup_dataloaders(loader, move_to_device=False)
            if isinstance(loader, PairedLoader):
                loader.source, loader.target = self.fabric.setup_dataloaders(loader.source, loader.target, move_to_device=False)
        return loader

    @staticmethod
    def _set_epoch(loader, epoch):
        # Fabric's loader wrapper copies the wrapped loader's attributes, so ``sampler`` is the distributed one there
        for obj in (loader, getattr(loader, "sampler", None)):
            if obj is not None and hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    @staticmethod
    def _call(hooks, name, *args):
        for h in hooks:
            fn = getattr(h, name, None)
            if fn is not None:
                fn(*args)

    def _make_loggers(self):
        if not self.checkpoint_dir or not self.logger_names:
            return []
        from lightning_fabric.loggers import CSVLogger, TensorBoardLogger

        out = []
        for name in self.logger_names:
            check_choice("Trainer", "loggers", name, ("csv", "tensorboard"))
            cls = CSVLogger if name == "csv" else TensorBoardLogger
            out.append(cls(str(self.checkpoint_dir), name="logs", version=name))
        return out

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        return self.checkpoint_dir / "last.ckpt" if self.checkpoint_dir else None

    def save_checkpoint(self, epoch: int, batch: int) -> None:
        """Write ``last.ckpt`` atomically: resume starts at ``epoch`` after ``batch`` batches."""
        if self.checkpoint_path is None:
            return
        state = {
            "version": 1, "epoch": epoch, "batch": batch, "global_step": self.global_step,
            "module": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "callbacks": [cb.state_dict() for cb in self.callbacks if hasattr(cb, "state_dict")],
            "rng": torch.get_rng_state(),
            "partial": self._partial if batch else None,
            "config": json.dumps(getattr(self, "_config", {}), sort_keys=True),
        }
        if self.fabric.is_global_zero:
            with atomic_path(self.checkpoint_path, ".ckpt") as tmp:
                torch.save(state, tmp)
            write_json(self.checkpoint_dir / "progress.json", {"epoch": epoch, "batch": batch, "max_epochs": self.max_epochs,
                                                               "history": self.history})
        self.fabric.barrier()

    def _maybe_resume(self, hooks):
        if not (self.resume and self.checkpoint_path and self.checkpoint_path.exists()):
            return 0, 0, None
        try:
            state = torch.load(self.checkpoint_path, map_location=self.fabric.device, weights_only=True)
        except Exception as e:
            raise TransferkitError(f"Cannot resume from {self.checkpoint_path}: the checkpoint is unreadable ({e}). "
                                   f"Delete it to start over.") from None
        if not isinstance(state, dict) or not isinstance(state.get("module"), dict):
            raise TransferkitError(f"Cannot resume from {self.checkpoint_path}: it is not a transferkit training "
                                   f"checkpoint. Delete it to start over.")
        self._check_resume_config(state)
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history, self.global_step = list(state["history"]), state["global_step"]
        for cb, s in zip([c for c in self.callbacks if hasattr(c, "state_dict")], state["callbacks"]):
            cb.load_state_dict(s)
        epoch, batch = state["epoch"], state["batch"]
        self.print(f"resuming from {self.checkpoint_path}: epoch {epoch + 1}" + (f", batch {batch + 1}" if batch else ""))
        self._resume_partial = state.get("partial") if batch else None
        return epoch, batch, state["rng"].cpu() if batch else None

    def _check_resume_config(self, state: dict) -> None:
        """Refuse a checkpoint written with another configuration, before loading anything from it."""
        start_over = (f"Resume with the options of that run, or start over: give another --out (checkpoint_dir) "
                      f"or delete {self.checkpoint_dir}.")
        try:
            saved = json.loads(state["config"]) if state.get("config") else None
        except (TypeError, ValueError):
            saved = None
        if saved is not None:
            now = json.loads(json.dumps(self._config, sort_keys=True))
            diffs = [f"{k}: {_short(saved.get(k, '(not set)'))} then, {_short(now.get(k, '(not set)'))} now"
                     for k in sorted(set(saved) | set(now)) if saved.get(k, None) != now.get(k, None)]
            if diffs:
                raise TransferkitError(f"Cannot resume from {self.checkpoint_path}: it was written by a run with another "
                                       f"configuration ({'; '.join(diffs[:6])}"
                                       f"{f'; and {len(diffs) - 6} more' if len(diffs) > 6 else ''}). {start_over}")
        current = self.module.state_dict()
        ckpt = state["module"]
        missing = [k for k in current if k not in ckpt]
        unexpected = [k for k in ckpt if k not in current]
        shapes = [f"{k}: {list(ckpt[k].shape)} in the checkpoint, {list(current[k].shape)} now" for k in current
                  if k in ckpt and hasattr(ckpt[k], "shape") and tuple(ckpt[k].shape) != tuple(current[k].shape)]
        if missing or unexpected or shapes:
            parts = shapes[:3] + ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {unexpected[:3]}"] if unexpected else [])
            raise TransferkitError(f"Cannot resume from {self.checkpoint_path}: its weights do not fit the current model "
                                   f"({'; '.join(parts)}), so it was written with another backbone, strategy or number "
                                   f"of classes. {start_over}")

    def _interrupt(self, epoch, batch):
        self.save_checkpoint(epoch, batch)
        where = f" saved to {self.checkpoint_path}; rerun with resume=True (--resume) to continue" if self.checkpoint_path else ""
        raise TrainingInterrupted(f"training interrupted by signal {self.interrupted_by} at epoch {epoch + 1}, batch {batch}; "
                                  f"checkpoint{where}.")


# Parameters that may change between an interrupted run and its resume (they do not change what is learned).
RESUME_FREE_PARAMS = frozenset({"progress", "resume", "checkpoint_dir", "num_workers", "loggers", "devices",
                                "accelerator", "precision", "n_jobs"})


def run_config(task, loader) -> dict:
    """What a checkpoint must match to be resumed: the strategy, its parameters, the classes and the data."""
    cfg = {"strategy": getattr(task, "name", "") or type(task).__name__}
    params = task.json_params() if hasattr(task, "json_params") else {}
    for k, v in sorted(params.items()):
        if k not in RESUME_FREE_PARAMS:
            cfg[k] = v
    if getattr(task, "classes_", None) is not None:
        cfg["classes"] = [str(c) for c in task.classes_]
    datasets = [getattr(loader, "dataset", None), getattr(getattr(loader, "source", None), "dataset", None),
                getattr(getattr(loader, "target", None), "dataset", None)]
    for role, ds in zip(("data", "data", "target data"), datasets):
        if ds is not None and hasattr(ds, "fingerprint"):
            cfg[role] = f"{getattr(ds, 'name', '') or 'dataset'} ({len(ds)} images, fingerprint {ds.fingerprint()})"
    return json.loads(json.dumps(cfg, sort_keys=True, default=repr))


def _short(v, n: int = 80) -> str:
    text = repr(v)
    return text if len(text) <= n else text[:n] + "..."


class _SignalGuard:
    """Turn SIGINT/SIGTERM into a flag checked after each batch (main thread only)."""

    def __init__(self, trainer):
        self.trainer, self.old = trainer, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.trainer.interrupted_by is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.trainer.interrupted_by = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False


def _to_channels_last(batch):
    """4-D floating tensors (image batches) in nested tuples/lists/dicts -> channels_last memory format."""
    if isinstance(batch, torch.Tensor):
        return batch.contiguous(memory_format=torch.channels_last) if batch.dim() == 4 and batch.is_floating_point() else batch
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_channels_last(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_channels_last(v) for k, v in batch.items()}
    return batch


def _format_logs(logs: dict) -> str:
    parts = [f"epoch {logs['epoch'] + 1}"]
    for k, v in logs.items():
        if k != "epoch" and isinstance(v, float) and math.isfinite(v):
            parts.append(f"{k}={v:.4g}")
    return "  ".join(parts)
