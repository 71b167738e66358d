"""CLIP-style zero-shot through open_clip with prompt-template ensembles (Radford et al. 2021)."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from ...backbones.encoders import load_open_clip
from ...data import ImageDataset
from ...errors import DataError, TransferkitError
from ...params import BOOL, STR, Interval, ListOf
from ..base import Strategy
from ..registry import register_strategy
from .semantics import resolve_semantics
from .zeroshot import _ZeroShotMixin


# -- CLIP ---------------------------------------------------------------------------------------------

# A 7-template subset of the 80 ImageNet prompts of Radford et al. 2021 (the ensemble used by their
# "prompt engineering" notebook); "{}" is replaced by the class name.
DEFAULT_TEMPLATES = (
    "itap of a {}.", "a bad photo of the {}.", "a origami {}.", "a photo of the large {}.",
    "a {} in a video game.", "art of the {}.", "a photo of the small {}.",
)


@register_strategy
class ClipZeroShot(_ZeroShotMixin, Strategy):
    """CLIP-style zero-shot classification: match image embeddings with embeddings of class prompts.

    Each class's text embedding is the re-normalised mean over a prompt-template ensemble ("a photo of
    the small {}.") (and, with ``use_descriptions``, its description sentences) of the L2-normalised text
    tower outputs; an image's class scores are ``logit_scale * cos(image, class)``. Reference: Radford et al.,
    "Learning Transferable Visual Models From Natural Language Supervision", ICML 2021; open_clip (Ilharco
    et al. 2021, Cherti et al. 2023).

    Inputs: the class names (from ``semantics``, or a ``train`` dataset whose classes count as seen for
    GZSL); images as an ImageDataset (read as RGB PIL images, preprocessed by open_clip's transform).

    Args:
        model: an open_clip model name ('ViT-B-32', 'RN50', ...).
        pretrained: a tag ('openai', 'laion2b_s34b_b79k'), a local checkpoint file, or None (untrained).
        templates: prompt templates with '{}' (default: 7 of Radford et al.'s ImageNet templates).
        use_descriptions: add the class descriptions of ``semantics`` to the ensemble.
        calibration: calibrated-stacking constant for GZSL.

    Example:
        >>> clip = ClipZeroShot(model="ViT-B-32", pretrained="laion2b_s34b_b79k").fit(semantics="fashion-mnist")
        >>> clip.evaluate(load_fashion_mnist("test"))["zsl_accuracy"]
    """

    name = "clip-zeroshot"
    data_roles = ("semantics",)

    _parameter_constraints = {
        "model": [STR], "pretrained": [None, STR], "templates": [None, ListOf(STR, min_length=1)],
        "use_descriptions": [BOOL], "calibration": [Interval(float)], "batch_size": [Interval(int, 1)],
        "device": [None, STR], "num_workers": [Interval(int, 0)],
    }

    def __init__(self, *, model: str = "ViT-B-32", pretrained: str | None = "openai", templates=None,
                 use_descriptions: bool = False, calibration: float = 0.0, batch_size: int = 64,
                 device: str = "cpu", num_workers: int = 0):
        self.model, self.pretrained, self.templates, self.use_descriptions = model, pretrained, templates, use_descriptions
        self.calibration, self.batch_size, self.device, self.num_workers = calibration, batch_size, device, num_workers

    def prompts(self, classes, sem: dict | None = None) -> dict[str, list[str]]:
        """Class -> list of prompt texts."""
        templates = list(self.templates or DEFAULT_TEMPLATES)
        bad = [t for t in templates if "{}" not in t]
        if bad:
            raise TransferkitError(f"The 'templates' parameter of ClipZeroShot needs '{{}}' in every template; got {bad}.")
        out = {c: [t.format(c) for t in templates] for c in classes}
        if self.use_descriptions:
            desc = (sem or {}).get("descriptions")
            if not desc:
                raise DataError("ClipZeroShot(use_descriptions=True) needs semantics with descriptions.")
            for c in classes:
                out[c] += list(desc.get(c, []))
        return out

    def fit(self, train: ImageDataset | None = None, semantics=None, classes=None, **roles):
        """Encode the class prompts (no training); seen classes = ``train.classes`` (for GZSL). Returns self."""
        t0 = time.perf_counter()
        if classes is not None and semantics is None:
            semantics = {"classes": list(classes)}
        if semantics is None and train is not None and train.semantics is None:
            semantics = {"classes": list(train.classes)}
        sem = resolve_semantics(semantics, train, "ClipZeroShot")
        self._setup_classes(train, sem, "ClipZeroShot")
        self.model_, self.preprocess_, self.tokenizer_ = load_open_clip(self.model, self.pretrained, self.device)
        prompts = self.prompts(self.classes_, sem)
        with torch.inference_mode():
            emb = []
            for c in self.classes_:
                t = self.model_.encode_text(self.tokenizer_(prompts[c]).to(self.device)).float()
                m = F.normalize(t, dim=-1).mean(0)
                emb.append(F.normalize(m, dim=0))
            self.text_embeddings_ = torch.stack(emb).cpu()                     # (n_classes, E)
        self.fit_time_ = time.perf_counter() - t0
        self.history_ = []
        return self

    def image_embeddings(self, data: ImageDataset) -> torch.Tensor:
        """L2-normalised image embeddings (N, E)."""
        self.check_fitted()
        if not isinstance(data, ImageDataset):
            raise TransferkitError(f"ClipZeroShot expects an ImageDataset; got {type(data).__name__}.")
        out = []
        with torch.inference_mode():
            for i in range(0, len(data), self.batch_size):
                x = torch.stack([self.preprocess_(data.load_image(j, 3)) for j in range(i, min(len(data), i + self.batch_size))])
                out.append(F.normalize(self.model_.encode_image(x.to(self.device)).float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.zeros(0, self.text_embeddings_.shape[1])

    def class_scores(self, data) -> np.ndarray:
        scale = float(self.model_.logit_scale.detach().exp()) if hasattr(self.model_, "logit_scale") else 100.0
        return (scale * self.image_embeddings(data) @ self.text_embeddings_.T).double().numpy()

    def _extra_state(self) -> dict:
        return {"seen": self.seen_classes_, "unseen": self.unseen_classes_}

    def _tensor_state(self) -> dict:
        return {"text_embeddings": self.text_embeddings_}

    def _restore(self, state, tensors):
        self.seen_classes_, self.unseen_classes_ = state["seen"], state["unseen"]
        self.model_, self.preprocess_, self.tokenizer_ = load_open_clip(self.model, self.pretrained, self.device)
        self.text_embeddings_ = tensors["text_embeddings"]
