"""create_backbone(spec): one door to every source of pre-trained weights.

Specs:
    ``timm:NAME``         any timm model (hub weights when ``pretrained=True`` and reachable)
    ``hf-hub:ORG/NAME``   a timm model on the Hugging Face hub
    ``torchvision:NAME``  a torchvision classification model (``weights="DEFAULT"`` when pretrained)
    ``file:PATH``         weights saved by transferkit (``save_backbone``, ``transferkit pretrain``), or a
                          bare timm/torchvision state dict with ``arch="timm:NAME"`` (timm loads it through
                          its ``pretrained_cfg_overlay=dict(file=...)`` mechanism)
    ``builtin:NAME``      small CPU-friendly nets (see ``list_builtins()``)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import timm
import torch
from torch import nn

from ..errors import TransferkitError
from ..utils import atomic_path
from . import builtin as _builtin  # noqa: F401  (registers the builtins with timm)
from .base import Backbone

SCHEMES = ("timm", "hf-hub", "torchvision", "file", "builtin")
_IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
_META_KEY = "transferkit"


def list_builtins() -> dict[str, str]:
    """Builtin backbone names and one-line descriptions."""
    return {name: desc for name, (_, desc) in _builtin.BUILTINS.items()}


def parse_spec(spec: str) -> tuple[str, str]:
    if not isinstance(spec, str) or not spec:
        raise TransferkitError(f"A backbone spec must be a non-empty string like 'timm:resnet50'; got {spec!r}.")
    scheme, sep, rest = spec.partition(":")
    if not sep:
        if spec in _builtin.BUILTINS:
            return "builtin", spec
        return "timm", spec
    if scheme not in SCHEMES or not rest:
        raise TransferkitError(
            f"Unknown backbone spec {spec!r}: use one of {', '.join(s + ':NAME' for s in SCHEMES)} "
            f"(for example 'timm:resnet18', 'builtin:small-cnn', 'file:runs/pretrain/backbone.safetensors').")
    return scheme, rest


def create_backbone(spec: str, *, pretrained: bool = True, arch: str | None = None,
                    input_size: int | tuple[int, int] | None = None, in_chans: int | None = None,
                    **model_kwargs) -> Backbone:
    """Build a :class:`Backbone` from a spec string.

    Args:
        spec: see the module docstring.
        pretrained: load hub weights for ``timm:``/``hf-hub:``/``torchvision:`` (ignored for ``file:``,
            whose weights are the point, and for ``builtin:``, which has none).
        arch: architecture for a bare state dict given as ``file:PATH``.
        input_size: override the data config's (H, W) (e.g. 32 for a builtin on 64 px images).
        in_chans: input channels (timm models adapt their first conv).

    Example:
        >>> bb = create_backbone("builtin:small-cnn")
        >>> bb(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 128])
    """
    scheme, name = parse_spec(spec)
    if scheme == "file" and "?arch=" in name:  # file:PATH?arch=timm:NAME (bare state dicts, e.g. from the CLI)
        name, _, arch = name.partition("?arch=")
    if scheme == "file":
        bb = _from_file(name, arch=arch, in_chans=in_chans, **model_kwargs)
    elif scheme == "torchvision":
        bb = _from_torchvision(name, pretrained)
    else:
        timm_name = {"builtin": lambda n: _builtin_name(n), "hf-hub": lambda n: "hf-hub:" + n}.get(
            scheme, lambda n: n)(name)
        bb = _from_timm(timm_name, spec=spec, arch=spec, pretrained=pretrained and scheme != "builtin",
                        in_chans=in_chans, **model_kwargs)
    if input_size is not None:
        hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        bb.data_config["input_size"] = (bb.in_chans, *hw)
    return bb


def _builtin_name(name: str) -> str:
    if name not in _builtin.BUILTINS:
        raise TransferkitError(f"Unknown builtin backbone {name!r}; the builtins are {sorted(_builtin.BUILTINS)}.")
    return _builtin.BUILTINS[name][0]


def _from_timm(name: str, *, spec: str, arch: str, pretrained: bool, in_chans=None,
               pretrained_file: str | None = None, **kwargs) -> Backbone:
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained_file))
        pretrained = True
    try:
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)
    except RuntimeError as e:
        if "Unknown model" in str(e):
            raise TransferkitError(
                f"timm has no model named {name!r} (from spec {spec!r}); list them with "
                f"`python -c \"import timm; print(timm.list_models('*resnet*'))\"`.") from None
        raise
    except (OSError, ConnectionError, ValueError) as e:
        if not pretrained:
            raise
        raise TransferkitError(
            f"Could not fetch pretrained weights for {spec!r} ({type(e).__name__}: {str(e)[:200]}). "
            f"Without network access pass pretrained=False, or download the weights elsewhere and use "
            f"'file:PATH' with arch={spec!r}.") from None
    cfg = timm.data.resolve_model_data_config(model)
    matcher = model.group_matcher(coarse=True) if hasattr(model, "group_matcher") else None
    if matcher:
        from timm.models import group_parameters

        grouped = group_parameters(model, matcher)
        names = [f"group{i}" for i in range(len(grouped))]
        if names:
            names[0] = "stem"
        groups = [(n, list(p)) for n, p in zip(names, grouped.values())]
    else:
        groups = _top_level_groups(model)
    return Backbone(model, spec=spec, arch=arch, num_features=model.num_features, data_config=cfg, groups=groups)


def _top_level_groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    groups = []
    for child_name, child in model.named_children():
        names = [f"{child_name}.{n}" for n, _ in child.named_parameters()]
        if names:
            groups.append((child_name, names))
    return groups


def _from_torchvision(name: str, pretrained: bool, state_dict: dict | None = None) -> Backbone:
    import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT if pretrained else None
        model = torchvision.models.get_model(name, weights=weights)
    except ValueError:
        raise TransferkitError(
            f"torchvision has no model named {name!r}; see torchvision.models.list_models().") from None
    except (OSError, RuntimeError) as e:
        raise TransferkitError(
            f"Could not fetch torchvision weights for {name!r} ({type(e).__name__}). Offline, pass "
            f"pretrained=False or use 'file:PATH' with arch='torchvision:{name}'.") from None
    if state_dict is not None:
        missing, _ = model.load_state_dict(state_dict, strict=False)
        body_missing = [k for k in missing if not k.startswith(("fc.", "classifier.", "head"))]
        if body_missing:
            raise TransferkitError(f"The state dict does not fit torchvision:{name}: missing {body_missing[:5]}...")
    num_features = _strip_torchvision_head(model, name)
    crop, resize = 224, 256
    if weights is not None:
        t = weights.transforms()
        crop, resize = t.crop_size[0], t.resize_size[0]
    cfg = dict(input_size=(3, crop, crop), interpolation="bilinear", crop_pct=crop / resize, **_IMAGENET)
    spec = f"torchvision:{name}"
    return Backbone(model, spec=spec, arch=spec, num_features=num_features, data_config=cfg,
                    groups=_top_level_groups(model))


def _strip_torchvision_head(model: nn.Module, name: str) -> int:
    for attr in ("fc", "head", "heads", "classifier"):
        head = getattr(model, attr, None)
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return head.in_features
        if isinstance(head, nn.Sequential):
            for i in range(len(head) - 1, -1, -1):
                if isinstance(head[i], nn.Linear):
                    n = head[i].in_features
                    head[i] = nn.Identity()
                    return n
    raise TransferkitError(f"Cannot find the classifier of torchvision:{name} to strip it.")


# -- saving and loading weights ---------------------------------------------------------------

def save_backbone(backbone: Backbone, path: str | os.PathLike) -> Path:
    """Write the backbone's weights as safetensors with its architecture in the metadata.

    ``create_backbone(f"file:{path}")`` rebuilds it exactly.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / "backbone.safetensors"
    meta = {_META_KEY: json.dumps({"arch": backbone.arch, "data_config": backbone.data_config,
                                   "in_chans": backbone.in_chans})}
    state = {k: v.detach().cpu().contiguous() for k, v in backbone.model.state_dict().items()}
    with atomic_path(path, ".safetensors") as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def _from_file(path: str, *, arch: str | None, in_chans=None, **kwargs) -> Backbone:
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "backbone.safetensors"
    if not p.exists():
        raise TransferkitError(f"Backbone file not found: {p}")
    meta = {}
    if p.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(p), framework="pt") as f:
                meta = json.loads((f.metadata() or {}).get(_META_KEY, "{}"))
        except Exception as e:  # corrupt header
            raise TransferkitError(f"Cannot read safetensors file {p}: {e}") from None
    arch = arch or meta.get("arch")
    if arch is None:
        raise TransferkitError(
            f"{p} holds bare weights without an architecture; pass arch='timm:NAME' or "
            f"arch='torchvision:NAME' (e.g. create_backbone('file:{p}', arch='timm:resnet18')).")
    scheme, name = parse_spec(arch)
    if in_chans is None:
        in_chans = meta.get("in_chans")
    if scheme == "torchvision":
        bb = _from_torchvision(name, pretrained=False, state_dict=load_weights(p))
    elif meta:  # transferkit file: rebuild the architecture, then load strictly
        timm_name = _builtin_name(name) if scheme == "builtin" else ("hf-hub:" + name if scheme == "hf-hub" else name)
        bb = _from_timm(timm_name, spec=f"file:{p}", arch=arch, pretrained=False, in_chans=in_chans, **kwargs)
        bb.model.load_state_dict(load_weights(p))
        bb.data_config.update({k: tuple(v) if isinstance(v, list) else v
                               for k, v in meta.get("data_config", {}).items()})
    else:  # bare timm state dict: timm's own local-file mechanism (filters the classifier, adapts in_chans)
        timm_name = _builtin_name(name) if scheme == "builtin" else name
        state = load_weights(p)  # the safety gate: refuse code-running pickles before timm opens the file
        if scheme == "builtin":  # builtins have no timm pretrained loader: load the body here (head dropped)
            bb = _from_timm(timm_name, spec=f"file:{p}", arch=arch, pretrained=False, in_chans=in_chans, **kwargs)
            missing, _ = bb.model.load_state_dict({k: v for k, v in state.items() if not k.startswith("head.")},
                                                  strict=False)
            if [k for k in missing if not k.startswith("head.")]:
                raise TransferkitError(f"{p} does not fit {arch}: missing {missing[:5]}.")
        else:
            bb = _from_timm(timm_name, spec=f"file:{p}", arch=arch, pretrained=False, in_chans=in_chans,
                            pretrained_file=str(p), **kwargs)
    bb.spec, bb.arch = f"file:{p}", arch
    return bb


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict safely: safetensors, or ``torch.load(weights_only=True)``.

    A pickle that would execute code is refused with a message naming the file.
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except FileNotFoundError:
            raise TransferkitError(f"Weights file not found: {p}") from None
        except Exception as e:  # truncated or corrupt header/data
            raise TransferkitError(f"Cannot read safetensors file {p}: {type(e).__name__}: {str(e)[:200]}. "
                                   f"The file is corrupt or truncated; save or download it again.") from None
    if not p.exists():
        raise TransferkitError(f"Weights file not found: {p}")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise TransferkitError(
            f"Refusing to load {p}: it is not a plain tensor checkpoint ({type(e).__name__}: "
            f"{str(e).splitlines()[0][:160]}). transferkit loads weights only with safetensors or "
            f"torch.load(weights_only=True); convert the file to safetensors from a trusted environment.") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TransferkitError(f"{p} does not hold a state dict (name -> tensor).")
    return obj
