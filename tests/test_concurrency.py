"""Concurrent writers on one SQLite store while a dashboard-like reader polls every 100 ms.

Real processes on a real file: no "database is locked" reaches anyone, every run is claimed
by exactly one worker, every metric row written is stored exactly once, and the file passes
PRAGMA integrity_check. The end-to-end test trains real (tiny) Keras runs with
`python -m core worker` and is bounded to about two minutes.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from core.train.callbacks import batch_interval
from core.config import make_config
from core.store.facade import RunStore
from core.store.queue import queue_run
from tests.helpers import BATCH_KEYS, EPOCH_KEYS, FAKE_WORKER, finish, integrity, metric_rows

E2E_DEADLINE_S = 420  # a hang guard: ~35 CPU-s of work, 1.5-4 min wall on 2 shared cores (more when busy)

# Polls like a dashboard page: the runs table, then the curves of every running run.
READER = r"""
import json, os, sys, time
from core.store.facade import RunStore
store, stop = RunStore(sys.argv[1]), sys.argv[2]
polls, errors, rows_seen = 0, [], 0
while not os.path.exists(stop):
    try:
        runs = store.list_runs()
        for run_id in runs.loc[runs.status == "running", "run_id"]:
            rows_seen = max(rows_seen, len(store.metric_history(run_id, scope="batch")))
        polls += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    time.sleep(0.1)
print(json.dumps({"polls": polls, "errors": errors[:5], "n_errors": len(errors)}))
"""


def assert_no_lock_errors(outputs: list[tuple[int, str, str]]) -> None:
    for rc, out, err in outputs:
        text = (out + err).lower()
        assert "locked" not in text and "busy" not in text and "traceback" not in text, text[-2000:]
        assert rc == 0, err[-2000:]


def test_four_processes_claim_each_run_once_and_lose_no_row(store: RunStore, tmp_path: Path, spawn):
    """The store alone (no Keras): 4 writers x many commits, a reader every 100 ms."""
    n_runs, windows, per_window = 120, 5, 10
    ids = {store.create_run({"architecture": "mlp-128-64", "epochs": 1}) for _ in range(n_runs)}
    stop = tmp_path / "stop"
    reader = spawn(["-c", READER, store.url, str(stop)])
    writers = [spawn(["-c", FAKE_WORKER, store.url, f"w{i}", str(windows), str(per_window)]) for i in range(4)]
    outputs = finish(writers, time.monotonic() + 90, store)
    stop.touch()
    (_, reader_out, reader_err), = finish([reader], time.monotonic() + 30, store)

    assert_no_lock_errors(outputs + [(0, reader_out, reader_err)])
    claimed = [line for _, out, _ in outputs for line in out.split()]
    assert sorted(claimed) == sorted(ids), "a run was claimed twice or never"
    rows = metric_rows(store)
    assert len(rows) == n_runs * windows * per_window and len(set(rows)) == len(rows)
    assert set(store.list_runs()["status"]) == {"completed"}
    polled = json.loads(reader_out)
    assert polled["n_errors"] == 0 and polled["polls"] > 0, polled
    assert integrity(store) == "ok"
    print(f"\nstore stress: 4 writers, {n_runs} runs, {len(rows)} rows in {n_runs * windows} commits, "
          f"reader {polled['polls']} polls, 0 errors, 0 rows lost")


def expected_rows(run) -> int:
    """Rows StoreLogger writes for a finished run: batch samples every `every` steps, one row per epoch key."""
    every = batch_interval(run.steps_per_epoch)
    return (run.step // every) * len(BATCH_KEYS) + run.epoch * len(EPOCH_KEYS)


def test_four_real_workers_train_while_a_reader_polls(store: RunStore, tiny_data: Path, tmp_path: Path, spawn):
    """4 × `python -m core worker` on tiny real runs, a commit per training step, a reader every 100 ms."""
    started = time.monotonic()
    ids = [queue_run(store, make_config("mlp-128-64", train_limit=200, batch_size=10, epochs=1, seed=i), tiny_data)
           for i in range(8)]
    stop = tmp_path / "stop"
    reader = spawn(["-c", READER, store.url, str(stop)])
    workers = [spawn(["-m", "core", "worker", "--once", "--poll", "0.2", "--db", store.url, "--data", str(tiny_data)],
                     DIGITLAB_FLUSH_SECONDS="0") for _ in range(4)]
    outputs = finish(workers, started + E2E_DEADLINE_S, store)
    stop.touch()
    (_, reader_out, reader_err), = finish([reader], time.monotonic() + 30, store)

    assert_no_lock_errors(outputs + [(0, reader_out, reader_err)])
    trained = [line.split()[3] for _, out, _ in outputs for line in out.splitlines()
               if line.startswith("worker: training run")]
    assert sorted(trained) == sorted(ids), "a run was trained by two workers, or by none"
    runs = [store.get_run(run_id) for run_id in ids]
    assert [(r.status, r.error) for r in runs] == [("completed", None)] * len(ids)
    assert all(r.epoch == 1 and r.step == r.steps_per_epoch for r in runs)
    for run in runs:
        stored = store.metric_history(run.id, "batch"), store.metric_history(run.id, "epoch")
        assert set(stored[0]["key"]) == BATCH_KEYS and set(stored[1]["key"]) == EPOCH_KEYS
        assert len(stored[0]) + len(stored[1]) == expected_rows(run), run.id
    rows, expected = metric_rows(store), sum(expected_rows(r) for r in runs)
    assert len(set(rows)) == len(rows) == expected, "a row was lost or duplicated"
    polled = json.loads(reader_out)
    assert polled["n_errors"] == 0 and polled["polls"] > 0, polled
    assert integrity(store) == "ok"
    print(f"\nworkers: 4 real workers, {len(ids)} runs, {len(rows)} rows stored of {expected} expected, "
          f"reader {polled['polls']} polls, 0 errors, {time.monotonic() - started:.0f} s")
