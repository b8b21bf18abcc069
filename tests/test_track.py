"""core.track: a plain Keras fit with DigitLabCallback becomes a run that works like one trained here.

Tiny models on ≤64 digits, 1 epoch, a real SQLite store under tmp_path.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.data.dataset import load_dataset
from core.predict.ensemble import predict_files  # noqa: F401  (Draw and predict read models through it)
from core.predict.inference import load_model, predict_probabilities
from core.store.facade import RunStore
from core.store.schema import MODEL_FILE
from tests.helpers import ROOT, env

keras = pytest.importorskip("keras")


def mlp_512(input_784: bool = True):
    """The Deep Learning with Python chapter 2 MLP: Dense(512, relu), Dense(10, softmax), rmsprop."""
    model = keras.Sequential([keras.Input((784,) if input_784 else (28, 28, 1)),
                              *([] if input_784 else [keras.layers.Flatten()]),
                              keras.layers.Dense(512, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def digits(data_path: Path, n: int = 64):
    data = load_dataset(data_path)
    return data.x_train[:n].reshape((n, 784)).astype("float32") / 255, data.y_train[:n].astype("int64")


def test_a_tracked_fit_is_a_completed_run_with_its_metrics_config_model_and_test_score(tmp_path, tiny_data):
    from core.track import DigitLabCallback
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    x, y = digits(tiny_data)
    model = mlp_512()
    model.fit(x, y, epochs=1, batch_size=16, validation_split=0.25, verbose=0,
              callbacks=[DigitLabCallback(name="notebook run", db=db, data=tiny_data, every=1, flush_seconds=0)])
    store = RunStore(db)
    (run_id,) = store.list_runs()["run_id"]
    run = store.get_run(run_id)
    assert (run.name, run.status, run.epoch, run.n_params) == ("notebook run", "completed", 1, model.count_params())
    assert run.source == "tracked" and run.tags == []
    cfg = run.config
    assert cfg["optimizer"] == "rmsprop" and cfg["learning_rate"] == pytest.approx(1e-3) and cfg["epochs"] == 1
    assert cfg["architecture"] == "custom" and cfg["layers"] == [{"type": "Dense", "units": 512, "activation": "relu"}]
    assert cfg["batch_size"] is None  # Keras does not tell a callback: unknown, not a guess
    epoch = store.metric_history(run_id)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epoch["key"])
    assert len(store.metric_history(run_id, scope="batch")) >= 3 * 2  # 3 steps, loss and accuracy each
    ev = store.evaluation(run_id)
    assert ev is not None and ev.n == 50 and run.test_accuracy == pytest.approx(ev.accuracy)
    # Draw / predict read the model as any run's: safe_mode load, 28×28 images in
    loaded = load_model(store.model_file(run_id), run_id=run_id)
    probs = predict_probabilities(loaded, np.zeros((2, 28, 28), dtype="float32"))
    assert probs.shape == (2, 10) and store.artifact(run_id, MODEL_FILE) is not None


def test_batch_size_when_given_and_no_dataset_still_keeps_the_model(tmp_path, tiny_data):
    from core.track import DigitLabCallback
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    x, y = digits(tiny_data, 32)
    model = mlp_512(input_784=False)
    model.fit(x.reshape((-1, 28, 28, 1)), y, epochs=1, batch_size=16, verbose=0,
              callbacks=[DigitLabCallback(db=db, data=tmp_path / "absent.h5", batch_size=16)])
    store = RunStore(db)
    run = store.get_run(store.list_runs()["run_id"][0])
    assert run.status == "completed" and run.config["batch_size"] == 16
    assert store.evaluation(run.id) is None and store.artifact(run.id, MODEL_FILE) is not None
    assert run.config["layers"][0] == {"type": "Flatten"}


def test_store_and_data_come_from_the_environment(tmp_path, tiny_data, monkeypatch):
    from core.track import DigitLabCallback
    db = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("DIGITLAB_DB", db)
    monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data))
    x, y = digits(tiny_data, 32)
    mlp_512().fit(x, y, epochs=1, batch_size=32, verbose=0, callbacks=[DigitLabCallback()])
    runs = RunStore(db).list_runs()
    assert list(runs["status"]) == ["completed"] and runs["test_accuracy"].notna().all()


def test_cancel_from_the_dashboard_stops_the_fit(tmp_path, tiny_data):
    from core.track import DigitLabCallback

    class CancelAfterFirstBatch(keras.callbacks.Callback):
        def __init__(self, tracker):
            super().__init__()
            self.tracker = tracker

        def on_train_batch_end(self, batch, logs=None):
            if batch == 0:
                self.tracker.store.request_cancel(self.tracker.run_id)
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    x, y = digits(tiny_data)
    tracker = DigitLabCallback(db=db, data=tiny_data, flush_seconds=0)
    mlp_512().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[tracker, CancelAfterFirstBatch(tracker)])
    run = RunStore(db).get_run(tracker.run_id)
    assert run.status == "cancelled" and run.epoch == 1  # Keras ends the epoch it stops in, then no more


KILLED_SCRIPT = r"""
import sys, time
import numpy as np, keras
from core.track import DigitLabCallback

class Slow(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 1:
            print("training", flush=True)
        time.sleep(0.2)

x, y = np.random.rand(64, 784).astype("float32"), np.random.randint(0, 10, 64)
model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=100, batch_size=8, verbose=0,
          callbacks=[DigitLabCallback(db=sys.argv[1], flush_seconds=0), Slow()])
"""


def test_a_kernel_killed_mid_fit_leaves_the_run_interrupted(tmp_path):
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_SCRIPT, db], cwd=ROOT, env=env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "training", proc.stderr.read()
        store = RunStore(db)
        (run_id,) = store.list_runs()["run_id"]
        assert store.get_run(run_id).status == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert store.recover_stale() == [run_id]  # the dead pid on this host: interrupted at once, not after a minute
    run = store.get_run(run_id)
    assert run.status == "interrupted" and len(store.metric_history(run_id, scope="batch")) >= 1


def test_the_docs_example_runs_unchanged_but_for_the_callback(tmp_path, tiny_data):
    """docs/track_example.py is the tutorial's MLP with one added callback; it runs on tiny data."""
    script = (ROOT / "docs" / "track_example.py").read_text()
    assert script.count("DigitLabCallback") == 2  # the import and the one callback
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "track_example.py")], cwd=tmp_path, text=True,
                          capture_output=True, timeout=300,
                          env=env(DIGITLAB_DB=db, DIGITLAB_DATA=str(tiny_data), DIGITLAB_EXAMPLE_EPOCHS="1",
                                   PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-2000:]
    runs = RunStore(db).list_runs()
    assert list(runs["status"]) == ["completed"] and runs["test_accuracy"].notna().all()
    assert list(runs["name"]) == ["mlp-512 from the tutorial"]
    assert list(runs["n_params"]) == [784 * 512 + 512 + 512 * 10 + 10]  # built by its first batch, counted at the end


def test_tracking_into_a_postgresql_store(pg_url, tiny_data):
    from core.track import DigitLabCallback
    x, y = digits(tiny_data, 32)
    tracker = DigitLabCallback(name="on postgres", db=pg_url, data=tiny_data)
    mlp_512().fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[tracker])
    store = RunStore(pg_url)
    run = store.get_run(tracker.run_id)
    assert run.status == "completed" and store.evaluation(run.id).n == 50
    assert load_model(store.model_file(run.id), run_id=run.id) is not None
    store.close()


def test_a_model_that_is_not_a_digit_classifier_is_kept_but_not_scored(tmp_path, tiny_data):
    from core.track import DigitLabCallback
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(np.random.rand(16, 4), np.arange(16) % 3, epochs=1, batch_size=8, verbose=0,
              callbacks=[DigitLabCallback(db=db, data=tiny_data)])
    store = RunStore(db)
    run = store.get_run(store.list_runs()["run_id"][0])
    assert run.status == "completed" and store.evaluation(run.id) is None
    assert store.artifact(run.id, MODEL_FILE) is not None and run.config["optimizer"] == "sgd"


def test_an_exception_inside_fit_stops_the_heartbeat_so_the_run_ends_interrupted(tmp_path, tiny_data, monkeypatch):
    """Keras skips on_train_end when fit raises: the run must not stay `running` while the kernel lives on."""
    from core import track
    monkeypatch.setattr(track, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(track, "STALL_SECONDS", 0.3)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise RuntimeError("a bug in the notebook")
    db = f"sqlite:///{tmp_path / 'runs.db'}"
    x, y = digits(tiny_data, 32)
    tracker = track.DigitLabCallback(db=db, data=tiny_data, flush_seconds=0)
    with pytest.raises(RuntimeError):
        mlp_512().fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=[tracker, Boom()])
    store = RunStore(db)
    assert store.get_run(tracker.run_id).status == "running"
    time.sleep(0.3 + 0.3 + 0.2)  # the stall, then a beat's age past the timeout below
    assert not tracker._heart.is_alive()
    assert store.recover_stale(timeout=0.3) == [tracker.run_id]
    assert store.get_run(tracker.run_id).status == "interrupted"
