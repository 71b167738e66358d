import torch
from torch import nn

from transferkit.backbones import create_backbone, list_builtins
from transferkit.backbones.builtin import MobileCNN
from transferkit.utils import count_parameters


def test_mobile_cnn_is_listed_and_has_the_timm_style_interface():
    assert "mobile-cnn" in list_builtins()
    bb = create_backbone("builtin:mobile-cnn", input_size=28).eval()
    x = torch.rand(2, 3, 28, 28)
    assert bb(x).shape == (2, 256) and bb.num_features == 256
    f = bb.forward_features(x)
    assert f.shape == (2, 256, 2, 2)  # 28 -> stem 14 -> 14, 7, 4, 2
    assert bb.group_names[0] == "stem" and len(bb.group_names) == 5
    assert sum(len(g) for g in bb.layer_groups()) == len(list(bb.model.parameters()))
    assert bb.data_config["input_size"] == (3, 28, 28)


def test_mobile_cnn_parameter_count_and_depthwise_blocks():
    m = MobileCNN()
    assert count_parameters(m) == 140_576
    assert count_parameters(m) * 5 < count_parameters(create_backbone("builtin:tiny-resnet").model)
    dw = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.groups > 1]
    assert len(dw) == 7 and all(c.groups == c.in_channels == c.out_channels for c in dw)
    m2 = MobileCNN(num_classes=10, widths=(8, 16), depth=3)
    assert m2(torch.rand(1, 3, 32, 32)).shape == (1, 10) and len(m2.stages[1]) == 3


def test_mobile_cnn_stage_modules_compose_to_forward_features():
    bb = create_backbone("builtin:mobile-cnn").eval()
    x = torch.rand(2, 3, 32, 32)
    stages = bb.stage_modules()
    assert len(stages) == 5 and stages[0] is bb.model.stem
    with torch.no_grad():
        h = bb.normalize(x)
        for s in stages:
            h = s(h)
        assert torch.allclose(h, bb.forward_features(x), atol=1e-6)
