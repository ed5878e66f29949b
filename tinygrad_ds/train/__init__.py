"""Training: fit(), evaluate(), History, EarlyStopping, ModelCheckpoint, predict_mc_dropout.
save_checkpoint / read_checkpoint: .npz files that say what they hold (JSON inside, no pickle).
(What `tds train MODEL_FILE` runs, reading a model file, is tinygrad_ds.app.train_run.)

    from tinygrad_ds.train import fit, EarlyStopping
    history = fit(model, train_loader, val_loader, optimizer, epochs=20,
                  callbacks=[EarlyStopping(patience=3)], checkpoint="best.npz")
"""
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .history import TRAIN_COLOR, VAL_COLOR, History
from .loop import NonFiniteLossError, ProgressBar, Trainer, evaluate, fit
from .mc_dropout import predict_mc_dropout

__all__ = ["fit", "evaluate", "History", "Callback", "EarlyStopping", "ModelCheckpoint",
           "NonFiniteLossError", "ProgressBar", "Trainer", "predict_mc_dropout",
           "save_checkpoint", "read_checkpoint", "Checkpoint", "TRAIN_COLOR", "VAL_COLOR"]
