"""Export: ONNX checked in onnxruntime, TorchScript, int8 quantisation with its accuracy change, latency, size."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch

from transferkit.errors import TransferkitError
from transferkit.export import (export_onnx, export_torchscript, load_torchscript, measure_latency, onnx_evaluate,
                                onnx_predict_proba, quantization_report, size_on_disk)
from transferkit.strategies.reuse.finetune import FineTune




@pytest.fixture(scope="module")
def model(target_split):
    train, _ = target_split
    return FineTune(backbone="builtin:small-cnn", pretrained=False, input_size=8, batch_size=32, lr=1e-2, epochs=4,
                    progress=False).fit(train)


def test_onnx_matches_pytorch(model, target_split, tmp_path):
    _, test = target_split
    info = export_onnx(model, tmp_path / "m.onnx")
    onnx.checker.check_model(str(tmp_path / "m.onnx"))
    assert info["max_abs_diff"] < 1e-4 and info["size_bytes"] > 0
    proba = onnx_predict_proba(tmp_path / "m.onnx", test, model.backbone_.data_config)
    np.testing.assert_allclose(proba, model.predict_proba(test), atol=1e-5)   # dynamic batch: 256 + remainder
    assert onnx_evaluate(tmp_path / "m.onnx", test, model.backbone_.data_config)["accuracy"] == pytest.approx(
        model.evaluate(test)["accuracy"])


def test_tf_same_padding_is_exported_as_constant_pads(tmp_path):
    """timm's TF-style 'same' convolutions (the tf_* EfficientNets) pad from the input's shape at run time; the export
    fixes the pads for the input size, so the graph has no shape arithmetic and the outputs stay the same."""
    from timm.layers import Conv2dSame

    from transferkit.export import static_same_padding

    net = torch.nn.Sequential(Conv2dSame(3, 4, 3, stride=2), torch.nn.ReLU(), Conv2dSame(4, 4, 5, stride=2, groups=4),
                              torch.nn.Flatten()).eval()
    x = torch.rand(2, 3, 15, 16)                                # odd and even sides: asymmetric pads on one side
    fixed = static_same_padding(net, x)
    assert isinstance(net[0], Conv2dSame) and not any(isinstance(m, Conv2dSame) for m in fixed.modules())
    with torch.no_grad():
        assert torch.equal(fixed(x), net(x))
    info = export_onnx(net, tmp_path / "same.onnx", input_shape=(3, 15, 16))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "same.onnx")).graph.node}
    assert info["max_abs_diff"] < 1e-5 and not ops & {"Shape", "Ceil", "Gather"}, ops


def test_onnx_check_raises_on_mismatch(model, tmp_path, monkeypatch):
    import transferkit.export as ex

    real = ex.onnx_session

    class Off:
        def __init__(self, s):
            self.s = s

        def run(self, names, feeds):
            return [self.s.run(names, feeds)[0] + 1.0]

    monkeypatch.setattr(ex, "onnx_session", lambda p, threads=None: Off(real(p, threads)))
    with pytest.raises(TransferkitError, match="ONNX export does not reproduce"):
        export_onnx(model, tmp_path / "bad.onnx")


def test_torchscript_round_trip(model, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = export_torchscript(model, tmp_path / "m.pt")
        loaded = load_torchscript(tmp_path / "m.pt")
    assert not [w for w in caught if "deprecated" in str(w.message)]  # PyTorch's notice is not the user's to act on
    assert info["max_abs_diff"] < 1e-5
    x = torch.rand(3, 3, 8, 8)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), model.model_(x), atol=1e-5)


def test_int8_quantisation_reports_accuracy_change(model, target_split, tmp_path):
    train, test = target_split
    rep = quantization_report(model, test, tmp_path, mode="static", calibration=train, n_calibration=128)
    assert rep["size_bytes_int8"] < rep["size_bytes_fp32"]
    assert rep["accuracy_change"] == pytest.approx(rep["accuracy_int8"] - rep["accuracy_fp32"])
    assert abs(rep["accuracy_change"]) < 0.1 and rep["accuracy_fp32"] > 0.8
    dyn = quantization_report(model, test, tmp_path / "dyn", mode="dynamic")
    assert dyn["mode"] == "dynamic" and np.isfinite(dyn["accuracy_change"])


def test_latency_and_size(model):
    assert measure_latency(model, 1, min_time=0.05, repeats=3) > 0
    assert measure_latency(model, 16, min_time=0.05, repeats=3) > 0
    n = sum(p.numel() for p in model.model_.parameters())
    assert size_on_disk(model) >= 4 * n
    with pytest.raises(TransferkitError, match="Cannot export"):
        export_onnx(object(), "x.onnx")
