"""Safe weight-file loading: safetensors, or ``torch.load(weights_only=True)``; never a code-running pickle.

The one gate every weight file passes through (``file:`` backbones, converted ImageNet checkpoints, saved
strategies), on the floor below the factory so that nothing that loads weights needs the factory.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import TransferkitError


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
    if p.is_file() and p.stat().st_size == 0:
        raise TransferkitError(f"Weights file {p} is empty (0 bytes): an interrupted download or copy? Save or "
                               f"download it again.")
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:
        raise TransferkitError(
            f"Refusing to load {p}: it is not a plain tensor checkpoint ({type(e).__name__}: "
            f"{(str(e).splitlines() or [''])[0][:160]}). transferkit loads weights only with safetensors or "
            f"torch.load(weights_only=True); convert the file to safetensors from a trusted environment.") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise TransferkitError(f"{p} does not hold a state dict (name -> tensor).")
    return obj
