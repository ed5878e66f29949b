"""train_model_file: what `tds train MODEL_FILE` runs, usable from Python as well.

Loads the model file, opens the dataset, builds the augmentation, the optimizer and a schedule,
calls fit, and writes history.csv, curves.png and best.npz into the output folder.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

from .. import data as D
from .. import optim
from ..errors import TdsError, fmt_shape
from ..random import manual_seed
from ..train import EarlyStopping, History, fit
from .modelfile import ModelFileError, load_model_spec, run_example

AUGMENTATIONS = ("none", "basic", "cutout", "randaugment", "mixup", "cutmix")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


@dataclass
class TrainResult:
    history: History
    out: str
    best_epoch: dict | None
    stop_reason: str | None
    diverged: bool


def make_augmentation(kind: str, mean, std, image_shape: tuple[int, ...], num_classes: int,
                      flip: bool = True):
    """(train transform, val transform, batch transform) for --augment `kind`:
    none; basic (random crop with padding, horizontal flip); cutout, randaugment, mixup,
    cutmix (each on top of basic). Both transforms end with Normalize(mean, std)."""
    if kind not in AUGMENTATIONS:
        raise TdsError(f"unknown augmentation {kind!r}: use one of {', '.join(AUGMENTATIONS)}")
    norm = D.Normalize(mean, std)
    steps: list = []
    if kind != "none":
        steps.append(D.RandomCrop(padding=max(1, image_shape[-1] // 8)))
        if flip:
            steps.append(D.RandomHorizontalFlip())
    if kind == "randaugment":
        steps.insert(0, D.RandAugment(2, 9))
    if kind == "cutout":
        steps.append(D.Cutout(max(2, image_shape[-1] // 4)))
    batch = {"mixup": D.MixUp(num_classes), "cutmix": D.CutMix(num_classes)}.get(kind)
    return D.Compose(steps + [norm]), D.Compose([norm]), batch


def make_optimizer(name: str, params, lr: float | None, weight_decay: float | None):
    """sgd: momentum 0.9, lr 0.1, weight decay 5e-4; adam: lr 1e-3, no decay;
    adamw: lr 1e-3, decoupled decay 0.05. lr and weight_decay override."""
    name = name.lower()
    if name == "sgd":
        return optim.SGD(params, lr=0.1 if lr is None else lr, momentum=0.9,
                         weight_decay=5e-4 if weight_decay is None else weight_decay)
    if name == "adam":
        return optim.Adam(params, lr=1e-3 if lr is None else lr,
                          weight_decay=0.0 if weight_decay is None else weight_decay)
    if name == "adamw":
        return optim.AdamW(params, lr=1e-3 if lr is None else lr,
                           weight_decay=0.05 if weight_decay is None else weight_decay)
    raise TdsError(f"unknown optimizer {name!r}: use one of {', '.join(OPTIMIZERS)}")


def make_schedule(name: str, opt, epochs: int):
    if name == "constant":
        return None
    if name == "cosine":
        return optim.CosineAnnealingLR(opt, T_max=max(1, epochs))
    if name == "step":
        return optim.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1)
    raise TdsError(f"unknown schedule {name!r}: use one of {', '.join(SCHEDULES)}")


def train_model_file(model_file: str, data: str = "builtin", epochs: int = 10,
                     batch_size: int = 128, optimizer: str = "sgd", lr: float | None = None,
                     weight_decay: float | None = None, augment: str = "basic", seed: int = 0,
                     out: str = "tds-run", schedule: str = "cosine", patience: int = 0,
                     train_size: int = 10000, val_size: int = 2000, quiet: bool = False,
                     stream: TextIO | None = None) -> TrainResult:
    """Train the model a model file defines on `data` ('builtin', 'cifar10:DIR', 'mnist:DIR').

    Writes out/history.csv, out/curves.png and out/best.npz (the best epoch by validation
    accuracy). patience > 0 adds early stopping on validation loss. train_size and val_size
    size the built-in dataset. Raises TdsError subclasses (ModelFileError, DatasetError) with
    messages a person can act on.
    """
    stream = stream if stream is not None else sys.stdout
    say = (lambda s: None) if quiet else (lambda s: stream.write(s + "\n"))
    if epochs < 1 or batch_size < 1:
        raise TdsError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    if augment not in AUGMENTATIONS:
        raise TdsError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENTATIONS)}")
    manual_seed(seed)  # the model's initial weights and dropout masks
    spec = load_model_spec(model_file)
    model = spec.model

    # the built-in dataset is drawn in the shape the model file asks for (grey 28x28 for LeNet)
    builtin_shape = None
    if data.lower() == "builtin" and spec.input_shape is not None and \
            len(spec.input_shape) == 4 and spec.input_shape[1] in (1, 3):
        builtin_shape = tuple(spec.input_shape[1:])
    ds = D.open_dataset(data, n_train=train_size, n_val=val_size, seed=seed,
                        image_shape=builtin_shape)
    image_shape = tuple(ds["train"].images.shape[1:])
    if spec.input_shape is not None and tuple(spec.input_shape[1:]) != image_shape:
        raise ModelFileError(
            f"{model_file}: input_shape {fmt_shape(spec.input_shape)} says each image is "
            f"{fmt_shape(spec.input_shape[1:])}, but {ds['name']} images are "
            f"{fmt_shape(image_shape)}; change input_shape (or the model) to take "
            f"{fmt_shape((1,) + image_shape)}")
    out_probe = run_example(model_file, model, (2,) + image_shape)
    if out_probe.ndim != 2 or out_probe.shape[1] != ds["num_classes"]:
        raise ModelFileError(f"{model_file}: the model's output for a batch of 2 has shape "
                             f"{fmt_shape(out_probe.shape)}; a classifier for {ds['name']} "
                             f"must give (2, {ds['num_classes']}) logits")

    train_t, val_t, batch_t = make_augmentation(augment, ds["mean"], ds["std"], image_shape,
                                                ds["num_classes"],
                                                flip=not data.lower().startswith("mnist"))
    ds["train"].transform, ds["val"].transform = train_t, val_t
    ds["train"].train(True)
    ds["val"].eval()
    train_loader = D.DataLoader(ds["train"], batch_size, shuffle=True, drop_last=True,
                                seed=seed, batch_transform=batch_t)
    if len(train_loader) == 0:
        train_loader = D.DataLoader(ds["train"], batch_size, shuffle=True, seed=seed,
                                    batch_transform=batch_t)
    val_loader = D.DataLoader(ds["val"], batch_size)
    opt = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
    sched = make_schedule(schedule, opt, epochs)

    os.makedirs(out, exist_ok=True)
    best_path = os.path.join(out, "best.npz")
    if os.path.exists(best_path):
        os.remove(best_path)  # a checkpoint from an earlier run must not pass for this one's
    say(f"model: {type(model).__name__} from {model_file}, {model.num_parameters():,} parameters")
    say(f"data: {ds['name']}, {len(ds['train'])} training and {len(ds['val'])} validation "
        f"images of shape {fmt_shape(image_shape)}; augmentation: {augment}")
    say(f"optimizer: {opt!r}, schedule: {schedule}, {epochs} epochs of {len(train_loader)} "
        f"batches of {batch_size}")
    callbacks = [EarlyStopping(patience=patience, monitor="val_loss")] if patience > 0 else []
    history = fit(model, train_loader, val_loader, opt, epochs=epochs, callbacks=callbacks,
                  scheduler=sched, checkpoint=best_path, monitor="val_acc", quiet=quiet,
                  stream=stream)
    history.to_csv(os.path.join(out, "history.csv"))
    best = None
    if len(history):
        history.plot(os.path.join(out, "curves.png"), title=f"{os.path.basename(model_file)} on "
                     f"{ds['name']}")
        best = history.best("val_acc")
        say(f"best val_acc {best['val_acc']:.4f} at epoch {int(best['epoch'])}")
    written = [f for f in ("history.csv", "curves.png", "best.npz")
               if os.path.exists(os.path.join(out, f))]
    say(f"wrote {', '.join(os.path.join(out, f) for f in written)}")
    return TrainResult(history, out, best, history.stop_reason, history.diverged)
