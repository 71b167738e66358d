"""Small CPU-friendly networks, registered as timm models so they share timm's uniform interface.

``tk_small_cnn``: a stem and four conv blocks for 28-64 px inputs (0.2 M parameters, 128-d embeddings).
``tk_tiny_resnet``: a four-stage ResNet with basic blocks for 32-64 px inputs (1.2 M parameters,
256-d embeddings); He et al., "Deep Residual Learning", CVPR 2016.
``tk_mobile_cnn``: a MobileNet-style net of depthwise-separable blocks (0.14 M parameters, 256-d embeddings),
a fast CPU student for distillation; Howard et al., "MobileNets", 2017.
``tk_lenet``: LeNet as the digit benchmarks of domain adaptation use it (TLlib's ``lenet``; LeCun et al. 1998),
800-d flattened features (0.03 M parameters).

All expose ``stem``, ``stages`` (an ``nn.Sequential`` of feature-map stages), ``forward_features``,
``forward_head(x, pre_logits)``, ``reset_classifier``, ``group_matcher`` and ``pretrained_cfg``.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.models import register_model

BUILTINS = {
    "small-cnn": ("tk_small_cnn", "4-block CNN, 128-d embeddings, 0.2 M params; 28-64 px inputs"),
    "tiny-resnet": ("tk_tiny_resnet", "4-stage ResNet (basic blocks), 256-d embeddings, 1.2 M params; 32-64 px"),
    "micro-cnn": ("tk_micro_cnn", "2-block CNN, 32-d embeddings, ~7 k params; a distillation student"),
    "mobile-cnn": ("tk_mobile_cnn", "MobileNet-style depthwise-separable CNN, 256-d embeddings, 0.14 M params; "
                                    "a deployment / distillation student; 28-64 px"),
    "lenet": ("tk_lenet", "LeNet (2 conv + max-pool), 800-d flattened features, 0.03 M params; 28 px digits "
                          "(TLlib's digit DA backbone)"),
}

_CFG = dict(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
            interpolation="bilinear", crop_pct=1.0, num_classes=0, first_conv="stem.0",
            classifier="head")


def _conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _TimmStyle(nn.Module):
    """The timm model interface shared by the builtins: stem -> stages -> pool -> head."""

    def __init__(self, num_features: int, num_classes: int, drop_rate: float):
        super().__init__()
        self.num_features = num_features
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes) if num_classes else nn.Identity()
        self.pretrained_cfg = dict(_CFG)
        self.default_cfg = self.pretrained_cfg

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool=None) -> None:
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^stem", blocks=r"^stages\.(\d+)")

    def set_grad_checkpointing(self, enable: bool = True) -> None:  # timm interface; nothing to do
        pass


class SmallCNN(_TimmStyle):
    def __init__(self, in_chans=3, num_classes=0, widths=(32, 64, 96, 128), drop_rate=0.0, **_):
        super().__init__(widths[-1], num_classes, drop_rate)
        self.stem = _conv_bn(in_chans, widths[0])
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(nn.Sequential(_conv_bn(cin, w, stride=1 if i == 0 else 2)))
            cin = w
        self.stages = nn.Sequential(*stages)


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.conv2(self.conv1(x)) + self.down(x))


class TinyResNet(_TimmStyle):
    def __init__(self, in_chans=3, num_classes=0, widths=(32, 64, 128, 256), drop_rate=0.0, **_):
        super().__init__(widths[-1], num_classes, drop_rate)
        self.stem = _conv_bn(in_chans, widths[0])
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            stages.append(_BasicBlock(cin, w, stride=1 if i == 0 else 2))
            cin = w
        self.stages = nn.Sequential(*stages)


class _DepthwiseSeparable(nn.Module):
    """MobileNet block: 3x3 depthwise conv (stride s) + BN + ReLU, then 1x1 pointwise conv + BN + ReLU."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.dw = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                                nn.ReLU(inplace=True))
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    def forward(self, x):
        return self.pw(self.dw(x))


class MobileCNN(_TimmStyle):
    """MobileNet-style net (Howard et al., "MobileNets", 2017): a strided full 3x3 conv stem (as in MobileNet),
    then one stage per width of depthwise-separable blocks; the first stage keeps the stem's resolution, each
    later one halves it (28 px input -> 14, 14, 7, 4, 2). Defaults: widths (32, 64, 128, 256), 1 block in the
    first stage and ``depth`` = 2 in the others: 0.14 M parameters, about 1.6 M multiply-adds at 28 px
    (tiny-resnet: 1.2 M parameters, about 51 M multiply-adds). Early downsampling is what makes it fast on CPU:
    depthwise convolutions at full resolution cost more time than their multiply-adds suggest.
    """

    def __init__(self, in_chans=3, num_classes=0, widths=(32, 64, 128, 256), depth=2, drop_rate=0.0, **_):
        super().__init__(widths[-1], num_classes, drop_rate)
        self.stem = _conv_bn(in_chans, widths[0], stride=2)
        stages, cin = [], widths[0]
        for i, w in enumerate(widths):
            blocks = [_DepthwiseSeparable(cin, w, stride=1 if i == 0 else 2)]
            blocks += [_DepthwiseSeparable(w, w) for _ in range(depth - 1 if i else 0)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)


class LeNet(_TimmStyle):
    """LeNet as TLlib's digit domain-adaptation benchmarks use it: 5x5 convolutions of 20 and 50 channels, each
    followed by 2x2 max pooling and ReLU (with 2-d dropout before the second pooling), flattened to 50 x 4 x 4 =
    800 features at 28 px. Any other input size is average-pooled to the same 4 x 4 map (the identity at 28 px).
    Normalised as TLlib's digits (mean 0.5, std 0.5)."""

    def __init__(self, in_chans=3, num_classes=0, drop_rate=0.0, **_):
        super().__init__(800, num_classes, drop_rate)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 20, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True))
        self.stages = nn.Sequential(nn.Sequential(nn.Conv2d(20, 50, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2),
                                                  nn.ReLU(inplace=True)))
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.pretrained_cfg = self.default_cfg = dict(_CFG, input_size=(3, 28, 28), std=(0.5, 0.5, 0.5))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x).flatten(1))
        return x if pre_logits else self.head(x)


@register_model
def tk_small_cnn(pretrained=False, **kwargs):
    return SmallCNN(**kwargs)


@register_model
def tk_tiny_resnet(pretrained=False, **kwargs):
    return TinyResNet(**kwargs)


@register_model
def tk_micro_cnn(pretrained=False, **kwargs):
    return SmallCNN(widths=(16, 32), **kwargs)


@register_model
def tk_mobile_cnn(pretrained=False, **kwargs):
    return MobileCNN(**kwargs)


@register_model
def tk_lenet(pretrained=False, **kwargs):
    return LeNet(**kwargs)
