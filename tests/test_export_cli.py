"""`transferkit export`: a model saved by `fit` to ONNX / TorchScript, checked against PyTorch on a batch."""
import json

import pytest
from typer.testing import CliRunner

from transferkit.cli import _register, app

_register()
runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    r = runner.invoke(app, ["fit", "-s", "finetune", "-d", "digits", "-b", "builtin:micro-cnn", "--epochs", "1",
                            "--test-fraction", "0.5", "--out", str(out), "--no-progress", "-p", "pretrained=false",
                            "-p", "input_size=8", "-p", "batch_size=64", "-p", "lr=0.01"])
    assert r.exit_code == 0, r.output
    return out / "model"


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".pt")])
def test_export_matches_pytorch(model_dir, tmp_path, fmt, suffix):
    out = tmp_path / f"m{suffix}"
    r = runner.invoke(app, ["export", str(model_dir), "--format", fmt, "--out", str(out), "--batch", "32"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.stat().st_size > 0
    report = json.loads(out.with_name(out.name + ".json").read_text())
    assert report["format"] == fmt and report["check_batch"] == 32 and report["input_shape"] == [3, 8, 8]
    assert report["max_abs_diff"] < 1e-4 and report["argmax_agreement"] == 1.0
    assert report["size_bytes"] == out.stat().st_size and "max |logit diff|" in r.output


def test_export_int8_is_static_and_timed(model_dir, tmp_path):
    r = runner.invoke(app, ["export", str(model_dir), "--format", "onnx", "--int8", "--out", str(tmp_path),
                            "--data", "digits", "--batch", "64", "--calibration", "digits", "--calibration-images", "50"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "model.onnx.json").read_text())
    q = report["int8"]
    assert (tmp_path / "model.int8.onnx").is_file() and q["mode"] == "static"
    assert q["calibration"] == "50 images of digits"
    import onnx

    ops = {n.op_type for n in onnx.load(q["path"]).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "ConvInteger" not in ops   # QDQ, not dynamic
    # a one-epoch 8 px model has small logit margins: most, not all, argmaxes survive int8
    assert q["max_abs_diff"] >= report["max_abs_diff"] and q["argmax_agreement"] >= 0.75
    assert report["check_images"].startswith("the first 64 images")
    assert q["latency_ms_b1_fp32"] > 0 and q["speedup_b1"] == pytest.approx(q["latency_ms_b1_fp32"] / q["latency_ms_b1_int8"])
    assert q["verdict"] in r.output and ("as fast as fp32" in q["verdict"] or "deploy the fp32 file" in q["verdict"])


def test_export_errors_are_clean(model_dir, tmp_path, monkeypatch):
    r = runner.invoke(app, ["export", str(tmp_path), "--format", "onnx"])
    assert r.exit_code == 2 and "not a saved transferkit strategy" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["export", str(tmp_path / "nope"), "--format", "onnx"])
    assert r.exit_code == 2 and "not a directory" in r.output
    r = runner.invoke(app, ["export", str(model_dir), "--format", "tflite"])
    assert r.exit_code == 2 and "'onnx', 'torchscript'" in r.output
    r = runner.invoke(app, ["export", str(model_dir), "--format", "torchscript", "--int8"])
    assert r.exit_code == 2 and "--format onnx" in r.output
    r = runner.invoke(app, ["export", str(model_dir), "--format", "onnx", "--int8", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "pass --calibration DATA" in r.output and not list(tmp_path.iterdir())
    import builtins

    real_import = builtins.__import__

    def no_ort(name, *a, **k):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    r = runner.invoke(app, ["export", str(model_dir), "--format", "onnx", "--out", str(tmp_path / "x.onnx")])
    assert r.exit_code == 2 and "transferkit[onnx]" in r.output and not (tmp_path / "x.onnx").exists()


def test_export_refuses_a_sklearn_features_model(tmp_path):
    from transferkit.data import load_digits, stratified_split
    from transferkit.strategies import get_strategy_class

    train, _ = stratified_split(load_digits(), 0.8, seed=0)
    fe = get_strategy_class("features")(backbone="builtin:micro-cnn", pretrained=False, input_size=8, cv=2,
                                        param_grid=[1.0], cache=False, progress=False).fit(train)
    fe.save(tmp_path / "fe")
    r = runner.invoke(app, ["export", str(tmp_path / "fe"), "--format", "onnx"])
    assert r.exit_code == 2 and "scikit-learn classifier" in r.output and "Traceback" not in r.output
