"""Support-set probes on frozen features: logistic regression (Tian et al., ECCV 2020) and a fine-tuned
linear head (Chen et al., ICLR 2019)."""
from __future__ import annotations


import torch
import torch.nn.functional as F

from ...engine.heads import fit_episode_heads
from ...params import BOOL, Interval
from ..base import POSITIVE
from ..registry import register_strategy
from .episodic import _FrozenBaseline


@register_strategy
class SupportLinearProbe(_FrozenBaseline):
    """Logistic regression trained on the support set's frozen, L2-normalised features, per episode.

    Reference: Tian, Wang, Krishnan, Tenenbaum & Isola, "Rethinking Few-Shot Image Classification: a Good
    Embedding Is All You Need?", ECCV 2020 (scikit-learn logistic regression on normalised embeddings).

    Args:
        C: inverse L2 regularisation of the logistic regression (scikit-learn's default 1.0, as in Tian 2020).

    Example:
        >>> SupportLinearProbe(backbone="file:runs/pretrain").fit(base).evaluate(novel)
    """

    name = "support-linear-probe"

    _parameter_constraints = {
        "C": [POSITIVE],
    }

    def __init__(self, *, C: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.C = C

    def _transform_features(self, f):
        return F.normalize(f, dim=-1)

    def _scores(self, s, sy, q, n_way):
        from sklearn.linear_model import LogisticRegression

        out = torch.full((s.shape[0], q.shape[1], n_way), -1e9)
        for e in range(s.shape[0]):
            clf = LogisticRegression(C=self.C, max_iter=1000).fit(s[e].numpy(), sy[e].numpy())
            out[e][:, torch.as_tensor(clf.classes_)] = torch.from_numpy(clf.predict_log_proba(q[e].numpy())).float()
        return out


@register_strategy
class SupportFineTuneHead(_FrozenBaseline):
    """A new linear head fine-tuned on the support set of each episode, over frozen features.

    The head (initialised with N(0, 0.01²) weights, seeded) takes ``head_steps`` full-batch gradient steps of Adam on the support
    cross-entropy; all episodes are adapted at once as a batch of heads (E, D, N). This is the per-episode
    adaptation of Chen et al.'s "Baseline" (Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot
    Classification", ICLR 2019: 100 steps, lr 0.01); ``cosine=True`` gives their Baseline++ head.

    Args:
        head_steps: gradient steps per episode (Chen 2019: 100).
        head_lr: step size (Chen 2019: 0.01).
        cosine: cosine-similarity head with scale 10 (Baseline++) instead of a linear one.

    Example:
        >>> SupportFineTuneHead(backbone="file:runs/pretrain", cosine=True).fit(base).evaluate(novel)
    """

    name = "support-finetune-head"

    _parameter_constraints = {
        "head_steps": [Interval(int, 1)], "head_lr": [POSITIVE], "cosine": [BOOL],
    }

    def __init__(self, *, head_steps: int = 100, head_lr: float = 0.01, cosine: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.head_steps, self.head_lr, self.cosine = head_steps, head_lr, cosine

    def _transform_features(self, f):
        return F.normalize(f, dim=-1)

    def _scores(self, s, sy, q, n_way):
        return fit_episode_heads(s, sy, q, n_way, steps=self.head_steps, lr=self.head_lr, cosine=self.cosine,
                                 seed=self.seed)
