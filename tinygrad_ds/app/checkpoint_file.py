"""Using a checkpoint outside training: `tds.load_checkpoint` and `tds eval`.

A checkpoint from `tds train` says which model file made it (name, path, sha256), what input it
takes, and on which data with which normalisation it was trained; so the model comes back with
the transform it needs, and its validation metrics can be reproduced exactly.

    ck = tds.load_checkpoint("runs/lenet/best.npz")
    ck.predict(images)             # images (N, 1, 28, 28) uint8 or floats in [0, 1] -> (N,) classes
    ck.model, ck.transform, ck.meta["metrics"]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import data as D
from ..errors import TdsError, fmt_shape
from ..train import evaluate, read_checkpoint
from .modelfile import load_model_spec
from .train_run import check_classifier, default_data, file_sha256


@dataclass
class LoadedCheckpoint:
    """A trained model with what it was trained with. model: the nn.Module, in eval mode, with
    the checkpoint's weights; transform: data.Normalize(mean, std) as in training (None for a
    plain Module.save file); meta: the checkpoint's JSON (epoch, metrics, data, versions...);
    notes: what did not match (an edited model file)."""

    model: Any
    transform: Any
    meta: dict
    path: str
    notes: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        return list((self.meta.get("data") or {}).get("classes") or [])

    def predict(self, images) -> np.ndarray:
        """images: (N, C, H, W) uint8 in [0, 255] or floats in [0, 1], as the dataset gives
        them before normalisation -> (N,) predicted class indices."""
        from .. import autograd
        from ..tensor import Tensor

        x = D.to_float_image(np.asarray(getattr(images, "data", images)))
        want = (self.meta.get("model") or {}).get("input_shape")
        if x.ndim != 4 or (want and tuple(x.shape[1:]) != tuple(want[1:])):
            shape = f"(N, {', '.join(map(str, want[1:]))})" if want else "(N, C, H, W)"
            raise TdsError(f"predict: images must be {shape}, got {fmt_shape(x.shape)}")
        if self.transform is not None:
            x = np.stack([self.transform(img, None) for img in x])
        with autograd.no_grad():
            out = self.model(Tensor._wrap(np.ascontiguousarray(x, dtype=np.float32)))
        return out.data.argmax(axis=1)


def load_checkpoint(path: str, model_file: str | None = None) -> LoadedCheckpoint:
    """The model a checkpoint of `tds train` (or fit's ModelCheckpoint) holds, with the
    transform it was trained with. model_file: the Python file that defines the model
    [default: the one the checkpoint records, by its path at training time]."""
    ck = read_checkpoint(path)
    recorded = ck.meta.get("model") or {}
    if model_file is None:
        model_file = recorded.get("path")
        if not model_file:
            raise TdsError(f"{path}: records no model file (a plain Module.save file?); give "
                           "it: load_checkpoint(path, model_file='model.py')")
        if not os.path.isfile(model_file):
            raise TdsError(f"{path}: was trained from {model_file}, which is not there any "
                           f"more; give the model file: load_checkpoint(path, model_file=...)")
    spec = load_model_spec(model_file)
    notes = []
    if recorded.get("sha256") and os.path.isfile(model_file) and \
            file_sha256(model_file) != recorded["sha256"]:
        notes.append(f"note: {model_file} has changed since {path} was written (its sha256 "
                     "differs); the weights loaded because the layers still fit")
    ck.load_into(spec.model)
    spec.model.eval()
    return LoadedCheckpoint(spec.model, ck.normalize(), ck.meta, os.fspath(path), notes)


@dataclass
class EvalReport:
    metrics: dict
    text: str


def evaluate_checkpoint(model_file: str, path: str, data: str | None = None,
                        batch_size: int | None = None) -> EvalReport:
    """Loss and accuracy of the checkpoint at `path` on the validation set it was trained
    with (or on `data`), normalised as in training: what `tds eval` prints."""
    loaded = load_checkpoint(path, model_file)
    meta = loaded.meta
    saved = meta.get("data") or {}
    run = meta.get("run") or {}
    shape = (meta.get("model") or {}).get("input_shape")
    if data is not None and data.lower() == "builtin":
        data = default_data(shape and tuple(shape))
    spec = data or saved.get("spec")
    if spec is None:
        raise TdsError(f"{path}: records no dataset (a plain Module.save file?); give one "
                       "with --data")
    same = data is None or spec.split(":")[0].lower() == str(saved.get("spec", "")).split(":")[0]
    n_val = saved.get("n_val") if same else None
    seed = saved.get("seed", 0) if same else 0
    image_shape = tuple(shape[1:]) if shape and spec.split(":")[0] in ("shapes", "builtin") \
        else None
    ds = D.open_dataset(spec, n_train=1, n_val=n_val, seed=seed, image_shape=image_shape)
    image_shape = tuple(ds["val"].images.shape[1:])
    check_classifier(model_file, loaded.model, image_shape, ds["num_classes"], ds["name"])
    lines = list(loaded.notes)
    norm = loaded.transform
    if norm is None:
        norm = D.Normalize(ds["mean"], ds["std"])
        lines.append(f"note: {path} records no normalisation; using {ds['name']}'s own")
    ds["val"].transform = D.Compose([norm])
    ds["val"].eval()
    loader = D.DataLoader(ds["val"], batch_size or run.get("batch_size") or 128)
    metrics = evaluate(loaded.model, loader)
    lines.append(f"{os.path.basename(path)} (epoch {meta.get('epoch', '?')}) of "
                 f"{os.path.basename(model_file)} on {ds['name']}, {len(ds['val']):,} "
                 f"validation images: val_loss {metrics['loss']:.4f}"
                 + (f" val_acc {metrics['acc']:.4f}" if "acc" in metrics else ""))
    trained = meta.get("metrics") or {}
    if same and "val_acc" in trained:
        lines.append(f"training recorded at epoch {meta.get('epoch')}: val_loss "
                     f"{trained['val_loss']:.4f} val_acc {trained['val_acc']:.4f}")
    return EvalReport({"val_" + k: v for k, v in metrics.items()}, "\n".join(lines))
