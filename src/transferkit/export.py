"""Deployment: ONNX (checked in onnxruntime), TorchScript, int8 quantisation, CPU latency and size on disk.

Every exported model takes images in [0, 1], shape (B, C, H, W) (normalisation is inside the backbone),
and returns logits (B, n_classes). An export is checked by running the exported file and comparing its
outputs with PyTorch's on the same inputs; a mismatch beyond the tolerance raises.

Example:
    >>> from transferkit.export import export_onnx, quantize_onnx, measure_latency
    >>> info = export_onnx(strategy, "model.onnx")               # {"max_abs_diff": 2e-7, ...}
    >>> q = quantize_onnx("model.onnx", "model.int8.onnx", mode="static", calibration=train, data_config=...)
    >>> measure_latency(strategy, batch_size=1)                  # ms per image on CPU
"""
from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import ImageDataset, ImageTransform
from .engine import classification_metrics, make_loader, profiling
from .errors import TransferkitError, check_choice
from .utils import check_writable

QUANT_MODES = ("dynamic", "static")


def as_module(model) -> nn.Module:
    """The logits network of a fitted strategy (``model_``), or an ``nn.Module`` as is, in eval mode."""
    if isinstance(model, nn.Module):
        return model.eval()
    m = getattr(model, "model_", None)
    if not isinstance(m, nn.Module):
        raise TransferkitError(f"Cannot export a {type(model).__name__}: expected a fitted strategy with a network "
                               f"(model_) or an nn.Module.")
    if getattr(model, "data_roles", ()) == ("tasks",) or type(m).__name__ in ("MultiTaskNet",):
        raise TransferkitError(f"{type(model).__name__} routes inference by task or returns several outputs; export "
                               f"one task's network (a module mapping images to logits) instead.")
    return m.eval()


def data_config_of(model) -> dict:
    """The data config (input size, mean, std) of a strategy or a module holding a Backbone."""
    bb = getattr(model, "backbone_", None)
    if bb is None:
        bb = getattr(as_module(model), "backbone", None)
    if bb is None or not hasattr(bb, "data_config"):
        raise TransferkitError("Cannot tell the input size: pass input_shape=(C, H, W).")
    return dict(bb.data_config)


def example_input(model, batch_size: int = 1, input_shape=None, seed: int = 0) -> torch.Tensor:
    """A reproducible random image batch (B, C, H, W) in [0, 1] of the model's input size."""
    shape = tuple(input_shape) if input_shape is not None else tuple(data_config_of(model)["input_size"])
    return torch.rand((batch_size, *shape), generator=torch.Generator().manual_seed(seed))


def _compare(name, ref: np.ndarray, out: np.ndarray, rtol: float, atol: float) -> float:
    diff = float(np.max(np.abs(ref - out))) if ref.size else 0.0
    if not np.allclose(out, ref, rtol=rtol, atol=atol):
        raise TransferkitError(f"The {name} export does not reproduce PyTorch's outputs: max |difference| {diff:.3g} "
                               f"exceeds atol={atol} + rtol={rtol}*|value|.")
    return diff


def static_same_padding(module: nn.Module, x: torch.Tensor) -> nn.Module:
    """A copy of ``module`` whose TensorFlow-style 'same' convolutions (timm's ``Conv2dSame``, in the ``tf_*``
    EfficientNets) pad by constants worked out for the input ``x``, instead of from the input's shape at run time.

    The outputs are identical at that input size. The exported graph loses its per-convolution shape arithmetic
    (Shape, Gather, Ceil, Pad), so ONNX Runtime folds each pad into its convolution, in fp32 and in int8, where the
    dynamic pads had left float islands between the int8 convolutions (measured in BENCHMARKS.md, int8)."""
    try:
        from timm.layers import Conv2dSame
        from timm.layers.padding import get_same_padding
    except ImportError:
        return module
    same = {n: c for n, c in module.named_modules() if isinstance(c, Conv2dSame)}
    if not same:
        return module
    sizes = {}
    hooks = [c.register_forward_pre_hook(lambda _, inp, n=n: sizes.__setitem__(n, tuple(inp[0].shape[-2:])))
             for n, c in same.items()]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in hooks:
            h.remove()
    out = copy.deepcopy(module)
    for name, (ih, iw) in sizes.items():
        c = out.get_submodule(name)
        ph, pw = (get_same_padding(i, k, s, d) for i, k, s, d in zip((ih, iw), c.kernel_size, c.stride, c.dilation))
        conv = nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, 0, c.dilation, c.groups,
                         c.bias is not None)
        conv.load_state_dict(c.state_dict())
        parent, _, leaf = name.rpartition(".")
        pad = nn.ZeroPad2d((pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
        setattr(out.get_submodule(parent) if parent else out, leaf, nn.Sequential(pad, conv))
    return out.eval()


def export_onnx(model, path, *, input_shape=None, opset: int = 17, check: bool = True, rtol: float = 1e-3,
                atol: float = 1e-4, check_batch: int = 8) -> dict:
    """Export to ONNX with a dynamic batch axis (input ``images``, output ``logits``) and check it in onnxruntime.

    The image size is fixed at the model's input size, so TensorFlow-style 'same' padding is exported as constant
    pads (:func:`static_same_padding`). Returns ``{"path", "size_bytes", "max_abs_diff", "opset"}``; raises when
    onnxruntime's outputs on a random batch of ``check_batch`` images differ from PyTorch's by more than
    ``atol + rtol * |ref|``.
    """
    module = as_module(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path.parent, "the export folder")  # torch.jit.save's own error names no path
    x = example_input(model, 2, input_shape)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(static_same_padding(module, x), (x,), str(path), input_names=["images"], output_names=["logits"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    info = {"path": str(path), "size_bytes": path.stat().st_size, "opset": opset, "max_abs_diff": None}
    if check:
        xc = example_input(model, check_batch, input_shape, seed=1)
        with torch.inference_mode():
            ref = module(xc).float().numpy()
        out = onnx_session(path).run(None, {"images": xc.numpy()})[0]
        info["max_abs_diff"] = _compare("ONNX", ref, out, rtol, atol)
    return info


def onnx_session(path, threads: int | None = None):
    """An onnxruntime CPU inference session for ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def load_torchscript(path):
    """A TorchScript file, loaded without torch.jit's deprecation notice: TorchScript is the format the user asked
    for, and the notice is PyTorch's, not something the user can act on here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit.*deprecated", category=FutureWarning)
        return torch.jit.load(str(path))


def export_torchscript(model, path, *, input_shape=None, check: bool = True, rtol: float = 1e-4,
                       atol: float = 1e-5) -> dict:
    """Trace to TorchScript, save, reload and compare outputs with the eager model.

    Returns ``{"path", "size_bytes", "max_abs_diff"}``. (TorchScript is in maintenance in PyTorch; it is kept
    for runtimes such as LibTorch and PyTorch Mobile that load ``.pt`` files.)
    """
    module = as_module(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    check_writable(path.parent, "the export folder")  # torch.jit.save's own error names no path
    x = example_input(model, 2, input_shape)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, x)
        torch.jit.save(traced, str(path))
    loaded = load_torchscript(path)
    info = {"path": str(path), "size_bytes": path.stat().st_size, "max_abs_diff": None}
    if check:
        xc = example_input(model, 8, input_shape, seed=1)
        with torch.inference_mode():
            info["max_abs_diff"] = _compare("TorchScript", module(xc).numpy(), loaded(xc).numpy(), rtol, atol)
    return info


class _Calibration:
    """onnxruntime CalibrationDataReader over a seeded sample of an ImageDataset, read one batch at a time."""

    def __init__(self, data: ImageDataset, data_config: dict, n: int, batch_size: int = 8, seed: int = 0):
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(data), size=min(n, len(data)), replace=False))
        loader = make_loader(data.subset(idx).with_transform(ImageTransform(data_config)), batch_size)
        self._it = ({"images": x.numpy()} for x, _ in loader)

    def get_next(self):
        return next(self._it, None)


@contextlib.contextmanager
def _quiet_root_logger():
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def quantize_onnx(onnx_path, out_path, *, mode: str = "static", calibration: ImageDataset | None = None,
                  data_config: dict | None = None, n_calibration: int = 256) -> dict:
    """int8 quantisation with onnxruntime: 'dynamic' (weights int8, activations quantised on the fly; helps
    Linear/MatMul-heavy models) or 'static' (weights and activations int8, QDQ format, activation ranges
    calibrated on ``n_calibration`` images of ``calibration``; what speeds up conv nets).

    Returns ``{"path", "size_bytes", "mode"}``. Measure the accuracy change with :func:`onnx_evaluate`.
    """
    from onnxruntime import quantization as q

    check_choice("quantize_onnx", "mode", mode, QUANT_MODES)
    out_path = Path(out_path)
    pre = out_path.with_suffix(".pre.onnx")
    # onnxruntime's quantiser prints, warns and logs to the root logger ("Inference failed or unsupported type to
    # quantize" for the integer shape arithmetic of TF-style padding, which stays float by design): none of it is
    # something the user can act on, and the result is checked by measurement instead
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(), _quiet_root_logger():
        warnings.simplefilter("ignore")
        try:
            q.quant_pre_process(str(onnx_path), str(pre), skip_symbolic_shape=True)
            src = pre
        except Exception:  # pre-processing is an optimisation only
            src = Path(onnx_path)
        if mode == "dynamic":
            q.quantize_dynamic(str(src), str(out_path), weight_type=q.QuantType.QInt8)
        else:
            if calibration is None or data_config is None:
                raise TransferkitError("quantize_onnx(mode='static') needs calibration images (calibration=ImageDataset) "
                                       "and the model's data_config.")
            q.quantize_static(str(src), str(out_path), _Calibration(calibration, data_config, n_calibration),
                              quant_format=q.QuantFormat.QDQ, per_channel=True, activation_type=q.QuantType.QUInt8,
                              weight_type=q.QuantType.QInt8)
    pre.unlink(missing_ok=True)
    return {"path": str(out_path), "size_bytes": out_path.stat().st_size, "mode": mode}


def onnx_predict_proba(path, data: ImageDataset, data_config: dict, *, batch_size: int = 256, threads: int | None = None) -> np.ndarray:
    """Class probabilities (N, n_classes) of ``data`` from an ONNX model file."""
    sess = onnx_session(path, threads)
    outs = []
    for x, _ in make_loader(data.with_transform(ImageTransform(data_config)), batch_size):
        outs.append(torch.softmax(torch.from_numpy(sess.run(None, {"images": x.numpy()})[0]), 1).numpy())
    return np.concatenate(outs)


def onnx_evaluate(path, data: ImageDataset, data_config: dict, classes=None) -> dict:
    """Classification metrics of an ONNX model file on labelled ``data``."""
    proba = onnx_predict_proba(path, data, data_config)
    return classification_metrics(data.labels, proba=proba, classes=classes or data.classes)


def quantization_report(model, data: ImageDataset, directory, *, mode: str = "static",
                        calibration: ImageDataset | None = None, n_calibration: int = 256) -> dict:
    """Export ``model`` to ONNX, quantise it to int8, and measure the accuracy change on ``data``, the file sizes
    and the onnxruntime CPU latency (1 thread) of both. ``calibration`` defaults to ``data`` (use training images)."""
    d = Path(directory)
    cfg = data_config_of(model)
    fp32 = export_onnx(model, d / "model.onnx")
    int8 = quantize_onnx(d / "model.onnx", d / f"model.int8-{mode}.onnx", mode=mode,
                         calibration=calibration if calibration is not None else data, data_config=cfg,
                         n_calibration=n_calibration)
    acc32 = onnx_evaluate(fp32["path"], data, cfg)["accuracy"]
    acc8 = onnx_evaluate(int8["path"], data, cfg)["accuracy"]
    shape = tuple(cfg["input_size"])
    return {"mode": mode, "accuracy_fp32": acc32, "accuracy_int8": acc8, "accuracy_change": acc8 - acc32,
            "size_bytes_fp32": fp32["size_bytes"], "size_bytes_int8": int8["size_bytes"],
            "onnx_max_abs_diff": fp32["max_abs_diff"],
            "latency_ms_fp32_b1": measure_onnx_latency(fp32["path"], shape, 1),
            "latency_ms_int8_b1": measure_onnx_latency(int8["path"], shape, 1),
            "latency_ms_fp32_b64": measure_onnx_latency(fp32["path"], shape, 64),
            "latency_ms_int8_b64": measure_onnx_latency(int8["path"], shape, 64)}


# -- speed and size ----------------------------------------------------------------------------------------

def measure_latency(model, batch_size: int = 1, *, input_shape=None, threads: int | None = 1, warmup: int = 5,
                    repeats: int = 20, min_time: float = 0.5) -> float:
    """PyTorch eager CPU latency in milliseconds **per image** at ``batch_size`` of a fitted strategy or a module
    (:func:`transferkit.engine.profiling.measure_latency`; the input size comes from the backbone's data config)."""
    shape = tuple(input_shape) if input_shape is not None else tuple(data_config_of(model)["input_size"])
    return profiling.measure_latency(as_module(model), shape, batch_size, threads=threads, warmup=warmup,
                                     repeats=repeats, min_time=min_time)


def measure_onnx_latency(path, input_shape, batch_size: int = 1, *, threads: int = 1, warmup: int = 5,
                         repeats: int = 20, min_time: float = 0.5) -> float:
    """onnxruntime CPU latency in milliseconds per image at ``batch_size``."""
    sess = onnx_session(path, threads)
    x = np.random.default_rng(0).random((batch_size, *input_shape), dtype=np.float32)
    return 1000.0 * profiling.median_time(lambda: sess.run(None, {"images": x}), warmup=warmup, repeats=repeats,
                                          min_time=min_time) / batch_size


def size_on_disk(model) -> int:
    """Bytes of the model's weights written as safetensors (parameters and buffers)."""
    return profiling.size_on_disk(as_module(model))
