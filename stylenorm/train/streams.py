"""Endless, resumable batch streams: one per dataset a recipe trains on, its position checkpointed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from stylenorm.data import DataError, ResumableSampler
from stylenorm.train.config import RunConfig
from stylenorm.train.process import Distributed


class BatchStream:
    """An endless, resumable stream of batches from one dataset: (epoch, position) is its state.

    Items are ``(images, replaced)`` pairs (image folders) or dicts with an
    optional ``"replaced"`` entry (label/image pairs, class folders);
    ``replaced`` flags samples that stood in for a file that failed to decode,
    counted in :attr:`replaced` and dropped from the batch.
    """

    def __init__(
        self, what: str, dataset: Dataset, cfg: RunConfig, ranks: Distributed, seed: int, pin: bool,
        unit: str = "samples",
    ) -> None:
        size = len(dataset)  # type: ignore[arg-type]
        if -(-size // ranks.world) < cfg.batch_size:
            raise DataError(
                f"{what} has {size} {unit}: too few for batches of {cfg.batch_size} on "
                f"{ranks.world} process(es); add more or lower --batch-size"
            )
        self.sampler = ResumableSampler(dataset, ranks.world, ranks.rank, seed)
        self.loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=self.sampler,
            num_workers=cfg.workers,
            drop_last=True,
            pin_memory=pin,
            persistent_workers=cfg.workers > 0,
            generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched by iter()
        )
        self.epoch = self.position = self.replaced = 0
        self._it: Iterator | None = None

    def next(self) -> Any:
        """The next batch: images (N, …) or a dict of tensors, without the ``replaced`` flags."""
        while True:
            if self._it is None:
                self.sampler.set_epoch(self.epoch)
                self.sampler.start = self.position
                self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                self._it, self.epoch, self.position = None, self.epoch + 1, 0
                continue
            if isinstance(batch, dict):
                replaced = batch.pop("replaced", None)
                n = next(iter(batch.values())).shape[0]
            else:
                batch, replaced = batch
                n = batch.shape[0]
            self.position += n
            if replaced is not None:
                self.replaced += int(replaced.sum())
            return batch

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "replaced": self.replaced}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self.replaced = state["epoch"], state["position"], state["replaced"]
        self._it = None


__all__ = ["BatchStream"]
