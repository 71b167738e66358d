"""Knowledge distillation: train a small student on a trained teacher's softened outputs.

References: Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", 2015 (soft targets at
temperature T, loss scaled by T^2); Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015 (feature
matching through a learned regressor); Tian et al. 2020 (RepDistiller, whose defaults T=4, alpha=0.9 are used).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...data import ImageDataset, ImageTransform
from ...data.targets import WithTargets
from ...engine import infer, make_loader
from ...errors import DataError, TransferkitError
from ...params import BOOL, Interval, Kind
from ...utils import count_parameters
from ..base import NON_NEGATIVE, PATH, POSITIVE, NeuralStrategy, Strategy
from ..reuse.layers import ReuseClassifier
from ..reuse.recipe import PretrainedRecipe
from ..registry import register_strategy


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton's soft-target loss: ``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, mean over the batch.

    (B, K) logits each -> a scalar. The T^2 factor keeps the gradient scale independent of T.
    """
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    log_p_t = F.log_softmax(teacher_logits.float() / t, dim=1)
    return (t * t) * F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


class _Teacher:
    """A frozen teacher: logits (and, for feature matching, the last feature map) of an image batch."""

    def __init__(self, teacher):
        if isinstance(teacher, (str, Path)):
            teacher = Strategy.load(teacher)
        if isinstance(teacher, Strategy):
            teacher.check_fitted()
            if not isinstance(getattr(teacher, "model_", None), nn.Module) or not hasattr(teacher, "logits"):
                raise TransferkitError(f"The teacher ({type(teacher).__name__}) has no network to distil; use a "
                                       f"network-trained strategy or an nn.Module.")
            self.classes = list(teacher.classes_)
            self.module = teacher.model_
            self.raw_logits = teacher.logits
            bb = getattr(teacher, "backbone_", None)
        elif isinstance(teacher, nn.Module):
            self.classes = None
            self.module = teacher
            self.raw_logits = teacher
            bb = getattr(teacher, "backbone", None)
        else:
            raise TransferkitError("The 'teacher' must be a fitted transferkit strategy, the directory of a saved one, "
                                   f"or an nn.Module mapping images to logits; got {type(teacher).__name__}.")
        self.backbone = bb if hasattr(bb, "forward_features") else None
        self.data_config = dict(bb.data_config) if bb is not None and hasattr(bb, "data_config") else None
        self.module.eval().requires_grad_(False)

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        """Resize a student batch to the teacher's input size when they differ."""
        if self.data_config is None:
            return x
        c, h, w = self.data_config["input_size"]
        if x.shape[1] != c:
            x = x.expand(-1, c, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
        if tuple(x.shape[-2:]) != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def logits(self, x):
        return self.raw_logits(self.adapt(x))

    @torch.no_grad()
    def features(self, x):
        if self.backbone is None:
            raise TransferkitError("Feature matching (feature_weight > 0) needs a teacher with a transferkit Backbone "
                                   "(a strategy's backbone_, or a module with a .backbone).")
        return self.backbone.forward_features(self.adapt(x))


class StudentNet(ReuseClassifier):
    """Student backbone + linear head (BatchNorm layers kept in eval mode as the recipe says), plus the FitNets
    regressor (1x1 conv student -> teacher channels)."""

    def __init__(self, backbone, num_classes: int, teacher_channels: int | None = None):
        super().__init__(backbone, num_classes)
        self.regressor = (nn.Conv2d(backbone.num_features, teacher_channels, 1, bias=False)
                          if teacher_channels else None)

    def forward_with_features(self, x):
        f = self.backbone.forward_features(x)
        pooled = self.backbone.model.forward_head(f, pre_logits=True)
        return self.head(pooled), f


@register_strategy
class Distill(PretrainedRecipe, NeuralStrategy):
    """Distil a trained teacher into a smaller student network (any builtin or timm backbone) with soft targets.

    Loss (Hinton et al. 2015): ``alpha * T^2 * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, y)``:
    **alpha weighs the soft-target (distillation) term**, 1 - alpha the usual cross-entropy on the true labels.
    With ``feature_weight`` beta > 0, FitNets (Romero et al. 2015) hint loss ``beta * MSE(r(f_s), f_t)`` is
    added on the last feature maps, r a learned 1x1-conv regressor (spatial sizes matched by adaptive pooling).
    When nothing is random in the input (``augment='none'``) and no features are matched, the teacher's logits
    are computed once before training and cached (one teacher pass instead of one per epoch).

    Args:
        teacher: a fitted transferkit strategy, the directory of a saved one (``Strategy.load``), or an
            ``nn.Module`` mapping images in [0, 1] to logits (e.g. a Classifier: backbone + head). Its class
            list must equal the training data's (checked for strategies).
        temperature: T (default 4, RepDistiller; Hinton uses 1-20).
        alpha: weight of the soft-target term (default 0.9, RepDistiller).
        feature_weight: FitNets beta (default 0 = off; RepDistiller uses 100).
        cache_teacher: cache teacher logits when augmentation is off (default True).
        lp_epochs, backbone_lr_mult, lr_decay, group_lr_mults, head_lr_mult, bn_policy: the student trains under
            the recipe of fine-tuning (:class:`..reuse.recipe.PretrainedRecipe`): a pre-trained student (an
            ImageNet network) gets LP-FT, its body at a tenth of the head's rate and frozen BatchNorm; a student
            from a random initialisation trains every layer at ``lr`` from the first step.
        backbone: the student backbone spec (default ``builtin:small-cnn``).
        **kwargs: the shared training parameters.

    Inputs: ``train`` (labelled ImageDataset) and the teacher. Images (B, C, H, W) in [0, 1] -> student logits
    (B, n_classes).

    Example:
        >>> teacher = FineTune(backbone="builtin:tiny-resnet", epochs=5).fit(train)
        >>> student = Distill(teacher=teacher, backbone="builtin:micro-cnn", epochs=5).fit(train)
        >>> distillation_report(teacher, student, test)
    """

    name = "distill"
    family = "efficiency"
    data_roles = ("train", "teacher")

    _parameter_constraints = {
        "teacher": [None, PATH, Kind((Strategy, nn.Module), "a fitted strategy or an nn.Module")],
        "temperature": [POSITIVE], "alpha": [Interval(float, 0, 1)], "feature_weight": [NON_NEGATIVE],
        "cache_teacher": [BOOL],
    }

    def __init__(self, *, teacher=None, temperature: float = 4.0, alpha: float = 0.9, feature_weight: float = 0.0,
                 cache_teacher: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.teacher, self.temperature, self.alpha = teacher, temperature, alpha
        self.feature_weight, self.cache_teacher = feature_weight, cache_teacher

    def json_params(self) -> dict:
        out = super().json_params()
        if not isinstance(self.teacher, (str, Path, type(None))):
            out["teacher"] = None  # the teacher object is not saved with the student
        elif isinstance(self.teacher, Path):
            out["teacher"] = str(self.teacher)
        return out

    def check_roles(self, train: ImageDataset, teacher=None, **roles) -> dict:
        """The teacher (this role or the ``teacher`` parameter), loaded and checked against the classes."""
        teacher = teacher if teacher is not None else self.teacher
        if teacher is None:
            raise TransferkitError("Distill needs a teacher: pass teacher=<fitted strategy | saved directory | nn.Module>.")
        self.teacher_ = _Teacher(teacher)
        if self.teacher_.classes is not None and self.teacher_.classes != list(train.classes):
            a, b = set(self.teacher_.classes), set(train.classes)
            raise DataError(f"The teacher was trained on classes {self.teacher_.classes} but the training data has "
                            f"{list(train.classes)} (only in the teacher: {sorted(a - b)}, only in the data: "
                            f"{sorted(b - a)}); distillation needs the same classes in the same order.")
        return roles

    def build_model(self, backbone, num_classes):
        """The student; with feature matching, the FitNets regressor to the teacher's channels (not saved)."""
        t_channels = None
        if self.feature_weight > 0 and getattr(self, "teacher_", None) is not None:
            t_channels = self.teacher_.features(torch.zeros(1, *backbone.data_config["input_size"])).shape[1]
        return StudentNet(backbone, num_classes, t_channels)

    def setup(self, train: ImageDataset, **roles) -> None:
        super().setup(train, **roles)
        with torch.no_grad():
            k = self.teacher_.logits(torch.zeros(1, *self.backbone_.data_config["input_size"])).shape[1]
        if k != len(self.classes_):
            raise DataError(f"The teacher outputs {k} logits but the training data has {len(self.classes_)} classes.")
        self.cached_teacher_ = bool(self.cache_teacher and self.augment_ == "none" and self.feature_weight == 0)

    def train_loader(self, train: ImageDataset, **roles):
        """Images and labels, with the teacher's logits cached beside them when nothing in the input is random."""
        t0 = time.perf_counter()
        loader = self._cached_loader(train) if self.cached_teacher_ else self.loader(train, train=True)
        self.teacher_cache_s_ = time.perf_counter() - t0
        return loader

    def after_fit(self, train: ImageDataset, **roles) -> None:
        self.n_params_ = count_parameters(self.model_.backbone) + count_parameters(self.model_.head)
        self.n_trainable_params_ = self.n_params_

    def _cached_loader(self, train: ImageDataset):
        """Teacher logits of every training image (teacher's own transform), carried with the labels."""
        cfg = self.teacher_.data_config or self.backbone_.data_config
        logits = infer(make_loader(train.with_transform(ImageTransform(cfg)), 256), self.teacher_.raw_logits,
                       modules=(self.teacher_.module,))
        targets = np.concatenate([train.labels[:, None].astype(np.float32), logits.numpy()], 1)
        return make_loader(WithTargets(train.with_transform(self.transform(True)), targets), self.batch_size,
                           shuffle=True, seed=self.seed, num_workers=self.num_workers, drop_last=True)

    def training_step(self, batch) -> dict:
        x, yt = batch
        if yt.dim() == 2:  # cached: (label, teacher logits)
            y, t_logits = yt[:, 0].long(), yt[:, 1:]
        else:
            y = yt
            t_logits = self.teacher_.logits(x)
        hint = None
        if self.model_.regressor is not None:
            s_logits, f_s = self.model_.forward_with_features(x)
            f_t = self.teacher_.features(x)
            r = self.model_.regressor(f_s)
            if r.shape[-2:] != f_t.shape[-2:]:
                r = F.adaptive_avg_pool2d(r, f_t.shape[-2:]) if r.shape[-1] >= f_t.shape[-1] else F.interpolate(r, size=f_t.shape[-2:], mode="bilinear", align_corners=False)
            hint = F.mse_loss(r, f_t)
        else:
            s_logits = self.model_(x)
        soft = kd_loss(s_logits, t_logits, self.temperature)
        hard = self.loss(s_logits, y)
        loss = self.alpha * soft + (1 - self.alpha) * hard
        out = {"kd": soft.detach(), "ce": hard.detach(), "acc": (s_logits.argmax(1) == y).float().mean()}
        if hint is not None:
            loss = loss + self.feature_weight * hint
            out["hint"] = hint.detach()
        return {"loss": loss, **out}

    def _tensor_state(self) -> dict:
        """The student only (the FitNets regressor is a training aid)."""
        return {k: v for k, v in self.model_.state_dict().items() if not k.startswith("regressor.")}

