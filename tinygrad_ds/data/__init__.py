"""Datasets, the DataLoader, augmentation, and dataset readers: `from tinygrad_ds import data`.

    train, val = data.load_digits()            # 60,000 + 10,000 handwritten digits, 1x28x28
    train, val = data.load_builtin(n_train=10000, seed=0)   # 10 classes of shapes, 3x32x32
    train.transform = data.Compose([data.RandomCrop(padding=4), data.RandomHorizontalFlip()])
    for x, y in data.DataLoader(train, batch_size=128, shuffle=True, seed=0):
        ...  # x: (128, 3, 32, 32) float32 Tensor, y: (128,) int64 Tensor
"""
from .dataset import Dataset, Subset, TensorDataset, random_split, to_float_image
from .digits import load_digits, make_digits
from .loader import DataLoader
from .mix import CutMix, MixUp, one_hot
from .randaugment import RandAugment
from .readers import DatasetError, open_dataset, read_cifar10, read_idx, read_mnist
from .synthetic import CLASSES as BUILTIN_CLASSES
from .synthetic import load_builtin, make_shapes
from .transforms import (Compose, Cutout, Normalize, RandomBrightness, RandomCrop,
                         RandomHorizontalFlip, Transform)

__all__ = [
    "Dataset", "TensorDataset", "Subset", "random_split", "to_float_image", "DataLoader",
    "Transform", "Compose", "Normalize", "RandomCrop", "RandomHorizontalFlip",
    "RandomBrightness", "Cutout", "RandAugment", "MixUp", "CutMix", "one_hot",
    "load_builtin", "make_shapes", "load_digits", "make_digits", "BUILTIN_CLASSES",
    "read_cifar10", "read_mnist", "read_idx", "open_dataset", "DatasetError",
]
