"""ESZSL (Romera-Paredes & Torr 2015): a closed-form bilinear map on frozen features (see ``zeroshot``)."""
from __future__ import annotations

import numpy as np
import torch

from ..base import POSITIVE
from ..registry import register_strategy
from .zeroshot import FrozenZeroShot


def eszsl_closed_form(X: np.ndarray, Y: np.ndarray, S: np.ndarray, gamma: float, lam: float) -> np.ndarray:
    """ESZSL's V (d, a) = (X X^T + gamma I)^-1 X Y S^T (S S^T + lambda I)^-1 (Romera-Paredes & Torr 2015, eq. 4).

    X: features (d, m); Y: labels (m, z) in {-1, 1}; S: class signatures (a, z). Minimises
    ||X^T V S - Y||^2 + gamma ||V S||^2 + lambda ||X^T V||^2 + gamma lambda ||V||^2.
    """
    d, a = X.shape[0], S.shape[0]
    left = np.linalg.solve(X @ X.T + gamma * np.eye(d), X @ Y @ S.T)
    return np.linalg.solve((S @ S.T + lam * np.eye(a)).T, left.T).T


@register_strategy
class ESZSL(FrozenZeroShot):
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

    _parameter_constraints = {
        "gamma": [POSITIVE], "lam": [POSITIVE],
    }

    def __init__(self, *, gamma: float = 1.0, lam: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.gamma, self.lam = gamma, lam

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
