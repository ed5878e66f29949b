"""Training: fit(), evaluate(), History, EarlyStopping, ModelCheckpoint, predict_mc_dropout.
(What `tds train MODEL_FILE` runs, reading a model file, is tinygrad_ds.app.train_run.)

    from tinygrad_ds.train import fit, EarlyStopping
    history = fit(model, train_loader, val_loader, optimizer, epochs=20,
                  callbacks=[EarlyStopping(patience=3)], checkpoint="best.npz")
"""
from .callbacks import Callback, EarlyStopping, ModelCheckpoint
from .history import History
from .loop import NonFiniteLossError, ProgressBar, Trainer, evaluate, fit
from .mc_dropout import predict_mc_dropout

__all__ = ["fit", "evaluate", "History", "Callback", "EarlyStopping", "ModelCheckpoint",
           "NonFiniteLossError", "ProgressBar", "Trainer", "predict_mc_dropout"]
