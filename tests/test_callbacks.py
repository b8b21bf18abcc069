"""core/train/callbacks.py: the StoreLogger on a real tiny model fitting a handful of digits, into a real store."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from core.config import make_config
from core.train.callbacks import FLUSH_SECONDS, StoreLogger, batch_interval, default_flush_seconds

STEPS = 2  # 24 digits in batches of 12


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    return rng.random((24, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 24)


def _model():
    from core.model.architectures import build_model
    from core.model.compile import compile_for_training

    model = build_model([{"type": "Flatten"}, {"type": "Dense", "units": 8, "activation": "relu"}])
    compile_for_training(model, "sgd", 0.05)
    return model


def _running_run(store) -> str:
    run_id = store.create_run(make_config("mlp-128-64", epochs=3).to_dict(), name="cb")
    store.claim_run("test", run_id=run_id)
    return run_id


def _fit(logger, digits, epochs=3, validation=True):
    x, y = digits
    return _model().fit(x, y, batch_size=12, epochs=epochs, callbacks=[logger], verbose=0,
                        validation_data=(x[:8], y[:8]) if validation else None)


def test_a_real_fit_streams_epoch_and_batch_rows_with_progress(store, digits):
    run_id = _running_run(store)
    logger = StoreLogger(store, run_id, steps_per_epoch=STEPS, every=1, flush_seconds=3600)
    history = _fit(logger, digits)
    assert len(history.epoch) == 3 and not logger.cancelled and not logger.pruned
    epoch = store.metric_history(run_id, "epoch")
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"} <= set(epoch["key"])
    assert sorted(set(epoch["epoch"])) == [1, 2, 3]  # stored 1-based, as people count epochs
    assert epoch[epoch.key == "learning_rate"]["value"].tolist() == pytest.approx([0.05] * 3)
    batch = store.metric_history(run_id, "batch")
    assert len(batch[batch.key == "loss"]) == 3 * STEPS  # every=1: one running mean per step
    run = store.get_run(run_id)
    assert (run.epoch, run.step, run.steps_per_epoch) == (3, 3 * STEPS, STEPS)
    best = max(history.history["val_accuracy"])
    assert run.best_val_accuracy == pytest.approx(best) and run.last_val_epoch == 3
    assert logger.rows == []  # everything flushed at the last epoch end


def test_a_cancel_request_stops_the_fit_at_the_next_write(store, digits):
    run_id = _running_run(store)
    store.request_cancel(run_id)
    logger = StoreLogger(store, run_id, steps_per_epoch=STEPS, flush_seconds=0)  # a write after every batch
    history = _fit(logger, digits)
    assert logger.cancelled and len(history.epoch) == 1  # Keras ends the fit at the end of that epoch's batch


def test_should_stop_stops_the_fit_too(store, digits):
    run_id = _running_run(store)
    logger = StoreLogger(store, run_id, steps_per_epoch=STEPS, flush_seconds=3600, should_stop=lambda: True)
    history = _fit(logger, digits)
    assert logger.cancelled and len(history.epoch) == 1


def test_the_pruner_is_asked_once_per_epoch_end_with_the_epoch_logs(store, digits):
    run_id = _running_run(store)
    asked = []

    def prune(epoch, logs):
        asked.append((epoch, sorted(logs)))
        return epoch == 2
    logger = StoreLogger(store, run_id, steps_per_epoch=STEPS, flush_seconds=3600, prune_check=prune)
    history = _fit(logger, digits, epochs=4)
    assert logger.pruned and not logger.cancelled and len(history.epoch) == 2
    assert [e for e, _ in asked] == [1, 2]
    assert {"val_accuracy", "val_loss", "learning_rate", "epoch_seconds"} <= set(asked[0][1])
    assert sorted(set(store.metric_history(run_id, "epoch")["epoch"])) == [1, 2]  # rows written before asking


def test_a_pruner_that_fails_lets_training_go_on_and_says_why(store, digits, caplog):
    run_id = _running_run(store)

    def broken(epoch, logs):
        raise RuntimeError("store busy")
    logger = StoreLogger(store, run_id, steps_per_epoch=STEPS, flush_seconds=3600, prune_check=broken)
    with caplog.at_level(logging.WARNING, logger="core.train"):
        history = _fit(logger, digits, epochs=2)
    assert len(history.epoch) == 2 and not logger.pruned
    warnings = [r for r in caplog.records if r.name == "core.train"]
    assert len(warnings) == 2 and "the pruner could not decide after epoch 1" in warnings[0].getMessage()
    assert "store busy" in warnings[0].exc_text


def test_without_validation_the_summary_has_no_validation_values(store, digits):
    run_id = _running_run(store)
    logger = StoreLogger(store, run_id, steps_per_epoch=STEPS, flush_seconds=3600)
    _fit(logger, digits, epochs=1, validation=False)
    run = store.get_run(run_id)
    assert run.best_val_accuracy is None and run.epoch == 1
    assert "val_loss" not in set(store.metric_history(run_id, "epoch")["key"])


def test_logger_batches_writes():
    class FakeStore:  # counts transactions; the real store is covered above
        def __init__(self):
            self.calls = []

        def checkpoint(self, run_id, rows, **progress):
            self.calls.append(len(rows))
            return False
    store = FakeStore()
    logger = StoreLogger(store, "r1", steps_per_epoch=100, flush_seconds=3600)
    logger.on_epoch_begin(0)
    for b in range(100):
        logger.on_train_batch_end(b, {"loss": 1.0 / (b + 1), "accuracy": 0.5})
    logger.on_epoch_end(0, {"loss": 0.1, "accuracy": 0.9})
    # the first batch at once (loss, accuracy), then 25 samples × 2 keys + epoch loss, accuracy, seconds in one write
    assert store.calls == [2, 25 * 2 + 3]


def test_a_failed_write_keeps_its_rows_for_the_next_one():
    class FlakyStore:
        def __init__(self):
            self.fail, self.written = True, []

        def checkpoint(self, run_id, rows, **progress):
            if self.fail:
                self.fail = False
                raise OSError("disk full")
            self.written += rows
            return False
    store = FlakyStore()
    logger = StoreLogger(store, "r1", steps_per_epoch=4, every=1, flush_seconds=3600)
    logger.on_epoch_begin(0)
    with pytest.raises(OSError):  # the run's first batch is written at once: that write fails
        logger.on_train_batch_end(0, {"loss": 1.0})
    logger.on_train_batch_end(1, {"loss": 0.5, "note": "not a number"})
    logger.flush()
    assert [(r[2], r[3], r[5]) for r in store.written] == [("loss", 1, 1.0), ("loss", 2, 0.5)]


def test_batch_interval_gives_about_25_points_per_epoch():
    assert [batch_interval(n) for n in (1, 24, 25, 100, 1875)] == [1, 1, 1, 4, 75]


@pytest.mark.parametrize("value, expected", [(None, FLUSH_SECONDS), ("0", 0.0), ("2.5", 2.5), ("-1", FLUSH_SECONDS),
                                             ("soon", FLUSH_SECONDS), ("nan", FLUSH_SECONDS)])
def test_default_flush_seconds_reads_the_environment(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("DIGITLAB_FLUSH_SECONDS", raising=False)
    else:
        monkeypatch.setenv("DIGITLAB_FLUSH_SECONDS", value)
    assert default_flush_seconds() == expected
