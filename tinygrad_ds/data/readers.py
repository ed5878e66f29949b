"""Readers for datasets in their published file formats, from a local folder (no download):
CIFAR-10 (binary version) and MNIST / Fashion-MNIST (IDX files, gzipped or not); and
`open_dataset('digits' | 'shapes' | 'cifar10:DIR' | 'mnist:DIR')`, the spec `tds train --data`
takes.

A missing or truncated file raises DatasetError naming the file expected and where the dataset
is published.
"""
from __future__ import annotations

import gzip
import math
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
    need = math.prod(shape)  # a Python int: a corrupt header cannot overflow it
    if len(raw) - header != need:
        what = "truncated" if len(raw) - header < need else "corrupt"
        raise DatasetError(f"{path}: {what}: the header says {' x '.join(map(str, shape))} = "
                           f"{need:,} data bytes, the file has {len(raw) - header:,}; download "
                           f"it again from {where}")
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
    if len(labels) and labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise DatasetError(f"{dataset}: {lpath} has the label {labels[bad]} at position {bad} "
                           f"(labels are 0 to 9): not an {dataset} label file, or a corrupt "
                           f"one; download it again from {where}")
    return images[:, None].copy(), labels.astype(np.int64)


# ---- by name -----------------------------------------------------------------------------------
BUILTIN_SIZES = {"digits": (60000, 10000), "shapes": (10000, 2000)}
SPECS = "digits, shapes, cifar10:DIR, mnist:DIR or fashion-mnist:DIR"


def open_dataset(spec: str = "digits", train_transform=None, val_transform=None,
                 n_train: int | None = None, n_val: int | None = None, seed: int = 0,
                 image_shape: tuple[int, int, int] | None = None) -> dict:
    """'digits', 'shapes' ('builtin' is the same), 'cifar10:DIR', 'mnist:DIR' or
    'fashion-mnist:DIR' -> {'train', 'val': TensorDatasets, 'num_classes', 'mean', 'std',
    'name', 'info'}. info is what re-opens the same data: {'spec', 'n_train', 'n_val', 'seed',
    'image_shape', 'mean', 'std'} (plain JSON values, as a checkpoint stores them).

    n_train, n_val and seed size and seed the built-in datasets (digits: 60,000 and 10,000 by
    default, as MNIST; shapes: 10,000 and 2,000); image_shape ((C, H, W)) draws the shapes in
    another size or grey. Files on disk keep their own sizes and shapes."""
    kind, _, folder = spec.partition(":")
    kind, folder = kind.lower(), os.path.expanduser(folder)
    kind = "shapes" if kind == "builtin" else kind
    if kind in BUILTIN_SIZES:
        if folder:
            raise DatasetError(f"--data {spec}: the built-in {kind} take no folder; write "
                               f"--data {kind}")
        n_train = BUILTIN_SIZES[kind][0] if n_train is None else n_train
        n_val = BUILTIN_SIZES[kind][1] if n_val is None else n_val
        if n_train < 1 or n_val < 1:
            raise DatasetError(f"--data {kind}: the training and validation sizes must be >= 1, "
                               f"got {n_train} and {n_val}")
        train, val, name, mean, std = _builtin(kind, n_train, n_val, seed, image_shape,
                                               train_transform, val_transform)
        info = dict(spec=kind, n_train=n_train, n_val=n_val, seed=seed)
        classes = train.classes
    else:
        on_disk = kind in ("cifar10", "mnist", "fashion-mnist", "fashion_mnist")
        if not on_disk:
            raise DatasetError(f"unknown dataset {spec!r}: use {SPECS}")
        if not folder:
            raise DatasetError(f"--data {spec}: give the folder, as in {kind}:path/to/folder")
        if not os.path.isdir(folder):
            raise DatasetError(f"--data {spec}: {folder} is not a folder")
        if kind == "cifar10":
            (xtr, ytr), (xva, yva) = read_cifar10(folder, "train"), read_cifar10(folder, "test")
            classes, mean, std = CIFAR10_CLASSES, CIFAR10_MEAN, CIFAR10_STD
        else:
            fashion = kind != "mnist"
            xtr, ytr = read_mnist(folder, "train", fashion)
            xva, yva = read_mnist(folder, "test", fashion)
            classes, mean, std = [str(i) for i in range(10)], MNIST_MEAN, MNIST_STD
        train = TensorDataset(xtr, ytr, train_transform, classes)
        val = TensorDataset(xva, yva, val_transform, classes)
        name = kind
        info = dict(spec=f"{kind}:{os.path.abspath(folder)}", n_train=len(xtr), n_val=len(xva),
                    seed=seed)
    info.update(image_shape=list(train.images.shape[1:]), mean=[float(m) for m in mean],
                std=[float(v) for v in std])
    return dict(train=train, val=val, num_classes=len(classes), mean=tuple(mean),
                std=tuple(std), name=name, info=info)


def _builtin(kind, n_train, n_val, seed, image_shape, train_transform, val_transform):
    if kind == "digits":
        from . import digits

        if image_shape is not None and tuple(image_shape) != (1, 28, 28):
            raise DatasetError(f"--data digits: the digits are (1, 28, 28) images, as MNIST's; "
                               f"a model that takes {tuple(image_shape)} needs --data shapes "
                               "or another dataset")
        train, val = digits.load_digits(n_train, n_val, seed, train_transform, val_transform)
        return train, val, "digits", digits.MEAN, digits.STD
    from . import synthetic

    shape = tuple(image_shape) if image_shape is not None else (3, 32, 32)
    try:
        train, val = synthetic.load_builtin(n_train, n_val, seed, train_transform,
                                            val_transform, image_shape=shape)
    except ValueError as e:
        raise DatasetError(f"--data shapes: {e}") from None
    name, mean, std = "shapes", synthetic.MEAN, synthetic.STD
    if shape != (3, 32, 32):
        name += f" ({'grey' if shape[0] == 1 else 'colour'} {shape[1]}x{shape[2]})"
        if shape[0] == 1:  # grey averages colours: it spreads less
            pix = train.images[:2000] / 255.0
            mean, std = (float(pix.mean()),), (float(pix.std()) or 1.0,)
    return train, val, name, mean, std
