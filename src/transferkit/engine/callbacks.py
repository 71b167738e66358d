"""Callbacks: cross-cutting behaviour of the one training loop.

A callback may implement any of ``on_fit_start(trainer)``, ``on_epoch_start(trainer, epoch)``,
``on_batch_end(trainer, logs)``, ``on_epoch_end(trainer, epoch, logs)``, ``on_fit_end(trainer)``,
and ``state_dict()`` / ``load_state_dict(d)`` to survive a resume.
"""
from __future__ import annotations

import copy
import math

from ..errors import check_choice


class Callback:
    def on_fit_start(self, trainer): ...
    def on_epoch_start(self, trainer, epoch: int): ...
    def on_batch_end(self, trainer, logs: dict): ...
    def on_epoch_end(self, trainer, epoch: int, logs: dict): ...
    def on_fit_end(self, trainer): ...
    def state_dict(self) -> dict:
        return {}
    def load_state_dict(self, state: dict) -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; optionally
    restore the best weights at the end."""

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max", patience: int = 5,
                 min_delta: float = 0.0, restore_best: bool = True):
        check_choice("EarlyStopping", "mode", mode, ("min", "max"))
        self.monitor, self.mode, self.patience, self.min_delta, self.restore_best = monitor, mode, patience, min_delta, restore_best
        self.best, self.best_epoch, self.wait, self._best_state = None, -1, 0, None

    def _better(self, v):
        if self.best is None:
            return True
        return v > self.best + self.min_delta if self.mode == "max" else v < self.best - self.min_delta

    def on_epoch_end(self, trainer, epoch, logs):
        v = logs.get(self.monitor)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return
        if self._better(v):
            self.best, self.best_epoch, self.wait = float(v), epoch, 0
            if self.restore_best:
                self._best_state = copy.deepcopy(trainer.module.state_dict())
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.should_stop = True
                trainer.print(f"early stopping at epoch {epoch}: {self.monitor} best {self.best:.4f} at epoch {self.best_epoch}")

    def on_fit_end(self, trainer):
        if self.restore_best and self._best_state is not None:
            trainer.module.load_state_dict(self._best_state)

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait, "best_state": self._best_state}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self._best_state = state.get("best_state")


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_start=lambda trainer, epoch: ...)``."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            setattr(self, name, fn)
