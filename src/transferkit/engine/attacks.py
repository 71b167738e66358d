"""Moved to :mod:`transferkit.robustness` (issue 26 stage C); this path re-exports it until the redesign ends."""
from ..robustness import (NORMS, attack_kwargs, default_step_size, fgsm, pgd, project_to_ball, robust_accuracy,
                          threat_model)

__all__ = ["NORMS", "attack_kwargs", "default_step_size", "fgsm", "pgd", "project_to_ball", "robust_accuracy",
           "threat_model"]
