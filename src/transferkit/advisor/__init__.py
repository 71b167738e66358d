"""Advisor: profile the data, score backbones without training, recommend strategies, bench them."""
from .bench import bench, bench_markdown
from .profile import DatasetProfile, profile_dataset
from .rules import APPROACHES, Advice, Constraints, Recommendation, advise, advise_data, measure
from ..engine import proxy_a_distance
from .transferability import leep, logme, nce, nce_score, nleep, probe_accuracy, score_backbones, score_features

__all__ = ["bench", "bench_markdown", "DatasetProfile", "profile_dataset", "APPROACHES", "Advice", "Constraints",
           "Recommendation", "advise", "advise_data", "measure", "leep", "logme", "nce", "nce_score", "nleep",
           "probe_accuracy", "proxy_a_distance", "score_backbones", "score_features"]
