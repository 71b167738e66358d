"""A DeViSE/ALE-style bilinear compatibility model trained on the seen classes (see ``zeroshot``)."""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from ...engine import make_loader
from ...params import Options
from ..base import NON_NEGATIVE, POSITIVE
from ..registry import register_strategy
from .zeroshot import _FeatureZeroShot


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
        batch_size: the map's training batch, and the feature extraction's (default 64).
        **kwargs: the map's training knobs (``HeadTraining``: epochs 10, lr 1e-3, weight_decay, optimizer AdamW,
            scheduler, warmup_epochs, grad_clip) and the frozen backbone's (backbone, pretrained, input_size,
            cache, device, num_workers, seed, progress).

    Example:
        >>> BilinearZSL(semantic="text", epochs=20).fit(seen, semantics="fashion-mnist").evaluate(test)
    """

    name = "bilinear-zsl"

    _parameter_constraints = {
        "loss": [Options("softmax", "ranking")], "margin": [NON_NEGATIVE], "temperature": [POSITIVE],
    }

    def __init__(self, *, loss: str = "softmax", margin: float = 0.1, temperature: float = 10.0, batch_size: int = 64,
                 **kwargs):
        super().__init__(batch_size=batch_size, **kwargs)
        self.loss, self.margin, self.temperature = loss, margin, temperature

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
        self.train_head(loader)
        self.W_ = self.model_.weight.detach().T.double().numpy()               # (D, M)

    def n_head_params(self) -> int:
        return self.model_.weight.numel()

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
