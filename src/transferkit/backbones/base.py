"""The Backbone: a pre-trained network as transferkit sees it.

A backbone maps images in [0, 1] pixel space, shape (B, C, H, W), to pooled embeddings (B, D).
Normalisation (the model's mean/std) happens *inside* the module, so attacks and augmentations work
in pixel units and every data loader produces plain [0, 1] tensors.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import TransferkitError


class Backbone(nn.Module):
    """Uniform wrapper around a timm or torchvision feature extractor.

    Attributes:
        spec: the spec string it was created from (``timm:resnet18``, ``builtin:small-cnn``...).
        arch: the architecture spec used to rebuild it without weights.
        num_features: embedding size D.
        data_config: ``input_size`` (C, H, W), ``mean``, ``std``, ``interpolation``, ``crop_pct``.
        group_names / layer_groups(): ordered parameter groups, stem -> top.
        has_pretrained_weights: whether it starts from learned weights (hub, offline ImageNet or ``file:``
            weights) rather than a random initialisation; ``create_backbone`` sets it. Recipes meant for
            pre-trained networks (fine-tuning's head-first phase, frozen BatchNorm) are not applied without.
    """

    has_pretrained_weights: bool = True

    def __init__(self, model: nn.Module, *, spec: str, arch: str, num_features: int, data_config: dict,
                 groups: list[tuple[str, list[str]]], features_fn=None):
        super().__init__()
        self.model = model
        self.spec, self.arch = spec, arch
        self.num_features = int(num_features)
        self.data_config = dict(data_config)
        self._groups = groups
        self._features_fn = features_fn
        c = self.data_config["input_size"][0]
        self.register_buffer("mean", torch.tensor(self.data_config["mean"][:c]).view(1, c, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.data_config["std"][:c]).view(1, c, 1, 1), persistent=False)

    # -- shapes -------------------------------------------------------------------------------
    @property
    def in_chans(self) -> int:
        return int(self.data_config["input_size"][0])

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.data_config["input_size"][1:])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.in_chans:
            raise TransferkitError(
                f"Backbone {self.spec} expects {self.in_chans}-channel images; got a batch of shape "
                f"{tuple(x.shape)}. Build the transforms from this backbone's data_config.")
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> pooled embeddings (B, D)."""
        return self.model(self.normalize(x))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> the last unpooled feature map (B, D, h, w) or tokens (B, N, D)."""
        x = self.normalize(x)
        return self._features_fn(x) if self._features_fn else self.model.forward_features(x)

    # -- layer groups -------------------------------------------------------------------------
    @property
    def group_names(self) -> list[str]:
        return [name for name, _ in self._groups]

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters per group, ordered stem -> top (timm ``group_matcher`` where available)."""
        params = dict(self.model.named_parameters())
        return [[params[n] for n in names if n in params] for _, names in self._groups]

    def stage_modules(self) -> list[nn.Module]:
        """Feature-map stages that compose sequentially (stem first), for per-group forward passes.

        Available for the builtins and the ResNet family (timm and torchvision).
        """
        m = self.model
        if hasattr(m, "stem") and isinstance(getattr(m, "stages", None), nn.Sequential):
            return [m.stem, *m.stages]
        if all(hasattr(m, a) for a in ("conv1", "bn1", "layer1", "layer4")):
            act = getattr(m, "act1", None) or getattr(m, "relu")
            stem = nn.Sequential(m.conv1, m.bn1, act, m.maxpool)
            return [stem, m.layer1, m.layer2, m.layer3, m.layer4]
        raise TransferkitError(
            f"Backbone {self.spec} does not expose sequential stages; per-stage forward passes "
            f"(progressive networks) support the builtins and ResNet-family backbones.")

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, num_features={self.num_features}, input_size={self.data_config['input_size']}"
