"""Readers for datasets in their published file formats, from a local folder (no download):
CIFAR-10 (binary version) and MNIST / Fashion-MNIST (IDX files, gzipped or not); and
`open_dataset('builtin' | 'cifar10:DIR' | 'mnist:DIR')`, the spec `tds train --data` takes.

A missing or truncated file raises DatasetError naming the file expected and where the dataset
is published.
"""
from __future__ import annotations

import gzip
import os

import numpy as np

from ..errors import TdsError
from .dataset import TensorDataset

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html (the 'CIFAR-10 binary version')"
MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
FASHION_URL = "https://github.com/zalandoresearch/fashion-mnist"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)


class DatasetError(TdsError):
    """A dataset folder with a file missing, truncated or in the wrong format."""


# ---- CIFAR-10 ------------------------------------------------------------------------------------
_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}


def _cifar_folder(folder: str) -> str:
    sub = os.path.join(folder, "cifar-10-batches-bin")
    return sub if os.path.isdir(sub) else folder


def read_cifar10(folder: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from the binary batches in `folder`
    (or in its cifar-10-batches-bin/): data_batch_1..5.bin for 'train', test_batch.bin for
    'test'. Each record is one label byte then 3072 pixel bytes (R, G, B planes)."""
    if split not in _CIFAR_FILES:
        raise DatasetError(f"read_cifar10: split must be 'train' or 'test', got {split!r}")
    root = _cifar_folder(folder)
    images, labels = [], []
    for name in _CIFAR_FILES[split]:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            raise DatasetError(f"CIFAR-10: expected the file {path}, which is missing. Download "
                               f"the binary version from {CIFAR10_URL} and unpack it into "
                               f"{folder}")
        raw = np.fromfile(path, dtype=np.uint8)
        if raw.size == 0 or raw.size % _CIFAR_RECORD:
            raise DatasetError(f"CIFAR-10: {path} is truncated or not a CIFAR-10 binary batch "
                               f"({raw.size} bytes, not a multiple of the {_CIFAR_RECORD}-byte "
                               f"record); download it again from {CIFAR10_URL}")
        rec = raw.reshape(-1, _CIFAR_RECORD)
        if rec[:, 0].max() > 9:
            raise DatasetError(f"CIFAR-10: {path} has a label {rec[:, 0].max()} > 9: not a "
                               f"CIFAR-10 binary batch (see {CIFAR10_URL})")
        labels.append(rec[:, 0].astype(np.int64))
        images.append(rec[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels)


# ---- MNIST / Fashion-MNIST -----------------------------------------------------------------------
_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: str, where: str = MNIST_URL) -> np.ndarray:
    """One IDX file (plain or .gz) as a uint8 array of the shape its header gives."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read ({e}); download it again from {where}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an IDX file of unsigned bytes (bad magic number); "
                           f"download it again from {where}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated header; download it again from {where}")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    need = int(np.prod(shape))
    if len(raw) - header != need:
        raise DatasetError(f"{path}: truncated ({len(raw) - header} data bytes where the header "
                           f"says {need}); download it again from {where}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(folder: str, base: str, dataset: str, where: str) -> str:
    for name in (base, base + ".gz", base.replace("-idx", ".idx")):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise DatasetError(f"{dataset}: expected the file {os.path.join(folder, base)} (or "
                       f"{base}.gz), which is missing. Download the four IDX files from "
                       f"{where} into {folder}")


def read_mnist(folder: str, split: str = "train", fashion: bool = False
               ) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 from the IDX files in `folder`
    (train-images-idx3-ubyte[.gz] etc.; Fashion-MNIST uses the same names)."""
    if split not in _MNIST_FILES:
        raise DatasetError(f"read_mnist: split must be 'train' or 'test', got {split!r}")
    dataset, where = ("Fashion-MNIST", FASHION_URL) if fashion else ("MNIST", MNIST_URL)
    ipath, lpath = (_find(folder, f, dataset, where) for f in _MNIST_FILES[split])
    images, labels = read_idx(ipath, where), read_idx(lpath, where)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{dataset}: {ipath} holds {images.shape} and {lpath} holds "
                           f"{labels.shape}: expected (N, 28, 28) images and N labels")
    return images[:, None].copy(), labels.astype(np.int64)


# ---- by name ---------------------------------------------------------------------------------------
def open_dataset(spec: str = "builtin", train_transform=None, val_transform=None,
                 n_train: int = 10000, n_val: int = 2000, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None) -> dict:
    """'builtin', 'cifar10:DIR', 'mnist:DIR' or 'fashion-mnist:DIR' ->
    {'train', 'val': TensorDatasets, 'num_classes', 'mean', 'std', 'name'}.
    n_train, n_val, seed and image_shape ((C, H, W), grey when C = 1) shape the built-in
    dataset only; files on disk keep their own image shape."""
    kind, _, folder = spec.partition(":")
    kind, folder = kind.lower(), os.path.expanduser(folder)
    if kind == "builtin":
        from . import synthetic

        shape = tuple(image_shape) if image_shape is not None else (3, 32, 32)
        try:
            train, val = synthetic.load_builtin(n_train, n_val, seed, train_transform,
                                                val_transform, image_shape=shape)
        except ValueError as e:
            raise DatasetError(f"--data builtin: {e}") from None
        name, mean, std = "builtin shapes", synthetic.MEAN, synthetic.STD
        if shape != (3, 32, 32):
            name += f" ({'grey' if shape[0] == 1 else 'colour'} {shape[1]}x{shape[2]})"
            if shape[0] == 1 and len(train):  # grey averages colours: it spreads less
                pix = train.images[:2000] / 255.0
                mean, std = (float(pix.mean()),), (float(pix.std()) or 1.0,)
        return dict(train=train, val=val, num_classes=10, mean=mean, std=std, name=name)
    on_disk = kind in ("cifar10", "mnist", "fashion-mnist", "fashion_mnist")
    if on_disk and not folder:
        raise DatasetError(f"--data {spec}: give the folder, as in {kind}:path/to/folder")
    if on_disk and not os.path.isdir(folder):
        raise DatasetError(f"--data {spec}: {folder} is not a folder")
    if kind == "cifar10":
        (xtr, ytr), (xva, yva) = read_cifar10(folder, "train"), read_cifar10(folder, "test")
        classes, mean, std = CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
    elif kind in ("mnist", "fashion-mnist", "fashion_mnist"):
        fashion = kind != "mnist"
        xtr, ytr = read_mnist(folder, "train", fashion)
        xva, yva = read_mnist(folder, "test", fashion)
        classes, mean, std = [str(i) for i in range(10)], MNIST_MEAN, MNIST_STD
    else:
        raise DatasetError(f"unknown dataset {spec!r}: use builtin, cifar10:DIR, mnist:DIR or "
                           "fashion-mnist:DIR")
    return dict(train=TensorDataset(xtr, ytr, train_transform, classes),
                val=TensorDataset(xva, yva, val_transform, classes), num_classes=10,
                mean=mean, std=std, name=kind)
