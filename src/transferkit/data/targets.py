"""An image dataset whose batches carry a target matrix (multi-task labels, cached teacher logits)."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DataError
from .dataset import ImageDataset, collate


class WithTargets(torch.utils.data.Dataset):
    """An image dataset whose batches carry a target matrix instead of the class label.

    Items are ``(image (C, H, W), targets (T,))``; batches ``(x (B, C, H, W), targets (B, T))``. The
    vectorised array path of :class:`ImageDataset` is kept (``__getitems__``). Used for multi-task
    targets and for cached teacher logits (distillation).
    """

    def __init__(self, dataset: ImageDataset, targets):
        if len(targets) != len(dataset):
            raise DataError(f"WithTargets: {len(targets)} target rows for {len(dataset)} images.")
        self.dataset = dataset
        self.targets = torch.as_tensor(np.asarray(targets, dtype=np.float32))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i][0], self.targets[i]

    def __getitems__(self, indices):
        x, _ = collate(self.dataset.__getitems__(indices))
        return [(x, self.targets[torch.as_tensor(indices)])]
