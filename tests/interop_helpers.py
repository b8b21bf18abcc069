"""Helpers shared by test_interop.py and test_interop_pages.py (test modules never import each other):
tiny Keras models saved as .keras files, a store run with many metric points, the CLI as a function."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core import cli
from core.config import TrainConfig
from core.store.facade import RunStore


def tiny_model(shape=(28, 28, 1), outputs=10):
    import keras
    layers = [keras.Input(shape)] + ([keras.layers.Flatten()] if len(shape) > 1 else [])
    model = keras.Sequential(layers + [keras.layers.Dense(16, activation="relu"),
                                       keras.layers.Dense(outputs, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def saved(model, path: Path, n: int = 32) -> Path:
    x = np.random.default_rng(0).random((n, *model.inputs[0].shape[1:])).astype("float32")
    model.fit(x, np.arange(n) % model.outputs[0].shape[-1], epochs=1, batch_size=16, verbose=0)
    model.save(path)
    return path


def run_cli(args: list[str], capsys, db: str, data: Path) -> tuple[int, str, str]:
    code = cli.main([*args, "--db", db, "--data", str(data)])
    out, err = capsys.readouterr()
    return code, out, err


def synthetic_run(store: RunStore, name: str = "synthetic", n_batch: int = 1500, epochs: int = 3) -> str:
    """A completed run with `n_batch` batch points per key (more than any default sampling keeps)."""
    run_id = store.create_run(TrainConfig(epochs=epochs, name=name).to_dict(), name=name)
    store.claim_run("test", run_id)
    rows = [(run_id, "batch", k, s, 1 + s * epochs // n_batch, 1.0 / (1 + s)) for s in range(n_batch)
            for k in ("loss", "accuracy")]
    rows += [(run_id, "epoch", k, (e + 1) * n_batch // epochs, e + 1, 0.5 + e / 10)
             for e in range(epochs) for k in ("loss", "accuracy", "val_loss", "val_accuracy")]
    store.log_metrics(rows)
    store.finish_run(run_id, "completed", epoch=epochs, best_val_accuracy=0.7, test_accuracy=0.75, test_loss=0.8)
    return run_id


