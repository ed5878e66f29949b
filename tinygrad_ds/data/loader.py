"""DataLoader: batches of (images (N, C, H, W) float32, labels (N,) int64) as Tensors."""
from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np

from ..errors import TdsError
from ..random import generator
from ..tensor import Tensor
from .dataset import Dataset


class DataLoader:
    """Iterate over `dataset` in batches.

    shuffle: a new order each epoch. drop_last: skip the last, smaller batch. seed: the loader
    draws its order and every random augmentation from its own generator seeded with `seed`, so
    two loaders with the same seed give the same batches (without a seed it draws from the
    generator that tds.manual_seed resets). batch_transform: called as f(images, labels, rng)
    on each training batch (MixUp, CutMix); labels may come back as soft (N, C) float32 targets.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None,
                 batch_transform: Callable | None = None):
        if batch_size < 1:
            raise TdsError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        if len(dataset) == 0:
            raise TdsError("DataLoader: the dataset is empty")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.batch_transform = batch_transform
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self) -> int:
        n = len(self.dataset) / self.batch_size
        return math.floor(n) if self.drop_last else math.ceil(n)

    def train(self, mode: bool = True) -> DataLoader:
        """Set the mode of the dataset's transforms and of the batch transform."""
        self.dataset.train(mode)
        if self.batch_transform is not None and hasattr(self.batch_transform, "train"):
            self.batch_transform.train(mode)
        return self

    def eval(self) -> DataLoader:
        return self.train(False)

    def state_dict(self) -> dict:
        """The loader's random generator state (its next shuffle and augmentations), as plain
        JSON values: what a resumed training run needs to draw the same batches."""
        return {"rng": self._rng.bit_generator.state if self._rng is not None else None}

    def load_state_dict(self, state: dict) -> None:
        rng = state.get("rng") if isinstance(state, dict) else None
        if rng is None:
            return
        if self._rng is None:
            raise TdsError("DataLoader.load_state_dict: this loader has no seed of its own "
                           "(give seed=...) to restore a generator state into")
        try:
            self._rng.bit_generator.state = rng
        except (TypeError, ValueError, KeyError) as e:
            raise TdsError(f"DataLoader.load_state_dict: not a generator state ({e})") from None

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        rng = self._rng if self._rng is not None else generator()
        n = len(self.dataset)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x, y = self.dataset.get_batch(idx, rng)
            if self.batch_transform is not None:
                x, y = self.batch_transform(x, y, rng)
            yield Tensor._wrap(np.ascontiguousarray(x, dtype=np.float32)), Tensor._wrap(
                np.asarray(y))
