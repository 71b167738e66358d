import pytest
import torch

from transferkit.backbones import create_backbone, list_builtins, load_weights, save_backbone
from transferkit.errors import TransferkitError


@pytest.mark.parametrize("spec,dim", [("builtin:small-cnn", 128), ("builtin:tiny-resnet", 256), ("builtin:micro-cnn", 32)])
def test_builtin_shapes_groups_and_config(spec, dim):
    bb = create_backbone(spec)
    x = torch.rand(3, 3, 32, 32)
    assert bb(x).shape == (3, dim)
    assert bb.num_features == dim
    assert bb.group_names[0] == "stem" and len(bb.group_names) >= 3
    groups = bb.layer_groups()
    assert sum(len(g) for g in groups) == len(list(bb.model.parameters()))  # every parameter in one group
    assert bb.data_config["input_size"] == (3, 32, 32)
    assert bb.forward_features(x).dim() == 4


def test_list_builtins_names_them_all():
    assert set(list_builtins()) == {"small-cnn", "tiny-resnet", "micro-cnn", "mobile-cnn", "lenet"}


def test_lenet_is_tllibs_digit_backbone():
    bb = create_backbone("builtin:lenet")
    assert bb.num_features == 800 and bb.data_config["input_size"] == (3, 28, 28)
    assert bb.data_config["std"] == (0.5, 0.5, 0.5)
    convs = [m for m in bb.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [(20, (5, 5)), (50, (5, 5))]
    bb.eval()
    x = torch.rand(2, 3, 28, 28)
    assert bb(x).shape == (2, 800) and bb.forward_features(x).shape == (2, 50, 4, 4)  # 50 x 4 x 4, no pooling
    assert torch.equal(bb(x), bb.forward_features(x).flatten(1))


def test_timm_spec_uses_group_matcher_and_data_config():
    bb = create_backbone("timm:resnet18", pretrained=False)
    assert bb.num_features == 512
    assert bb.group_names == ["stem", "group1", "group2", "group3", "group4"]
    assert bb.data_config["interpolation"] == "bicubic"
    assert bb(torch.rand(1, 3, 64, 64)).shape == (1, 512)


def test_torchvision_spec_strips_head():
    bb = create_backbone("torchvision:resnet18", pretrained=False)
    assert bb(torch.rand(1, 3, 64, 64)).shape == (1, 512)
    assert "layer4" in bb.group_names


def test_hf_hub_spec_offline_error_is_actionable():
    with pytest.raises(TransferkitError, match="pretrained=False|file:PATH"):
        create_backbone("hf-hub:timm/resnet18.a1_in1k", pretrained=True)


def test_file_round_trip_through_saved_checkpoint(tmp_path):
    bb = create_backbone("builtin:tiny-resnet", input_size=40).eval()
    path = save_backbone(bb, tmp_path / "bb")
    again = create_backbone(f"file:{path}").eval()
    x = torch.rand(2, 3, 40, 40)
    assert torch.equal(bb(x), again(x))
    assert again.arch == "builtin:tiny-resnet" and again.input_size == (40, 40)
    assert create_backbone(f"file:{tmp_path / 'bb'}").num_features == 256  # a directory works too


def test_file_bare_timm_state_dict_through_timm_local_file(tmp_path):
    src = create_backbone("timm:resnet18", pretrained=False).eval()
    torch.save(src.model.state_dict(), tmp_path / "r18.pth")
    bb = create_backbone(f"file:{tmp_path / 'r18.pth'}?arch=timm:resnet18").eval()
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(bb(x), src(x))


def test_file_bare_torchvision_state_dict(tmp_path):
    src = create_backbone("torchvision:resnet18", pretrained=False).eval()
    import torchvision

    full = torchvision.models.resnet18()
    full.load_state_dict({**src.model.state_dict(), "fc.weight": full.fc.weight, "fc.bias": full.fc.bias})
    torch.save(full.state_dict(), tmp_path / "tv.pth")
    bb = create_backbone(f"file:{tmp_path / 'tv.pth'}", arch="torchvision:resnet18").eval()
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(bb(x), src(x))


def test_bare_weights_without_arch_explain_what_to_pass(tmp_path):
    torch.save(create_backbone("builtin:small-cnn").model.state_dict(), tmp_path / "w.pt")
    with pytest.raises(TransferkitError, match="arch="):
        create_backbone(f"file:{tmp_path / 'w.pt'}")


def test_unknown_specs_list_the_valid_forms():
    with pytest.raises(TransferkitError, match="timm:NAME"):
        create_backbone("tfhub:resnet")
    with pytest.raises(TransferkitError, match="builtins are"):
        create_backbone("builtin:nope")
    with pytest.raises(TransferkitError, match="no model named"):
        create_backbone("timm:not_a_model_xyz", pretrained=False)


def test_wrong_channel_count_is_named():
    bb = create_backbone("builtin:small-cnn")
    with pytest.raises(TransferkitError, match="3-channel"):
        bb(torch.rand(1, 1, 32, 32))


def test_stage_modules_compose_to_forward_features():
    for spec in ("builtin:small-cnn", "timm:resnet18"):
        bb = create_backbone(spec, pretrained=False).eval()
        x = torch.rand(1, 3, 64, 64)
        h = bb.normalize(x)
        for stage in bb.stage_modules():
            h = stage(h)
        assert torch.allclose(h, bb.forward_features(x), atol=1e-5)


def test_load_weights_refuses_code_pickles(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(TransferkitError, match="Refusing to load"):
        load_weights(tmp_path / "evil.pt")
