"""One run end to end: load, build, compile, fit (streaming into the store), evaluate, save, mark.

`core.store.queue.queue_run()` validates a config against the dataset and queues it (nothing is
written for a bad config); `execute()` trains a run a worker has claimed; `train()` does both in this
process, as `python -m core train` does.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from core.model.compile import compile_for_training, schedule_callbacks
from core.model.execution import ExecutionPlan, choose_plan, float32_copy
from core.config import TrainConfig
from core.data.dataset import dataset_identity, load_dataset
from core.predict.inference import score
from core.store.queue import queue_run
from core.store.schema import MODEL_FILE, Run, RunNotFound, StoreError
from core.store.facade import RunStore

log = logging.getLogger("core.train")

MAX_MISCLASSIFIED = 2000  # most confident mistakes kept for the gallery
HEARTBEAT_SECONDS = 5.0


@dataclass(frozen=True)
class Splits:
    x_train: np.ndarray; y_train: np.ndarray
    x_val: np.ndarray | None; y_val: np.ndarray | None
    x_test: np.ndarray; y_test: np.ndarray


def load_splits(config: TrainConfig, data_path) -> Splits:
    """The dataset scaled to [0, 1] as (N, 28, 28, 1), subset and validation split drawn with the seed."""
    data = load_dataset(data_path)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data.y_train))
    if config.train_limit:
        order = order[:config.train_limit]
    n_val = int(round(len(order) * config.validation_split))
    val_idx, train_idx = order[:n_val], order[n_val:]

    def scale(x):
        return (x.astype("float32") / 255.0)[..., None]
    x, y = data.x_train, data.y_train.astype("int64")
    return Splits(scale(x[train_idx]), y[train_idx],
                  scale(x[val_idx]) if n_val else None, y[val_idx] if n_val else None,
                  scale(data.x_test), data.y_test.astype("int64"))


def record_dataset(store: RunStore, run_id: str, data_path, splits: Splits, plan: ExecutionPlan | None = None) -> None:
    """Store which data trains the run: the dataset's source, sizes and fingerprint, and the
    digits this run fits on and validates with (after its train limit and validation split);
    with them, how it executes (`plan`, key "execution"), shown by `core show` and Run detail."""
    extra = {} if plan is None else {"execution": plan.to_dict()}
    store.set_dataset(run_id, {**dataset_identity(data_path), "n_fit": int(len(splits.y_train)),
                               "n_val": 0 if splits.y_val is None else int(len(splits.y_val)), **extra})


def evaluate(model, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, loss, confusion matrix, per-class report, the most confident mistakes (for the gallery)
    and the indices of every mistake (`wrong`, kept so two runs can be compared digit by digit)."""
    probs = model.predict(x, batch_size=1000, verbose=0)
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    every = np.flatnonzero(pred != y)
    shown = every[np.argsort(-conf[every])][:MAX_MISCLASSIFIED]
    return {**score(probs, y), "wrong": every.tolist(),
            "misclassified": [(int(i), int(y[i]), int(pred[i]), float(conf[i])) for i in shown]}


class _Heartbeat(threading.Thread):
    """Beats the run's heart while fitting, evaluating and saving (its own connection per beat)."""

    def __init__(self, store: RunStore, run_id: str):
        super().__init__(daemon=True)
        self.store, self.run_id, self.stopped = store, run_id, threading.Event()

    def run(self):
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            try:
                self.store.heartbeat(self.run_id)
            except Exception as exc:  # a busy or vanished store must not kill the training thread
                log.warning("run %s: heartbeat not written (%s: %s); the next beat tries again",
                            self.run_id, type(exc).__name__, exc)


class _Progress:
    """Adapts Keras hooks to a plain `progress(event)` callable for the CLI's progress bar."""

    def __new__(cls, fn, epochs: int, steps: int):
        import keras

        class Cb(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch, self.t0, self.last = epoch + 1, time.monotonic(), 0.0

            def on_train_batch_end(self, batch, logs=None):
                if time.monotonic() - self.last > 0.2:
                    self.last = time.monotonic()
                    fn({"epoch": self.epoch, "epochs": epochs, "batch": batch + 1, "steps": steps,
                        "logs": dict(logs or {}), "done": False})

            def on_epoch_end(self, epoch, logs=None):
                fn({"epoch": self.epoch, "epochs": epochs, "batch": steps, "steps": steps,
                    "logs": dict(logs or {}), "seconds": time.monotonic() - self.t0, "done": True})
        return Cb()


def execute(store: RunStore, run: Run, data_path, should_stop: Callable[[], bool] | None = None,
            progress: Callable[[dict], None] | None = None,
            prune: Callable[[int, dict], bool] | None = None) -> Run:
    """Train a claimed (running) run to its end; always leaves it in a terminal status.

    `prune(epoch, logs) -> bool` is asked at each epoch end (1-based epoch); True stops training
    there and the run ends `pruned` with its model as of that epoch. The worker hands in a study
    run's pruner (core.search), so training never imports the search.
    """
    import keras

    from core.model.architectures import build_model
    from core.train.callbacks import StoreLogger

    logger = None
    heart = _Heartbeat(store, run.id)
    heart.start()
    try:
        config = TrainConfig.from_dict(run.config)
        keras.utils.set_random_seed(config.seed)
        splits = load_splits(config, data_path)
        steps = int(np.ceil(len(splits.y_train) / config.batch_size))
        plan = choose_plan(config.hidden_layers(), config.batch_size, steps, epochs=config.epochs,
                           augment=config.augment or config.elastic)
        record_dataset(store, run.id, data_path, splits, plan)
        previous = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(plan.precision)  # layers take the policy when built
        try:
            model = build_model(config.hidden_layers(), augment=config.augment, elastic=config.elastic)
        finally:  # the worker trains many runs in one process: the next one starts from its own plan
            keras.mixed_precision.set_global_policy(previous)
        compile_for_training(model, config.optimizer, config.learning_rate, plan)
        logger = StoreLogger(store, run.id, steps_per_epoch=steps, should_stop=should_stop,
                             prune_check=prune)
        callbacks = [logger, *schedule_callbacks(config.lr_schedule, config.learning_rate, config.epochs,
                                                 config.early_stopping, has_val=splits.x_val is not None)]
        if progress:
            callbacks.append(_Progress(progress, config.epochs, steps))
        val = (splits.x_val, splits.y_val) if splits.x_val is not None else None
        model.fit(splits.x_train, splits.y_train, batch_size=config.batch_size, epochs=config.epochs,
                  validation_data=val, callbacks=callbacks, shuffle=True, verbose=0)
        logger.flush()
        if logger.cancelled and logger.step < steps * config.epochs:  # a stop after the last batch completes
            if store.get_run(run.id).status == "running":  # else another process already ended it
                store.finish_run(run.id, "cancelled", error="cancelled on request")
            return _final(store, run)
        result = evaluate(float32_copy(model), splits.x_test, splits.y_test)  # scored as Draw predicts: float32
        _complete(store, run.id, model, result, status="pruned" if logger.pruned else "completed")
    except KeyboardInterrupt:
        _finish_after_error(store, run.id, logger, "cancelled", "cancelled by Ctrl-C")
        raise
    except Exception as exc:
        detail = traceback.format_exc(limit=-3)
        unrecorded = _finish_after_error(store, run.id, logger, "failed", f"{type(exc).__name__}: {exc}\n\n{detail}")
        if unrecorded is not None:  # the store cannot be written (disk full, read-only): say so, once
            raise unrecorded from None
    finally:
        heart.stopped.set()
    return _final(store, run)


def _final(store: RunStore, run: Run) -> Run:
    """The run as stored now; if it was deleted meanwhile, the claimed one with a note saying so."""
    try:
        return store.get_run(run.id)
    except RunNotFound:
        return replace(run, error="the run was deleted while it trained")


def _complete(store: RunStore, run_id: str, model, result: dict, status: str = "completed") -> None:
    """Save the model, then put it into the store with the evaluation and `completed` (or `pruned`)
    in one transaction: any machine with the store URL can then load it.

    A run is never `completed` without its model in the store, and a model file never outlives a
    failed attempt to complete its run (the local file is left only as the artifacts cache).
    """
    model_path = save_model(store, run_id, model)
    try:
        store.complete_run(run_id, result, status=status, artifacts={MODEL_FILE: model_path},
                           test_accuracy=result["accuracy"], test_loss=result["loss"])
    except BaseException:
        model_path.unlink(missing_ok=True)
        raise


def _finish_after_error(store: RunStore, run_id: str, logger, status: str, error: str) -> StoreError | None:
    """Keep every metric row logged so far, then mark the run; never raise from here.

    Returns the StoreError when the store could not record the end (the run stays `running`
    until the next worker or dashboard start marks it `interrupted`, metrics kept).
    """
    try:
        if logger is not None:
            logger.flush()
    except StoreError:  # the store itself failed: the caller reports that in its one line, no traceback
        pass
    except Exception:  # the rows stay unwritten; marking the run matters more
        log.warning("run %s: its last metric rows could not be written", run_id, exc_info=True)
    try:
        if store.get_run(run_id).status == "running":
            store.finish_run(run_id, status, error=error[:4000])
    except RunNotFound:  # deleted meanwhile: nothing left to mark
        return None
    except StoreError as exc:
        return exc
    except Exception:  # never raise from here: the next worker or dashboard start marks it interrupted
        log.warning("run %s: could not be marked %s", run_id, status, exc_info=True)
    return None


def save_model(store: RunStore, run_id: str, model) -> Path:
    """Save to artifacts/<run id>/model.keras (the local cache of the store's copy) atomically
    (write aside, then rename); no partial file is left."""
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    final, partial = folder / MODEL_FILE, folder / "partial.keras"
    try:
        model.save(partial)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return final


def train(store: RunStore, config: TrainConfig, data_path, progress: Callable[[dict], None] | None = None,
          group: str | None = None, parent_id: str | None = None) -> Run:
    """Queue `config` and train it here, now (the CLI's `train`)."""
    run_id = queue_run(store, config, data_path, group=group, parent_id=parent_id)
    run = store.claim_run(worker_id=f"cli-{os.getpid()}", run_id=run_id)
    return execute(store, run, data_path, progress=progress)
