"""The frozen-feature base: a backbone that never changes, its features extracted once (and cached), and a model
fitted on them. No gradient step touches the backbone, so these strategies take no training knobs: no epochs,
learning rate, scheduler, gradient clipping or augmentation.

One ``fit`` for all of them:

    validate -> the labelled training images (2 classes at least; their preprocessing recorded) -> seed
    -> ``setup(train, **roles)`` (the class list; zero-shot reads its semantics here)
    -> the backbone, frozen, in eval mode (warned about when nobody trained it)
    -> ``features(train)`` (``extract``, or a transform of it) -> ``fit_features(X, y, train, **roles)``, y indexing
    ``classes_``

A model on the features that trains by gradient steps (BilinearZSL's map) mixes in :class:`HeadTraining`: the
Trainer and the knobs of a head, none of a backbone's or of images'.

A new frozen-feature strategy implements ``fit_features`` (and ``predict_proba`` or its family's scoring) and adds
its own parameters to ``__init__``.
"""
from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..backbones import Backbone, create_backbone
from ..data import ImageDataset
from ..engine import Trainer, build_optimizer, extract_features
from ..params import BOOL, STR, Interval
from ..utils import count_parameters, seed_everything
from .base import (BACKBONE, INPUT_SIZE, PATH, SEED, NeuralStrategy, Strategy, rebuild_backbone,
                   warn_if_untrained)


class FrozenFeatureStrategy(Strategy):
    """Base of the strategies that fit a model on frozen, cached backbone features (see the module docstring).

    Args:
        backbone: a spec (``builtin:small-cnn``, ``timm:resnet50.a1_in1k``, ``file:PATH``...) or a Backbone.
        pretrained: load hub weights for hub specs. input_size: override the backbone's input size.
        batch_size, cache (True, a directory or False), device, num_workers: feature extraction.
        seed, progress.
    """

    untrained_hint = ""  # the end of the warning about a random backbone: what to do instead
    _parameter_constraints = {
        "backbone": [BACKBONE], "pretrained": [BOOL], "input_size": INPUT_SIZE, "batch_size": [Interval(int, 1)],
        "cache": [BOOL, PATH], "device": [None, STR], "num_workers": [Interval(int, 0)], "seed": SEED,
        "progress": [BOOL],
    }

    def __init__(self, *, backbone="builtin:small-cnn", pretrained: bool = True, input_size=None,
                 batch_size: int = 256, cache=True, device=None, num_workers: int = 0, seed: int = 0,
                 progress: bool = True):
        self.backbone, self.pretrained, self.input_size = backbone, pretrained, input_size
        self.batch_size, self.cache, self.device, self.num_workers = batch_size, cache, device, num_workers
        self.seed, self.progress = seed, progress

    def make_backbone(self) -> Backbone:
        if isinstance(self.backbone, Backbone):
            return self.backbone
        return create_backbone(self.backbone, pretrained=self.pretrained, input_size=self.input_size)

    def extract(self, data: ImageDataset, layer=None) -> np.ndarray:
        """Features (N, D) of ``data`` from the frozen backbone (pooled, or of ``layer``), cached."""
        return np.asarray(extract_features(self.backbone_, self.prepare(data), batch_size=self.batch_size, layer=layer,
                                           cache=self.cache, device=self.device, num_workers=self.num_workers,
                                           progress=self.progress))

    def features(self, data: ImageDataset) -> np.ndarray:
        """What ``fit_features`` and prediction see; default: the pooled embedding."""
        return self.extract(data)

    # -- the one fit ----------------------------------------------------------------------------------------
    def fit(self, train: ImageDataset, val: ImageDataset | None = None, **roles):
        """Extract the features of labelled ``train`` once and fit the model on them; returns self."""
        self.validate()
        train = self._check_train(train)
        seed_everything(self.seed)
        t0 = time.perf_counter()
        self.setup(train, **roles)
        self.backbone_ = self.make_backbone().eval()
        for p in self.backbone_.parameters():
            p.requires_grad_(False)
        warn_if_untrained(self.backbone_, type(self).__name__, self.untrained_hint)
        X = self.features(train)
        self.extract_time_ = time.perf_counter() - t0
        index = {c: i for i, c in enumerate(self.classes_)}
        y = np.array([index[train.classes[label]] for label in train.labels], dtype=np.int64)
        self.history_ = []
        self.fit_features(X, y, train, **roles)
        self.fit_time_ = time.perf_counter() - t0
        self.n_trainable_params_ = self.n_head_params()
        self.n_params_ = count_parameters(self.backbone_) + self.n_trainable_params_
        return self

    def setup(self, train: ImageDataset, **roles) -> None:
        """Before the backbone is built: the class list (default: the training classes)."""
        self.classes_ = list(train.classes)

    def fit_features(self, X: np.ndarray, y: np.ndarray, train: ImageDataset, **roles) -> None:
        """Fit on features ``X`` (N, D) and labels ``y`` (N,) indexing ``classes_``."""
        raise NotImplementedError

    def n_head_params(self) -> int:
        """Parameters fitted on top of the backbone (0 for closed-form class scores)."""
        return 0

    # -- persistence: the backbone's architecture, preprocessing and weights ------------------------------------
    def _extra_state(self) -> dict:
        return backbone_state(self.backbone_)

    def _tensor_state(self) -> dict:
        return backbone_tensors(self.backbone_)

    def _restore(self, state: dict, tensors: dict) -> None:
        self.backbone_ = restore_backbone(state, tensors)
        self.history_ = []


class HeadTraining:
    """The training knobs of a model fitted through the one Trainer on frozen, cached features (BilinearZSL's
    compatibility map): epochs, learning rate, weight decay, optimiser, schedule, warmup, gradient clipping. Its
    batches are feature vectors, not images, so it takes no image-level setting (augmentation, input pipeline,
    memory format) and nothing of a backbone's training (layer rates, BatchNorm policy, checkpoints).

    Mix it in before a :class:`FrozenFeatureStrategy`; ``fit_features`` builds ``model_`` and calls
    :meth:`train_head` with a loader of (features, target) batches; the strategy supplies ``training_step``.
    """

    _parameter_constraints = {k: NeuralStrategy.parameter_constraints()[k] for k in (
        "epochs", "lr", "weight_decay", "optimizer", "scheduler", "warmup_epochs", "grad_clip")}

    def __init__(self, *, epochs: int = 10, lr: float = 1e-3, weight_decay: float = 1e-4, optimizer: str = "adamw",
                 scheduler: str = "cosine", warmup_epochs: float = 0.0, grad_clip: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.epochs, self.lr, self.weight_decay, self.optimizer = epochs, lr, weight_decay, optimizer
        self.scheduler, self.warmup_epochs, self.grad_clip = scheduler, warmup_epochs, grad_clip

    @property
    def module(self) -> nn.Module:
        """What the Trainer optimises: the head."""
        return self.model_

    def configure_optimizer(self):
        groups = [{"params": list(self.module.parameters()), "lr": self.lr, "name": "head"}]
        return build_optimizer(self.optimizer, groups, lr=self.lr, weight_decay=self.weight_decay)

    def train_head(self, loader) -> list[dict]:
        """Train ``model_`` on ``loader`` through the Trainer (on ``device``, else wherever Fabric chooses)."""
        accelerator = "auto" if self.device is None else torch.device(self.device).type
        trainer = Trainer(max_epochs=self.epochs, accelerator=accelerator, scheduler=self.scheduler,
                          warmup_epochs=self.warmup_epochs, grad_clip=self.grad_clip, seed=self.seed,
                          progress=self.progress)
        self.history_ = trainer.fit(self, loader)
        self.model_.eval()
        return self.history_


def backbone_state(backbone: Backbone) -> dict:
    """What rebuilds a frozen backbone besides its weights: the architecture and the preprocessing."""
    return {"arch": backbone.arch, "data_config": backbone.data_config}


def backbone_tensors(backbone: Backbone) -> dict:
    """The frozen backbone's weights, under ``backbone.``."""
    return {f"backbone.{k}": v for k, v in backbone.model.state_dict().items()}


def restore_backbone(state: dict, tensors: dict) -> Backbone:
    """The frozen backbone saved by :func:`backbone_state` and :func:`backbone_tensors`, in eval mode."""
    backbone = rebuild_backbone(state)
    weights = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    if weights:  # the network's own keys; zero-shot models saved before this base kept the wrapper's 'model.'
        wrapped = all(k.startswith("model.") for k in weights)
        (backbone if wrapped else backbone.model).load_state_dict(weights)
    return backbone.eval()
