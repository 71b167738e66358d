"""LoRA: parameter-efficient fine-tuning through PEFT (optional extra ``transferkit[peft]``).

The pre-trained weights stay frozen; each targeted layer ``W`` gains a trainable low-rank update
``W + (alpha / r) * B @ A`` (A: r x d_in, B: d_out x r, B initialised to zero so training starts from the
pre-trained function). Only the adapters and the new head train.
"""
from __future__ import annotations

import re

from torch import nn

from ...backbones import Backbone
from ...errors import TransferkitError
from ...params import DICT, STR, Interval, ListOf
from ..base import POSITIVE, Classifier, NeuralStrategy
from ..registry import register_strategy


def _auto_targets(model: nn.Module) -> list[str]:
    """ViT-style attention projections (``qkv``) when present, else every Linear and dense Conv2d layer.

    Grouped and depthwise convolutions (MobileNet / EfficientNet blocks) are left out: PEFT's Conv2d
    adapter is a dense k x k convolution into ``r`` channels, which on a depthwise layer costs more than the
    layer itself (on EfficientNet-Lite0 it made training several times slower) for few parameters' worth of
    adaptation; the pointwise convolutions around them carry most of the weights.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n.split(".")[-1] == "qkv"]
    if names:
        return ["qkv"]
    return [n for n, m in model.named_modules()
            if n and (isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1))]


@register_strategy
class LoRA(NeuralStrategy):
    """Fine-tune a frozen backbone through low-rank adapters (LoRA) injected by PEFT, plus a new linear head.

    Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022; applied to ViTs as in
    e.g. Zhu et al. 2023 ("MeLo"). PEFT's LoRA supports Linear and Conv2d layers, so CNN backbones work too.

    Inputs: labelled ``train`` (optional ``val``). Images (B, C, H, W) in [0, 1] -> logits (B, n_classes).

    Args:
        r: adapter rank (default 8, Hu et al. / PEFT's default).
        lora_alpha: scaling numerator, update scaled by ``lora_alpha / r`` (default 16 = 2r, a common choice).
        lora_dropout: dropout on the adapter input (default 0.1, as in Hu et al.'s GPT-2 runs).
        target_modules: 'auto' (default: the attention ``qkv`` projections of ViT-style timm models, else every
            Linear/Conv2d layer), a list of module-name suffixes, or a regular expression.
        model_kwargs: extra keyword arguments for ``create_backbone`` (e.g. ``{"img_size": 32, "patch_size": 4}``
            for a small ViT), also used to rebuild the model on ``load``.
        **kwargs: the shared training parameters (``lr`` default 1e-3; LoRA usually tolerates larger rates
            than full fine-tuning, e.g. 1e-3-5e-3).

    After ``fit``: ``n_trainable_params_`` (adapters + head), ``n_params_``, ``trainable_fraction_``,
    ``lora_targets_`` (the adapted module names), ``history_`` (learning curve), ``fit_time_``.

    Example:
        >>> lora = LoRA(backbone="timm:vit_tiny_patch16_224", r=8, epochs=5, lr=2e-3).fit(train)
        >>> lora.trainable_fraction_
    """

    name = "lora"
    splittable_batches = True
    family = "reuse-weights"

    _parameter_constraints = {
        "r": [Interval(int, 1)], "lora_alpha": [POSITIVE], "lora_dropout": [Interval(float, 0, 1)],
        "target_modules": [STR, ListOf(STR, min_length=1)], "model_kwargs": [None, DICT],
    }

    def __init__(self, *, r: int = 8, lora_alpha: float = 16, lora_dropout: float = 0.1, target_modules="auto",
                 model_kwargs: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.r, self.lora_alpha, self.lora_dropout = r, lora_alpha, lora_dropout
        self.target_modules, self.model_kwargs = target_modules, model_kwargs

    def backbone_kwargs(self) -> dict:
        return dict(self.model_kwargs or {})

    def _targets(self, model: nn.Module):
        t = self.target_modules
        if t == "auto" or t is None:
            return _auto_targets(model)
        if isinstance(t, str) and "," in t:
            t = [s.strip() for s in t.split(",") if s.strip()]
        names = [n for n, _ in model.named_modules() if n]
        hits = ([n for n in names if re.fullmatch(t, n)] if isinstance(t, str)
                else [n for n in names if any(n == s or n.endswith("." + s) for s in t)])
        if not hits:
            raise TransferkitError(f"The 'target_modules' parameter of LoRA matches no module of the backbone; got {t!r}. "
                                   f"Some module names: {names[:12]}.")
        return t

    def build_model(self, backbone: Backbone, num_classes: int) -> nn.Module:
        try:
            from peft import LoraConfig, inject_adapter_in_model
        except ImportError:
            raise TransferkitError("The 'lora' strategy needs PEFT: pip install 'transferkit[peft]'.") from None
        targets = self._targets(backbone.model)
        config = LoraConfig(r=int(self.r), lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                            target_modules=targets, bias="none")
        backbone.model = inject_adapter_in_model(config, backbone.model)
        for n, p in backbone.named_parameters():
            p.requires_grad_("lora_" in n)
        self.lora_targets_ = sorted({n.rsplit(".lora_", 1)[0] for n, _ in backbone.model.named_parameters() if ".lora_" in n})
        return Classifier(backbone, num_classes)

    def param_groups(self) -> list[dict]:
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        return [{"params": trainable, "lr": self.lr, "name": "lora+head"}]

    def after_fit(self, train, **roles) -> None:
        self.trainable_fraction_ = self.n_trainable_params_ / max(1, self.n_params_)
