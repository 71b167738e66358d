"""Moved to :mod:`transferkit.strategies.domain` (issue 27 stage E): the machinery to ``domain.base``, the losses to
``domain.losses``, the validators to ``domain.validators`` and one module per method. The old import path re-exports
them until the issue's last stage removes it."""
from ..data.domains import split_domains
from .domain.base import DAModel, DomainAdaptation
from .domain.cdan import CDAN
from .domain.coral import CORAL
from .domain.dann import DANN
from .domain.losses import DomainDiscriminator, MultilinearMap, coral_loss, ganin_lambda, grad_reverse, mk_mmd
from .domain.mmd import MMD
from .domain.source_only import SourceOnly
from .domain.validators import SELECTIONS, embedding_map, entropy_score, im_score, snd_score

__all__ = ["CDAN", "CORAL", "DANN", "DAModel", "DomainAdaptation", "DomainDiscriminator", "MMD", "MultilinearMap",
           "SELECTIONS", "SourceOnly", "coral_loss", "embedding_map", "entropy_score", "ganin_lambda", "grad_reverse",
           "im_score", "mk_mmd", "snd_score", "split_domains"]
