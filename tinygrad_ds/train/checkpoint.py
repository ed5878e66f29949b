"""Self-describing checkpoints: the model's arrays and, as JSON text in the same .npz, what a
person (or `tds eval`, or `tds train --resume`) needs to use them. Never pickle: loading a
checkpoint runs no code.

    save_checkpoint("best.npz", model, meta={"epoch": 3, ...}, optimizer=opt, scheduler=sched)
    ck = read_checkpoint("best.npz")
    ck.meta["data"]["mean"], ck.meta["epoch"]    # the normalisation it was trained with, ...
    ck.load_into(model); ck.restore_optimizer(opt)

Inside the .npz: the model's state_dict under its own keys (layer1.0.conv1.weight, so
`Module.load` and numpy read it as before), the optimizer's buffers under
`__tds_optim__.<parameter index>.<name>`, and one text array `__tds_meta__` holding the JSON:
format, versions, model (file name, sha256, class, input shape), data (spec, sizes, seed,
normalisation), epoch, metrics, optimizer and schedule state, random generator states.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import TdsError
from ..nn.module import load_npz

FORMAT = "tds-checkpoint/1"
META_KEY = "__tds_meta__"
OPTIM_PREFIX = "__tds_optim__."


def versions() -> dict[str, str]:
    return {"tinygrad_ds": __version__, "numpy": np.__version__,
            "python": platform.python_version()}


def _jsonable(v: Any) -> Any:
    """Plain JSON values: tuples become lists, numpy scalars Python numbers."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


def save_checkpoint(path: str, model, meta: dict | None = None, optimizer=None,
                    scheduler=None) -> None:
    """Write `model`'s state_dict, `meta` (JSON values) and the optimizer's and schedule's state
    to `path` atomically: a temporary file in the same folder, then a rename, so an interrupted
    write never leaves half a checkpoint where a good one was."""
    arrays: dict[str, np.ndarray] = dict(model.state_dict())
    info = {"format": FORMAT, "versions": versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    info.update(_jsonable(meta or {}))
    if optimizer is not None:
        sd = optimizer.state_dict()
        state: dict[str, dict] = {}
        for i, buffers in sd["state"].items():
            entry = {}
            for name, v in buffers.items():
                if isinstance(v, np.ndarray):
                    key = f"{OPTIM_PREFIX}{i}.{name}"
                    arrays[key] = v
                    entry[name] = {"array": key}
                else:
                    entry[name] = _jsonable(v)
            state[str(i)] = entry
        info["optimizer"] = {"type": type(optimizer).__name__,
                             "param_groups": _jsonable(sd["param_groups"]), "state": state}
    if scheduler is not None:
        info["scheduler"] = {"type": type(scheduler).__name__,
                             "state": _jsonable(scheduler.state_dict())}
    arrays[META_KEY] = np.array(json.dumps(info, allow_nan=True))
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@dataclass
class Checkpoint:
    """What read_checkpoint found: path, state (the model's arrays by state_dict key), meta
    (the JSON, {} for a plain Module.save file) and the optimizer's arrays."""

    path: str
    state: OrderedDict
    meta: dict
    optim_arrays: dict = field(default_factory=dict, repr=False)

    @property
    def epoch(self) -> int | None:
        return self.meta.get("epoch")

    @property
    def metrics(self) -> dict:
        return self.meta.get("metrics", {})

    def normalize(self):
        """The Normalize(mean, std) transform the model was trained with, or None."""
        from ..data.transforms import Normalize

        data = self.meta.get("data") or {}
        if "mean" not in data or "std" not in data:
            return None
        return Normalize(data["mean"], data["std"])

    def load_into(self, model, strict: bool = True) -> None:
        """Copy the model's arrays into `model` (checked whole first: a mismatch changes
        nothing)."""
        try:
            model.load_state_dict(self.state, strict=strict)
        except TdsError as e:
            raise TdsError(f"{self.path}: {e}") from None

    def optimizer_state(self) -> dict:
        """The optimizer's state_dict as it was saved (for Optimizer.load_state_dict)."""
        saved = self.meta.get("optimizer")
        if saved is None:
            raise TdsError(f"{self.path}: holds no optimizer state (written by Module.save, or "
                           "as a best-epoch checkpoint); resume from last.npz")
        state = {}
        for i, buffers in saved["state"].items():
            entry = {}
            for name, v in buffers.items():
                if isinstance(v, dict) and "array" in v:
                    if v["array"] not in self.optim_arrays:
                        raise TdsError(f"{self.path}: the optimizer's buffer {v['array']} is "
                                       "missing from the file")
                    entry[name] = self.optim_arrays[v["array"]]
                else:
                    entry[name] = v
            state[int(i)] = entry
        return {"state": state, "param_groups": saved["param_groups"]}

    def restore_optimizer(self, optimizer, scheduler=None) -> None:
        """Put back the optimizer's (and the schedule's) state."""
        saved = self.meta.get("optimizer") or {}
        if saved.get("type") not in (None, type(optimizer).__name__):
            raise TdsError(f"{self.path}: holds the state of {saved['type']}, not of "
                           f"{type(optimizer).__name__}")
        state = self.optimizer_state()
        try:
            optimizer.load_state_dict(state)
            if scheduler is not None and "scheduler" in self.meta:
                scheduler.load_state_dict(self.meta["scheduler"]["state"])
        except TdsError as e:
            raise TdsError(f"{self.path}: {e}") from None


def read_checkpoint(path: str) -> Checkpoint:
    """Read a checkpoint written by save_checkpoint (or a plain Module.save .npz: its meta is
    {}). Errors name the file: missing, not an .npz, corrupt, or holding values that are not
    real numbers."""
    arrays = load_npz(path, records=True)
    meta: dict = {}
    if META_KEY in arrays:
        try:
            meta = json.loads(str(arrays.pop(META_KEY)))
        except ValueError as e:
            raise TdsError(f"cannot read checkpoint {path}: its {META_KEY} is not JSON ({e})"
                           ) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise TdsError(f"cannot read checkpoint {path}: format "
                           f"{meta.get('format') if isinstance(meta, dict) else meta!r}, this "
                           f"version of tinygrad_ds reads {FORMAT}")
    optim = {k: v for k, v in arrays.items() if k.startswith(OPTIM_PREFIX)}
    state = OrderedDict((k, v) for k, v in arrays.items() if not k.startswith(OPTIM_PREFIX))
    return Checkpoint(os.fspath(path), state, meta, optim)
