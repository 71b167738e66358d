"""Unsupervised domain adaptation: labelled source + unlabelled target -> a model that works on the target.

Strategies (all through the one Trainer, source and target batches paired by ``engine.PairedLoader`` and
forwarded together, as in TLlib):

``source-only``  cross-entropy on the source only (the baseline every method must beat).
``dann``         a domain critic behind a gradient-reversal layer (Ganin & Lempitsky, ICML 2015; Ganin et al.,
                 JMLR 2016), lambda ramped by ``2 / (1 + exp(-gamma * p)) - 1`` with gamma = 10.
``mmd``          DAN: multi-kernel MMD between source and target embeddings (Long et al., ICML 2015), five
                 Gaussian kernels at bandwidths ``{1/4, 1/2, 1, 2, 4} x`` the mean pairwise distance.
``coral``        Deep CORAL: match the embeddings' covariances (Sun & Saenko, ECCV-W 2016).
``cdan``         conditional adversarial: the critic sees ``features (x) predictions`` (Long et al., NeurIPS
                 2018), with entropy conditioning (CDAN+E) on by default.

Model selection without target labels: after every epoch the target predictions are scored by unsupervised
validators -- information maximisation (IM, Shi & Sha 2012; Musgrave et al. 2022), mean prediction entropy and
soft neighbourhood density (SND, Saito et al., ICCV 2021) -- and the epoch with the best ``selection`` score is
kept (optional early stopping on it). A labelled ``target_test`` passed to ``fit`` is used *only* to log
``oracle_target_accuracy`` per epoch (never for selection). Shift diagnostics: the proxy A-distance (Ben-David
et al. 2007) between source and target embeddings before and after adaptation, and a 2-D t-SNE map of both.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import ImageDataset
from ..data.domains import align_classes, split_domains  # noqa: F401  (split_domains: the old path, re-exported)
from ..engine import EarlyStopping, PairedLoader, proxy_a_distance
from ..errors import DataError, TransferkitError, check_choice, check_range
from .base import NeuralStrategy
from .registry import register_strategy

SELECTIONS = {"im": ("target_im", "max"), "snd": ("target_snd", "max"), "entropy": ("target_entropy", "min"),
              "last": (None, None)}


# ---------------------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------------------

class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambd):
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-lambd`` backward (Ganin & Lempitsky 2015)."""
    return _GradientReversal.apply(x, float(lambd))


def ganin_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's adaptation-factor schedule ``2 / (1 + exp(-gamma p)) - 1`` for training progress p in [0, 1]
    (Ganin et al. 2016, gamma = 10): 0 at the start (the critic is still noise), -> 1 at the end."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DomainDiscriminator(nn.Module):
    """Domain critic (B, D) -> logits (B,): two hidden layers of ``hidden`` units with BatchNorm and ReLU
    (TLlib's form of Ganin et al.'s 1024-1024 critic)."""

    def __init__(self, in_features: int, hidden: int = 1024):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def mk_mmd(fs: torch.Tensor, ft: torch.Tensor, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Multi-kernel MMD^2 (biased estimate) between (Bs, D) and (Bt, D) with Gaussian kernels whose
    bandwidths are ``multipliers x`` the mean pairwise squared distance of the joint batch (Long et al. 2015)."""
    x = torch.cat([fs, ft]).float()
    d2 = torch.cdist(x, x).pow(2)
    n = x.shape[0]
    base = d2.detach().sum() / max(1, n * n - n)
    k = sum(torch.exp(-d2 / (base * m + 1e-8)) for m in multipliers)
    ns = fs.shape[0]
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()


def coral_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """``||C_s - C_t||_F^2 / (4 d^2)`` between the feature covariances (Sun & Saenko 2016)."""
    d = fs.shape[1]

    def cov(f):
        f = f.float()
        f = f - f.mean(0, keepdim=True)
        return f.t() @ f / max(1, f.shape[0] - 1)
    return (cov(fs) - cov(ft)).pow(2).sum() / (4 * d * d)


class MultilinearMap(nn.Module):
    """CDAN's conditioning ``f (x) g``: the flattened outer product (B, D*K), or its randomised version
    ``(f R_f) * (g R_g) / sqrt(out)`` when ``D*K > max_dim`` (Long et al. 2018)."""

    def __init__(self, features: int, classes: int, max_dim: int = 4096, out_dim: int = 1024, seed: int = 0):
        super().__init__()
        self.randomized = features * classes > max_dim
        self.out_features = out_dim if self.randomized else features * classes
        if self.randomized:
            g = torch.Generator().manual_seed(seed)
            self.register_buffer("rf", torch.randn(features, out_dim, generator=g))
            self.register_buffer("rg", torch.randn(classes, out_dim, generator=g))

    def forward(self, f, g):
        if self.randomized:
            return (f @ self.rf) * (g @ self.rg) / math.sqrt(self.out_features)
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)


# -- unsupervised validators ----------------------------------------------------------------------------

def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1)


def entropy_score(proba) -> float:
    """Mean prediction entropy on the target (nats; lower = more confident)."""
    return float(_entropy(torch.as_tensor(np.asarray(proba), dtype=torch.float64)).mean())


def im_score(proba) -> float:
    """Information maximisation ``H(mean p) - mean H(p)`` (higher = confident *and* diverse predictions;
    Shi & Sha 2012, Liang et al. 2020 'SHOT'; a strong validator in Musgrave et al. 2022)."""
    p = torch.as_tensor(np.asarray(proba), dtype=torch.float64)
    return float(_entropy(p.mean(0, keepdim=True))[0] - _entropy(p).mean())


def snd_score(proba, temperature: float = 0.05) -> float:
    """Soft neighbourhood density (Saito et al. 2021): the mean entropy of each target sample's softmax
    similarity (temperature 0.05) to the other samples' L2-normalised predictions; higher = denser clusters."""
    p = F.normalize(torch.as_tensor(np.asarray(proba), dtype=torch.float64), dim=1)
    sim = p @ p.t()
    sim.fill_diagonal_(-float("inf"))
    q = torch.softmax(sim / temperature, dim=1)
    return float(_entropy(q).mean())


def embedding_map(source_features, target_features, *, source_labels=None, target_labels=None,
                  max_points: int = 500, seed: int = 0, perplexity: float = 30.0, method: str = "tsne") -> dict:
    """2-D coordinates of both domains' embeddings, for the report layer: t-SNE (van der Maaten & Hinton 2008)
    or PCA (``method="pca"``: linear and instant; one projection fitted on both domains).

    Returns ``{"method": ..., "coords": [[x, y], ...], "domain": ["source"|"target", ...], "label": [...]}``
    with at most ``max_points`` points per domain.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    check_choice("embedding_map", "method", method, ("tsne", "pca"))
    rng = np.random.default_rng(seed)
    parts, dom, lab = [], [], []
    for name, f, l in (("source", source_features, source_labels), ("target", target_features, target_labels)):
        f = np.asarray(f, np.float32)
        idx = np.sort(rng.choice(len(f), min(len(f), max_points), replace=False))
        parts.append(f[idx])
        dom += [name] * len(idx)
        lab += (np.asarray(l)[idx].tolist() if l is not None else [-1] * len(idx))
    x = np.concatenate(parts)
    reducer = (PCA(2, random_state=seed) if method == "pca" else
               TSNE(2, perplexity=min(perplexity, max(2.0, (len(x) - 1) / 3)), init="pca", random_state=seed))
    coords = reducer.fit_transform(x)
    return {"method": method, "coords": np.round(coords, 4).tolist(), "domain": dom, "label": [int(v) for v in lab]}


# -- data ------------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------------------
# the model and the strategies
# ---------------------------------------------------------------------------------------------------------

class DAModel(nn.Module):
    """backbone -> optional bottleneck (Linear-BN-ReLU) -> linear head; ``features(x)`` is what is aligned."""

    def __init__(self, backbone, num_classes: int, bottleneck_dim: int | None = None):
        super().__init__()
        self.backbone = backbone
        d = backbone.num_features
        self.bottleneck = (nn.Sequential(nn.Linear(d, bottleneck_dim), nn.BatchNorm1d(bottleneck_dim), nn.ReLU(inplace=True))
                           if bottleneck_dim else nn.Identity())
        self.out_features = bottleneck_dim or d
        self.head = nn.Linear(self.out_features, num_classes)

    def features(self, x):
        return self.bottleneck(self.backbone(x))

    def forward(self, x):
        return self.head(self.features(x))


class DomainAdaptation(NeuralStrategy):
    """Shared machinery of the domain-adaptation strategies (see the module docstring).

    Args (besides NeuralStrategy's):
        trade_off: weight of the transfer loss (1.0 in DANN, DAN, CDAN and TLlib).
        bottleneck_dim: a Linear-BN-ReLU bottleneck before the head (TLlib uses 256 on ResNet-50); None = none.
        backbone_lr_scale: the backbone's learning rate relative to ``lr`` (0.1 in Ganin 2016 and Long 2015 for
            ImageNet backbones; 1.0 for small backbones whose low-level filters must move).
        selection: unsupervised validator choosing the kept epoch: 'im' (default), 'snd', 'entropy', 'last'.
        selection_patience: stop when the validator has not improved for this many epochs (None = never).
        selection_samples: target images scored by the validators each epoch.
        diagnostics: compute the proxy A-distance before and after adaptation (``shift_``).

    ``fit(train, target, val=None, target_test=None)``: ``target`` is unlabelled (labels are hidden if present);
    ``target_test`` (labelled) is used only for the per-epoch ``oracle_target_accuracy`` log.
    """

    family = "domain-shift"
    data_roles = ("train", "target")

    def __init__(self, *, trade_off: float = 1.0, bottleneck_dim: int | None = None, backbone_lr_scale: float = 1.0,
                 selection: str = "im", selection_patience: int | None = None, selection_samples: int = 1000,
                 diagnostics: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.trade_off, self.bottleneck_dim, self.backbone_lr_scale = trade_off, bottleneck_dim, backbone_lr_scale
        self.selection, self.selection_patience = selection, selection_patience
        self.selection_samples, self.diagnostics = selection_samples, diagnostics

    # -- parameters and model --------------------------------------------------------------------------
    def _validate_params(self):
        super()._validate_params()
        owner = type(self).__name__
        check_range(owner, "trade_off", self.trade_off, 0)
        check_range(owner, "backbone_lr_scale", self.backbone_lr_scale, 0)
        check_choice(owner, "selection", self.selection, SELECTIONS)
        check_range(owner, "selection_samples", self.selection_samples, 2)
        if self.bottleneck_dim is not None:
            check_range(owner, "bottleneck_dim", self.bottleneck_dim, 1)

    def build_model(self, backbone, num_classes: int) -> nn.Module:
        return DAModel(backbone, num_classes, self.bottleneck_dim)

    def build_critic(self, num_classes: int) -> nn.Module | None:
        """Extra trained modules (domain critics); None when the method has none."""
        return None

    @property
    def module(self) -> nn.Module:
        module = getattr(self, "module_", None)
        return module if module is not None else self.model_

    def param_groups(self) -> list[dict]:
        backbone = list(self.model_.backbone.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.module.parameters() if id(p) not in ids]
        return [{"params": backbone, "lr": self.lr * self.backbone_lr_scale, "name": "backbone"},
                {"params": rest, "lr": self.lr, "name": "new"}]

    # -- fit -----------------------------------------------------------------------------------------------
    def fit(self, train: ImageDataset, target: ImageDataset | None = None, val: ImageDataset | None = None,
            target_test: ImageDataset | None = None):
        """Adapt from labelled ``train`` (source) to unlabelled ``target``; returns self."""
        owner = type(self).__name__
        if target is None:
            raise TransferkitError(f"{owner} needs the 'target' role: unlabelled images of the target domain, "
                                   f"e.g. {owner}(...).fit(source, target=target_images).")
        target = align_classes(train, target, owner).unlabelled()
        if len(target) < 2:
            raise DataError(f"{owner}: the target has {len(target)} image(s); at least 2 are needed.")
        self._target_test = None if target_test is None else align_classes(train, target_test, owner, "target_test")
        rng = np.random.default_rng(self.seed)
        self._score_idx = np.sort(rng.choice(len(target), min(len(target), self.selection_samples), replace=False))
        self._target = target
        super().fit(train, val=val, target=target)
        if self.diagnostics:
            self.shift_["proxy_a_distance_after"] = self._pad(self._check_train(train), target)
        return self

    def setup(self, train: ImageDataset, target: ImageDataset = None, **roles) -> None:
        critic = self.build_critic(len(self.classes_))
        self.module_ = nn.ModuleDict({"model": self.model_, "critic": critic}) if critic is not None else None
        self.shift_ = {}
        if self.diagnostics:
            self.shift_["proxy_a_distance_before"] = self._pad(train, target)

    def train_loader(self, train: ImageDataset, target: ImageDataset = None, **roles):
        return PairedLoader(self.loader(train, train=True), self.loader(target, train=True))

    def callbacks(self) -> list:
        monitor, mode = SELECTIONS[self.selection]
        if monitor is None:
            return []
        patience = self.selection_patience if self.selection_patience else self.epochs + 1
        return [EarlyStopping(monitor, mode, patience=patience, restore_best=True)]

    # -- the step ------------------------------------------------------------------------------------------
    def on_fit_start(self, trainer):
        self._trainer = trainer

    @property
    def progress_(self) -> float:
        t = getattr(self, "_trainer", None)
        return t.global_step / max(1, t.total_steps) if t is not None else 1.0

    def training_step(self, batch) -> dict:
        (xs, ys), (xt, _) = batch
        f = self.model_.features(torch.cat([xs, xt]))
        logits = self.model_.head(f)
        ns = xs.shape[0]
        cls_loss = self.loss(logits[:ns], ys)
        transfer, logs = self.transfer_loss(f[:ns], f[ns:], logits[:ns], logits[ns:])
        return {"loss": cls_loss + self.trade_off * transfer, "cls_loss": cls_loss, "transfer_loss": transfer,
                "acc": (logits[:ns].argmax(1) == ys).float().mean(), **logs}

    def transfer_loss(self, fs, ft, ls, lt) -> tuple[torch.Tensor, dict]:
        """The method's alignment loss on source/target features (B, D) and logits (B, K)."""
        raise NotImplementedError

    # -- validators, oracle --------------------------------------------------------------------------------
    def on_epoch_end(self, trainer, epoch, logs):
        was = self.module.training
        self.module.eval()
        try:
            proba = self._proba(self._target.subset(self._score_idx))
            logs.update({"target_im": im_score(proba), "target_snd": snd_score(proba),
                         "target_entropy": entropy_score(proba)})
            if self._target_test is not None:
                p = self._proba(self._target_test)
                logs["oracle_target_accuracy"] = float((p.argmax(1) == self._target_test.labels).mean())
        finally:
            self.module.train(was)

    @torch.inference_mode()
    def _proba(self, data) -> np.ndarray:
        device = next(self.model_.parameters()).device
        outs = [torch.softmax(self.model_(x.to(device)).float(), 1).cpu() for x, _ in
                self.loader(data, train=False, batch_size=256)]
        return torch.cat(outs).numpy()

    @torch.inference_mode()
    def embed(self, data: ImageDataset, max_samples: int | None = None) -> np.ndarray:
        """Adapted embeddings ``model.features(x)`` (N, D) of ``data`` (a seeded subsample with ``max_samples``)."""
        if max_samples is not None and len(data) > max_samples:
            idx = np.sort(np.random.default_rng(self.seed).choice(len(data), max_samples, replace=False))
            data = data.subset(idx)
        was = self.model_.training
        self.model_.eval()
        device = next(self.model_.parameters()).device
        try:
            outs = [self.model_.features(x.to(device)).float().cpu() for x, _ in
                    self.loader(data, train=False, batch_size=256)]
        finally:
            self.model_.train(was)
        return torch.cat(outs).numpy()

    def _pad(self, source, target) -> float:
        return proxy_a_distance(self.embed(source, 1000), self.embed(target, 1000), seed=self.seed)

    # -- reports -------------------------------------------------------------------------------------------
    def selection_report(self) -> dict:
        """Which epoch the unsupervised validator kept, its score, and the oracle accuracy of that epoch."""
        monitor, mode = SELECTIONS[self.selection]
        hist = getattr(self, "history_", [])
        if not hist:
            return {}
        if monitor is None:
            best = len(hist) - 1
        else:
            vals = [h.get(monitor, float("nan")) for h in hist]
            best = int(np.nanargmax(vals) if mode == "max" else np.nanargmin(vals))
        out = {"validator": self.selection, "monitor": monitor, "selected_epoch": best,
               "score": hist[best].get(monitor) if monitor else None}
        if "oracle_target_accuracy" in hist[best]:
            out["oracle_target_accuracy_selected"] = hist[best]["oracle_target_accuracy"]
            out["oracle_target_accuracy_best_epoch"] = max(h["oracle_target_accuracy"] for h in hist)
            out["oracle_target_accuracy_last_epoch"] = hist[-1]["oracle_target_accuracy"]
        return out

    def domain_report(self, source: ImageDataset, target: ImageDataset, *, target_test: ImageDataset | None = None,
                      with_map: bool = True, max_points: int = 300) -> dict:
        """A result record: oracle target accuracy (labelled ``target_test``, evaluation only), validator scores,
        the model-selection summary, the proxy A-distance before/after and a t-SNE map of both domains."""
        self.check_fitted()
        metrics = {}
        if target_test is not None:
            target_test = align_classes(source, target_test, type(self).__name__, "target_test")
            metrics["oracle_target"] = self.evaluate(target_test)
            metrics["oracle_target_accuracy"] = metrics["oracle_target"]["accuracy"]
        proba = self.predict_proba(target)
        metrics.update({"target_im": im_score(proba), "target_snd": snd_score(proba[:1000]),
                        "target_entropy": entropy_score(proba)})
        fs, ft = self.embed(source, 1000), self.embed(target, 1000)
        extra = {"shift": {**getattr(self, "shift_", {}),
                           "proxy_a_distance": proxy_a_distance(fs, ft, seed=self.seed)},
                 "selection": self.selection_report(),
                 "note": "oracle_* figures use target labels and serve evaluation only; selection used none."}
        if with_map:
            extra["embedding_map"] = embedding_map(fs, ft, max_points=max_points, seed=self.seed)
        return self.result(metrics, data={"source": source.name, "target": target.name,
                                          "n_source": len(source), "n_target": len(target)}, extra=extra)


@register_strategy
class SourceOnly(DomainAdaptation):
    """Source-only baseline: cross-entropy on the labelled source, no alignment; the same model, validators
    and diagnostics as the adaptation methods, so the comparison isolates the transfer loss.

    Example:
        >>> SourceOnly(backbone="builtin:small-cnn", epochs=5).fit(source, target=target).evaluate(target_test)
    """

    name = "source-only"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def train_loader(self, train, target=None, **roles):
        return self.loader(train, train=True)

    def training_step(self, batch) -> dict:
        x, y = batch
        logits = self.model_(x)
        loss = self.loss(logits, y)
        return {"loss": loss, "cls_loss": loss, "acc": (logits.argmax(1) == y).float().mean()}


@register_strategy
class DANN(DomainAdaptation):
    """Domain-adversarial training: a critic learns to tell source from target embeddings while the
    gradient-reversal layer trains the features to fool it, so the classifier's features become domain-invariant.

    Paper: Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015; Ganin et al.,
    JMLR 2016. Inputs: labelled source ``train``, unlabelled ``target``; batches (B, C, H, W) of each.
    Defaults from the paper: critic 1024-1024, reversal factor ``2 / (1 + exp(-10 p)) - 1`` over progress p.

    Example:
        >>> DANN(backbone="file:runs/pretrain", epochs=10).fit(source, target=target).evaluate(target_test)
    """

    name = "dann"

    def __init__(self, *, hidden_dim: int = 1024, gamma: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.gamma = hidden_dim, gamma

    def build_critic(self, num_classes):
        return DomainDiscriminator(self.model_.out_features, self.hidden_dim)

    def transfer_loss(self, fs, ft, ls, lt):
        lambd = ganin_lambda(self.progress_, self.gamma)
        d = self.module_["critic"](grad_reverse(torch.cat([fs, ft]), lambd))
        labels = torch.cat([torch.ones(len(fs), device=d.device), torch.zeros(len(ft), device=d.device)])
        loss = F.binary_cross_entropy_with_logits(d.float(), labels)
        return loss, {"domain_acc": ((d > 0).float() == labels).float().mean(), "lambda": lambd}


@register_strategy
class MMD(DomainAdaptation):
    """DAN: minimise the multi-kernel maximum mean discrepancy between source and target embeddings, so both
    domains' feature distributions coincide in a reproducing-kernel Hilbert space.

    Paper: Long et al., "Learning Transferable Features with Deep Adaptation Networks", ICML 2015.
    Inputs: labelled source ``train``, unlabelled ``target``. Features (B, D) of each batch are compared with
    Gaussian kernels at ``kernel_multipliers`` x the mean pairwise squared distance (DAN's 5-kernel family).

    Example:
        >>> MMD(epochs=10).fit(source, target=target).evaluate(target_test)
    """

    name = "mmd"

    def __init__(self, *, kernel_multipliers=(0.25, 0.5, 1.0, 2.0, 4.0), **kwargs):
        super().__init__(**kwargs)
        self.kernel_multipliers = kernel_multipliers

    def transfer_loss(self, fs, ft, ls, lt):
        return mk_mmd(fs, ft, tuple(self.kernel_multipliers)), {}


@register_strategy
class CORAL(DomainAdaptation):
    """Deep CORAL: penalise the distance between source and target feature covariances, a cheap second-order
    alignment without a critic.

    Paper: Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV Workshops 2016.
    Inputs: labelled source ``train``, unlabelled ``target``; loss ``||C_s - C_t||_F^2 / (4 d^2)`` on (B, d)
    features. The paper sets the weight so both losses are comparable at the end; ``trade_off=1`` by default.

    Example:
        >>> CORAL(epochs=10).fit(source, target=target).evaluate(target_test)
    """

    name = "coral"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def transfer_loss(self, fs, ft, ls, lt):
        return coral_loss(fs, ft), {}


@register_strategy
class CDAN(DomainAdaptation):
    """Conditional domain-adversarial training: the critic sees the multilinear map of features and class
    predictions, aligning the class-conditional distributions rather than only the marginals.

    Paper: Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018. Inputs: labelled source
    ``train``, unlabelled ``target``. The map (B, D*K) is randomised to ``randomized_dim`` when D*K > 4096
    (paper's choice); entropy conditioning (CDAN+E) weights each example by ``1 + exp(-H(p))``.

    Example:
        >>> CDAN(epochs=10, entropy_conditioning=True).fit(source, target=target).evaluate(target_test)
    """

    name = "cdan"

    def __init__(self, *, entropy_conditioning: bool = True, hidden_dim: int = 1024, randomized_dim: int = 1024,
                 gamma: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.entropy_conditioning, self.hidden_dim = entropy_conditioning, hidden_dim
        self.randomized_dim, self.gamma = randomized_dim, gamma

    def build_critic(self, num_classes):
        mapper = MultilinearMap(self.model_.out_features, num_classes, out_dim=self.randomized_dim, seed=self.seed)
        return nn.ModuleDict({"map": mapper, "disc": DomainDiscriminator(mapper.out_features, self.hidden_dim)})

    def transfer_loss(self, fs, ft, ls, lt):
        lambd = ganin_lambda(self.progress_, self.gamma)
        f = torch.cat([fs, ft])
        g = torch.softmax(torch.cat([ls, lt]).float(), 1).detach()
        critic = self.module_["critic"]
        d = critic["disc"](grad_reverse(critic["map"](f.float(), g), lambd))
        ns = len(fs)
        labels = torch.cat([torch.ones(ns, device=d.device), torch.zeros(len(ft), device=d.device)])
        if self.entropy_conditioning:
            w = 1.0 + torch.exp(-_entropy(g))
            w = torch.cat([w[:ns] / w[:ns].sum() * ns, w[ns:] / w[ns:].sum() * len(ft)])
        else:
            w = torch.ones_like(labels)
        loss = F.binary_cross_entropy_with_logits(d.float(), labels, weight=w)
        return loss, {"domain_acc": ((d > 0).float() == labels).float().mean(), "lambda": lambd}
