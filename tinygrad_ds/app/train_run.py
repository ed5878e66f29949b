"""train_model_file and resume_run: what `tds train MODEL_FILE [--resume DIR]` runs, usable from
Python as well.

Loads the model file, opens the dataset, builds the augmentation, the optimizer and a schedule,
and calls fit. The run folder stays consistent whenever the run stops (Ctrl-C, a crash, early
stopping): after every epoch, history.csv gets its row (appended and flushed), last.npz the whole
state of the run (model, optimizer, schedule, random generators, history: what --resume needs),
best.npz the best epoch by validation accuracy, and curves.png is redrawn. Checkpoints are
written to a temporary file and renamed. A resumed run ends on the same weights as an unbroken
one.
"""
from __future__ import annotations

import csv
import hashlib
import os
import sys
from dataclasses import dataclass
from typing import TextIO

from .. import data as D
from .. import optim
from ..errors import TdsError, fmt_shape
from ..random import generator, manual_seed
from ..train import Callback, EarlyStopping, History, fit, read_checkpoint, save_checkpoint
from ..train.callbacks import _Monitor
from ..train.loop import check_device
from .modelfile import ModelFileError, error_in_file, load_model_spec, run_example

AUGMENTATIONS = ("none", "basic", "cutout", "randaugment", "mixup", "cutmix")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


RUN_FILES = ("history.csv", "curves.png", "best.npz", "last.npz")


@dataclass
class TrainResult:
    history: History
    out: str
    best_epoch: dict | None
    stop_reason: str | None
    diverged: bool
    interrupted: bool = False
    model_file: str = ""

    @property
    def epochs_done(self) -> int:
        return int(self.history.epochs[-1]["epoch"]) if len(self.history) else 0


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


def default_data(input_shape) -> str:
    """The built-in dataset for a model: digits for (1, 28, 28) inputs (as LeNet on MNIST),
    shapes otherwise."""
    return "digits" if input_shape is not None and tuple(input_shape[1:]) == (1, 28, 28) \
        else "shapes"


def default_out(model_file: str) -> str:
    """runs/<model file name>: the run folder when --out is not given."""
    return os.path.join("runs", os.path.splitext(os.path.basename(model_file))[0])


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def train_model_file(model_file: str, data: str | None = None, epochs: int = 10,
                     batch_size: int = 128, optimizer: str = "sgd", lr: float | None = None,
                     weight_decay: float | None = None, augment: str = "basic", seed: int = 0,
                     out: str | None = None, schedule: str = "cosine", patience: int = 0,
                     train_size: int | None = None, val_size: int | None = None,
                     quiet: bool = False, stream: TextIO | None = None,
                     overwrite: bool = False, compile: bool = False,
                     device: str = "cpu") -> TrainResult:
    """Train the model a model file defines on `data` ('digits', 'shapes', 'cifar10:DIR',
    'mnist:DIR'; by default digits for a (1, 28, 28) input, shapes otherwise) into the run
    folder `out` (default runs/<model file name>).

    A folder that holds files already is refused unless overwrite=True (or use resume_run).
    patience > 0 adds early stopping on validation loss. train_size and val_size size the
    built-in datasets (digits: 60,000 and 10,000; shapes: 10,000 and 2,000). compile: each
    training step runs as one plan of tds.compile (fit(compile=True)); device: 'cpu' or 'cuda'
    (checked before anything else is done). Raises TdsError
    subclasses (ModelFileError, DatasetError) with messages a person can act on; Ctrl-C ends
    the run after the last complete epoch (result.interrupted).
    """
    if epochs < 1 or batch_size < 1:
        raise TdsError(f"epochs and batch size must be >= 1, got {epochs} and {batch_size}")
    if augment not in AUGMENTATIONS:
        raise TdsError(f"unknown augmentation {augment!r}: use one of {', '.join(AUGMENTATIONS)}")
    check_device(device)
    if out is None:
        out = default_out(model_file)
    stale = _check_folder(out, model_file, overwrite)
    config = dict(data=data, epochs=epochs, batch_size=batch_size, optimizer=optimizer.lower(),
                  lr=lr, weight_decay=weight_decay, augment=augment, schedule=schedule,
                  patience=patience, seed=seed, train_size=train_size, val_size=val_size,
                  compile=compile, device=device)
    return _run(model_file, out, config, None, quiet, stream, stale)


def resume_run(out: str, model_file: str | None = None, epochs: int | None = None,
               quiet: bool = False, stream: TextIO | None = None, compile: bool | None = None,
               device: str | None = None) -> TrainResult:
    """Continue the run in folder `out` from its last.npz, with the settings it was started
    with (epochs may raise the total) and its model file unless `model_file` names another.
    It ends on the same weights as a run never stopped. compile and device (how the steps
    run, not what they compute) may differ from the run's first part; None: as it was."""
    last = os.path.join(out, "last.npz")
    if not os.path.isfile(last):
        raise TdsError(f"--resume {out}: there is no {last} to continue from (a run writes it "
                       "after its first epoch)")
    ck = read_checkpoint(last)
    if "run" not in ck.meta or "history" not in ck.meta:
        raise TdsError(f"--resume {out}: {last} is not the last.npz of a tds train run")
    config = dict(ck.meta["run"])
    config["compile"] = bool(config.get("compile", False)) if compile is None else compile
    config["device"] = config.get("device", "cpu") if device is None else device
    check_device(config["device"])
    done = int(ck.meta["epoch"])
    if model_file is None:
        model_file = (ck.meta.get("model") or {}).get("path", "")
        if not os.path.isfile(model_file):
            raise TdsError(f"--resume {out}: the run was trained from {model_file or '?'}, "
                           "which is not there any more; give the model file: tds train "
                           f"MODEL_FILE --resume {out}")
    extended = epochs is not None and epochs != config["epochs"]
    if epochs is not None:
        config["epochs"] = epochs
    if done >= config["epochs"]:
        raise TdsError(f"--resume {out}: the run has finished its {config['epochs']} epochs; "
                       f"give --epochs {done + 5} (say) to train it further")
    if extended and config["schedule"] != "constant" and not quiet:
        (stream or sys.stdout).write(
            f"note: the {config['schedule']} schedule now spans {config['epochs']} epochs; the "
            f"{done} done so far followed the plan for {ck.meta['run']['epochs']}\n")
    return _run(model_file, out, config, ck, quiet, stream)


def _check_folder(out: str, model_file: str, overwrite: bool) -> list[str]:
    """The files of an earlier run that --overwrite replaces (removed once the new run has
    set up without error); refuses a non-empty folder without it."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise TdsError(f"--out {out}: is a file, not a folder")
    if not os.path.isdir(out) or not os.listdir(out):
        return []
    if not overwrite:
        found = sorted(os.listdir(out))
        shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise TdsError(f"the run folder {out} is not empty ({shown}); continue that run with "
                       f"`tds train {model_file} --resume {out}`, replace it with --overwrite, "
                       "or choose another folder with --out")
    return [os.path.join(out, name) for name in os.listdir(out)
            if name in RUN_FILES or name.startswith(".tmp-")]


def _run(model_file: str, out: str, config: dict, resume, quiet: bool,
         stream: TextIO | None, stale: list[str] = ()) -> TrainResult:
    stream = stream if stream is not None else sys.stdout
    say = (lambda s: None) if quiet else (lambda s: (stream.write(s + "\n"), stream.flush()))
    seed = config["seed"]
    manual_seed(seed)  # the model's initial weights and dropout masks
    spec = load_model_spec(model_file)
    model = spec.model
    sha = file_sha256(model_file)
    if resume is not None and resume.meta.get("model", {}).get("sha256") not in (None, sha):
        say(f"note: {model_file} has changed since {resume.path} was written; its weights are "
            "loaded if the layers still fit")

    data_spec = config["data"]
    if data_spec is None or data_spec.lower() == "builtin":
        data_spec = default_data(spec.input_shape)
    config["data"] = data_spec
    builtin_shape = None
    if data_spec.lower() == "shapes" and spec.input_shape is not None and \
            len(spec.input_shape) == 4 and spec.input_shape[1] in (1, 3):
        builtin_shape = tuple(spec.input_shape[1:])
    ds = D.open_dataset(data_spec, n_train=config["train_size"], n_val=config["val_size"],
                        seed=seed, image_shape=builtin_shape)
    image_shape = tuple(ds["train"].images.shape[1:])
    if spec.input_shape is not None and tuple(spec.input_shape[1:]) != image_shape:
        raise ModelFileError(
            f"{model_file}: input_shape {fmt_shape(spec.input_shape)} says each image is "
            f"{fmt_shape(spec.input_shape[1:])}, but {ds['name']} images are "
            f"{fmt_shape(image_shape)}; change input_shape (or the model) to take "
            f"{fmt_shape((1,) + image_shape)}")
    check_classifier(model_file, model, image_shape, ds["num_classes"], ds["name"])

    flip = data_spec.lower().split(":")[0] not in ("digits", "mnist")  # never mirror a digit
    train_t, val_t, batch_t = make_augmentation(config["augment"], ds["mean"], ds["std"],
                                                image_shape, ds["num_classes"], flip=flip)
    ds["train"].transform, ds["val"].transform = train_t, val_t
    ds["train"].train(True)
    ds["val"].eval()
    batch_size = config["batch_size"]
    train_loader = D.DataLoader(ds["train"], batch_size, shuffle=True, drop_last=True,
                                seed=seed, batch_transform=batch_t)
    if len(train_loader) == 0:
        train_loader = D.DataLoader(ds["train"], batch_size, shuffle=True, seed=seed,
                                    batch_transform=batch_t)
    val_loader = D.DataLoader(ds["val"], batch_size)
    opt = make_optimizer(config["optimizer"], model.parameters(), config["lr"],
                         config["weight_decay"])
    config["lr"] = opt.defaults["lr"]
    config["weight_decay"] = opt.defaults["weight_decay"]
    sched = make_schedule(config["schedule"], opt, config["epochs"])

    meta = {
        "model": {"file": os.path.basename(model_file), "path": os.path.abspath(model_file),
                  "sha256": sha, "class": type(model).__name__,
                  "input_shape": [1, *image_shape], "parameters": model.num_parameters()},
        "data": {**ds["info"], "name": ds["name"], "num_classes": ds["num_classes"],
                 "classes": list(ds["train"].classes or [])},
        "run": dict(config),
    }
    history, initial = History(), 0
    if resume is not None:
        resume.load_into(model)
        resume.restore_optimizer(opt, sched)
        train_loader.load_state_dict(resume.meta["rng"]["loader"])
        generator().bit_generator.state = resume.meta["rng"]["global"]
        for row in resume.meta["history"]:
            history.append(row)
        initial = int(resume.meta["epoch"])
    for path in stale:  # --overwrite: the earlier run's files go only now, set-up succeeded
        os.remove(path)
    os.makedirs(out, exist_ok=True)
    folder = RunFolder(out, meta, opt, sched, train_loader,
                       title=f"{os.path.basename(model_file)} on {ds['name']}",
                       num_classes=ds["num_classes"], history=history)

    device, compiled = config.get("device", "cpu"), config.get("compile", False)
    say(f"model: {type(model).__name__} from {model_file}, {model.num_parameters():,} parameters"
        f"; device: {device}" + ("; training step compiled (tds.compile)" if compiled else ""))
    say(f"data: {ds['name']}, {len(ds['train']):,} training and {len(ds['val']):,} validation "
        f"images of shape {fmt_shape(image_shape)}; augmentation: {config['augment']}")
    say(f"optimizer: {opt!r}, schedule: {config['schedule']}, {config['epochs']} epochs of "
        f"{len(train_loader)} batches of {batch_size}")
    say(f"run folder: {out}" + (f" (resuming after epoch {initial})" if initial else ""))
    callbacks = [folder]
    if config["patience"] > 0:
        callbacks.insert(0, EarlyStopping(patience=config["patience"], monitor="val_loss"))
    try:
        history = fit(model, train_loader, val_loader, opt, epochs=config["epochs"],
                      callbacks=callbacks, scheduler=sched, quiet=quiet, stream=stream,
                      history=history, initial_epoch=initial, compile=compiled, device=device)
    except (TdsError, KeyboardInterrupt):
        raise
    except SystemError as e:  # a second Ctrl-C inside a numba kernel comes out as this
        if isinstance(e.__cause__ or e.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise _training_error(model_file, model, e, history) from None
    except Exception as e:  # noqa: BLE001 - the model's own code failed: name file and line
        raise _training_error(model_file, model, e, history) from None
    best = history.best("val_acc") if len(history) else None
    if best is not None and not history.interrupted:
        say(f"best val_acc {best['val_acc']:.4f} at epoch {int(best['epoch'])}")
    written = [f for f in RUN_FILES if os.path.exists(os.path.join(out, f))]
    if written and not history.interrupted:
        say(f"wrote {', '.join(os.path.join(out, f) for f in written)}")
    return TrainResult(history, out, best, history.stop_reason, history.diverged,
                       history.interrupted, model_file)


def check_classifier(model_file: str, model, image_shape, num_classes: int, name: str) -> None:
    """Run the model on a batch of 2 and check that it gives (2, num_classes) logits."""
    from ..tensor import Tensor

    out = run_example(model_file, model, (2,) + tuple(image_shape))
    if not isinstance(out, Tensor):
        raise ModelFileError(f"{model_file}: the model returns a {type(out).__name__}, not a "
                             f"Tensor; tds train needs the logits alone, a (batch, "
                             f"{num_classes}) Tensor (return the first item of the tuple, "
                             "say)")
    if out.ndim != 2 or out.shape[1] != num_classes:
        raise ModelFileError(f"{model_file}: the model's output for a batch of 2 has shape "
                             f"{fmt_shape(out.shape)}; a classifier for {name} must give "
                             f"(2, {num_classes}) logits")


def _training_error(model_file: str, model, exc: BaseException, history: History):
    epoch = (int(history.epochs[-1]["epoch"]) if len(history) else 0) + 1
    return error_in_file(model_file, exc, where=f"training, epoch {epoch}", model=model)


class RunFolder(Callback):
    """After every epoch: last.npz (everything --resume needs), the history.csv row (appended,
    flushed), best.npz when validation accuracy improved, curves.png redrawn. Each file is
    complete at every moment: checkpoints and the picture are renamed into place."""

    def __init__(self, out: str, meta: dict, optimizer, scheduler, loader, title: str,
                 num_classes: int, history: History):
        self.out, self.meta, self.optimizer, self.scheduler = out, meta, optimizer, scheduler
        self.loader, self.title, self.num_classes = loader, title, num_classes
        self.best = _Monitor("val_acc", "max", 0.0)
        self.best.resume(history)
        self._rewrite_csv(history)

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)

    def on_epoch_end(self, trainer, epoch, logs):
        history = trainer.history
        state = {**self.meta, "epoch": epoch, "metrics": dict(logs),
                 "history": [dict(e) for e in history.epochs],
                 "rng": {"loader": self.loader.state_dict(),
                         "global": generator().bit_generator.state}}
        save_checkpoint(self.path("last.npz"), trainer.model, state, self.optimizer,
                        self.scheduler)
        self._append_csv(logs)
        if self.best.improved(logs):
            save_checkpoint(self.path("best.npz"), trainer.model,
                            {**self.meta, "epoch": epoch, "metrics": dict(logs)})
        tmp = self.path(".tmp-curves.png")
        history.plot(tmp, title=self.title, num_classes=self.num_classes)
        os.replace(tmp, self.path("curves.png"))

    def _append_csv(self, logs: dict) -> None:
        path = self.path("history.csv")
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        if not new:
            with open(path, newline="") as f:
                fields = next(csv.reader(f), None) or list(logs)
        else:
            fields = list(logs)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: logs.get(k, "") for k in fields})
            f.flush()
            os.fsync(f.fileno())

    def _rewrite_csv(self, history: History) -> None:
        """A resumed run's history.csv holds exactly the epochs of its last.npz."""
        path = self.path("history.csv")
        if len(history):
            history.to_csv(path)
        elif os.path.exists(path):
            os.remove(path)
