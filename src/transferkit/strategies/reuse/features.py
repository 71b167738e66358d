"""Feature extraction: a frozen backbone's embeddings -> a scikit-learn classifier.

No gradient training: embeddings come from :func:`transferkit.engine.extract_features` (batched, under
``inference_mode``, cached on disk), are standardised, and a classifier is fitted with its regularisation
strength chosen by stratified cross-validation on the training split.
"""
from __future__ import annotations

import math
import time
import warnings

import numpy as np

from ...data import ImageDataset
from ...errors import TransferkitError
from ...params import BOOL, DICT, STR, Interval, ListOf, Options
from ..base import POSITIVE
from ..frozen import FrozenFeatureStrategy
from ..registry import register_strategy
from .classifiers import CLASSIFIERS, GRID_KEYS, make_estimator, search_grid

def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@register_strategy
class FeatureExtraction(FrozenFeatureStrategy):
    """Fit a scikit-learn classifier on frozen embeddings (pooled, or from an intermediate layer).

    The backbone never changes: every image is embedded once (the feature cache makes a second probe free),
    features are standardised, and the classifier's regularisation is chosen by ``cv``-fold stratified
    cross-validation on the training split. References: Kornblith, Shlens & Le, "Do Better ImageNet Models
    Transfer Better?", CVPR 2019 (L2-regularised logistic regression on penultimate features, C by
    validation); Donahue et al., "DeCAF", ICML 2014; Razavian et al., "CNN Features off-the-shelf", CVPRW 2014.

    Inputs: labelled ``train``. Embeddings (N, D) -> class probabilities (N, n_classes).

    Args:
        backbone: a spec or a Backbone (frozen). pretrained, input_size: as for the neural strategies.
        classifier: 'logreg' (default; multinomial, L2), 'linear-svm' (LinearSVC), 'rbf-svm' (SVC, gamma='scale'),
            'knn' (distance-weighted), 'ridge' (RidgeClassifier).
        layer: None (default) for the pooled embedding; an int stage index (``backbone.stage_modules()``) or a
            module name of ``backbone.model`` for an intermediate layer (global-average-pooled to (N, C)).
        standardize: zero-mean / unit-variance features (default True; fitted inside each CV fold).
        param_grid: values of the regularisation parameter to search (C for logreg/SVMs, alpha for ridge,
            n_neighbors for kNN); default ``classifiers.DEFAULT_GRIDS``. A single value skips the search.
        cv: folds of the stratified cross-validation (default 5, capped by the smallest class).
        batch_size, cache ('True', a directory or False), device, num_workers: feature extraction.
        n_jobs: parallel CV fits (default 1), seed, progress.

    SVM and ridge scores are turned into probabilities with a softmax of the decision function (argmax =
    the classifier's own prediction; not calibrated). After ``fit``: ``classifier_`` (the sklearn pipeline),
    ``best_params_``, ``cv_results_`` (mean CV accuracy per grid value), ``n_trainable_params_``
    (the classifier's coefficients), ``extract_time_``, ``fit_time_``; for kNN also ``reference_features_`` and
    ``reference_labels_`` (its reference set, standardised when ``standardize``).

    Example:
        >>> fe = FeatureExtraction(backbone="file:runs/pretrain", classifier="logreg").fit(train)
        >>> fe.evaluate(test)["accuracy"], fe.best_params_
    """

    name = "features"
    family = "reuse-weights"

    _parameter_constraints = {
        "classifier": [Options(*CLASSIFIERS)], "layer": [None, Interval(int), STR], "standardize": [BOOL],
        "param_grid": [None, POSITIVE, STR, ListOf(POSITIVE, min_length=1), DICT], "cv": [Interval(int, 2)],
        "n_jobs": [None, Interval(int, 1), Options(-1)],
    }

    def __init__(self, *, classifier: str = "logreg", layer=None, standardize: bool = True, param_grid=None,
                 cv: int = 5, n_jobs: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.classifier, self.layer, self.standardize, self.param_grid = classifier, layer, standardize, param_grid
        self.cv, self.n_jobs = cv, n_jobs

    # -- pieces -------------------------------------------------------------------------------------

    def _estimator_at(self, value=None):
        return make_estimator(self.classifier, value, standardize=self.standardize, seed=self.seed)

    def _without_cv(self, grid: list, key: str, folds: int, train: ImageDataset):
        """The grid value used when the smallest class is too small to cross-validate (said in a warning): kNN's
        smallest k, otherwise the value nearest 1 (scikit-learn's default C and alpha), never the grid's edge."""
        value = min(grid) if self.classifier == "knn" else min(grid, key=lambda v: abs(math.log10(v)))
        warnings.warn(f"{type(self).__name__}: the smallest class of {train.name or 'the training set'} has "
                      f"{folds} labelled image(s), too few for cross-validation; {key}={value:g} was used without "
                      f"selection. Give every class at least 2 images to choose it.", stacklevel=3)
        return value

    def features(self, data: ImageDataset) -> np.ndarray:
        """Embeddings (N, D) of ``data`` from the frozen backbone at ``layer`` (cached)."""
        try:
            return self.extract(data, layer=self.layer)
        except (IndexError, AttributeError) as e:
            raise TransferkitError(f"The 'layer' parameter of {type(self).__name__} must be a stage index or a module "
                                   f"name of {self.backbone_.spec}; got {self.layer!r} ({e}).") from None

    # -- fit / predict ------------------------------------------------------------------------------
    def fit_features(self, X: np.ndarray, y: np.ndarray, train: ImageDataset, **roles) -> None:
        """Choose the regularisation by stratified CV on the training features and fit the classifier."""
        from sklearn.model_selection import GridSearchCV, StratifiedKFold

        t1 = time.perf_counter()
        folds = int(min(self.cv, np.bincount(y)[np.unique(y)].min()))
        grid = search_grid(self.classifier, self.param_grid,
                           max(1, len(y) * (folds - 1) // max(folds, 1)) if folds >= 2 else len(y), type(self).__name__)
        key = GRID_KEYS[self.classifier]
        if len(grid) > 1 and folds >= 2:
            search = GridSearchCV(self._estimator_at(), {f"clf__{key}": grid}, scoring="accuracy", n_jobs=self.n_jobs,
                                  cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed), refit=True)
            search.fit(X, y)
            self.classifier_ = search.best_estimator_
            self.best_params_ = {key: search.best_params_[f"clf__{key}"]}
            self.cv_results_ = {"values": grid, "mean_accuracy": search.cv_results_["mean_test_score"].tolist(),
                                "folds": folds}
        else:
            value = grid[0] if len(grid) == 1 else self._without_cv(grid, key, folds, train)
            self.classifier_ = self._estimator_at(value).fit(X, y)
            self.best_params_ = {key: value}
            self.cv_results_ = {"values": grid, "mean_accuracy": [], "folds": 0}
        self.classifier_fit_time_ = time.perf_counter() - t1
        self.n_features_ = int(X.shape[1])
        if self.classifier == "knn":  # kNN's reference set, as its classifier step sees it (what save() writes)
            self.reference_features_ = self.classifier_[:-1].transform(X) if len(self.classifier_) > 1 else X
            self.reference_labels_ = np.asarray(y)

    def n_head_params(self) -> int:
        clf = self.classifier_.named_steps["clf"]
        if hasattr(clf, "coef_"):
            return int(clf.coef_.size + np.size(clf.intercept_))
        if hasattr(clf, "dual_coef_"):
            return int(clf.dual_coef_.size + clf.support_vectors_.size + np.size(clf.intercept_))
        return int(self.reference_features_.size)  # kNN: its reference set

    def _features_of(self, data) -> np.ndarray:
        import torch

        if isinstance(data, torch.Tensor):
            with torch.inference_mode():
                dev = next(self.backbone_.parameters()).device
                return self.backbone_.eval()(data.to(dev)).float().cpu().numpy()
        if isinstance(data, np.ndarray) and data.ndim == 2:
            return data  # embeddings already
        return self.features(data)

    def predict_proba(self, data) -> np.ndarray:
        """Probabilities (N, n_classes) for an ImageDataset, a [0, 1] batch (B, C, H, W) or embeddings (N, D)."""
        self.check_fitted()
        X = self._features_of(data)
        clf = self.classifier_
        if hasattr(clf, "predict_proba") and self.classifier in ("logreg", "knn"):
            p = clf.predict_proba(X)
        else:
            d = clf.decision_function(X)
            if d.ndim == 1:  # binary: one score for class 1
                d = np.stack([-d, d], 1)
            p = _softmax(d)
        out = np.zeros((len(X), len(self.classes_)), np.float64)
        out[:, clf.classes_] = p  # classes absent from train stay at 0
        return out

    # -- persistence (no pickle: arrays in safetensors, hyper-parameters in JSON) -----------------------
    def _extra_state(self) -> dict:
        return {**super()._extra_state(), "best_params": self.best_params_, "cv_results": self.cv_results_,
                "n_features": self.n_features_}

    def _tensor_state(self) -> dict:
        import torch

        t = super()._tensor_state()
        clf = self.classifier_.named_steps["clf"]
        arrays = {"clf.classes": clf.classes_}
        if self.standardize:
            sc = self.classifier_.named_steps["scale"]
            arrays.update({"scale.mean": sc.mean_, "scale.scale": sc.scale_, "scale.var": sc.var_})
        if self.classifier in ("logreg", "linear-svm", "ridge"):
            arrays.update({"clf.coef": clf.coef_, "clf.intercept": np.atleast_1d(clf.intercept_)})
        else:  # kNN keeps its training set; an RBF SVM is refitted from its support vectors on load
            if self.classifier == "knn":
                arrays.update({"clf.X": self.reference_features_, "clf.y": self.reference_labels_})
            else:
                arrays.update({"clf.X": clf.support_vectors_, "clf.y": clf.classes_[np.repeat(np.arange(len(clf.classes_)), clf.n_support_)]})
        t.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()})
        return t

    def _restore(self, state: dict, tensors: dict) -> None:
        super()._restore(state, tensors)
        self.best_params_, self.cv_results_ = state["best_params"], state["cv_results"]
        self.n_features_ = int(state["n_features"])
        a = {k: v.numpy() for k, v in tensors.items() if not k.startswith("backbone.")}
        pipe = self._estimator_at(next(iter(self.best_params_.values())))
        if self.standardize:
            sc = pipe.named_steps["scale"]
            sc.mean_, sc.scale_, sc.var_ = a["scale.mean"], a["scale.scale"], a["scale.var"]
            sc.n_features_in_, sc.n_samples_seen_ = self.n_features_, 1
        clf = pipe.named_steps["clf"]
        if self.classifier in ("logreg", "linear-svm", "ridge"):
            clf.coef_, clf.intercept_, clf.classes_ = a["clf.coef"], a["clf.intercept"], a["clf.classes"]
            clf.n_features_in_ = self.n_features_
            if self.classifier == "logreg":
                clf.n_iter_ = np.zeros(1, np.int32)
            if self.classifier == "ridge":  # its classes come from fit: fit one row per class, then set the weights
                clf.fit(np.zeros((len(a["clf.classes"]), self.n_features_)), a["clf.classes"])
                clf.coef_, clf.intercept_ = a["clf.coef"], a["clf.intercept"]
            self.classifier_ = pipe
        else:
            clf.fit(a["clf.X"], a["clf.y"])  # already-scaled features: fit the classifier step alone
            self.classifier_ = pipe
            if self.classifier == "knn":
                self.reference_features_, self.reference_labels_ = a["clf.X"], a["clf.y"]
        self.history_ = []
