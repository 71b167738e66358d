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
from sklearn.base import clone
from torch import nn
from torch.nn import functional as F

from ...data import ImageDataset
from ...data.targets import WithTargets
from ...engine import classification_metrics, infer, make_loader
from ...errors import DataError, TransferkitError, check_choice, check_range
from ..base import NeuralStrategy
from ..registry import register_strategy

WEIGHTINGS = ("equal", "uncertainty", "gradnorm")
KINDS = ("classification", "regression")
MAX_CLASSES_INFERRED = 50


def masked_task_loss(output: torch.Tensor, target: torch.Tensor, kind: str, label_smoothing: float = 0.0) -> torch.Tensor:
    """Loss of one task over the labelled rows only.

    Args:
        output: (B, n_classes) logits, or (B, 1) for a regression task.
        target: (B,) float; class index (classification) or standardised value (regression);
            NaN (and, for classification, negative values) marks a missing label.
        kind: 'classification' (cross-entropy) or 'regression' (mean squared error).

    Returns the mean loss over labelled rows, or a zero that keeps the graph when none is labelled.
    """
    mask = torch.isfinite(target)
    if kind == "classification":
        mask = mask & (target >= 0)
    if not bool(mask.any()):
        return output.sum() * 0.0
    if kind == "classification":
        return F.cross_entropy(output[mask], target[mask].long(), label_smoothing=label_smoothing)
    return F.mse_loss(output[mask].reshape(-1).float(), target[mask].float())


class MultiTaskNet(nn.Module):
    """Shared backbone + one linear head per task: (B, C, H, W) -> [(B, out_t) for each task]."""

    def __init__(self, backbone, out_dims: list[int]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList([nn.Linear(backbone.num_features, d) for d in out_dims])

    def forward(self, x):
        f = self.backbone(x)
        return [h(f) for h in self.heads]


class LossWeighting(nn.Module):
    """Learnable loss-weighting state: ``log_vars`` s_t (uncertainty) or ``weights`` w_t (GradNorm)."""

    def __init__(self, n_tasks: int, method: str):
        super().__init__()
        self.method = method
        self.log_vars = nn.Parameter(torch.zeros(n_tasks), requires_grad=method == "uncertainty")
        self.weights = nn.Parameter(torch.ones(n_tasks), requires_grad=method == "gradnorm")

    def current(self) -> torch.Tensor:
        """The effective weight of each task loss now (T,)."""
        if self.method == "uncertainty":
            return torch.exp(-self.log_vars.detach())
        return self.weights.detach().clone()


def multitask_gain(multi: dict, single: dict, lower_is_better: dict) -> float:
    """Delta_m (Maninis 2019; Vandenhende 2021) in percent: the mean relative change of each task's metric
    from single-task to multi-task, sign-flipped for metrics where lower is better.

    ``multi``/``single``: task -> metric value; ``lower_is_better``: task -> bool.
    """
    terms = []
    for t, m in multi.items():
        s = single[t]
        if s == 0 or not np.isfinite(s) or not np.isfinite(m):
            continue
        sign = -1.0 if lower_is_better[t] else 1.0
        terms.append(sign * (m - s) / abs(s))
    return float(100.0 * np.mean(terms)) if terms else float("nan")


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

    def __init__(self, *, tasks=None, weighting: str = "equal", gradnorm_alpha: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.tasks, self.weighting, self.gradnorm_alpha = tasks, weighting, gradnorm_alpha

    # -- tasks ---------------------------------------------------------------------------------------
    def _resolve_tasks(self, train: ImageDataset) -> list[dict]:
        if self.tasks is None:
            names = ["label", *sorted(train.extra)]
            kinds = {}
        elif isinstance(self.tasks, dict):
            names, kinds = list(self.tasks), dict(self.tasks)
        elif isinstance(self.tasks, (list, tuple)) and self.tasks and all(isinstance(t, str) for t in self.tasks):
            names, kinds = list(self.tasks), {}
        else:
            raise TransferkitError(f"The 'tasks' parameter of MultiTask must be None, a list of column names or a "
                                   f"dict name -> kind; got {self.tasks!r}.")
        if len(set(names)) != len(names):
            raise TransferkitError(f"The 'tasks' parameter of MultiTask names a column twice: {names}.")
        available = ["label", *train.extra]
        specs = []
        for name in names:
            if name not in available:
                raise DataError(f"The 'tasks' parameter of MultiTask names {name!r}, which is not a label column of "
                                f"{train.name or 'the training set'}; available: {available}.")
            kind = kinds.get(name)
            if kind is not None:
                check_choice("MultiTask", f"tasks[{name!r}]", kind, KINDS)
            if name == "label":
                if kind == "regression":
                    raise TransferkitError("The main 'label' column is a class label; it cannot be a regression task.")
                specs.append({"name": name, "kind": "classification", "values": list(range(train.num_classes)),
                              "classes": list(train.classes)})
                continue
            specs.append(self._column_spec(name, np.asarray(train.extra[name]), kind))
        return specs

    @staticmethod
    def _column_spec(name, col, kind):
        if col.dtype.kind in "OUS":
            vals = sorted({str(v).strip() for v in col if str(v).strip() and str(v) != "nan"})
            if kind == "regression":
                raise DataError(f"Task {name!r} holds text values ({vals[:5]}...); it cannot be a regression task.")
            return {"name": name, "kind": "classification", "values": vals, "classes": vals}
        col = col.astype(np.float64)
        finite = col[np.isfinite(col)]
        if finite.size == 0:
            raise DataError(f"Task {name!r} has no labelled value in the training set.")
        integer = np.all(finite == np.round(finite))
        present = np.unique(finite[finite >= 0]) if integer else np.array([])
        if kind is None:
            kind = "classification" if integer and 0 < len(present) <= MAX_CLASSES_INFERRED else "regression"
        if kind == "classification":
            if not integer:
                raise DataError(f"Task {name!r} is declared 'classification' but holds non-integer values "
                                f"(e.g. {finite[finite != np.round(finite)][:3].tolist()}).")
            if len(present) < 2:
                raise DataError(f"Classification task {name!r} needs at least 2 classes in the training set; "
                                f"found {present.tolist()}.")
            from ...data.fashion_tasks import FASHION_TASK_CLASSES

            vals = [int(v) for v in present]
            named = FASHION_TASK_CLASSES.get(name)
            classes = [named[v] for v in vals] if named and max(vals) < len(named) else [str(v) for v in vals]
            return {"name": name, "kind": "classification", "values": vals, "classes": classes}
        std = float(finite.std()) or 1.0
        return {"name": name, "kind": "regression", "mean": float(finite.mean()), "std": std}

    def encode_targets(self, data: ImageDataset) -> np.ndarray:
        """The (N, T) float32 target matrix of ``data`` for the fitted tasks: class indices or standardised
        values, NaN where the label is missing (or a class unseen in training)."""
        out = np.full((len(data), len(self.tasks_)), np.nan, dtype=np.float32)
        for t, spec in enumerate(self.tasks_):
            if spec["name"] == "label":
                col = data.labels.astype(np.float64)
                col[col < 0] = np.nan
                if list(data.classes) != spec["classes"]:
                    raise DataError(f"{data.name or 'The dataset'}: its classes {data.classes} differ from the fitted "
                                    f"ones {spec['classes']}.")
                out[:, t] = col
                continue
            if spec["name"] not in data.extra:
                continue  # the column is absent: every label of this task is missing
            col = np.asarray(data.extra[spec["name"]])
            if spec["kind"] == "regression":
                out[:, t] = (col.astype(np.float64) - spec["mean"]) / spec["std"]
            else:
                index = {v: i for i, v in enumerate(spec["values"])}
                if col.dtype.kind in "OUS":
                    out[:, t] = [index.get(str(v).strip(), np.nan) for v in col]
                else:
                    out[:, t] = [index.get(int(v), np.nan) if np.isfinite(v) else np.nan for v in col.astype(np.float64)]
        return out

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
        w = self.weighting_.weights
        W = self._shared_layer()
        norms = []
        for li, ok in zip(L, labelled):
            g = torch.autograd.grad(li, W, retain_graph=True, allow_unused=True)[0] if ok and li.requires_grad else None
            norms.append(g.norm() if g is not None else L.new_zeros(()))
        n = torch.stack(norms).detach()
        if self._initial_losses is None:
            self._initial_losses = L.detach().clamp_min(1e-8)
        ratio = (L.detach() / self._initial_losses)[labelled]
        G = w * n
        target = torch.zeros_like(n)
        if labelled.any():
            r = ratio / ratio.mean().clamp_min(1e-12)
            target[labelled] = G.detach()[labelled].mean() * r.pow(self.gradnorm_alpha)
        gn = ((G - target).abs() * labelled.float()).sum()
        gw = torch.autograd.grad(gn, w, allow_unused=True)[0]
        gw = torch.zeros_like(w) if gw is None else gw
        surrogate = (w * gw.detach()).sum()  # gives w exactly the GradNorm gradient; contributes 0 to the value
        return (w.detach() * L).sum() + surrogate - surrogate.detach()

    def on_batch_end(self, trainer, logs) -> None:
        if self.weighting == "gradnorm":
            with torch.no_grad():
                w = self.weighting_.weights
                w.clamp_(min=1e-3)
                w.mul_(len(w) / w.sum())

    def validate(self, loader) -> dict:
        metrics = self._evaluate_loader(loader)
        main = next((m for m in metrics.values() if "accuracy" in m), None)
        out = {f"val_{k}_{n}": v for n, m in metrics.items() for k, v in m.items() if k in ("accuracy", "mae")}
        out["val_accuracy"] = main["accuracy"] if main else float("nan")
        return out

    # -- the lifecycle's hooks -----------------------------------------------------------------------------
    def _validate_params(self):
        super()._validate_params()
        check_choice("MultiTask", "weighting", self.weighting, WEIGHTINGS)
        check_range("MultiTask", "gradnorm_alpha", self.gradnorm_alpha, 0)

    def _check_train(self, train: ImageDataset) -> ImageDataset:
        """Every image, labelled or not in the main column: each task's loss is masked to its own labelled rows."""
        if not isinstance(train, ImageDataset):
            raise TransferkitError(f"MultiTask.fit expects an ImageDataset as 'train'; got {type(train).__name__}.")
        self._record_data(train)
        return train

    def set_classes(self, train: ImageDataset) -> None:
        self.tasks_ = self._resolve_tasks(train)
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
        return {s["name"]: self._decode(s, o) for s, o in zip(self.tasks_, outs)}

    def _joint_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every task's output side by side (B, sum of widths): one tensor for the one inference loop."""
        return torch.cat([o.float() for o in self.model_(x)], 1)

    def _per_task(self, joint: torch.Tensor) -> list[np.ndarray]:
        widths = [len(s["values"]) if s["kind"] == "classification" else 1 for s in self.tasks_]
        if not len(joint):
            return [np.zeros((0, w), np.float32) for w in widths]
        return [c.numpy() for c in torch.split(joint, widths, 1)]

    @staticmethod
    def _decode(spec, out: np.ndarray) -> np.ndarray:
        if spec["kind"] == "classification":
            return out.argmax(1)
        return out[:, 0] * spec["std"] + spec["mean"]

    def _evaluate_loader(self, loader) -> dict:
        joint, targets = infer(loader, self._joint_outputs, device=next(self.model_.parameters()).device,
                               modules=(self.module,), targets=True)
        targets = targets.numpy() if len(targets) else np.zeros((0, len(self.tasks_)), np.float32)
        return {s["name"]: self._task_metrics(s, o, targets[:, k])
                for k, (s, o) in enumerate(zip(self.tasks_, self._per_task(joint)))}

    @staticmethod
    def _task_metrics(spec, out: np.ndarray, target: np.ndarray) -> dict:
        mask = np.isfinite(target)
        if spec["kind"] == "classification":
            mask &= target >= 0
            if not mask.any():
                return {"accuracy": float("nan"), "n": 0}
            m = classification_metrics(target[mask].astype(np.int64), out[mask].argmax(1), classes=spec["classes"])
            return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
                    "n": m["n"]}
        if not mask.any():
            return {"mae": float("nan"), "n": 0}
        pred = out[mask, 0] * spec["std"] + spec["mean"]
        true = target[mask] * spec["std"] + spec["mean"]
        err = pred - true
        ss_tot = float(((true - true.mean()) ** 2).sum())
        return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
                "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"), "n": int(mask.sum())}

    def evaluate(self, data: ImageDataset) -> dict:
        """``{"tasks": {name: metrics}}`` (accuracy / balanced accuracy / macro-F1 for classification, MAE /
        RMSE / R^2 in the column's units for regression), plus the main label's full metrics when it is a task."""
        self.check_fitted()
        out = {"tasks": self._evaluate_loader(self._targets_loader(data, train=False, batch_size=256))}
        if any(s["name"] == "label" for s in self.tasks_):
            out.update(super().evaluate(data))
        return out

    # -- single-task baselines and the multi-task gain ---------------------------------------------------
    def compare_single_task(self, train: ImageDataset, test: ImageDataset) -> dict:
        """Train one single-task model per task with the same parameters and budget (epochs, batches, backbone),
        evaluate all on ``test`` and report per-task metrics and Delta_m (percent; > 0 means multi-task helps).

        The main metric of a task is accuracy (classification, higher is better) or MAE (regression, lower).
        """
        self.check_fitted()
        multi = self.evaluate(test)["tasks"]
        single, times = {}, {}
        for spec in self.tasks_:
            st = clone(self).set_params(tasks={spec["name"]: spec["kind"]}, weighting="equal")
            st.fit(train)
            single[spec["name"]] = st.evaluate(test)["tasks"][spec["name"]]
            times[spec["name"]] = st.fit_time_
        key = {s["name"]: ("accuracy" if s["kind"] == "classification" else "mae") for s in self.tasks_}
        lower = {n: k == "mae" for n, k in key.items()}
        delta = multitask_gain({n: multi[n][k] for n, k in key.items()}, {n: single[n][k] for n, k in key.items()}, lower)
        return {"multi_task": multi, "single_task": single, "metric": key, "delta_m": delta,
                "weighting": self.weighting, "task_weights": getattr(self, "task_weights_", {}),
                "fit_s": {"multi_task": self.fit_time_, "single_task": times}}

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
