"""Moved to :mod:`transferkit.strategies.scarce` (issue 27 stage E): the shared machinery to ``scarce.zeroshot``, the
class semantics to ``scarce.semantics``, one module per method (``dap``, ``eszsl``, ``bilinear``, ``clip``). The old
import path re-exports them until the issue's last stage removes it."""
from .scarce.bilinear import BilinearZSL
from .scarce.clip import DEFAULT_TEMPLATES, ClipZeroShot
from .scarce.dap import DAP
from .scarce.eszsl import ESZSL, eszsl_closed_form
from .scarce.semantics import embed_descriptions, resolve_semantics
from .scarce.zeroshot import MODES, calibration_from_seen, per_class_accuracy

__all__ = ["BilinearZSL", "ClipZeroShot", "DAP", "DEFAULT_TEMPLATES", "ESZSL", "MODES", "calibration_from_seen",
           "embed_descriptions", "eszsl_closed_form", "per_class_accuracy", "resolve_semantics"]
