"""Model selection without target labels: information maximisation, mean prediction entropy and soft neighbourhood
density on the target's predictions (``SELECTIONS`` maps each to the logged value and its direction), and a 2-D map
of both domains' embeddings for the report."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import check_choice

SELECTIONS = {"im": ("target_im", "max"), "snd": ("target_snd", "max"), "entropy": ("target_entropy", "min"),
              "last": (None, None)}


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-12))).sum(1)


def entropy_score(proba) -> float:
    """Mean prediction entropy on the target (nats; lower = more confident)."""
    return float(_entropy(torch.as_tensor(np.asarray(proba), dtype=torch.float64)).mean())


def im_score(proba) -> float:
    """Information maximisation ``H(mean p) - mean H(p)`` (higher = confident *and* diverse predictions;
    Shi & Sha 2012, Liang et al. 2020 'SHOT'; a strong validator in Musgrave et al. 2022)."""
    p = torch.as_tensor(np.asarray(proba), dtype=torch.float64)
    return float(_entropy(p.mean(0, keepdim=True))[0] - _entropy(p).mean())


def snd_score(proba, temperature: float = 0.05) -> float:
    """Soft neighbourhood density (Saito et al. 2021): the mean entropy of each target sample's softmax
    similarity (temperature 0.05) to the other samples' L2-normalised predictions; higher = denser clusters."""
    p = F.normalize(torch.as_tensor(np.asarray(proba), dtype=torch.float64), dim=1)
    sim = p @ p.t()
    sim.fill_diagonal_(-float("inf"))
    q = torch.softmax(sim / temperature, dim=1)
    return float(_entropy(q).mean())


def embedding_map(source_features, target_features, *, source_labels=None, target_labels=None,
                  max_points: int = 500, seed: int = 0, perplexity: float = 30.0, method: str = "tsne") -> dict:
    """2-D coordinates of both domains' embeddings, for the report layer: t-SNE (van der Maaten & Hinton 2008)
    or PCA (``method="pca"``: linear and instant; one projection fitted on both domains).

    Returns ``{"method": ..., "coords": [[x, y], ...], "domain": ["source"|"target", ...], "label": [...]}``
    with at most ``max_points`` points per domain.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    check_choice("embedding_map", "method", method, ("tsne", "pca"))
    rng = np.random.default_rng(seed)
    parts, dom, lab = [], [], []
    for name, f, l in (("source", source_features, source_labels), ("target", target_features, target_labels)):
        f = np.asarray(f, np.float32)
        idx = np.sort(rng.choice(len(f), min(len(f), max_points), replace=False))
        parts.append(f[idx])
        dom += [name] * len(idx)
        lab += (np.asarray(l)[idx].tolist() if l is not None else [-1] * len(idx))
    x = np.concatenate(parts)
    reducer = (PCA(2, random_state=seed) if method == "pca" else
               TSNE(2, perplexity=min(perplexity, max(2.0, (len(x) - 1) / 3)), init="pca", random_state=seed))
    coords = reducer.fit_transform(x)
    return {"method": method, "coords": np.round(coords, 4).tolist(), "domain": dom, "label": [int(v) for v in lab]}
