"""Plain helpers shared by several test files (fixtures live in conftest.py, IDX writers in idx_helpers.py).

Test modules import from here, never from each other: a test module imported by another has its
tests collected twice, and its fixtures leak into the importer under names nobody declared.

- processes: ``ROOT``, ``env``, ``finish`` (wait for subprocesses until a deadline), ``wait_for``,
  ``FAKE_WORKER`` (a worker stripped to its store traffic);
- stored metrics: ``BATCH_KEYS``, ``EPOCH_KEYS``, ``integrity``, ``metric_rows``,
  ``assert_rows_match_progress``;
- the CLI: ``one_line_error``;
- studies: ``SPACE``, ``EVALUATION``, ``finish_trial`` (play a worker through one trial);
- ``GROUP``: the group name of conftest's ``populated_store``;
- ``chart_figures``: the Plotly figures an AppTest page drew, in page order, whichever way it drew them.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

import pytest

from core import cli
from core.settings import sqlite_file
from core.store.facade import RunStore
from core.train.callbacks import batch_interval

ROOT = Path(__file__).resolve().parents[1]
GROUP = "lr-sweep"  # the group name of populated_store's two grouped runs (conftest.py)

# What the store logger writes: running batch means, and the epoch's values.
BATCH_KEYS = {"loss", "accuracy"}
EPOCH_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"}

# A worker stripped to its store traffic: claim, checkpoint rows in windows, finish.
FAKE_WORKER = r"""
import sys
from core.store.facade import RunStore
store, worker_id = RunStore(sys.argv[1]), sys.argv[2]
windows, per_window = int(sys.argv[3]), int(sys.argv[4])
while (run := store.claim_run(worker_id)) is not None:
    for w in range(windows):
        rows = [(run.id, "batch", "loss", w * per_window + j, 1, 1.0 / (1 + j)) for j in range(per_window)]
        if store.checkpoint(run.id, rows, step=(w + 1) * per_window):
            break
    store.finish_run(run.id, "completed")
    print(run.id, flush=True)
"""

# A study's search space and a finished run's evaluation, as the study tests use them.
SPACE = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
         "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]}}
EVALUATION = {"accuracy": 0.5, "loss": 1.0, "n": 10, "confusion": [[0] * 10] * 10, "report": {}, "misclassified": []}


# ------------------------------------------------------------------------------ processes


def env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: quiet TensorFlow, no downloads, plus `extra`."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "DIGITLAB_OFFLINE": "1", **extra}


def finish(procs: list[subprocess.Popen], deadline: float, store: RunStore) -> list[tuple[int, str, str]]:
    """Wait for every process until `deadline` (monotonic); fail past it, saying how far the runs got."""
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            progress = store.list_runs()[["status", "step"]].value_counts().to_dict()
            pytest.fail(f"processes still running at the deadline; runs (status, step): {progress}")
        results.append((proc.returncode, out, err))
    return results


def wait_for(condition, timeout: float, what: str, poll: float = 0.1):
    """Poll `condition()` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


# ------------------------------------------------------------------------------ stored metrics


def integrity(store: RunStore) -> str:
    with closing(sqlite3.connect(sqlite_file(store.url))) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def metric_rows(store: RunStore) -> list[tuple]:
    with closing(sqlite3.connect(sqlite_file(store.url))) as conn:
        return conn.execute("SELECT run_id, scope, key, step FROM metrics").fetchall()


def assert_rows_match_progress(store: RunStore, run_id: str) -> int:
    """The stored rows are exactly those the logger wrote up to the run's recorded step and epoch."""
    run = store.get_run(run_id)
    batch, epoch = store.metric_history(run_id, "batch"), store.metric_history(run_id, "epoch")
    every = batch_interval(run.steps_per_epoch)
    assert set(batch["key"]) <= BATCH_KEYS and set(epoch["key"]) <= EPOCH_KEYS
    assert len(batch) == (run.step // every) * len(BATCH_KEYS), (len(batch), run.step)
    assert len(epoch) == run.epoch * len(EPOCH_KEYS), (len(epoch), run.epoch)
    assert batch["step"].max() <= run.step if len(batch) else True
    return len(batch) + len(epoch)


# ------------------------------------------------------------------------------ the CLI


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one line on stderr. Returns that line."""
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (rc, err)
    return err.strip()


# ------------------------------------------------------------------------------ studies


def finish_trial(store: RunStore, run_id: str, values: list[float], status: str = "completed") -> None:
    """Play a worker: claim the run, log its val_accuracy per epoch, end it `status`."""
    store.claim_run("test-worker", run_id=run_id)
    store.log_metrics([(run_id, "epoch", "val_accuracy", i, i + 1, v) for i, v in enumerate(values)])
    if status in ("completed", "pruned"):
        store.complete_run(run_id, EVALUATION, status=status, epoch=len(values))
    else:
        store.finish_run(run_id, status, error="test")


def running_run(store: RunStore, data_path) -> str:
    """A claimed mlp-128-64 run (2 epochs, 6 steps each) that has logged three batch points, as a live worker leaves it."""
    from core.config import make_config
    from core.store.queue import queue_run

    run_id = queue_run(store, make_config("mlp-128-64", epochs=2, batch_size=32), data_path)
    store.claim_run("test-worker", run_id=run_id)
    rows = [(run_id, "batch", key, step, 1, value) for step in (1, 2, 3) for key, value in
            (("loss", 2.0 / step), ("accuracy", 0.1 * step))]
    store.checkpoint(run_id, rows, step=3, steps_per_epoch=6)
    return run_id


def chart_figures(at) -> list[dict]:
    """Every Plotly figure (as a dict) the page drew, in page order: by `st.plotly_chart` or by
    dashboard/light_chart.py's component (which carries the figure's JSON in its data)."""
    found: list[dict] = []

    def walk(node) -> None:
        kind = getattr(node, "type", None)
        if kind == "plotly_chart":
            found.append(json.loads(node.proto.spec))
        elif kind == "bidi_component" and node.proto.component_name == "digitlab.light_chart":
            found.append(json.loads(json.loads(node.proto.json)["figure"]))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return found
