"""``transferkit export``: a saved classifier to ONNX or TorchScript, checked against PyTorch on a batch.

The export itself is :mod:`transferkit.export` (``export_onnx``, ``export_torchscript``, ``quantize_onnx``);
this command loads a saved model directory, exports its logits network, runs the exported file on a batch
of images at the model's input size (random images in [0, 1], or the first ``--batch`` images of ``--data``)
and reports the max |logit difference| against PyTorch, the agreement of the argmax and the file size, on
stdout and in ``<output>.json`` beside the output.

``--int8`` writes a statically quantised copy (ONNX Runtime QDQ, weights int8 per channel, activation ranges
calibrated on ``--calibration`` images: what runs convolutions as int8 ``QLinearConv``), then times both files
at batch 1 on this CPU and says whether int8 is faster here. Dynamic quantisation (``quantize_onnx(mode=
'dynamic')`` in Python) is not offered: it turns every convolution into ``ConvInteger`` plus a per-call
activation quantiser, which ONNX Runtime's CPU kernels run several times slower than fp32 (issue 28: 62.6 ms
against 6.4 ms for Lite0 at batch 1).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..errors import TransferkitError, check_choice
from ..utils import check_writable
from .app import app

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}
ONNX_EXTRA = "pip install 'transferkit[onnx]'"


def _need_onnx():
    """Import onnx and onnxruntime, or say which extra installs them."""
    missing = []
    for mod in ("onnx", "onnxruntime"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise TransferkitError(f"ONNX export needs {' and '.join(missing)}, which are not installed: install the "
                               f"extra with `{ONNX_EXTRA}`.")


def exportable_network(strategy):
    """The network that maps images in [0, 1] to the logits the saved model predicts with, or a clear refusal."""
    from torch import nn

    from ..strategies.base import NeuralStrategy

    kind = type(strategy)
    net = getattr(strategy, "model_", None)
    if not isinstance(strategy, NeuralStrategy) or not isinstance(net, nn.Module):
        if strategy.name == "features":
            raise TransferkitError(
                "Cannot export a 'features' model: it predicts with a scikit-learn classifier on frozen backbone "
                "features, not with one network; train a network head instead (e.g. `transferkit fit --strategy "
                "freeze`, a linear probe trained in PyTorch) and export that.")
        raise TransferkitError(f"Cannot export a {strategy.name!r} model: it does not predict with one network "
                               f"mapping images to logits.")
    if kind.predict_proba is not NeuralStrategy.predict_proba or kind.logits is not NeuralStrategy.logits:
        raise TransferkitError(
            f"Cannot export a {strategy.name!r} model: its predictions are not one network's logits (they depend on "
            f"a support set, a task, class signatures or a second stage), so an exported network would not "
            f"reproduce them.")
    return net.eval()


def _check_batch(strategy, batch: int, data: Optional[str]):
    """(images, where they came from): ``batch`` images at the model's input size."""
    from ..export import example_input

    if data is None:
        return example_input(strategy, batch, seed=1), f"{batch} random images in [0, 1]"
    import numpy as np
    import torch

    from ..data import ImageTransform, load_dataset

    ds = strategy.prepare(load_dataset(data))
    n = min(batch, len(ds))
    tf = ImageTransform(strategy.backbone_.data_config)
    ds = ds.subset(np.arange(n)).with_transform(tf)
    return torch.stack([ds[i][0] for i in range(n)]), f"the first {n} images of {data}"


def _compare(ref, out) -> dict:
    import numpy as np

    return {"max_abs_diff": float(np.max(np.abs(ref - out))) if ref.size else 0.0,
            "argmax_agreement": float(np.mean(ref.argmax(1) == out.argmax(1))) if len(ref) else 1.0}


def _int8(strategy, path: Path, x, ref, calibration: str, n: int, threads: int) -> dict:
    """Quantise ``path`` statically, calibrated on ``n`` images of ``calibration``; compare it with PyTorch's logits
    ``ref`` on ``x``, time both files at batch 1 and say whether int8 is the faster file on this CPU."""
    from .. import export as ex
    from ..data import load_dataset

    qpath = path.with_name(path.stem + ".int8" + path.suffix)
    calib = strategy.prepare(load_dataset(calibration))
    q = ex.quantize_onnx(path, qpath, mode="static", calibration=calib, data_config=strategy.backbone_.data_config,
                         n_calibration=n)
    got = ex.onnx_session(qpath, threads=1).run(None, {"images": x.numpy()})[0]
    shape = tuple(x.shape[1:])
    ms32, ms8 = (ex.measure_onnx_latency(p, shape, 1, threads=threads, repeats=10, min_time=0.3) for p in (path, qpath))
    speedup = ms32 / ms8
    timing = f"{ms8:.1f} against {ms32:.1f} ms at batch 1, {threads} thread{'s' if threads > 1 else ''}"
    verdict = (f"int8 is {speedup:.2f}x as fast as fp32 on this CPU ({timing})" if speedup >= 1.1 else
               f"int8 is not faster than fp32 on this CPU ({timing}): deploy the fp32 file {path.name}")
    return {"path": str(qpath), "mode": "static", "size_bytes": q["size_bytes"],
            "calibration": f"{min(n, len(calib))} images of {calibration}", **_compare(ref, got),
            "latency_ms_b1_fp32": ms32, "latency_ms_b1_int8": ms8, "speedup_b1": speedup, "verdict": verdict}


@app.command()
def export(
    model: Path = typer.Argument(..., help="A saved model directory (OUT/model of `fit`)."),
    fmt: str = typer.Option(..., "--format", "-f", help="'onnx' (checked in onnxruntime) or 'torchscript' (.pt)."),
    int8: bool = typer.Option(False, "--int8", help="Also write a static int8 ONNX model (onnxruntime QDQ, per-channel "
                                                    "weights, activation ranges calibrated on --calibration images), "
                                                    "report its agreement with PyTorch and its batch-1 speed against "
                                                    "fp32 on this CPU (onnx only)."),
    calibration: Optional[str] = typer.Option(None, "--calibration", help="--int8: images to calibrate activation "
                                              "ranges on, best a sample of the training data (a folder, .csv or "
                                              "dataset name; the model's preprocessing is applied)."),
    calibration_images: int = typer.Option(256, "--calibration-images", help="--int8: how many --calibration images "
                                           "to use (a seeded sample; at least 1)."),
    threads: int = typer.Option(1, "--threads", help="--int8: CPU threads for the latency comparison (at least 1)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default MODEL/model.onnx or MODEL/model.pt); "
                                                                "an existing directory gets model.onnx / model.pt inside."),
    batch: int = typer.Option(16, "--batch", help="Images in the check batch (at least 1)."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Check on the first --batch images of this data "
                                                                  "instead of random images (int8 agreement is more "
                                                                  "telling on real images)."),
):
    """Export a saved classifier to ONNX or TorchScript and check it against PyTorch on a batch of images."""
    import numpy as np
    import torch

    from .. import export as ex
    from ..strategies import Strategy
    from ..utils import write_json

    check_choice("export", "--format", fmt, FORMATS)
    if isinstance(batch, bool) or batch < 1:
        raise TransferkitError(f"--batch must be at least 1; got {batch}.")
    if int8 and fmt != "onnx":
        raise TransferkitError("--int8 quantises with ONNX Runtime: use it with --format onnx.")
    if int8 and calibration is None:
        raise TransferkitError("--int8 calibrates the int8 activation ranges on real images: pass --calibration DATA, "
                               "a sample of the training data (e.g. the folder the model was fitted on).")
    for flag, v in (("--calibration-images", calibration_images), ("--threads", threads)):
        if isinstance(v, bool) or v < 1:
            raise TransferkitError(f"{flag} must be at least 1; got {v}.")
    if fmt == "onnx":
        _need_onnx()
    path = Path(out) if out is not None else Path(model) / f"model{SUFFIX[fmt]}"
    if path.is_dir():
        path = path / f"model{SUFFIX[fmt]}"
    check_writable(path, "--out" if out is not None else "the export file")

    strategy = Strategy.load(model)
    net = exportable_network(strategy)
    x, source = _check_batch(strategy, batch, data)
    with torch.inference_mode():
        ref = net(x).float().numpy()
        proba = strategy.predict_proba(x)
    if not np.allclose(torch.softmax(torch.from_numpy(ref), 1).numpy(), proba, atol=1e-5):
        raise TransferkitError(f"Cannot export the {strategy.name!r} model: its network's logits do not give the "
                               f"probabilities it predicts with, so an export would not reproduce it.")

    if fmt == "onnx":
        info = ex.export_onnx(strategy, path)
        got = ex.onnx_session(path, threads=1).run(None, {"images": x.numpy()})[0]
    else:
        info = ex.export_torchscript(strategy, path)
        with torch.inference_mode():
            got = ex.load_torchscript(path)(x).float().numpy()
    report = {"model": str(model), "strategy": strategy.name, "format": fmt, "path": str(path),
              "size_bytes": info["size_bytes"], "input_shape": [int(s) for s in x.shape[1:]],
              "check_batch": int(len(x)), "check_images": source, **_compare(ref, got)}
    if int8:
        report["int8"] = _int8(strategy, path, x, ref, calibration, calibration_images, threads)
    json_path = path.with_name(path.name + ".json")
    write_json(json_path, report)

    typer.echo(json.dumps(report, indent=2))
    typer.echo(f"wrote {path} ({report['size_bytes'] / 1e6:.2f} MB): max |logit diff| {report['max_abs_diff']:.3g}, "
               f"argmax agreement {100 * report['argmax_agreement']:.1f}% on {source}")
    if int8:
        r8 = report["int8"]
        typer.echo(f"wrote {r8['path']} ({r8['size_bytes'] / 1e6:.2f} MB, static int8): max |logit diff| "
                   f"{r8['max_abs_diff']:.3g}, argmax agreement {100 * r8['argmax_agreement']:.1f}%")
        typer.echo(r8["verdict"])
    typer.echo(f"report: {json_path}")
