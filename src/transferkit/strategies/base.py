"""Strategy: scikit-learn's estimator contract for transfer-learning strategies.

``__init__`` stores keyword arguments only; ``fit(...)`` returns self; learned state ends in ``_``
(``model_``, ``classes_``, ``history_``); ``predict``, ``predict_proba``, ``evaluate``; ``save`` / ``load``.
Each strategy declares the data roles it needs in ``data_roles`` (e.g. ``("train", "target")``).

:class:`NeuralStrategy` is the base of every strategy that trains a network: it owns the shared
training parameters, builds the backbone, transforms and loaders, and hands itself to the one
:class:`~transferkit.engine.Trainer` as the task. Its ``fit`` is the one lifecycle of them all:

    validate -> the labelled images (``_check_train``) -> ``check_roles`` (the other data roles) -> val split
    -> augmentation -> seed -> ``set_classes`` -> backbone -> ``build_model`` -> ``setup(**roles)``
    -> the Trainer (``train_loader``, ``val_loader``, ``training_step``, callback hooks) -> ``after_fit``

A subclass supplies ``build_model`` and ``training_step`` and, when needed, the other hooks; it does not
write its own ``fit``. ``infer`` is the one inference loop and ``_restore_backbone`` the one restore.
"""
from __future__ import annotations

import inspect
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator
from torch import nn

from ..backbones import Backbone, create_backbone
from ..data import ImageDataset, ImageTransform, resolve_augment
from ..data.transforms import AUGMENT_CHOICES
from ..engine import (EarlyStopping, Trainer, build_optimizer, classification_metrics, infer,
                      make_loader, make_result)
from ..engine.optim import OPTIMIZERS
from ..engine.schedules import SCHEDULES
from ..engine.trainer import ACCELERATORS, PRECISIONS
from ..errors import DataError, TransferkitError
from ..params import BOOL, Interval, Kind, ListOf, Options, check_params, describe
from ..utils import atomic_path, count_parameters, read_json, seed_everything, write_json

ROLES = {
    "train": "labelled training images",
    "val": "labelled validation images (optional)",
    "target": "unlabelled images of the target domain",
    "semantics": "class attributes or descriptions",
    "tasks": "a sequence or set of tasks",
    "teacher": "a trained teacher model",
}


# The five families of DESIGN.md; every strategy declares one.
FAMILIES = ("reuse-weights", "domain-shift", "scarce-data", "many-tasks", "efficiency")
# The package of ``transferkit.strategies`` that holds each family's strategies, one method a module.
FAMILY_PACKAGES = {"reuse-weights": "reuse", "domain-shift": "domain", "scarce-data": "scarce", "many-tasks": "tasks",
                   "efficiency": "efficiency"}



def warn_if_untrained(backbone, owner: str, hint: str = "") -> None:
    """Warn when a strategy that keeps its backbone frozen gets one nobody trained: its features are random
    projections, and what it measures says little about transfer. Said, not refused: a random-feature
    baseline is a legitimate control."""
    if not getattr(backbone, "has_pretrained_weights", True):
        warnings.warn(f"{owner}: the backbone {getattr(backbone, 'spec', '')} has random weights (no pre-trained "
                      f"weights, and {owner} does not train it), so its frozen features carry little information. "
                      f"Give a pre-trained backbone (a timm: or torchvision: model with weights, or "
                      f"file:OUT/backbone.safetensors from `transferkit pretrain`){hint}.", stacklevel=3)


def rebuild_backbone(state: dict, **kwargs) -> Backbone:
    """A saved model's backbone: its architecture ``state['arch']`` without hub weights (the saved tensors hold
    them), with the saved preprocessing ``state['data_config']``; ``kwargs`` go to ``create_backbone``."""
    backbone = create_backbone(state["arch"], pretrained=False, **kwargs)
    backbone.data_config.update({k: tuple(v) if isinstance(v, list) else v for k, v in state["data_config"].items()})
    return backbone


# Constraints (``transferkit.params``) that several strategies' parameters share.
POSITIVE = Interval(float, 0, None, closed="right")
NON_NEGATIVE = Interval(float, 0)
BACKBONE = Kind((str, nn.Module), "a backbone spec (builtin:NAME, timm:NAME, torchvision:NAME, file:PATH) or a "
                                  "Backbone module")
INPUT_SIZE = [None, Interval(int, 1), ListOf(Interval(int, 1), length=2)]
PATH = Kind((str, os.PathLike), "a path")
SEED = [Interval(int, 0, 2**32 - 1)]


class MissingRoleError(TransferkitError):
    """A strategy's ``fit`` needs data roles that were not given; ``missing`` lists them."""

    def __init__(self, strategy: str, missing: list[str]):
        self.strategy, self.missing = strategy, list(missing)
        what = "; ".join(f"{r!r}: {ROLES.get(r, r)}" for r in self.missing)
        super().__init__(f"strategy {strategy!r} needs data role(s) {self.missing} ({what}).")


class Strategy(BaseEstimator):
    """Base of all strategies. Subclasses set ``name``, ``family``, ``data_roles`` and a docstring."""

    name: str = ""
    family: str = ""
    data_roles: tuple[str, ...] = ("train",)
    # True when a training batch is independent images under a loss that is their mean, so that it may be split
    # into micro-batches whose gradients add up to the batch's (engine.memory); not for episodes or paired data.
    splittable_batches: bool = False

    @classmethod
    def _get_param_names(cls):
        """Parameters of every ``__init__`` along the MRO (subclasses pass the shared ones via **kwargs)."""
        names = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass in (object, BaseEstimator):
                continue
            for p in inspect.signature(init).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return sorted(names)

    @classmethod
    def param_names(cls) -> list[str]:
        """The strategy's parameters (those of every ``__init__`` along the MRO), sorted."""
        return cls._get_param_names()

    @classmethod
    def parameter_constraints(cls) -> dict:
        """Every parameter's constraints (``transferkit.params``): each class's ``_parameter_constraints`` along the
        MRO, mixins included, a subclass's entry replacing its base's."""
        out = {}
        for klass in reversed(cls.__mro__):
            out.update(klass.__dict__.get("_parameter_constraints", {}))
        return out

    @classmethod
    def describe_params(cls) -> list[dict]:
        """One row per parameter: ``name``, ``default`` and ``accepts`` (its constraints in words), sorted by name;
        what ``transferkit strategies --params NAME`` prints."""
        constraints, defaults = cls.parameter_constraints(), cls().get_params(deep=False)
        return [{"name": k, "default": defaults[k], "accepts": describe(constraints.get(k, []))}
                for k in cls.param_names()]

    def validate(self) -> "Strategy":
        """Check every parameter against its declared constraints, then the relations between parameters
        (``_check_combinations``), without fitting; raises one :class:`TransferkitError` naming the first bad
        parameter, what it accepts and the value given. ``fit`` calls it first; the command line, ``bench`` and the
        tour call it on every strategy before any work starts. Returns self."""
        check_params(type(self).__name__, self.parameter_constraints(), self.get_params(deep=False))
        self._check_combinations()
        return self

    def _check_combinations(self) -> None:
        """Relations between parameters that no single parameter's constraints state (none by default)."""

    @classmethod
    def fit_roles(cls, available: dict) -> dict:
        """The keyword data roles of ``fit`` (every declared role but ``train`` and ``val``) from the data a user
        has, by role name; raises :class:`MissingRoleError` naming each declared role that is missing."""
        needed = [r for r in cls.data_roles if r not in ("train", "val")]
        missing = [r for r in needed if available.get(r) is None]
        if missing:
            raise MissingRoleError(cls.name, missing)
        return {r: available[r] for r in needed}

    # -- contract: ``fit(train, val=None, **roles) -> self`` (NeuralStrategy's lifecycle, FrozenFeatureStrategy's,
    # the task-sequence base's, CLIP's), then: ---------------------------------------------------------------
    def predict_proba(self, data) -> np.ndarray:
        raise NotImplementedError

    def predict(self, data) -> np.ndarray:
        """Predicted class indices (N,); ``self.classes_[pred]`` gives names."""
        return self.predict_proba(data).argmax(1)

    def evaluate(self, data: ImageDataset) -> dict:
        """Accuracy, balanced accuracy, macro-F1, per-class accuracy, confusion matrix and ECE on ``data``."""
        self.check_fitted()
        labelled = np.flatnonzero(data.labels >= 0)
        if len(labelled) == 0:
            raise DataError(f"evaluate: {data.name or 'the dataset'} has no labelled images.")
        data = data.subset(labelled) if len(labelled) < len(data) else data
        self.check_classes(data)
        proba = self.predict_proba(data)
        return classification_metrics(data.labels, proba=proba, classes=self.classes_)

    def _record_data(self, train) -> None:
        """Keep the training data's preprocessing (``ImageDataset.preprocess``), to redo on raw files later."""
        self.preprocess_ = dict(getattr(train, "preprocess", None) or {})

    def _check_train(self, train: ImageDataset) -> ImageDataset:
        """The labelled part of ``train``, refused without 2 classes; records its preprocessing (``prepare``)."""
        owner = type(self).__name__
        if not isinstance(train, ImageDataset):
            raise TransferkitError(f"{owner}.fit expects an ImageDataset as 'train'; got {type(train).__name__}.")
        self._record_data(train)
        labelled = np.flatnonzero(train.labels >= 0)
        present = np.unique(train.labels[labelled])
        if len(present) < 2:
            raise DataError(f"{owner} needs at least 2 classes with labelled images; {train.name or 'the training set'} "
                            f"has {len(present)} ({[train.classes[c] for c in present]}).")
        return train.subset(labelled) if len(labelled) < len(train) else train

    def prepare(self, data):
        """``data`` as this model must see it: raw image files get the preprocessing its training data had (an
        inversion, a resize: the loader's options), so a model trained on ``omniglot?invert=true`` reads the
        original black-on-white PNGs right. Arrays, tensors and already preprocessed datasets pass unchanged."""
        steps = getattr(self, "preprocess_", None)
        if steps and isinstance(data, ImageDataset) and not data.is_array and not data.preprocess:
            return data.with_preprocess(steps)
        return data

    def check_fitted(self):
        if not hasattr(self, "classes_"):
            raise TransferkitError(f"This {type(self).__name__} is not fitted yet; call fit() first.")

    def check_classes(self, data: ImageDataset):
        if list(data.classes) != list(self.classes_):
            a, b = set(data.classes), set(self.classes_)
            raise DataError(f"{data.name or 'The dataset'} has classes that differ from the fitted ones: "
                            f"only in the data {sorted(a - b)}, only in the model {sorted(b - a)}"
                            + ("" if a != b else " (same names, different order)") + ".")

    # -- results -------------------------------------------------------------------------------
    def json_params(self) -> dict:
        out = {}
        for k, v in self.get_params(deep=False).items():
            out[k] = v if isinstance(v, (str, int, float, bool, type(None), list, tuple, dict)) else repr(v)
        return out

    def result(self, metrics: dict, *, data=None, extra=None) -> dict:
        """A result record for this fitted strategy (see engine.results)."""
        timings = {"fit_s": getattr(self, "fit_time_", None)}
        extra = {"n_params": getattr(self, "n_params_", None), "n_trainable_params": getattr(self, "n_trainable_params_", None),
                 "micro_batch_size": getattr(self, "micro_batch_size_", None),
                 "classes": list(getattr(self, "classes_", [])), **(extra or {})}
        return make_result(strategy=self.name, family=self.family, params=self.json_params(), metrics=metrics,
                           history=getattr(self, "history_", []), timings=timings, data=data, extra=extra)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory) -> Path:
        """Write ``strategy.json`` (name, params, classes, state) and ``model.safetensors``."""
        from safetensors.torch import save_file

        self.check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"kind": "transferkit.strategy", "name": self.name, "params": self.json_params(),
                "classes": list(self.classes_), "preprocess": getattr(self, "preprocess_", {}),
                "state": self._extra_state()}
        tensors = self._tensor_state()
        if tensors:
            with atomic_path(d / "model.safetensors", ".safetensors") as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
        write_json(d / "strategy.json", meta)
        return d

    @classmethod
    def load(cls, directory) -> "Strategy":
        """Rebuild a saved strategy (any registered class) from ``directory``.

        A directory that is incomplete or edited (no ``strategy.json``, broken JSON, missing keys, a
        missing ``model.safetensors``, weights that no longer fit the classes) raises a
        :class:`TransferkitError` naming the file, never a library traceback.
        """
        from .registry import get_strategy_class

        d = Path(directory)
        meta_path = d / "strategy.json"
        if not d.is_dir():
            raise TransferkitError(f"Saved model not found: {d} is not a directory (give OUT/model of `transferkit fit`).")
        if not meta_path.exists():
            raise TransferkitError(f"{d} is not a saved transferkit strategy (no strategy.json).")
        try:
            meta = read_json(meta_path)
        except (ValueError, UnicodeDecodeError) as e:
            raise TransferkitError(f"{meta_path} is not valid JSON ({e}); the saved model is damaged. Restore the "
                                   f"directory as `fit` wrote it, or train again.") from None
        except OSError as e:
            raise TransferkitError(f"Cannot read {meta_path}: {e.strerror or e}.") from None
        if not isinstance(meta, dict):
            raise TransferkitError(f"{meta_path} must hold a JSON object; got {type(meta).__name__}.")
        if meta.get("kind", "transferkit.strategy") != "transferkit.strategy":
            raise TransferkitError(f"{meta_path} is a {meta.get('kind')!r} file, not a saved strategy.")
        missing = [k for k in ("name", "params", "classes") if k not in meta]
        if missing:
            raise TransferkitError(f"{meta_path} lacks the key(s) {missing} (it needs name, params, classes and state); "
                                   f"the saved model is incomplete or was edited.")
        if not isinstance(meta["params"], dict) or not isinstance(meta.get("state", {}), dict):
            raise TransferkitError(f"{meta_path}: 'params' and 'state' must be JSON objects.")
        if not isinstance(meta["classes"], list) or not meta["classes"]:
            raise TransferkitError(f"{meta_path}: 'classes' must be a non-empty list of class names; got {meta['classes']!r}.")
        klass = get_strategy_class(meta["name"])
        params = {k: v for k, v in meta["params"].items() if k in klass.param_names()}
        if len(params) < len(meta["params"]):
            warnings.warn(f"{meta_path}: {klass.__name__} no longer takes the saved parameter(s) "
                          f"{sorted(set(meta['params']) - set(params))} (saved by an older transferkit); they are "
                          f"ignored.", stacklevel=2)
        obj = klass(**params)
        obj.classes_ = [str(c) for c in meta["classes"]]
        obj.preprocess_ = dict(meta.get("preprocess") or {})  # models saved before it was recorded have none
        from ..backbones.weights import load_weights  # corrupt/truncated files raise a TransferkitError

        weights = d / "model.safetensors"
        tensors = load_weights(weights) if weights.exists() else {}
        try:
            obj._restore(meta.get("state", {}), tensors)
        except TransferkitError:
            raise
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
            raise TransferkitError(_explain_restore_error(d, meta, e, weights.exists())) from None
        return obj

    def _extra_state(self) -> dict:
        return {}

    def _tensor_state(self) -> dict:
        return {}

    def _restore(self, state: dict, tensors: dict) -> None:
        raise NotImplementedError


def _explain_restore_error(d: Path, meta: dict, e: Exception, has_weights: bool) -> str:
    """One sentence for a saved model whose files do not fit together."""
    import re

    text = str(e)
    if not has_weights and ("Missing key" in text or isinstance(e, KeyError)):
        return (f"{d / 'model.safetensors'} is missing: {d / 'strategy.json'} describes a {meta['name']!r} model "
                f"whose weights are in that file. Copy the complete model directory, or train again.")
    m = re.search(r"size mismatch for ([\w.]+): copying a param with shape (torch\.Size\(\[[^\]]*\]\)) from "
                  r"checkpoint, the shape in current model is (torch\.Size\(\[[^\]]*\]\))", text)
    if m:
        return (f"{d / 'model.safetensors'} does not fit {d / 'strategy.json'}: {m.group(1)} has shape "
                f"{m.group(2)[11:-1]} in the weights but {m.group(3)[11:-1]} for the {len(meta['classes'])} classes "
                f"and parameters listed in strategy.json. One of the files was edited or comes from another model; "
                f"restore the directory as `fit` wrote it.")
    if "Missing key" in text or "Unexpected key" in text:
        keys = re.findall(r'"([^"]+)"', text)[:4]
        return (f"{d / 'model.safetensors'} does not fit {d / 'strategy.json'}: the weights and the model differ "
                f"in the tensors {keys}. One of the files was edited or comes from another model.")
    if isinstance(e, KeyError):
        return (f"{d / 'strategy.json'} lacks {e} in its 'state'; the saved model is incomplete or was edited. "
                f"Restore the directory as `fit` wrote it, or train again.")
    first = " ".join(text.split())[:200]
    return (f"Cannot restore the saved model {d}: its files do not fit together ({type(e).__name__}: {first}). "
            f"Restore the directory as `fit` wrote it, or train again.")


class Classifier(nn.Module):
    """Backbone + linear head: (B, C, H, W) in [0, 1] -> logits (B, n_classes)."""

    def __init__(self, backbone: Backbone, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone.num_features, num_classes)

    def features(self, x):
        return self.backbone(x)

    def forward(self, x):
        return self.head(self.dropout(self.backbone(x)))


class NeuralStrategy(Strategy):
    """Shared training parameters of every network-training strategy.

    Args:
        backbone: a spec (``builtin:small-cnn``, ``timm:resnet50.a1_in1k``, ``file:PATH``...) or a Backbone.
        pretrained: load hub weights for hub specs.
        epochs, batch_size, lr, weight_decay, optimizer ('adamw', 'adam', 'sgd'): the optimisation.
        scheduler ('cosine', 'onecycle', 'linear', 'constant'), warmup_epochs, grad_clip.
        label_smoothing: cross-entropy label smoothing (Szegedy et al. 2016).
        augment: 'auto' (default: 'flip' on colour photographs, 'none' on grey images; see
            data.resolve_augment), 'none', 'light', 'flip', 'strong' (see ImageTransform).
        input_size: override the backbone's input size (int or (H, W)).
        val_fraction: hold out this stratified fraction of ``train`` for validation when no ``val`` is given.
        early_stopping: patience in epochs on validation accuracy (needs validation data), or None.
        precision, accelerator, devices: Lightning Fabric settings (``devices=2`` is DDP).
        checkpoint_dir, resume: per-epoch checkpoints and resuming.
        num_workers, seed, progress.
        channels_last: NHWC memory format for the model and 4-D input batches (faster convolutions under
            AMP on recent GPUs; default False).
        loggers: metric logs written under ``checkpoint_dir/logs``: any of 'csv', 'tensorboard'.
    """

    def __init__(self, *, backbone="builtin:small-cnn", pretrained: bool = True, epochs: int = 10,
                 batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4, optimizer: str = "adamw",
                 scheduler: str = "cosine", warmup_epochs: float = 0.0, grad_clip: float | None = None,
                 label_smoothing: float = 0.0, augment: str = "auto", input_size=None, val_fraction: float = 0.0,
                 early_stopping: int | None = None, precision: str = "auto", accelerator: str = "auto",
                 devices: int = 1, checkpoint_dir=None, resume: bool = False, num_workers: int = 0,
                 seed: int = 0, progress: bool = True, channels_last: bool = False,
                 loggers=("csv",)):
        self.backbone, self.pretrained, self.epochs, self.batch_size = backbone, pretrained, epochs, batch_size
        self.lr, self.weight_decay, self.optimizer, self.scheduler = lr, weight_decay, optimizer, scheduler
        self.warmup_epochs, self.grad_clip, self.label_smoothing, self.augment = warmup_epochs, grad_clip, label_smoothing, augment
        self.input_size, self.val_fraction, self.early_stopping = input_size, val_fraction, early_stopping
        self.precision, self.accelerator, self.devices = precision, accelerator, devices
        self.checkpoint_dir, self.resume, self.num_workers, self.seed, self.progress = checkpoint_dir, resume, num_workers, seed, progress
        self.channels_last, self.loggers = channels_last, loggers

    _parameter_constraints = {
        "backbone": [BACKBONE], "pretrained": [BOOL], "epochs": [Interval(int, 1)], "batch_size": [Interval(int, 1)],
        "lr": [POSITIVE], "weight_decay": [NON_NEGATIVE], "optimizer": [Options(*OPTIMIZERS)],
        "scheduler": [Options(*SCHEDULES)], "warmup_epochs": [NON_NEGATIVE], "grad_clip": [None, POSITIVE],
        "label_smoothing": [Interval(float, 0, 1)], "augment": [Options(*AUGMENT_CHOICES)], "input_size": INPUT_SIZE,
        "val_fraction": [Interval(float, 0, 0.9)], "early_stopping": [None, Interval(int, 1)],
        "precision": [Options(*PRECISIONS)], "accelerator": [Options(*ACCELERATORS)], "devices": [Interval(int, 1)],
        "checkpoint_dir": [None, PATH], "resume": [BOOL], "num_workers": [Interval(int, 0)], "seed": SEED,
        "progress": [BOOL], "channels_last": [BOOL], "loggers": [None, ListOf(Options("csv", "tensorboard"))],
    }

    # -- building blocks ---------------------------------------------------------------------------
    def backbone_kwargs(self) -> dict:
        """Extra keyword arguments of ``create_backbone``, for training and for ``load`` alike."""
        return {}

    def make_backbone(self) -> Backbone:
        if isinstance(self.backbone, Backbone):
            return self.backbone
        return create_backbone(self.backbone, pretrained=self.pretrained, input_size=self.input_size,
                               **self.backbone_kwargs())

    def build_model(self, backbone: Backbone, num_classes: int) -> nn.Module:
        """The network this strategy trains; default: backbone + linear head."""
        return Classifier(backbone, num_classes)

    @property
    def module(self) -> nn.Module:
        """What the Trainer optimises (override to add critics, teachers...)."""
        return self.model_

    def param_groups(self) -> list[dict]:
        """Named parameter groups with learning rates; default: one group at ``lr``."""
        return [{"params": list(self.module.parameters()), "lr": self.lr, "name": "all"}]

    def configure_optimizer(self):
        return build_optimizer(self.optimizer, self.param_groups(), lr=self.lr, weight_decay=self.weight_decay)

    def transform(self, train: bool) -> ImageTransform:
        augment = getattr(self, "augment_", None) or ("none" if self.augment == "auto" else self.augment)
        return ImageTransform(self.backbone_.data_config, train=train, augment=augment if train else "none")

    def loader(self, data: ImageDataset, *, train: bool, batch_size: int | None = None):
        """A loader over ``data``; an inference batch size given here (predict, evaluate: 256) is lowered to
        what fits the inference memory budget for this backbone and input size (engine.inference_batch_size),
        so evaluating an ImageNet model at 224 px does not hold 256 images' activations at once."""
        bs = batch_size or self.batch_size
        if not train and batch_size is not None:
            bs = self._inference_batch(bs)
        return make_loader(self.prepare(data).with_transform(self.transform(train)), bs,
                           shuffle=train, seed=self.seed, num_workers=self.num_workers, drop_last=train)

    def _inference_batch(self, max_batch: int) -> int:
        from ..engine.features import inference_batch_size

        bb = getattr(self, "backbone_", None)
        if not isinstance(bb, nn.Module) or not hasattr(bb, "data_config"):
            return max_batch
        try:  # the probe runs once per backbone and shape (engine.features memoises it)
            return inference_batch_size(bb, tuple(bb.data_config["input_size"]), max_batch=max_batch)
        except Exception:  # an unusual backbone the one-image probe cannot run: keep the batch asked for
            return max_batch

    def _micro_batch(self) -> int | None:
        """The physical training batch when ``batch_size`` images' activations would exceed the training memory
        budget (engine.memory: 1 GiB on a CPU), else None; only for strategies whose batches are independent
        images under a mean loss (``splittable_batches``), where accumulation gives the same gradient."""
        if not self.splittable_batches:
            return None
        from ..engine.memory import default_train_budget_mb, training_batch_size
        from ..engine.trainer import _runs_on_cpu

        bb = self.backbone_
        if not hasattr(bb, "data_config"):
            return None
        budget = default_train_budget_mb("cpu" if _runs_on_cpu(self.accelerator) else "cuda")
        try:  # the probe runs on the CPU before Fabric moves the model; activation sizes do not depend on the device
            size = training_batch_size(self.model_, tuple(bb.data_config["input_size"]), max_batch=self.batch_size,
                                       memory_budget_mb=budget, device="cpu")
        except Exception:  # an unusual model the two-image probe cannot run: train on the batch asked for
            return None
        return size if size < self.batch_size else None

    def train_loader(self, train: ImageDataset, **roles):
        """The training loader; strategies with paired or episodic data override this."""
        return self.loader(train, train=True)

    def val_loader(self, val: ImageDataset):
        """The validation loader (what ``validation_metrics`` reads); strategies with other targets override this."""
        return self.loader(val, train=False)

    def make_trainer(self, callbacks=()) -> Trainer:
        cbs = list(callbacks)
        if self.early_stopping:
            cbs.append(EarlyStopping("val_accuracy", "max", patience=self.early_stopping))
        return Trainer(max_epochs=self.epochs, accelerator=self.accelerator, devices=self.devices,
                       precision=self.precision, scheduler=self.scheduler, warmup_epochs=self.warmup_epochs,
                       grad_clip=self.grad_clip, callbacks=cbs, checkpoint_dir=self.checkpoint_dir,
                       resume=self.resume, seed=self.seed, progress=self.progress,
                       channels_last=self.channels_last, loggers=self.loggers,
                       micro_batch_size=getattr(self, "micro_batch_size_", None))

    def loss(self, logits, y):
        return nn.functional.cross_entropy(logits, y, label_smoothing=self.label_smoothing)

    def training_step(self, batch) -> dict:
        x, y = batch
        logits = self.model_(x)
        loss = self.loss(logits, y)
        return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean()}

    def validation_metrics(self, loader) -> dict:
        """Loss and accuracy on the validation loader (the Trainer has the model in eval mode meanwhile)."""
        logits, y = infer(loader, self.logits, device=next(self.module.parameters()).device, targets=True)
        if not len(y):
            return {"val_loss": 0.0, "val_accuracy": 0.0}
        y = y.long()
        return {"val_loss": float(nn.functional.cross_entropy(logits, y)),
                "val_accuracy": int((logits.argmax(1) == y).sum()) / len(y)}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for a batch in [0, 1] pixel space (B, C, H, W) -> (B, n_classes)."""
        return self.model_(x)

    # -- fit / predict -------------------------------------------------------------------------------

    def _split_val(self, train, val):
        if val is None and self.val_fraction:
            from ..data import stratified_split

            train, val = stratified_split(train, self.val_fraction, seed=self.seed)
        return train, val

    def fit(self, train: ImageDataset, val: ImageDataset | None = None, **roles):
        """Train on labelled ``train`` (and the other declared roles); returns self."""
        self.validate()
        labelled = train = self._check_train(train)
        roles = self.check_roles(train, **roles)
        train, val = self._split_val(train, val)
        self.augment_ = resolve_augment(self.augment, train)
        seed_everything(self.seed)
        self.set_classes(train)
        self.backbone_ = self.make_backbone()
        self.model_ = self.build_model(self.backbone_, len(self.classes_))
        self.micro_batch_size_ = self._micro_batch()  # before setup freezes anything: the probe needs every gradient
        self.setup(train, **roles)
        t0 = time.perf_counter()
        trainer = self.make_trainer(self.callbacks())
        self.history_ = trainer.fit(self, self.train_loader(train, **roles),
                                    self.val_loader(val) if val is not None else None)
        self.fit_time_ = time.perf_counter() - t0
        self.model_.eval()
        self.n_params_ = count_parameters(self.model_)
        self.n_trainable_params_ = getattr(self, "n_trainable_params_", None) or count_parameters(self.model_, trainable_only=True)
        self.after_fit(labelled, **roles)
        return self

    def check_roles(self, train: ImageDataset, **roles) -> dict:
        """Hook on the data roles besides ``train`` (a target domain, a teacher...) before anything is built:
        check them against ``train`` and return them as ``setup`` and ``train_loader`` will get them."""
        return roles

    def set_classes(self, train: ImageDataset) -> None:
        """Hook: what the model predicts, learned from the training split: ``classes_`` (and, for multi-task
        learning, the tasks)."""
        self.classes_ = list(train.classes)

    def setup(self, train: ImageDataset, **roles) -> None:
        """Hook before training (freeze layers, build critics, cache teacher outputs...)."""

    def after_fit(self, train: ImageDataset, **roles) -> None:
        """Hook after training, the model in eval mode (summaries of the fitted model, diagnostics...); ``train``
        is every labelled training image, before the validation split."""

    def callbacks(self) -> list:
        return []

    def infer(self, data, fn=None, *, batch_size: int = 256) -> torch.Tensor:
        """``fn(x)`` (default: :meth:`logits`) of every image of ``data``, an ImageDataset (batches of at most
        ``batch_size``, lowered to the inference memory budget) or a [0, 1] tensor batch (B, C, H, W), as float32
        on the CPU; the model in eval mode under ``inference_mode`` meanwhile (``engine.infer``)."""
        device = next(self.model_.parameters()).device
        batches = [(data, None)] if isinstance(data, torch.Tensor) else self.loader(data, train=False,
                                                                                   batch_size=batch_size)
        return infer(batches, fn or self.logits, device=device, modules=(self.module,))

    def predict_proba(self, data) -> np.ndarray:
        """Class probabilities (N, n_classes) for an ImageDataset or a [0, 1] tensor batch (B, C, H, W)."""
        self.check_fitted()
        logits = self.infer(data)
        return torch.softmax(logits, 1).numpy() if len(logits) else np.zeros((0, len(self.classes_)), np.float32)

    # -- persistence -------------------------------------------------------------------------------------
    def _extra_state(self) -> dict:
        return {"data_config": self.backbone_.data_config, "arch": self.backbone_.arch,
                "history": getattr(self, "history_", [])}

    def _tensor_state(self) -> dict:
        return self.model_.state_dict()

    def _restore_backbone(self, state: dict) -> Backbone:
        return rebuild_backbone(state, **self.backbone_kwargs())

    def _restore(self, state: dict, tensors: dict) -> None:
        self.backbone_ = self._restore_backbone(state)
        self.model_ = self.build_model(self.backbone_, len(self.classes_))
        self.model_.load_state_dict(tensors)
        self.model_.eval()
        self.history_ = state.get("history", [])
