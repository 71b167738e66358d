"""Multi-task learning: one shared backbone, one head per task, trained together with a loss weighting.

Tasks are label columns of the training data: the main label (task ``"label"``) and the extra columns of
an :class:`~transferkit.data.ImageDataset` (CSV columns, or the built-in Fashion-MNIST columns of
:func:`transferkit.data.fashion_tasks.add_fashion_tasks`). Missing labels (NaN, -1, empty string) are
masked out of that task's loss. References: Caruana 1997 (hard parameter sharing); Kendall, Gal &
Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses", CVPR 2018; Chen et al., "GradNorm",
ICML 2018; Maninis et al. 2019 / Vandenhende et al. 2021 for the multi-task gain Delta_m; LibMTL.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ...data import ImageDataset
from ...data.targets import WithTargets
from ...engine import infer, make_loader
from ...errors import TransferkitError
from ...params import DICT, STR, ListOf, Options
from ..base import NON_NEGATIVE, NeuralStrategy
from ..registry import register_strategy
from .columns import decode, encode_targets, resolve_tasks, task_metrics
from .protocol import compare_single_task
from .weighting import WEIGHTINGS, LossWeighting, gradnorm_loss, masked_task_loss


class MultiTaskNet(nn.Module):
    """Shared backbone + one linear head per task: (B, C, H, W) -> [(B, out_t) for each task]."""

    def __init__(self, backbone, out_dims: list[int]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList([nn.Linear(backbone.num_features, d) for d in out_dims])

    def forward(self, x):
        f = self.backbone(x)
        return [h(f) for h in self.heads]


@register_strategy
class MultiTask(NeuralStrategy):
    """Train one shared backbone with a head per task (classification or regression) on several label columns.

    Every task's loss is masked to its labelled rows and the losses are combined by ``weighting``:
    'equal' (sum), 'uncertainty' (Kendall et al., CVPR 2018: learned log-variances s_t, loss
    exp(-s_t) L_t + s_t/2 for classification and (exp(-s_t) L_t + s_t)/2 for regression) or 'gradnorm'
    (Chen et al., ICML 2018: learned weights w_t that equalise the gradient norms of w_t L_t at the last
    shared layer, scaled by each task's relative inverse training rate to the power ``gradnorm_alpha``;
    weights renormalised to sum to T after each step).

    Args:
        tasks: None (the main label, task ``"label"``, plus every extra column of ``train``), a list of
            column names (``"label"`` is the main label), or a dict name -> 'classification' | 'regression'.
            Without a dict the kind is inferred: strings, or integers with at most 50 distinct values, are
            classification; other numbers regression (standardised with the training mean/std).
        weighting: 'equal', 'uncertainty' or 'gradnorm'.
        gradnorm_alpha: GradNorm's asymmetry alpha (default 1.5, the paper's NYUv2 setting).
        **kwargs: the shared training parameters of :class:`NeuralStrategy` (backbone, epochs, lr, ...).

    Inputs: ``train`` ImageDataset with the task columns (optional ``val``). Images (B, C, H, W) in [0, 1]
    -> a list of per-task outputs: (B, n_classes_t) logits, or (B, 1) regression values.

    Example:
        >>> from transferkit.data import load_fashion_mnist
        >>> from transferkit.data.fashion_tasks import add_fashion_tasks
        >>> train = add_fashion_tasks(load_fashion_mnist("train"))
        >>> mt = MultiTask(backbone="builtin:small-cnn", weighting="uncertainty", epochs=3).fit(train)
        >>> mt.evaluate(add_fashion_tasks(load_fashion_mnist("test")))["tasks"]["sleeves"]["accuracy"]
        >>> mt.compare_single_task(train, test)["delta_m"]   # multi-task gain in percent
    """

    name = "multitask"
    family = "many-tasks"
    data_roles = ("train",)

    _parameter_constraints = {
        "tasks": [None, ListOf(STR, min_length=1), DICT], "weighting": [Options(*WEIGHTINGS)],
        "gradnorm_alpha": [NON_NEGATIVE],
    }

    def __init__(self, *, tasks=None, weighting: str = "equal", gradnorm_alpha: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.tasks, self.weighting, self.gradnorm_alpha = tasks, weighting, gradnorm_alpha

    # -- tasks ---------------------------------------------------------------------------------------
    def encode_targets(self, data: ImageDataset) -> np.ndarray:
        """The (N, T) float32 target matrix of ``data`` for the fitted tasks (``columns.encode_targets``)."""
        return encode_targets(self.tasks_, data)

    def _targets_loader(self, data: ImageDataset, *, train: bool, batch_size=None):
        return make_loader(WithTargets(data.with_transform(self.transform(train)), self.encode_targets(data)),
                           batch_size or self.batch_size, shuffle=train, seed=self.seed,
                           num_workers=self.num_workers, drop_last=train)

    # -- model -----------------------------------------------------------------------------------------
    def build_model(self, backbone, num_classes=None) -> nn.Module:
        return MultiTaskNet(backbone, [len(s["values"]) if s["kind"] == "classification" else 1 for s in self.tasks_])

    @property
    def module(self) -> nn.Module:
        return self._module

    def param_groups(self) -> list[dict]:
        groups = [{"params": list(self.model_.parameters()), "lr": self.lr, "name": "network"}]
        if self.weighting != "equal":
            groups.append({"params": [p for p in self.weighting_.parameters() if p.requires_grad], "lr": self.lr,
                           "weight_decay": 0.0, "name": "loss_weights"})
        return groups

    def _shared_layer(self) -> nn.Parameter:
        """GradNorm's W: the last weight matrix/kernel of the shared backbone."""
        params = [p for p in self.backbone_.parameters() if p.dim() >= 2 and p.requires_grad]
        if not params:
            raise TransferkitError("GradNorm needs a trainable weight in the shared backbone; none was found.")
        return params[-1]

    def training_step(self, batch) -> dict:
        x, targets = batch
        outs = self.model_(x)
        losses = [masked_task_loss(o, targets[:, t], s["kind"], self.label_smoothing if s["kind"] == "classification" else 0.0)
                  for t, (o, s) in enumerate(zip(outs, self.tasks_))]
        L = torch.stack(losses)
        labelled = torch.stack([torch.isfinite(targets[:, t]) & (targets[:, t] >= 0 if s["kind"] == "classification" else True)
                                for t, s in enumerate(self.tasks_)], 1).any(0)
        logs = {}
        if self.weighting == "equal":
            loss = L.sum()
        elif self.weighting == "uncertainty":
            s = self.weighting_.log_vars
            scale = torch.tensor([1.0 if sp["kind"] == "classification" else 0.5 for sp in self.tasks_], device=L.device)
            loss = (scale * torch.exp(-s) * L + 0.5 * s * labelled.float()).sum()
        else:
            loss = self._gradnorm_loss(L, labelled)
        for sp, li, wi in zip(self.tasks_, L, self.weighting_.current()):
            logs[f"loss_{sp['name']}"] = li.detach()
            logs[f"w_{sp['name']}"] = wi
        return {"loss": loss, **logs}

    def _gradnorm_loss(self, L: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
        if self._initial_losses is None:
            self._initial_losses = L.detach().clamp_min(1e-8)
        return gradnorm_loss(L, labelled, self.weighting_.weights, self._shared_layer(), self._initial_losses,
                             self.gradnorm_alpha)

    def on_batch_end(self, trainer, logs) -> None:
        if self.weighting == "gradnorm":
            with torch.no_grad():
                w = self.weighting_.weights
                w.clamp_(min=1e-3)
                w.mul_(len(w) / w.sum())

    def validation_metrics(self, loader) -> dict:
        metrics = self._evaluate_loader(loader)
        main = next((m for m in metrics.values() if "accuracy" in m), None)
        out = {f"val_{k}_{n}": v for n, m in metrics.items() for k, v in m.items() if k in ("accuracy", "mae")}
        out["val_accuracy"] = main["accuracy"] if main else float("nan")
        return out

    # -- the lifecycle's hooks -----------------------------------------------------------------------------

    def _check_train(self, train: ImageDataset) -> ImageDataset:
        """Every image, labelled or not in the main column: each task's loss is masked to its own labelled rows."""
        if not isinstance(train, ImageDataset):
            raise TransferkitError(f"MultiTask.fit expects an ImageDataset as 'train'; got {type(train).__name__}.")
        self._record_data(train)
        return train

    def set_classes(self, train: ImageDataset) -> None:
        self.tasks_ = resolve_tasks(self.tasks, train)
        self.classes_ = list(train.classes)

    def setup(self, train: ImageDataset, **roles) -> None:
        self.weighting_ = LossWeighting(len(self.tasks_), self.weighting)
        self._module = nn.ModuleDict({"net": self.model_, "weighting": self.weighting_})
        self._initial_losses = None

    def train_loader(self, train: ImageDataset, **roles):
        return self._targets_loader(train, train=True)

    def val_loader(self, val: ImageDataset):
        return self._targets_loader(val, train=False)

    def after_fit(self, train: ImageDataset, **roles) -> None:
        self.task_weights_ = {s["name"]: float(w) for s, w in zip(self.tasks_, self.weighting_.current())}

    # -- predict / evaluate ------------------------------------------------------------------------------
    def _task_index(self, name: str) -> int:
        names = [s["name"] for s in self.tasks_]
        if name not in names:
            raise TransferkitError(f"Unknown task {name!r}; the fitted tasks are {names}.")
        return names.index(name)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the main-label task (B, n_classes)."""
        return self.model_(x)[self._task_index("label")]

    def predict_tasks(self, data: ImageDataset) -> dict[str, np.ndarray]:
        """Per task: predicted class indices (N,) or regression values in the column's units (N,)."""
        self.check_fitted()
        outs = self._per_task(self.infer(data, self._joint_outputs))
        return {s["name"]: decode(s, o) for s, o in zip(self.tasks_, outs)}

    def _joint_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every task's output side by side (B, sum of widths): one tensor for the one inference loop."""
        return torch.cat([o.float() for o in self.model_(x)], 1)

    def _per_task(self, joint: torch.Tensor) -> list[np.ndarray]:
        widths = [len(s["values"]) if s["kind"] == "classification" else 1 for s in self.tasks_]
        if not len(joint):
            return [np.zeros((0, w), np.float32) for w in widths]
        return [c.numpy() for c in torch.split(joint, widths, 1)]

    def _evaluate_loader(self, loader) -> dict:
        joint, targets = infer(loader, self._joint_outputs, device=next(self.model_.parameters()).device,
                               modules=(self.module,), targets=True)
        targets = targets.numpy() if len(targets) else np.zeros((0, len(self.tasks_)), np.float32)
        return {s["name"]: task_metrics(s, o, targets[:, k])
                for k, (s, o) in enumerate(zip(self.tasks_, self._per_task(joint)))}

    def evaluate(self, data: ImageDataset) -> dict:
        """``{"tasks": {name: metrics}}`` (accuracy / balanced accuracy / macro-F1 for classification, MAE /
        RMSE / R^2 in the column's units for regression), plus the main label's full metrics when it is a task."""
        self.check_fitted()
        out = {"tasks": self._evaluate_loader(self._targets_loader(data, train=False, batch_size=256))}
        if any(s["name"] == "label" for s in self.tasks_):
            out.update(super().evaluate(data))
        return out

    def compare_single_task(self, train: ImageDataset, test: ImageDataset) -> dict:
        """Single-task baselines with the same budget and Delta_m (:func:`.protocol.compare_single_task`)."""
        return compare_single_task(self, train, test)

    # -- persistence ---------------------------------------------------------------------------------------
    def _extra_state(self) -> dict:
        return {**super()._extra_state(), "tasks": self.tasks_}

    def _tensor_state(self) -> dict:
        return self._module.state_dict()

    def _restore(self, state: dict, tensors: dict) -> None:
        self.tasks_ = state["tasks"]
        self.backbone_ = self._restore_backbone(state)
        self.model_ = self.build_model(self.backbone_)
        self.weighting_ = LossWeighting(len(self.tasks_), self.weighting)
        self._module = nn.ModuleDict({"net": self.model_, "weighting": self.weighting_})
        self._module.load_state_dict(tensors)
        self.model_.eval()
        self.history_ = state.get("history", [])
        self.task_weights_ = {s["name"]: float(w) for s, w in zip(self.tasks_, self.weighting_.current())}

