"""Continual learning over a task sequence: the base of the task-sequence strategies and the evaluation protocol.

Tasks arrive one after another (``tasks=[ImageDataset, ...]``, e.g. Fashion-MNIST split into 5 tasks of 2
classes with :func:`transferkit.data.task_sequence`). The setting is task-incremental
(Rusu 2016; van de Ven & Tolias 2019): the task id is known at test time and routes inference to that
task's head. After training task i the learner is tested on every task j <= i, giving the accuracy matrix
R[i, j], from which :func:`.protocol.continual_metrics` derives average accuracy, forgetting, backward and forward
transfer (Lopez-Paz & Ranzato, "Gradient Episodic Memory", NeurIPS 2017; Chaudhry et al. 2018; the
Avalanche metric definitions).

The strategies built on :class:`TaskSequenceStrategy` are in this package: sequential fine-tuning
(:mod:`.sequential`: one shared backbone fine-tuned task after task, catastrophic forgetting, McCloskey & Cohen
1989), EWC (:mod:`.ewc`, Kirkpatrick et al., PNAS 2017) and progressive networks (:mod:`.progressive`).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ...data import ImageDataset, resolve_augment
from ...engine import classification_metrics
from ...errors import DataError, TransferkitError
from ...utils import count_parameters, seed_everything
from ..base import NeuralStrategy
from .protocol import continual_metrics


class MultiHeadNet(nn.Module):
    """Shared backbone + one linear head per task: ``forward(x, task)`` -> (B, n_classes_task) logits."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList()

    def add_head(self, num_classes: int) -> nn.Linear:
        self.heads.append(nn.Linear(self.backbone.num_features, num_classes))
        return self.heads[-1]

    def forward(self, x, task: int):
        return self.heads[task](self.backbone(x))


class TaskSequenceStrategy(NeuralStrategy):
    """Base of strategies trained on a sequence of tasks through the one Trainer, one ``Trainer.fit`` per task.

    Subclasses implement ``_new_model()``, ``_begin_task(k, data)``, ``_end_task(k, data)``,
    ``task_logits(x, task)`` and ``_trainable()`` (the parameters trained on the current task).
    ``fit(tasks, eval_tasks=None)`` trains every task in order; ``partial_fit(task)`` adds one.
    """

    family = "many-tasks"
    data_roles = ("tasks",)

    # -- fit -------------------------------------------------------------------------------------------
    def fit(self, tasks, eval_tasks=None, **roles):
        """Train on ``tasks`` (a list of ImageDatasets) in order; with ``eval_tasks`` (one test set per task)
        record the accuracy matrix ``accuracy_matrix_`` and ``continual_metrics_``. Returns self."""
        tasks = self._check_tasks(tasks, "tasks")
        if eval_tasks is not None:
            eval_tasks = self._check_tasks(eval_tasks, "eval_tasks")
            if len(eval_tasks) != len(tasks):
                raise DataError(f"eval_tasks has {len(eval_tasks)} test sets for {len(tasks)} tasks; give one per task.")
        for attr in ("model_", "task_classes_", "classes_"):
            self.__dict__.pop(attr, None)
        T = len(tasks)
        R = np.full((T, T), np.nan)
        t0 = time.perf_counter()
        self.history_ = []
        for k, task in enumerate(tasks):
            self.partial_fit(task)
            if eval_tasks is not None:
                for j in range(k + 1):
                    R[k, j] = self.evaluate(eval_tasks[j], task=j)["accuracy"]
        self.fit_time_ = time.perf_counter() - t0
        if eval_tasks is not None:
            self.accuracy_matrix_ = R
            self.continual_metrics_ = continual_metrics(R)
        return self

    def partial_fit(self, task: ImageDataset, **roles):
        """Learn one more task (its own head, task id = its position); earlier tasks' state is kept."""
        self.validate()
        task = self._check_tasks([task], "task")[0]
        self._record_data(task)
        self.augment_ = resolve_augment(self.augment, task)
        first = not hasattr(self, "model_")
        if first:
            seed_everything(self.seed)
            self.backbone_ = self.make_backbone()
            self.task_classes_ = []
            self.history_ = []
            self.model_ = self._new_model()
        k = len(self.task_classes_)
        seed_everything(self.seed + k)
        self.task_classes_.append(list(task.classes))
        self.classes_ = list(task.classes)
        self.current_task_ = k
        self._begin_task(k, task)
        trainer = self.make_trainer(self.callbacks())
        if self.checkpoint_dir:
            trainer.checkpoint_dir = Path(self.checkpoint_dir) / f"task{k}"
        t0 = time.perf_counter()
        hist = trainer.fit(self, self.train_loader(task))
        self.history_ += [{**h, "task": k} for h in hist]
        self._end_task(k, task)
        self.model_.eval()
        self.fit_time_ = getattr(self, "fit_time_", 0.0) if not first else 0.0
        self.fit_time_ += time.perf_counter() - t0
        self.n_params_ = count_parameters(self.model_)
        self.n_trainable_params_ = sum(p.numel() for p in self._trainable())
        return self

    def _check_tasks(self, tasks, role):
        if isinstance(tasks, ImageDataset) or not isinstance(tasks, (list, tuple)) or not tasks:
            raise TransferkitError(f"{type(self).__name__}: {role!r} must be a non-empty list of ImageDatasets "
                                   f"(one per task); got {type(tasks).__name__}.")
        out = []
        for i, t in enumerate(tasks):
            if not isinstance(t, ImageDataset):
                raise TransferkitError(f"{type(self).__name__}: {role}[{i}] is a {type(t).__name__}, not an ImageDataset.")
            labelled = np.flatnonzero(t.labels >= 0)
            if len(np.unique(t.labels[labelled])) < 2:
                raise DataError(f"{type(self).__name__}: {role}[{i}] ({t.name}) needs labelled images of at least 2 classes.")
            out.append(t.subset(labelled) if len(labelled) < len(t) else t)
        return out

    def _task_id(self, task):
        self.check_fitted()
        T = len(self.task_classes_)
        k = T - 1 if task is None else task
        if not isinstance(k, (int, np.integer)) or not -T <= k < T:
            raise TransferkitError(f"The 'task' argument must be a task id in 0..{T - 1} (the order of fit); got {task!r}.")
        return int(k) % T

    # -- the step (shared by the subclasses) ------------------------------------------------------------
    def training_step(self, batch) -> dict:
        x, y = batch
        logits = self.task_logits(x, self.current_task_)
        loss = self.loss(logits, y)
        out = {"loss": loss, "ce": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}
        penalty = self.penalty()
        if penalty is not None:
            out["loss"] = loss + penalty
            out["penalty"] = penalty.detach()
        return out

    def penalty(self):
        return None

    def param_groups(self) -> list[dict]:
        return [{"params": list(self._trainable()), "lr": self.lr, "name": f"task{self.current_task_}"}]

    def logits(self, x):
        return self.task_logits(x, self.current_task_)

    # -- predict / evaluate (the task id routes inference) ------------------------------------------------
    def predict_proba(self, data, task: int | None = None) -> np.ndarray:
        """Class probabilities (N, n_classes of ``task``) for task id ``task`` (default: the last task)."""
        k = self._task_id(task)
        logits = self.infer(data, lambda x: self.task_logits(x, k))
        return torch.softmax(logits, 1).numpy() if len(logits) else np.zeros((0, len(self.task_classes_[k])), np.float32)

    def predict(self, data, task: int | None = None) -> np.ndarray:
        return self.predict_proba(data, task=task).argmax(1)

    def evaluate(self, data: ImageDataset, task: int | None = None) -> dict:
        """Classification metrics of task ``task`` (default: the last) on ``data`` (that task's classes)."""
        k = self._task_id(task)
        labelled = np.flatnonzero(data.labels >= 0)
        if len(labelled) == 0:
            raise DataError(f"evaluate: {data.name or 'the dataset'} has no labelled images.")
        data = data.subset(labelled) if len(labelled) < len(data) else data
        if list(data.classes) != self.task_classes_[k]:
            raise DataError(f"evaluate: {data.name or 'the dataset'} has classes {data.classes} but task {k} was "
                            f"trained on {self.task_classes_[k]}; pass the matching task id.")
        out = classification_metrics(data.labels, proba=self.predict_proba(data, task=k), classes=self.task_classes_[k])
        out["task"] = k
        return out

    # -- persistence ----------------------------------------------------------------------------------------
    def _extra_state(self) -> dict:
        return {**super()._extra_state(), "task_classes": self.task_classes_}

    def _restore(self, state: dict, tensors: dict) -> None:
        self.backbone_ = self._restore_backbone(state)
        self.task_classes_ = []
        self.model_ = self._new_model()
        for k, classes in enumerate(state["task_classes"]):
            self.task_classes_.append(list(classes))
            self.current_task_ = k
            self._begin_task(k, None)
            self._end_task(k, None, restoring=True)
        self.model_.load_state_dict(tensors)
        self.model_.eval()
        self.history_ = state.get("history", [])

