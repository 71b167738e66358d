"""DAP: direct attribute prediction (Lampert et al. 2009/2014) on frozen features (see ``zeroshot``)."""
from __future__ import annotations


import numpy as np
import torch

from ...params import Interval, Options
from ..base import POSITIVE
from ..registry import register_strategy
from .zeroshot import FrozenZeroShot


@register_strategy
class DAP(FrozenZeroShot):
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

    _parameter_constraints = {
        "semantic": [Options("attributes")], "C": [POSITIVE], "threshold": [Interval(float, 0, 1)],
    }

    def __init__(self, *, C: float = 1.0, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.C, self.threshold = C, threshold

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
