"""Dataset (index -> (image, label)), TensorDataset over arrays, Subset and random_split.

Images are numpy arrays (C, H, W); uint8 images become float32 in [0, 1] as they are fetched,
so a dataset of 50,000 CIFAR images takes 150 MB, not 600. Transforms run per sample and obey
the dataset's train/eval mode (`ds.eval()` turns random augmentation off).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import ShapeError, TdsError, fmt_shape
from ..random import generator


def to_float_image(x: np.ndarray) -> np.ndarray:
    """uint8 in [0, 255] -> float32 in [0, 1]; float arrays become float32 unchanged."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) * np.float32(1 / 255)
    return x.astype(np.float32, copy=False)


class Dataset:
    """Subclass and define `__len__` and `__getitem__(i) -> (image (C, H, W), label)`, as in
    PyTorch. Override `get(i, rng)` instead when the item is random (augmentation), so that a
    seeded DataLoader makes it repeatable."""

    training: bool = True
    transform: Callable | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def __getitem__(self, i: int):
        return self.get(i, generator())

    def get(self, i: int, rng: np.random.Generator):
        """Item i, drawing any randomness from `rng`."""
        if type(self).__getitem__ is Dataset.__getitem__:
            raise NotImplementedError(f"{type(self).__name__} defines neither __getitem__ nor get")
        return self[i]

    def get_batch(self, indices: np.ndarray, rng: np.random.Generator):
        """(images (N, C, H, W) float32, labels (N,) int64) for `indices`."""
        items = [self.get(int(i), rng) for i in indices]
        xs = np.stack([to_float_image(np.asarray(x)) for x, _ in items])
        ys = np.asarray([y for _, y in items])
        return xs, (ys.astype(np.int64) if ys.dtype.kind in "iub" else ys.astype(np.float32))

    def train(self, mode: bool = True) -> Dataset:
        """Training mode: random transforms run. eval(): they pass images through."""
        self.training = mode
        if self.transform is not None and hasattr(self.transform, "train"):
            self.transform.train(mode)
        return self

    def eval(self) -> Dataset:
        return self.train(False)


class TensorDataset(Dataset):
    """images: (N, C, H, W) uint8 or float; labels: (N,) ints; transform: a per-sample
    callable t(image (C, H, W) float32, rng) -> image, such as transforms.Compose([...])."""

    def __init__(self, images, labels, transform: Callable | None = None,
                 classes: Sequence[str] | None = None):
        images = np.asarray(getattr(images, "data", images))
        labels = np.asarray(getattr(labels, "data", labels))
        if images.ndim != 4:
            raise ShapeError(f"TensorDataset: images must be (N, C, H, W), got "
                             f"{fmt_shape(images.shape)}")
        if labels.shape[:1] != images.shape[:1]:
            raise ShapeError(f"TensorDataset: {images.shape[0]} images but labels of shape "
                             f"{fmt_shape(labels.shape)}")
        self.images, self.labels = images, labels.astype(np.int64) if labels.dtype.kind in "iub" \
            else labels
        self.transform = transform
        self.classes = list(classes) if classes is not None else None
        self.train(True)

    def __len__(self) -> int:
        return len(self.images)

    def get(self, i: int, rng: np.random.Generator):
        x = to_float_image(self.images[i])
        if self.transform is not None:
            x = self.transform(x, rng)
        return x, self.labels[i]

    def get_batch(self, indices, rng):
        xs = to_float_image(self.images[indices])
        if self.transform is not None:
            xs = np.stack([self.transform(x, rng) for x in xs]).astype(np.float32, copy=False)
        return xs, self.labels[indices]

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else int(self.labels.max()) + 1


class Subset(Dataset):
    """The items of `dataset` at `indices` (a validation split, a small debugging set)."""

    def __init__(self, dataset: Dataset, indices):
        self.dataset, self.indices = dataset, np.asarray(indices, dtype=np.int64)
        self.transform = None

    def __len__(self) -> int:
        return len(self.indices)

    def get(self, i, rng):
        return self.dataset.get(int(self.indices[i]), rng)

    def get_batch(self, indices, rng):
        return self.dataset.get_batch(self.indices[np.asarray(indices)], rng)

    def train(self, mode: bool = True) -> Subset:
        self.training = mode
        self.dataset.train(mode)
        return self


def random_split(dataset: Dataset, lengths: Sequence[int], seed: int = 0) -> list[Subset]:
    """Split into non-overlapping Subsets of the given lengths (they must sum to len(dataset))."""
    if sum(lengths) != len(dataset):
        raise TdsError(f"random_split: lengths {list(lengths)} sum to {sum(lengths)}, but the "
                       f"dataset has {len(dataset)} items")
    order = np.random.default_rng(seed).permutation(len(dataset))
    out, start = [], 0
    for n in lengths:
        out.append(Subset(dataset, order[start:start + n]))
        start += n
    return out
