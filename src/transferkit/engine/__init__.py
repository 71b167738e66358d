"""Engine: the one training loop, callbacks, schedules, feature cache, metrics, result records."""
from .allocator import allocator_name, keep_freed_memory
from .callbacks import Callback, EarlyStopping, LambdaCallback
from .features import extract_features, feature_cache_key
from .inference import evaluating, infer
from .loaders import EpochSampler, PairedLoader, batch_to, make_loader
from .metrics import classification_metrics, expected_calibration_error, mean_confidence_interval, proxy_a_distance
from .optim import build_optimizer
from .results import make_result, read_results, write_result
from .schedules import lr_multiplier, make_scheduler
from .trainer import Trainer, TrainingInterrupted, get_fabric, resolve_precision

keep_freed_memory()  # glibc keeps a training step's freed activations instead of faulting them back in (allocator.py)

__all__ = [
    "allocator_name", "keep_freed_memory",
    "Callback", "EarlyStopping", "LambdaCallback", "extract_features", "feature_cache_key", "evaluating", "infer",
    "EpochSampler",
    "PairedLoader", "batch_to", "make_loader", "classification_metrics", "expected_calibration_error",
    "mean_confidence_interval", "proxy_a_distance", "build_optimizer", "make_result", "read_results", "write_result",
    "lr_multiplier", "make_scheduler", "Trainer", "TrainingInterrupted", "get_fabric", "resolve_precision",
]
