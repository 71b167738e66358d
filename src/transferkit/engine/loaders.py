"""DataLoaders with reproducible per-epoch order, and a paired source/target loader."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..data.dataset import collate


class EpochSampler(Sampler):
    """A random permutation that depends only on (seed, epoch): resuming at epoch e replays its order."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(dataset, batch_size: int = 64, *, shuffle: bool = False, seed: int = 0, num_workers: int = 0,
                drop_last: bool = False, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over an ImageDataset (vectorised batches for arrays) with an :class:`EpochSampler`."""
    return DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), seed, shuffle),
                      num_workers=num_workers, collate_fn=collate, drop_last=drop_last and len(dataset) > batch_size,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)


class PairedLoader:
    """Zip a labelled source loader with an unlabelled target loader, cycling the shorter target.

    Yields ``(source_batch, target_batch)``; one epoch = one pass over the source (domain adaptation).
    """

    def __init__(self, source: DataLoader, target: DataLoader):
        self.source, self.target = source, target
        self._target_iter = None

    @property
    def sampler(self):  # so the trainer's set_epoch reaches the source sampler
        return self.source.sampler

    def set_epoch(self, epoch: int) -> None:
        for dl in (self.source, self.target):
            if hasattr(dl.sampler, "set_epoch"):
                dl.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def __iter__(self):
        return zip(iter(self.source), _cycle(self.target))


def batch_to(batch, device):
    """Move nested tensors (tuples, lists, dicts) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(batch_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: batch_to(v, device) for k, v in batch.items()}
    if isinstance(batch, np.ndarray):
        return torch.from_numpy(batch).to(device)
    return batch


def _cycle(loader):
    """Re-iterate ``loader`` forever (a fresh pass each time; nothing is cached in memory)."""
    while True:
        yield from loader
