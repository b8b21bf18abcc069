"""The Keras callback that streams a run's metrics into the store.

Batch logs (Keras' running means over the epoch so far) are sampled every `every` steps,
epoch logs (plus learning rate and epoch seconds) at each epoch end. Rows are buffered and
written in one transaction at most every `flush_seconds` and at every epoch end, together
with the run's progress and heartbeat; that same write reads the cancel flag, so Cancel
stops training within one logging window.

A study run under a pruner also gets `prune_check(epoch, logs) -> bool` (built by the study's
pruning module in core.search and handed in by the worker): it is asked once per epoch end, after
that epoch's rows are written, never per batch. When it says stop, training stops after that epoch and `pruned` is set, so
core.train.run evaluates and saves the model as of that epoch and ends the run `pruned`.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Callable

import keras

log = logging.getLogger("core.train")

FLUSH_SECONDS = 1.0  # default seconds between two metric writes while training (DIGITLAB_FLUSH_SECONDS)


def default_flush_seconds() -> float:
    """Seconds between metric writes: DIGITLAB_FLUSH_SECONDS if it is a number ≥ 0, else FLUSH_SECONDS."""
    try:
        value = float(os.environ.get("DIGITLAB_FLUSH_SECONDS", FLUSH_SECONDS))
    except ValueError:  # documented: anything else means the default
        return FLUSH_SECONDS
    return value if math.isfinite(value) and value >= 0 else FLUSH_SECONDS


def batch_interval(steps_per_epoch: int, points_per_epoch: int = 25) -> int:
    """Steps between two batch samples so an epoch yields at least `points_per_epoch` of them."""
    return max(1, steps_per_epoch // max(1, points_per_epoch))


class StoreLogger(keras.callbacks.Callback):
    """Buffer epoch logs and running batch means; commit them with progress in batched writes."""

    def __init__(self, store, run_id: str, steps_per_epoch: int, every: int | None = None,
                 flush_seconds: float | None = None, should_stop: Callable[[], bool] | None = None,
                 prune_check: Callable[[int, dict], bool] | None = None):
        super().__init__()
        self.store, self.run_id, self.steps_per_epoch = store, run_id, steps_per_epoch
        self.every = every or batch_interval(steps_per_epoch)
        self.flush_seconds = default_flush_seconds() if flush_seconds is None else flush_seconds
        self.should_stop, self.prune_check = should_stop, prune_check
        self.pruned = False  # the study's pruner stopped training after an epoch
        self.rows: list[tuple] = []
        self.step, self.epoch, self._epoch_base = 0, 0, 0
        self.cancelled = False
        self.summary: dict[str, float | int | None] = {}
        self._last_flush = self._epoch_start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1  # stored epochs are 1-based, as people count them
        self._epoch_start = time.monotonic()
        self._epoch_base = self.step

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution=k Keras calls this every k batches, `batch` being the last one
        # done (0-based in the epoch): the step comes from it, and a point is logged whenever the
        # step passes a multiple of `every` (core.model.execution keeps k <= every).
        before = self.step
        self.step = max(before + 1, self._epoch_base + int(batch) + 1)
        if before == 0 or self.step // self.every > before // self.every:
            self._add("batch", logs)
        # The run's first batch is written at once (a point, the step, the heartbeat): the live view shows
        # training under way as soon as it is, instead of a flush interval later.
        if before == 0 or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs["epoch_seconds"] = time.monotonic() - self._epoch_start
        logs.setdefault("learning_rate", self._learning_rate())
        self._add("epoch", logs)
        self._summarise(logs)
        self.flush()
        if self.prune_check is not None and not self.cancelled and self._should_prune(logs):
            self.pruned = True
            if self.model is not None:
                self.model.stop_training = True

    def _should_prune(self, logs: dict) -> bool:
        """Ask the study's pruner; a pruner that cannot answer (store busy, a bug) lets training go on."""
        try:
            return bool(self.prune_check(self.epoch, logs))
        except Exception:
            log.warning("run %s: the pruner could not decide after epoch %s; training goes on",
                        self.run_id, self.epoch, exc_info=True)
            return False

    def _add(self, scope: str, logs) -> None:
        self.rows += [(self.run_id, scope, key, self.step, self.epoch, float(value))
                      for key, value in (logs or {}).items() if _is_number(value)]

    def _summarise(self, logs: dict) -> None:
        val = logs.get("val_accuracy")
        s = self.summary
        s.update(epoch=self.epoch, last_loss=logs.get("loss"), last_accuracy=logs.get("accuracy"))
        if val is not None:
            s.update(last_val_accuracy=float(val), last_val_epoch=self.epoch, last_val_loss=logs.get("val_loss"))
            if s.get("best_val_accuracy") is None or (math.isfinite(val) and val > s["best_val_accuracy"]):
                s.update(best_val_accuracy=float(val), best_val_epoch=self.epoch)

    def _learning_rate(self) -> float | None:
        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except Exception:  # an optimizer without a readable rate: skip the curve, not the run
            return None

    def flush(self) -> None:
        """Write buffered rows, progress and heartbeat in one transaction; honour cancel requests.

        Also called from core/train/run.py's `finally:` so a crash keeps every row logged so far.
        """
        rows, self.rows = self.rows, []
        self._last_flush = time.monotonic()
        progress = {k: v for k, v in self.summary.items() if v is not None}
        progress.update(step=self.step, steps_per_epoch=self.steps_per_epoch)
        try:
            cancel = self.store.checkpoint(self.run_id, rows, **progress)
        except BaseException:  # nothing was written (one transaction): keep the rows for the next flush
            self.rows = rows + self.rows
            raise
        if cancel or (self.should_stop is not None and self.should_stop()):
            self.cancelled = True
            if self.model is not None:
                self.model.stop_training = True


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
