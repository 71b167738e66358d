"""Transforms decided by the backbone's data config: channels, size, optional augmentation -> [0, 1].

Normalisation is not here: it happens inside the Backbone, so pixels stay in [0, 1] for attacks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from ..errors import check_choice

AUGMENTS = ("none", "light", "flip", "strong")
#: What a strategy's ``augment`` parameter accepts: an AUGMENTS value, or 'auto' (see resolve_augment).
AUGMENT_CHOICES = ("auto",) + AUGMENTS


def resolve_augment(augment: str, data) -> str:
    """The augmentation a training run uses: ``augment`` itself, or for 'auto' random-resized crop + horizontal
    flip ('flip') on colour photographs and 'none' otherwise (grey digits, characters and clothes must not be
    mirrored, and a tiny grey set gains nothing from crops). Every fine-tuning recipe for photos in the field
    augments (the PyTorch transfer-learning tutorial, torchvision's and timm's references); a few hundred photos
    without it are memorised in a few epochs."""
    check_choice("ImageTransform", "augment", augment, AUGMENT_CHOICES)
    if augment != "auto":
        return augment
    return "flip" if data is not None and data.is_colour() else "none"


class ImageTransform:
    """Callable: PIL image -> float tensor (C, H, W) in [0, 1], sized for the backbone.

    Args:
        data_config: a backbone's ``data_config`` (``input_size``, ``crop_pct``, ``interpolation``).
        train: apply ``augment`` (evaluation is deterministic: resize + centre crop).
        augment: 'none'; 'light' (random resized crop, scale 0.8-1); 'flip' (light + horizontal flip);
            'strong' (flip + colour jitter). Digits and text should not be flipped.
    """

    def __init__(self, data_config: dict, train: bool = False, augment: str = "none"):
        check_choice("ImageTransform", "augment", augment, AUGMENTS)
        self.channels, h, w = (int(v) for v in data_config["input_size"])
        self.size = (h, w)
        self.crop_pct = float(data_config.get("crop_pct", 1.0) or 1.0)
        self.interpolation = data_config.get("interpolation", "bilinear")
        self.train, self.augment = train, augment
        interp = v2.InterpolationMode.BICUBIC if self.interpolation == "bicubic" else v2.InterpolationMode.BILINEAR
        ops = [v2.ToImage()]
        if train and augment != "none":
            ops.append(v2.RandomResizedCrop(self.size, scale=(0.8, 1.0), ratio=(0.9, 1.1), interpolation=interp, antialias=True))
            if augment in ("flip", "strong"):
                ops.append(v2.RandomHorizontalFlip())
            if augment == "strong":
                ops.append(v2.ColorJitter(0.3, 0.3, 0.3))
        elif self.crop_pct < 1.0:
            ops += [v2.Resize(int(math.floor(h / self.crop_pct)), interpolation=interp, antialias=True), v2.CenterCrop(self.size)]
        else:
            ops.append(v2.Resize(self.size, interpolation=interp, antialias=True))
        ops.append(v2.ToDtype(torch.float32, scale=True))
        self._pipeline = v2.Compose(ops)

    @property
    def deterministic(self) -> bool:
        return not (self.train and self.augment != "none")

    def __call__(self, image) -> torch.Tensor:
        return self._pipeline(image)

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Vectorised path for uint8 batches (B, C, H, W) (deterministic transforms only)."""
        x = images.float().div_(255.0)
        if x.shape[1] in (2, 4):  # gray+alpha / RGBA: composite on white, as open_image does for files
            alpha = x[:, -1:]
            x = x[:, :-1] * alpha + (1.0 - alpha)
        if x.shape[1] != self.channels:
            x = x.expand(-1, 3, -1, -1) if self.channels == 3 else x.mul(torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        if tuple(x.shape[-2:]) != self.size:
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            if self.crop_pct < 1.0:
                side = int(math.floor(self.size[0] / self.crop_pct))
                x = F.interpolate(x, size=(side, side), mode=mode, antialias=True, align_corners=False)
                top, left = (side - self.size[0]) // 2, (side - self.size[1]) // 2
                x = x[..., top:top + self.size[0], left:left + self.size[1]]
            else:
                x = F.interpolate(x, size=self.size, mode=mode, antialias=True, align_corners=False)
            x = x.clamp_(0.0, 1.0)
        return x.contiguous()

    def __repr__(self) -> str:
        return (f"ImageTransform(channels={self.channels}, size={self.size}, crop_pct={self.crop_pct}, "
                f"interpolation={self.interpolation!r}, train={self.train}, augment={self.augment!r})")
