"""Zero-shot learning: recognise classes that have no training images, from class semantics.

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

import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..backbones.encoders import load_open_clip, load_sentence_encoder
from ..data import ImageDataset
from ..data.semantics import BUILTIN_SEMANTICS, builtin_semantics, load_attributes, load_descriptions
from ..engine import extract_features, make_loader
from ..errors import DataError, TransferkitError, check_choice, check_range
from ..utils import count_parameters, seed_everything
from .base import NeuralStrategy, Strategy, warn_if_untrained
from .registry import register_strategy

MODES = ("gzsl", "zsl", "seen")

# A 7-template subset of the 80 ImageNet prompts of Radford et al. 2021 (the ensemble used by their
# "prompt engineering" notebook); "{}" is replaced by the class name.
DEFAULT_TEMPLATES = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
)



# -- semantics and text ---------------------------------------------------------------------------

def resolve_semantics(semantics, train: ImageDataset | None = None, owner: str = "zero-shot") -> dict:
    """A semantics dict from: a dict, a path (.csv attributes / .json descriptions), 'fashion-mnist', 'digits',
    or None (``train.semantics``). The dict needs ``classes`` (all classes, seen and unseen)."""
    if semantics is None and train is not None:
        semantics = train.semantics
    if semantics is None:
        raise TransferkitError(f"{owner} needs class semantics: pass semantics=<dict | attribute .csv | "
                               f"descriptions .json | 'fashion-mnist' | 'digits'> or a dataset with .semantics.")
    if isinstance(semantics, str) and semantics in BUILTIN_SEMANTICS:
        return builtin_semantics(semantics)
    if isinstance(semantics, (str, os.PathLike)):
        p = Path(semantics)
        return load_descriptions(p) if p.suffix.lower() == ".json" else load_attributes(p)
    if not isinstance(semantics, dict):
        raise TransferkitError(f"{owner}: 'semantics' must be a dict or a path; got {type(semantics).__name__}.")
    sem = dict(semantics)
    if "classes" not in sem:
        if "descriptions" in sem and "attributes" not in sem:
            sem["classes"] = list(sem["descriptions"])
        elif train is not None:
            sem["classes"] = list(train.classes)
        else:
            raise TransferkitError(f"{owner}: the semantics dict needs 'classes' (the class of each attribute row).")
    if "attributes" in sem:
        a = np.asarray(sem["attributes"], dtype=np.float64)
        if a.ndim != 2 or len(a) != len(sem["classes"]):
            raise DataError(f"{owner}: 'attributes' must be (n_classes={len(sem['classes'])}, M); got shape {a.shape}.")
        if not np.isfinite(a).all():
            bad = [str(sem["classes"][i]) for i in np.flatnonzero(~np.isfinite(a).all(axis=1))]
            raise DataError(f"{owner}: the attribute table holds NaN or inf values (classes {bad[:10]}); fill them in.")
        sem["attributes"] = a
    return sem


def embed_descriptions(descriptions: dict, classes, encoder=None) -> np.ndarray:
    """(n_classes, E): per class, the re-normalised mean of its L2-normalised sentence embeddings."""
    missing = [c for c in classes if not descriptions.get(c)]
    if missing:
        raise DataError(f"No description for classes {missing}; the descriptions cover {list(descriptions)}.")
    encoder = encoder if encoder is not None and not isinstance(encoder, (str, os.PathLike)) else load_sentence_encoder(encoder)
    out = []
    for c in classes:
        e = encoder.encode(list(descriptions[c]), convert_to_numpy=True, normalize_embeddings=True)
        m = e.mean(0)
        out.append(m / max(np.linalg.norm(m), 1e-12))
    return np.stack(out).astype(np.float32)


def eszsl_closed_form(X: np.ndarray, Y: np.ndarray, S: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """ESZSL's V (d, a) = (X X^T + gamma I)^-1 X Y S^T (S S^T + lambda I)^-1 (Romera-Paredes & Torr 2015, eq. 4).

    X: features (d, m); Y: labels (m, z) in {-1, 1}; S: class signatures (a, z). Minimises
    ||X^T V S - Y||^2 + gamma ||V S||^2 + lambda ||X^T V||^2 + gamma lambda ||V||^2.
    """
    d, a = X.shape[0], S.shape[0]
    left = np.linalg.solve(X @ X.T + gamma * np.eye(d), X @ Y @ S.T)
    return np.linalg.solve((S @ S.T + lam * np.eye(a)).T, left.T).T


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


class _FeatureZeroShot(_ZeroShotMixin, NeuralStrategy):
    """Frozen backbone features (cached) + a model from features to class semantics."""

    def __init__(self, *, semantic: str = "attributes", text_encoder=None, calibration: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.semantic, self.text_encoder, self.calibration = semantic, text_encoder, calibration

    def _validate_params(self):
        super()._validate_params()
        check_choice(type(self).__name__, "semantic", self.semantic, ("attributes", "text"))

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
        f = np.array(extract_features(self.backbone_, self.prepare(data), progress=False, num_workers=self.num_workers),
                     dtype=np.float64)
        return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)

    def fit(self, train: ImageDataset, semantics=None, **roles):
        """Learn from the seen classes of ``train``; ``semantics`` covers seen and unseen classes. Returns self."""
        self._validate_params()
        train = self._check_train(train)
        sem = resolve_semantics(semantics, train, type(self).__name__)
        self._setup_classes(train, sem, type(self).__name__)
        seed_everything(self.seed)
        t0 = time.perf_counter()
        self.backbone_ = self.make_backbone().eval()
        warn_if_untrained(self.backbone_, type(self).__name__)
        self.signatures_ = self.class_embeddings(sem)
        X = self.features(train)
        y = np.array([self.classes_.index(train.classes[l]) for l in train.labels])
        self.history_ = []
        self._fit_features(X, y)
        self.fit_time_ = time.perf_counter() - t0
        self.n_params_ = count_parameters(self.backbone_)
        return self

    def _fit_features(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def class_scores(self, data) -> np.ndarray:
        return self._scores_from_features(self.features(data))

    def _extra_state(self) -> dict:
        return {"data_config": self.backbone_.data_config, "arch": self.backbone_.arch,
                "seen": self.seen_classes_, "unseen": self.unseen_classes_}

    def _restore(self, state: dict, tensors: dict) -> None:
        from ..backbones import create_backbone

        self.backbone_ = create_backbone(state["arch"], pretrained=False)
        self.backbone_.data_config.update({k: tuple(v) if isinstance(v, list) else v for k, v in state["data_config"].items()})
        bb = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
        if bb:
            self.backbone_.load_state_dict(bb)
        self.backbone_.eval()
        self.seen_classes_, self.unseen_classes_ = state["seen"], state["unseen"]
        self.signatures_ = tensors["signatures"].double().numpy()

    def _tensor_state(self) -> dict:
        return {**{f"backbone.{k}": v for k, v in self.backbone_.state_dict().items()},
                "signatures": torch.from_numpy(np.asarray(self.signatures_))}


@register_strategy
class DAP(_FeatureZeroShot):
    """Direct Attribute Prediction: one probabilistic classifier per attribute, combined by Bayes' rule.

    Each binary attribute (class attribute >= ``threshold``) gets a logistic regression on frozen features
    of the seen classes; a class's score is sum_m log p(a_m = a_m^z | x) - log p(a_m = a_m^z), with the
    attribute priors p(a_m) estimated over the seen classes. Reference: Lampert, Nickisch & Harmeling,
    "Attribute-Based Classification for Zero-Shot Visual Object Categorization", TPAMI 2014 (CVPR 2009).

    Inputs: ``train`` images of the seen classes, attribute semantics for all classes. Features (N, D),
    attribute probabilities (N, M), scores (N, n_classes).

    Args:
        C: inverse regularisation of each attribute's logistic regression (scikit-learn default 1.0;
            Lampert used Platt-scaled SVMs).
        threshold: binarisation threshold of continuous attributes (0.5 for values in [0, 1]).
        calibration: calibrated-stacking constant subtracted from seen-class scores in GZSL.

    Example:
        >>> DAP(backbone="file:runs/pretrain").fit(seen, semantics="fashion-mnist").evaluate(test)
    """

    name = "dap"

    def __init__(self, *, C: float = 1.0, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.C, self.threshold = C, threshold

    def _validate_params(self):
        super()._validate_params()
        check_choice("DAP", "semantic", self.semantic, ("attributes",))
        check_range("DAP", "C", self.C, 0, low_open=True)

    def _fit_features(self, X, y):
        from sklearn.linear_model import LogisticRegression

        A = (self.signatures_ >= self.threshold).astype(np.int64)           # (n_classes, M)
        seen = np.isin(self.classes_, self.seen_classes_)
        self.prior_ = np.clip(A[seen].mean(0), 0.05, 0.95)                  # p(a_m = 1) over seen classes
        self.coef_ = np.zeros((A.shape[1], X.shape[1]))
        self.intercept_ = np.zeros(A.shape[1])
        for m in range(A.shape[1]):
            t = A[y, m]
            if t.min() == t.max():  # constant on the seen classes: its probability is the prior
                p = np.clip(t[0], 0.05, 0.95)
                self.intercept_[m] = np.log(p / (1 - p))
                continue
            clf = LogisticRegression(C=self.C, max_iter=1000).fit(X, t)
            self.coef_[m], self.intercept_[m] = clf.coef_[0], clf.intercept_[0]

    def attribute_proba(self, X: np.ndarray) -> np.ndarray:
        """p(a_m = 1 | x): (N, M) from features (N, D)."""
        return np.clip(1 / (1 + np.exp(-(X @ self.coef_.T + self.intercept_))), 1e-6, 1 - 1e-6)

    def _scores_from_features(self, X):
        P, A = self.attribute_proba(X), (self.signatures_ >= self.threshold)
        logp = np.log(P) @ A.T + np.log(1 - P) @ (~A).T                     # (N, n_classes)
        logprior = np.log(self.prior_) @ A.T + np.log(1 - self.prior_) @ (~A).T
        return logp - logprior

    def _tensor_state(self):
        return {**super()._tensor_state(), "coef": torch.from_numpy(self.coef_), "intercept": torch.from_numpy(self.intercept_),
                "prior": torch.from_numpy(self.prior_)}

    def _restore(self, state, tensors):
        super()._restore(state, tensors)
        self.coef_, self.intercept_, self.prior_ = (tensors[k].double().numpy() for k in ("coef", "intercept", "prior"))


@register_strategy
class ESZSL(_FeatureZeroShot):
    """Embarrassingly Simple Zero-Shot Learning: a closed-form bilinear map from features to signatures.

    V = (X X^T + gamma I)^-1 X Y S^T (S S^T + lambda I)^-1 over the seen classes (Y in {-1, 1}); a class's
    score is x^T V s_z. Reference: Romera-Paredes & Torr, "An embarrassingly simple approach to zero-shot
    learning", ICML 2015.

    Inputs: seen-class images and semantics (attributes or, with ``semantic='text'``, sentence embeddings of
    descriptions). Features X (D, m), signatures S (M, z), V (D, M).

    Args:
        gamma, lam: the two regularisers (chosen by grid search over 10^-3..10^3 in the paper; default 1, 1).
        semantic: 'attributes' or 'text' (``text_encoder``: a sentence-transformers name or folder).
        calibration: calibrated-stacking constant for GZSL.

    Example:
        >>> ESZSL(backbone="file:runs/pretrain", gamma=1, lam=1).fit(seen, semantics="fashion-mnist").evaluate(test)
    """

    name = "eszsl"

    def __init__(self, *, gamma: float = 1.0, lam: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.gamma, self.lam = gamma, lam

    def _validate_params(self):
        super()._validate_params()
        check_range("ESZSL", "gamma", self.gamma, 0, low_open=True)
        check_range("ESZSL", "lam", self.lam, 0, low_open=True)

    def _fit_features(self, X, y):
        seen_idx = [self.classes_.index(c) for c in self.seen_classes_]
        S = self.signatures_[seen_idx].T                                       # (M, z)
        Y = -np.ones((len(y), len(seen_idx)))
        Y[np.arange(len(y)), [seen_idx.index(c) for c in y]] = 1
        self.V_ = eszsl_closed_form(X.T, Y, S, self.gamma, self.lam)

    def _scores_from_features(self, X):
        return X @ self.V_ @ self.signatures_.T

    def _tensor_state(self):
        return {**super()._tensor_state(), "V": torch.from_numpy(self.V_)}

    def _restore(self, state, tensors):
        super()._restore(state, tensors)
        self.V_ = tensors["V"].double().numpy()


@register_strategy
class BilinearZSL(_FeatureZeroShot):
    """A DeViSE/ALE-style bilinear compatibility F(x, y) = theta(x)^T W phi(y), trained on the seen classes.

    W (D, M) is trained through the one Trainer on cached frozen features; phi(y) are L2-normalised
    attribute vectors or sentence embeddings of the class descriptions ("text"). Loss 'ranking' is the
    hinge rank loss of DeViSE (sum over wrong classes of max(0, margin - F(x, y) + F(x, j)), margin 0.1);
    'softmax' is the cross-entropy over the seen classes' compatibilities (scaled by ``temperature``),
    the default here because it trains stably in a few epochs. References: Frome et al., "DeViSE: A
    Deep Visual-Semantic Embedding Model", NeurIPS 2013; Akata et al., "Label-Embedding for Image
    Classification" (ALE), TPAMI 2016.

    Args:
        loss: 'softmax' or 'ranking'; margin (DeViSE: 0.1); temperature (softmax scale, 10).
        semantic: 'attributes' or 'text'; text_encoder: a sentence-transformers model name or local folder
            (default: the packaged all-MiniLM-L6-v2).
        **kwargs: shared training parameters (epochs, lr, batch_size...; defaults 10 epochs, Adam 1e-3).

    Example:
        >>> BilinearZSL(semantic="text", epochs=20).fit(seen, semantics="fashion-mnist").evaluate(test)
    """

    name = "bilinear-zsl"

    def __init__(self, *, loss: str = "softmax", margin: float = 0.1, temperature: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.loss, self.margin, self.temperature = loss, margin, temperature

    def _validate_params(self):
        super()._validate_params()
        check_choice("BilinearZSL", "loss", self.loss, ("softmax", "ranking"))
        check_range("BilinearZSL", "temperature", self.temperature, 0, low_open=True)

    def _phi(self) -> torch.Tensor:
        s = torch.as_tensor(self.signatures_, dtype=torch.float32)
        return F.normalize(s, dim=1)

    def _fit_features(self, X, y):
        self.model_ = nn.Linear(X.shape[1], self.signatures_.shape[1], bias=False)
        nn.init.zeros_(self.model_.weight)
        seen_idx = [self.classes_.index(c) for c in self.seen_classes_]
        self._seen_phi = self._phi()[seen_idx]
        local = torch.as_tensor([seen_idx.index(c) for c in y])
        ds = torch.utils.data.TensorDataset(torch.as_tensor(X, dtype=torch.float32), local)
        loader = make_loader(ds, self.batch_size, shuffle=True, seed=self.seed, drop_last=True)
        self.history_ = self.make_trainer(self.callbacks()).fit(self, loader)
        self.model_.eval()
        self.W_ = self.model_.weight.detach().T.double().numpy()               # (D, M)
        self.n_trainable_params_ = self.model_.weight.numel()

    def training_step(self, batch) -> dict:
        x, y = batch
        scores = self.model_(x) @ self._seen_phi.to(x.device).T                  # (B, z)
        if self.loss == "softmax":
            loss = F.cross_entropy(self.temperature * scores, y)
        else:
            true = scores.gather(1, y[:, None])
            hinge = (self.margin - true + scores).clamp_min(0)
            loss = hinge.scatter(1, y[:, None], 0.0).sum(1).mean()
        return {"loss": loss, "acc": (scores.argmax(1) == y).float().mean()}

    def _scores_from_features(self, X):
        return X @ self.W_ @ self._phi().double().numpy().T

    def _tensor_state(self):
        return {**super()._tensor_state(), "W": torch.from_numpy(self.W_)}

    def _restore(self, state, tensors):
        super()._restore(state, tensors)
        self.W_ = tensors["W"].double().numpy()


# -- CLIP ---------------------------------------------------------------------------------------------

@register_strategy
class ClipZeroShot(_ZeroShotMixin, Strategy):
    """CLIP-style zero-shot classification: match image embeddings with embeddings of class prompts.

    Each class's text embedding is the re-normalised mean over a prompt-template ensemble ("a photo of
    the small {}.") (and, with ``use_descriptions``, its description sentences) of the L2-normalised text
    tower outputs; an image's class scores are ``logit_scale * cos(image, class)``. Reference: Radford et al.,
    "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021; open_clip (Ilharco
    et al. 2021, Cherti et al. 2023).

    Inputs: the class names (from ``semantics``, or a ``train`` dataset whose classes count as seen for
    GZSL); images as an ImageDataset (read as RGB PIL images, preprocessed by open_clip's transform).

    Args:
        model: an open_clip model name ('ViT-B-32', 'RN50', ...).
        pretrained: a tag ('openai', 'laion2b_s34b_b79k'), a local checkpoint file, or None (untrained).
        templates: prompt templates with '{}' (default: 7 of Radford et al.'s ImageNet templates).
        use_descriptions: add the class descriptions of ``semantics`` to the ensemble.
        calibration: calibrated-stacking constant for GZSL.

    Example:
        >>> clip = ClipZeroShot(model="ViT-B-32", pretrained="laion2b_s34b_b79k").fit(semantics="fashion-mnist")
        >>> clip.evaluate(load_fashion_mnist("test"))["zsl_accuracy"]
    """

    name = "clip-zeroshot"
    data_roles = ("semantics",)

    def __init__(self, *, model: str = "ViT-B-32", pretrained: str | None = "openai", templates=None,
                 use_descriptions: bool = False, calibration: float = 0.0, batch_size: int = 64,
                 device: str = "cpu", num_workers: int = 0):
        self.model, self.pretrained, self.templates, self.use_descriptions = model, pretrained, templates, use_descriptions
        self.calibration, self.batch_size, self.device, self.num_workers = calibration, batch_size, device, num_workers

    def prompts(self, classes, sem: dict | None = None) -> dict[str, list[str]]:
        """Class -> list of prompt texts."""
        templates = list(self.templates or DEFAULT_TEMPLATES)
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise TransferkitError(f"The 'templates' parameter of ClipZeroShot needs '{{}}' in every template; got {bad}.")
        out = {c: [t.format(c) for t in templates] for c in classes}
        if self.use_descriptions:
            desc = (sem or {}).get("descriptions")
            if not desc:
                raise DataError("ClipZeroShot(use_descriptions=True) needs semantics with descriptions.")
            for c in classes:
                out[c] += list(desc.get(c, []))
        return out

    def fit(self, train: ImageDataset | None = None, semantics=None, classes=None, **roles):
        """Encode the class prompts (no training); seen classes = ``train.classes`` (for GZSL). Returns self."""
        t0 = time.perf_counter()
        if classes is not None and semantics is None:
            semantics = {"classes": list(classes)}
        if semantics is None and train is not None and train.semantics is None:
            semantics = {"classes": list(train.classes)}
        sem = resolve_semantics(semantics, train, "ClipZeroShot")
        self._setup_classes(train, sem, "ClipZeroShot")
        self.model_, self.preprocess_, self.tokenizer_ = load_open_clip(self.model, self.pretrained, self.device)
        prompts = self.prompts(self.classes_, sem)
        with torch.inference_mode():
            emb = []
            for c in self.classes_:
                t = self.model_.encode_text(self.tokenizer_(prompts[c]).to(self.device)).float()
                m = F.normalize(t, dim=-1).mean(0)
                emb.append(F.normalize(m, dim=0))
            self.text_embeddings_ = torch.stack(emb).cpu()                     # (n_classes, E)
        self.fit_time_ = time.perf_counter() - t0
        self.history_ = []
        return self

    def image_embeddings(self, data: ImageDataset) -> torch.Tensor:
        """L2-normalised image embeddings (N, E)."""
        self.check_fitted()
        if not isinstance(data, ImageDataset):
            raise TransferkitError(f"ClipZeroShot expects an ImageDataset; got {type(data).__name__}.")
        out = []
        with torch.inference_mode():
            for i in range(0, len(data), self.batch_size):
                x = torch.stack([self.preprocess_(data.load_image(j, 3)) for j in range(i, min(len(data), i + self.batch_size))])
                out.append(F.normalize(self.model_.encode_image(x.to(self.device)).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.text_embeddings_.shape[1])

    def class_scores(self, data) -> np.ndarray:
        scale = float(self.model_.logit_scale.detach().exp()) if hasattr(self.model_, "logit_scale") else 100.0
        return (scale * self.image_embeddings(data) @ self.text_embeddings_.T).double().numpy()

    def _extra_state(self) -> dict:
        return {"seen": self.seen_classes_, "unseen": self.unseen_classes_}

    def _tensor_state(self) -> dict:
        return {"text_embeddings": self.text_embeddings_}

    def _restore(self, state, tensors):
        self.seen_classes_, self.unseen_classes_ = state["seen"], state["unseen"]
        self.model_, self.preprocess_, self.tokenizer_ = load_open_clip(self.model, self.pretrained, self.device)
        self.text_embeddings_ = tensors["text_embeddings"]


def calibration_from_seen(model, seen_train: ImageDataset, n: int = 300, seed: int = 0) -> float:
    """A calibrated-stacking constant (Chao et al. 2016) chosen without unseen labels: the median gap between
    the best seen-class and the best unseen-class score on ``n`` seen training images. Pass it as
    ``evaluate(data, calibration=...)`` for generalized ZSL."""
    idx = np.random.default_rng(seed).choice(len(seen_train), size=min(n, len(seen_train)), replace=False)
    s = model.class_scores(seen_train.subset(np.sort(idx)))
    seen = np.isin(model.classes_, model.seen_classes_)
    return float(np.median(s[:, seen].max(1) - s[:, ~seen].max(1)))
