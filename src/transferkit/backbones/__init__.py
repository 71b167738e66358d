"""Backbones: pooled embeddings, embedding size, ordered layer groups and a data config."""
from .base import Backbone
from .factory import SCHEMES, create_backbone, list_builtins, parse_spec, save_backbone
from .weights import load_weights

__all__ = ["Backbone", "create_backbone", "list_builtins", "load_weights", "parse_spec", "save_backbone", "SCHEMES"]
