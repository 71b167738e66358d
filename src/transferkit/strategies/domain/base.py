"""Unsupervised domain adaptation, the shared machinery: labelled source + unlabelled target -> a model that works
on the target.

Strategies (all through the one Trainer, source and target batches paired by ``engine.PairedLoader`` and
forwarded together, as in TLlib):

``source-only``  cross-entropy on the source only (the baseline every method must beat).
``dann``         a domain critic behind a gradient-reversal layer (Ganin & Lempitsky, ICML 2015; Ganin et al.,
                 JMLR 2016), lambda ramped by ``2 / (1 + exp(-gamma * p)) - 1`` with gamma = 10.
``mmd``          DAN: multi-kernel MMD between source and target embeddings (Long et al., ICML 2015), five
                 Gaussian kernels at bandwidths ``{1/4, 1/2, 1, 2, 4} x`` the mean pairwise distance.
``coral``        Deep CORAL: match the embeddings' covariances (Sun & Saenko, ECCV-W 2016).
``cdan``         conditional adversarial: the critic sees ``features (x) predictions`` (Long et al., NeurIPS
                 2018), with entropy conditioning (CDAN+E) on by default.

Model selection without target labels: after every epoch the target predictions are scored by unsupervised
validators -- information maximisation (IM, Shi & Sha 2012; Musgrave et al. 2022), mean prediction entropy and
soft neighbourhood density (SND, Saito et al., ICCV 2021) -- and the epoch with the best ``selection`` score is
kept (optional early stopping on it). A labelled ``target_test`` passed to ``fit`` is used *only* to log
``oracle_target_accuracy`` per epoch (never for selection). Shift diagnostics: the proxy A-distance (Ben-David
et al. 2007) between source and target embeddings before and after adaptation, and a 2-D t-SNE map of both.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...data import ImageDataset
from ...data.domains import align_classes
from ...engine import EarlyStopping, PairedLoader, proxy_a_distance
from ...errors import DataError, TransferkitError
from ...params import BOOL, Interval, Options
from ..base import NON_NEGATIVE, NeuralStrategy
from .validators import SELECTIONS, embedding_map, entropy_score, im_score, snd_score


class DAModel(nn.Module):
    """backbone -> optional bottleneck (Linear-BN-ReLU) -> linear head; ``features(x)`` is what is aligned."""

    def __init__(self, backbone, num_classes: int, bottleneck_dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        d = backbone.num_features
        self.bottleneck = (nn.Sequential(nn.Linear(d, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.ReLU(inplace=True))
                           if bottleneck_dim else nn.Identity())
        self.out_features = bottleneck_dim or d
        self.head = nn.Linear(self.out_features, num_classes)

    def features(self, x):
        return self.bottleneck(self.backbone(x))

    def forward(self, x):
        return self.head(self.features(x))


class DomainAdaptation(NeuralStrategy):
    """Shared machinery of the domain-adaptation strategies (see the module docstring).

    Args (besides NeuralStrategy's):
        trade_off: weight of the transfer loss (1.0 in DANN, DAN, CDAN and TLlib).
        bottleneck_dim: a Linear-BN-ReLU bottleneck before the head (TLlib uses 256 on ResNet-50); None = none.
        backbone_lr_scale: the backbone's learning rate relative to ``lr`` (0.1 in Ganin 2016 and Long 2015 for
            ImageNet backbones; 1.0 for small backbones whose low-level filters must move).
        selection: unsupervised validator choosing the kept epoch: 'im' (default), 'snd', 'entropy', 'last'.
        selection_patience: stop when the validator has not improved for this many epochs (None = never).
        selection_samples: target images scored by the validators each epoch.
        diagnostics: compute the proxy A-distance before and after adaptation (``shift_``).

    ``fit(train, val=None, target=..., target_test=None)``: ``target`` is unlabelled (labels are hidden if present);
    ``target_test`` (labelled) is used only for the per-epoch ``oracle_target_accuracy`` log.
    """

    family = "domain-shift"
    data_roles = ("train", "target")

    _parameter_constraints = {
        "trade_off": [NON_NEGATIVE], "bottleneck_dim": [None, Interval(int, 1)], "backbone_lr_scale": [NON_NEGATIVE],
        "selection": [Options(*SELECTIONS)], "selection_patience": [None, Interval(int, 1)],
        "selection_samples": [Interval(int, 2)], "diagnostics": [BOOL],
    }

    def __init__(self, *, trade_off: float = 1.0, bottleneck_dim: int | None = None, backbone_lr_scale: float = 1.0,
                 selection: str = "im", selection_patience: int | None = None, selection_samples: int = 1000,
                 diagnostics: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.trade_off, self.bottleneck_dim, self.backbone_lr_scale = trade_off, bottleneck_dim, backbone_lr_scale
        self.selection, self.selection_patience = selection, selection_patience
        self.selection_samples, self.diagnostics = selection_samples, diagnostics

    # -- parameters and model --------------------------------------------------------------------------
    def build_model(self, backbone, num_classes: int) -> nn.Module:
        return DAModel(backbone, num_classes, self.bottleneck_dim)

    def build_critic(self, num_classes: int) -> nn.Module | None:
        """Extra trained modules (domain critics); None when the method has none."""
        return None

    @property
    def module(self) -> nn.Module:
        module = getattr(self, "module_", None)
        return module if module is not None else self.model_

    def param_groups(self) -> list[dict]:
        backbone = list(self.model_.backbone.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.module.parameters() if id(p) not in ids]
        return [{"params": backbone, "lr": self.lr * self.backbone_lr_scale, "name": "backbone"},
                {"params": rest, "lr": self.lr, "name": "new"}]

    # -- fit -----------------------------------------------------------------------------------------------
    def check_roles(self, train: ImageDataset, target: ImageDataset | None = None,
                    target_test: ImageDataset | None = None, **roles) -> dict:
        """The unlabelled ``target`` (labels hidden, classes aligned with the source) and the optional labelled
        ``target_test``, kept for the per-epoch oracle log only; the target images the validators score."""
        owner = type(self).__name__
        if target is None:
            raise TransferkitError(f"{owner} needs the 'target' role: unlabelled images of the target domain, "
                                   f"e.g. {owner}(...).fit(source, target=target_images).")
        target = align_classes(train, target, owner).unlabelled()
        if len(target) < 2:
            raise DataError(f"{owner}: the target has {len(target)} image(s); at least 2 are needed.")
        self._target_test = None if target_test is None else align_classes(train, target_test, owner, "target_test")
        rng = np.random.default_rng(self.seed)
        self._score_idx = np.sort(rng.choice(len(target), min(len(target), self.selection_samples), replace=False))
        self._target = target
        return {**roles, "target": target}

    def setup(self, train: ImageDataset, target: ImageDataset = None, **roles) -> None:
        critic = self.build_critic(len(self.classes_))
        self.module_ = nn.ModuleDict({"model": self.model_, "critic": critic}) if critic is not None else None
        self.shift_ = {}
        if self.diagnostics:
            self.shift_["proxy_a_distance_before"] = self._pad(train, target)

    def train_loader(self, train: ImageDataset, target: ImageDataset = None, **roles):
        return PairedLoader(self.loader(train, train=True), self.loader(target, train=True))

    def callbacks(self) -> list:
        monitor, mode = SELECTIONS[self.selection]
        if monitor is None:
            return []
        patience = self.selection_patience if self.selection_patience else self.epochs + 1
        return [EarlyStopping(monitor, mode, patience=patience, restore_best=True)]

    # -- the step ------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer):
        self._trainer = trainer

    @property
    def progress_(self) -> float:
        t = getattr(self, "_trainer", None)
        return t.global_step / max(1, t.total_steps) if t is not None else 1.0

    def training_step(self, batch) -> dict:
        (xs, ys), (xt, _) = batch
        f = self.model_.features(torch.cat([xs, xt]))
        logits = self.model_.head(f)
        ns = xs.shape[0]
        cls_loss = self.loss(logits[:ns], ys)
        transfer, logs = self.transfer_loss(f[:ns], f[ns:], logits[:ns], logits[ns:])
        return {"loss": cls_loss + self.trade_off * transfer, "cls_loss": cls_loss, "transfer_loss": transfer,
                "acc": (logits[:ns].argmax(1) == ys).float().mean(), **logs}

    def transfer_loss(self, fs, ft, ls, lt) -> tuple[torch.Tensor, dict]:
        """The method's alignment loss on source/target features (B, D) and logits (B, K)."""
        raise NotImplementedError

    # -- validators, oracle --------------------------------------------------------------------------------
    def on_epoch_end(self, trainer, epoch, logs):
        proba = self._proba(self._target.subset(self._score_idx))
        logs.update({"target_im": im_score(proba), "target_snd": snd_score(proba),
                     "target_entropy": entropy_score(proba)})
        if self._target_test is not None:
            p = self._proba(self._target_test)
            logs["oracle_target_accuracy"] = float((p.argmax(1) == self._target_test.labels).mean())

    def after_fit(self, train: ImageDataset, target: ImageDataset = None, **roles) -> None:
        if self.diagnostics:
            self.shift_["proxy_a_distance_after"] = self._pad(train, target)

    def _proba(self, data) -> np.ndarray:
        return torch.softmax(self.infer(data), 1).numpy()

    def embed(self, data: ImageDataset, max_samples: int | None = None) -> np.ndarray:
        """Adapted embeddings ``model.features(x)`` (N, D) of ``data`` (a seeded subsample with ``max_samples``)."""
        if max_samples is not None and len(data) > max_samples:
            idx = np.sort(np.random.default_rng(self.seed).choice(len(data), max_samples, replace=False))
            data = data.subset(idx)
        return self.infer(data, self.model_.features).numpy()

    def _pad(self, source, target) -> float:
        return proxy_a_distance(self.embed(source, 1000), self.embed(target, 1000), seed=self.seed)

    # -- reports -------------------------------------------------------------------------------------------
    def selection_report(self) -> dict:
        """Which epoch the unsupervised validator kept, its score, and the oracle accuracy of that epoch."""
        monitor, mode = SELECTIONS[self.selection]
        hist = getattr(self, "history_", [])
        if not hist:
            return {}
        if monitor is None:
            best = len(hist) - 1
        else:
            vals = [h.get(monitor, float("nan")) for h in hist]
            best = int(np.nanargmax(vals) if mode == "max" else np.nanargmin(vals))
        out = {"validator": self.selection, "monitor": monitor, "selected_epoch": best,
               "score": hist[best].get(monitor) if monitor else None}
        if "oracle_target_accuracy" in hist[best]:
            out["oracle_target_accuracy_selected"] = hist[best]["oracle_target_accuracy"]
            out["oracle_target_accuracy_best_epoch"] = max(h["oracle_target_accuracy"] for h in hist)
            out["oracle_target_accuracy_last_epoch"] = hist[-1]["oracle_target_accuracy"]
        return out

    def domain_report(self, source: ImageDataset, target: ImageDataset, *, target_test: ImageDataset | None = None,
                      with_map: bool = True, max_points: int = 300) -> dict:
        """A result record: oracle target accuracy (labelled ``target_test``, evaluation only), validator scores,
        the model-selection summary, the proxy A-distance before/after and a t-SNE map of both domains."""
        self.check_fitted()
        metrics = {}
        if target_test is not None:
            target_test = align_classes(source, target_test, type(self).__name__, "target_test")
            metrics["oracle_target"] = self.evaluate(target_test)
            metrics["oracle_target_accuracy"] = metrics["oracle_target"]["accuracy"]
        proba = self.predict_proba(target)
        metrics.update({"target_im": im_score(proba), "target_snd": snd_score(proba[:1000]),
                        "target_entropy": entropy_score(proba)})
        fs, ft = self.embed(source, 1000), self.embed(target, 1000)
        extra = {"shift": {**getattr(self, "shift_", {}),
                           "proxy_a_distance": proxy_a_distance(fs, ft, seed=self.seed)},
                 "selection": self.selection_report(),
                 "note": "oracle_* figures use target labels and serve evaluation only; selection used none."}
        if with_map:
            extra["embedding_map"] = embedding_map(fs, ft, max_points=max_points, seed=self.seed)
        return self.result(metrics, data={"source": source.name, "target": target.name,
                                          "n_source": len(source), "n_target": len(target)}, extra=extra)
