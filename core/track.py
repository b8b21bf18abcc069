"""Track a Keras script or notebook into Digit Lab: `model.fit(..., callbacks=[DigitLabCallback(name="my run")])`.

The run appears in the store when training begins and streams its batch and epoch metrics
through the same StoreLogger our own training uses, so the dashboard follows it live. It records
what it can read of the config (optimizer, learning rate, epochs, the layer stack; batch size
when given, since Keras does not tell a callback) and leaves the rest unknown. When training
ends it keeps the model and, when the MNIST dataset is there, scores it on the test set, so the
run works on Draw, predict and Compare like one trained here.

The store and dataset come from `db=` / `data=`, else DIGITLAB_DB / DIGITLAB_DATA, else the
defaults (core.settings). A heartbeat thread beats while training moves: a kernel killed
mid-fit stops beating, and the next worker or dashboard start marks the run `interrupted`
(RunStore.recover_stale), as it does for a worker's run. An exception inside fit (Keras then
skips on_train_end) stops the beats too, after STALL_SECONDS without a batch.
"""
from __future__ import annotations

import logging
import os
import threading
import time

import keras

from core import settings
from core.interop.models import (InteropError, check_shape, complete_with_model, evaluate, model_config, save_model_file,
                                 test_split)
from core.store.facade import HEARTBEAT_TIMEOUT, RunStore
from core.store.schema import StoreError
from core.train.callbacks import StoreLogger

__all__ = ["DigitLabCallback"]

log = logging.getLogger("core.track")

HEARTBEAT_SECONDS = 5.0  # as core.train.run beats a worker's run
STALL_SECONDS = 120.0    # no batch, epoch or validation step for this long: fit has stopped, so do the beats


class _Heartbeat(threading.Thread):
    """Beats the run's heart every HEARTBEAT_SECONDS while `alive()` says training still moves."""

    def __init__(self, store: RunStore, run_id: str, last_activity):
        super().__init__(daemon=True, name=f"digitlab-heartbeat-{run_id}")
        self.store, self.run_id, self.last_activity = store, run_id, last_activity
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(HEARTBEAT_SECONDS):
            if time.monotonic() - self.last_activity() > STALL_SECONDS:
                log.warning("run %s: no training step for %.0f s; the heartbeat stops and the run will be "
                            "marked interrupted", self.run_id, STALL_SECONDS)
                return
            try:
                self.store.heartbeat(self.run_id)
            except Exception as exc:  # a busy or vanished store must not kill the notebook's training
                log.warning("run %s: heartbeat not written (%s: %s); the next beat tries again",
                            self.run_id, type(exc).__name__, exc)


class DigitLabCallback(keras.callbacks.Callback):
    """Stream a `model.fit` into Digit Lab as a run; keep and score its model at the end.

    name: the run's name (default: the store numbers "tracked" runs). db / data: the store URL
    (or SQLite file) and the HDF5 dataset. batch_size: say it, since Keras does not tell a
    callback (else it shows as unknown). every / flush_seconds: as core.train.callbacks.StoreLogger.
    evaluate: score the model on the test set at the end (when the dataset exists).
    """

    def __init__(self, name: str | None = None, db: str | None = None, data: str | os.PathLike | None = None,
                 batch_size: int | None = None, every: int | None = None, flush_seconds: float | None = None,
                 evaluate: bool = True):
        super().__init__()
        self.name, self.db, self.data, self.batch_size = name, db, data, batch_size
        self.every, self.flush_seconds, self.evaluate = every, flush_seconds, evaluate
        self.store: RunStore | None = None
        self.run_id: str | None = None
        self.logger: StoreLogger | None = None
        self._heart: _Heartbeat | None = None
        self._active = time.monotonic()

    # -- the run's lifetime -----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.store = RunStore(settings.db_url(self.db))
        self.store.recover_stale(HEARTBEAT_TIMEOUT)  # an earlier kernel's run that died mid-fit ends interrupted
        params = self.params or {}
        config = model_config(self.model, epochs=params.get("epochs"), batch_size=self.batch_size)
        self.run_id = self.store.create_run(config, name=self.name, n_params=_count(self.model), source="tracked")
        self.store.claim_run(worker_id=f"track-{os.getpid()}", run_id=self.run_id)
        steps = int(params.get("steps") or 0)
        self.logger = StoreLogger(self.store, self.run_id, steps_per_epoch=steps, every=self.every,
                                  flush_seconds=self.flush_seconds)
        self.logger.set_model(self.model)
        self.logger.set_params(params)
        self._active = time.monotonic()
        self._heart = _Heartbeat(self.store, self.run_id, lambda: self._active)
        self._heart.start()

    def on_epoch_begin(self, epoch, logs=None):
        self._active = time.monotonic()
        self.logger.on_epoch_begin(epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._active = time.monotonic()
        self.logger.on_train_batch_end(batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._active = time.monotonic()  # validation is training too: keep the heart beating

    def on_epoch_end(self, epoch, logs=None):
        self._active = time.monotonic()
        self.logger.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        try:
            self._finish()
        finally:
            if self._heart is not None:
                self._heart.stopped.set()

    def _finish(self) -> None:
        store, run_id, logger = self.store, self.run_id, self.logger
        try:
            logger.flush()
        except StoreError as exc:  # the store itself failed: one line says so, no traceback
            log.warning("run %s: its last metric rows could not be written: %s", run_id, exc)
        except Exception:  # the rows stay unwritten; ending the run matters more
            log.warning("run %s: its last metric rows could not be written", run_id, exc_info=True)
        if store.get_run(run_id).status != "running":  # cancelled, or marked interrupted meanwhile
            return
        if logger.cancelled:
            store.finish_run(run_id, "cancelled", error="cancelled on request")
            return
        summary = {k: v for k, v in logger.summary.items() if v is not None}
        if _count(self.model) is not None:  # a model without an Input is built by its first batch
            summary["n_params"] = _count(self.model)
        try:
            result = None
            if self.evaluate and settings.data_path(self.data).is_file() and _is_digit_classifier(self.model):
                result = evaluate(self.model, *test_split(settings.data_path(self.data)))
            path = save_model_file(store, run_id, self.model)
            complete_with_model(store, run_id, path, result, **summary)
        except Exception as exc:  # the metrics stay; the run says why it has no model
            log.warning("run %s: the model could not be kept", run_id, exc_info=True)
            store.finish_run(run_id, "failed", error=f"the model could not be kept: {type(exc).__name__}: {exc}"[:4000])


def _is_digit_classifier(model) -> bool:
    """Whether the model takes 28×28 digits and gives 10 classes; another model is kept, not scored on MNIST."""
    try:
        check_shape(model)
    except InteropError as exc:
        log.warning("the tracked model is not scored on the MNIST test set: %s", exc)
        return False
    return True


def _count(model) -> int | None:
    try:
        return int(model.count_params())
    except Exception:  # an unbuilt model has no count yet: unknown, not a guess
        return None
