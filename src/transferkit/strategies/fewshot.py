"""Moved to :mod:`transferkit.strategies.scarce` (issue 27 stage E): the shared machinery to ``scarce.episodic``, one
module per method (``protonet``, ``maml``, ``simpleshot``, ``probes``). The old import path re-exports them until the
issue's last stage removes it."""
from ..data.episodes import EpisodeLoader, as_images, episode_images, sample_episodes, support_set
from .scarce.episodic import METRICS, episodic_accuracy, prototype_logits, prototypes
from .scarce.maml import MAML
from .scarce.probes import SupportFineTuneHead, SupportLinearProbe
from .scarce.protonet import ProtoNet
from .scarce.simpleshot import SimpleShot

__all__ = ["EpisodeLoader", "MAML", "METRICS", "ProtoNet", "SimpleShot", "SupportFineTuneHead", "SupportLinearProbe",
           "as_images", "episode_images", "episodic_accuracy", "prototype_logits", "prototypes", "sample_episodes",
           "support_set"]
