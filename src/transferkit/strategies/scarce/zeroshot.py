"""Zero-shot learning, the shared machinery: recognise classes that have no training images, from class
semantics.

Class semantics are attribute vectors (CSV ``class,attr1..attrM``) or text descriptions (one or more
sentences per class, embedded by a sentence encoder), see :mod:`transferkit.data.semantics`. Images go
through a frozen backbone (features cached by ``engine.extract_features``), except for CLIP, which
brings its own image and text towers.

Strategies: DAP (Lampert et al. 2009/2014), ESZSL (Romera-Paredes & Torr 2015, closed form), a
DeViSE/ALE-style bilinear compatibility model (Frome et al. 2013; Akata et al. 2013/2016) over attributes
or sentence embeddings, trained on the seen classes through the one Trainer, and CLIP-style zero-shot
through open_clip with prompt-template ensembles (Radford et al. 2021).

Evaluation follows Xian et al., "Zero-Shot Learning - A Comprehensive Evaluation of the Good, the Bad
and the Ugly" (TPAMI 2019): ZSL = per-class mean top-1 accuracy on unseen-class images among the unseen
classes; GZSL = per-class mean top-1 on seen (``gzsl_seen``) and unseen (``gzsl_unseen``) images among
*all* classes and their harmonic mean ``gzsl_h``; optional calibrated stacking (Chao et al., ECCV 2016)
subtracts ``calibration`` from the seen classes' scores.

Example:
    >>> from transferkit.data import load_fashion_mnist, class_split
    >>> from transferkit.data.semantics import fashion_mnist_semantics
    >>> fm = load_fashion_mnist("test")
    >>> unseen, seen = class_split(fm, ["Pullover", "Dress", "Sneaker"])
    >>> z = ESZSL(backbone="file:runs/pretrain").fit(seen, semantics=fashion_mnist_semantics())
    >>> z.evaluate(fm)   # {'zsl_accuracy': ..., 'gzsl_seen': ..., 'gzsl_unseen': ..., 'gzsl_h': ...}
"""
from __future__ import annotations

import numpy as np
import torch

from ...data import ImageDataset
from ...errors import DataError, check_choice
from ...params import Interval, Options
from ..base import PATH
from ..frozen import FrozenFeatureStrategy, HeadTraining, backbone_state, backbone_tensors, restore_backbone
from .semantics import embed_descriptions, resolve_semantics

MODES = ("gzsl", "zsl", "seen")


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of their top-1 accuracy (Xian et al. 2019)."""
    cls = np.unique(y_true)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in cls])) if len(cls) else float("nan")


# -- shared evaluation ------------------------------------------------------------------------------

class _ZeroShotMixin:
    """Predict over all classes / unseen only, and the ZSL / GZSL protocol, from ``class_scores``."""

    family = "scarce-data"
    data_roles = ("train", "semantics")

    def class_scores(self, data) -> np.ndarray:
        """Compatibility scores (N, n_classes) over ``classes_`` (seen and unseen)."""
        raise NotImplementedError

    def _setup_classes(self, train: ImageDataset | None, sem: dict, owner: str) -> None:
        self.classes_ = [str(c) for c in sem["classes"]]
        seen = list(train.classes) if train is not None else []
        missing = [c for c in seen if c not in self.classes_]
        if missing:
            raise DataError(f"{owner}: the training classes {missing} have no semantics; the semantics cover "
                            f"{self.classes_}.")
        self.seen_classes_ = [c for c in self.classes_ if c in seen]
        self.unseen_classes_ = [c for c in self.classes_ if c not in seen]

    def _mask(self, mode: str) -> np.ndarray:
        check_choice(type(self).__name__, "mode", mode, MODES)
        if mode == "gzsl":
            return np.ones(len(self.classes_), bool)
        keep = self.unseen_classes_ if mode == "zsl" else self.seen_classes_
        if not keep:
            raise DataError(f"{type(self).__name__}: mode={mode!r} needs {'unseen' if mode == 'zsl' else 'seen'} classes; "
                            f"all classes are {'seen' if mode == 'zsl' else 'unseen'}.")
        return np.isin(self.classes_, keep)

    def _calibrated(self, scores: np.ndarray, mode: str) -> np.ndarray:
        scores = np.array(scores, dtype=np.float64)
        scores[:, ~self._mask(mode)] = -np.inf
        if mode == "gzsl" and self.calibration:
            scores[:, np.isin(self.classes_, self.seen_classes_)] -= self.calibration
        return scores

    def predict_proba(self, data, mode: str = "gzsl") -> np.ndarray:
        """Probabilities (N, n_classes) over ``classes_``: all classes ('gzsl', with calibrated stacking),
        unseen only ('zsl') or seen only ('seen'); excluded classes get probability 0."""
        self.check_fitted()
        s = self._calibrated(self.class_scores(data), mode)
        s = s - s.max(1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(1, keepdims=True)

    def predict(self, data, mode: str = "gzsl") -> np.ndarray:
        """Class indices into ``classes_`` (N,)."""
        return self._calibrated(self.class_scores(data), mode).argmax(1)

    def evaluate(self, data: ImageDataset, calibration: float | None = None) -> dict:
        """ZSL and GZSL metrics on ``data`` (its class names must be among ``classes_``).

        Returns ``zsl_accuracy`` (unseen images, unseen candidates), ``gzsl_seen``, ``gzsl_unseen``,
        ``gzsl_h`` (all candidates, with calibrated stacking), ``accuracy`` (= zsl_accuracy, or seen
        accuracy when ``data`` has no unseen images), counts, and the calibration used.
        """
        self.check_fitted()
        unknown = [c for c in data.classes if c not in self.classes_]
        if unknown:
            raise DataError(f"evaluate: classes {unknown} of {data.name or 'the data'} have no semantics; "
                            f"known classes: {self.classes_}.")
        lab = np.flatnonzero(data.labels >= 0)
        data = data.subset(lab) if len(lab) < len(data) else data
        y = np.array([self.classes_.index(data.classes[l]) for l in data.labels])
        old = self.calibration
        if calibration is not None:
            self.calibration = calibration
        try:
            scores = self.class_scores(data)
            seen_mask = np.isin(np.asarray(self.classes_)[y], self.seen_classes_)
            out = {"calibration": float(self.calibration or 0.0), "n_seen_images": int(seen_mask.sum()),
                   "n_unseen_images": int((~seen_mask).sum())}
            if (~seen_mask).any():
                out["zsl_accuracy"] = per_class_accuracy(y[~seen_mask], self._calibrated(scores[~seen_mask], "zsl").argmax(1))
            g = self._calibrated(scores, "gzsl").argmax(1)
            if seen_mask.any():
                out["gzsl_seen"] = per_class_accuracy(y[seen_mask], g[seen_mask])
            if (~seen_mask).any():
                out["gzsl_unseen"] = per_class_accuracy(y[~seen_mask], g[~seen_mask])
            if "gzsl_seen" in out and "gzsl_unseen" in out:
                s, u = out["gzsl_seen"], out["gzsl_unseen"]
                out["gzsl_h"] = 2 * s * u / (s + u) if s + u > 0 else 0.0
            out["accuracy"] = out.get("zsl_accuracy", out.get("gzsl_seen"))
        finally:
            self.calibration = old
        return out


class _SemanticFeatures(_ZeroShotMixin):
    """Class signatures from the semantics and L2-normalised frozen features: what the zero-shot strategies on a
    frozen backbone share, whether they fit in closed form (DAP, ESZSL) or train a map (BilinearZSL)."""

    _parameter_constraints = {
        "semantic": [Options("attributes", "text")], "text_encoder": [None, PATH], "calibration": [Interval(float)],
    }

    def __init__(self, *, semantic: str = "attributes", text_encoder=None, calibration: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.semantic, self.text_encoder, self.calibration = semantic, text_encoder, calibration

    def class_embeddings(self, sem: dict) -> np.ndarray:
        """(n_classes, M) class signatures: attribute rows, or sentence embeddings of the descriptions."""
        owner = type(self).__name__
        if self.semantic == "attributes":
            if "attributes" not in sem:
                raise DataError(f"{owner}(semantic='attributes') needs an attribute table; the semantics have "
                                f"{sorted(k for k in sem if k != 'classes')}. Use semantic='text' for descriptions.")
            return np.asarray(sem["attributes"], dtype=np.float64)
        if "descriptions" not in sem:
            raise DataError(f"{owner}(semantic='text') needs class descriptions; the semantics have "
                            f"{sorted(k for k in sem if k != 'classes')}.")
        return embed_descriptions(sem["descriptions"], sem["classes"], self.text_encoder).astype(np.float64)

    def features(self, data) -> np.ndarray:
        """L2-normalised frozen features (N, D) of an ImageDataset (cached on disk)."""
        f = np.asarray(self.extract(data), dtype=np.float64)
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)

    def _fit_features(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def class_scores(self, data) -> np.ndarray:
        return self._scores_from_features(self.features(data))

    # persistence: the frozen backbone, the seen / unseen split and the class signatures
    def _extra_state(self) -> dict:
        return {**backbone_state(self.backbone_), "seen": self.seen_classes_, "unseen": self.unseen_classes_}

    def _tensor_state(self) -> dict:
        return {**backbone_tensors(self.backbone_), "signatures": torch.from_numpy(np.asarray(self.signatures_))}

    def _restore(self, state: dict, tensors: dict) -> None:
        self.backbone_ = restore_backbone(state, tensors)
        self.seen_classes_, self.unseen_classes_ = state["seen"], state["unseen"]
        self.signatures_ = tensors["signatures"].double().numpy()


class FrozenZeroShot(_SemanticFeatures, FrozenFeatureStrategy):
    """Zero-shot on a frozen backbone with a closed-form model (DAP, ESZSL): the frozen-feature base's one ``fit``,
    the semantics read in ``setup`` (``fit(train, semantics=...)``); no training knobs."""

    def setup(self, train: ImageDataset, semantics=None, **roles) -> None:
        self._semantics = resolve_semantics(semantics, train, type(self).__name__)
        self._setup_classes(train, self._semantics, type(self).__name__)

    def fit_features(self, X: np.ndarray, y: np.ndarray, train: ImageDataset, **roles) -> None:
        self.signatures_ = self.class_embeddings(self._semantics)
        self._fit_features(X, y)


class _FeatureZeroShot(HeadTraining, FrozenZeroShot):
    """Zero-shot on a frozen backbone with a map trained through the Trainer (BilinearZSL): ``FrozenZeroShot``'s one
    frozen-feature ``fit``, and a head's training knobs (:class:`HeadTraining`) for the map."""


def calibration_from_seen(model, seen_train: ImageDataset, n: int = 300, seed: int = 0) -> float:
    """A calibrated-stacking constant (Chao et al. 2016) chosen without unseen labels: the median gap between
    the best seen-class and the best unseen-class score on ``n`` seen training images. Pass it as
    ``evaluate(data, calibration=...)`` for generalized ZSL."""
    idx = np.random.default_rng(seed).choice(len(seen_train), size=min(n, len(seen_train)), replace=False)
    s = model.class_scores(seen_train.subset(np.sort(idx)))
    seen = np.isin(model.classes_, model.seen_classes_)
    return float(np.median(s[:, seen].max(1) - s[:, ~seen].max(1)))
