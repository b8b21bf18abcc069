"""core/worker.py in this process: claiming and training runs, handing a study run its pruner, telling the
study, surviving a study that fails, stopping before any claim, the stop signals, logging, ensure_worker.

The worker as a real process (`python -m core worker`: kill -9, SIGTERM mid-run, full disk, many at once)
is exercised in test_faults.py, test_concurrency.py and test_study.py."""
from __future__ import annotations

import logging
import os
import signal
import time

import pytest

import core.search.pruning
import core.search.study
from core.config import make_config
from core.data.dataset import DataError
from core.worker import StopRequest, configure_logging, ensure_worker, run_worker

TINY = dict(epochs=1, batch_size=32, train_limit=100)


def _queue(store, **overrides) -> str:
    config = make_config("mlp-128-64", **{**TINY, **overrides})
    return store.create_run(config.to_dict(), name=f"w{time.monotonic_ns()}")


def _work(store, data, **kwargs) -> tuple[int, list[str]]:
    lines: list[str] = []
    return run_worker(store, data, once=True, poll=0.05, log=lines.append, **kwargs), lines


def test_a_worker_trains_the_queue_oldest_first_then_leaves(store, tiny_data):
    first, second = _queue(store), _queue(store)
    done, lines = _work(store, tiny_data)
    assert done == 2
    assert [store.get_run(r).status for r in (first, second)] == ["completed", "completed"]
    trained = [line for line in lines if line.startswith("worker: training run")]
    assert [line.split()[3] for line in trained] == [first, second]
    assert any(line.startswith(f"worker: run {first} completed, test accuracy ") for line in lines)
    assert store.live_workers().empty, "a worker that leaves must unregister"


def test_max_runs_stops_after_that_many(store, tiny_data):
    ids = [_queue(store) for _ in range(2)]
    done, _ = _work(store, tiny_data, max_runs=1)
    assert done == 1 and [store.get_run(r).status for r in ids] == ["completed", "queued"]


def test_a_worker_without_the_dataset_refuses_before_registering(store, tmp_path):
    with pytest.raises(DataError, match="this worker cannot train without the dataset: No dataset at"):
        run_worker(store, tmp_path / "missing.h5", once=True, log=lambda line: None)
    assert store.live_workers().empty


def test_the_worker_hands_a_study_run_its_pruner(store, tiny_data, monkeypatch):
    """The pruner comes from core.search through the worker; core.train never imports it."""
    run_id = _queue(store, epochs=3)
    handed = []

    def prune_check(store_, run):
        handed.append(run.id)
        return lambda epoch, logs: epoch == 1  # stop after the first of three epochs
    monkeypatch.setattr(core.search.pruning, "prune_check", prune_check)
    done, lines = _work(store, tiny_data)
    run = store.get_run(run_id)
    assert done == 1 and handed == [run_id]
    assert run.status == "pruned" and run.epoch == 1 and run.test_accuracy is not None
    assert f"worker: run {run_id} pruned, test accuracy" in "\n".join(lines)


def test_a_study_that_fails_never_stops_the_worker_and_the_log_says_why(store, tiny_data, monkeypatch):
    run_id = _queue(store)
    told = []

    def broken(*args):
        raise RuntimeError("study store busy")
    monkeypatch.setattr(core.search.pruning, "prune_check", broken)  # the run trains to its end, unpruned
    monkeypatch.setattr(core.search.study, "top_up_all", broken)
    monkeypatch.setattr(core.search.study, "after_run", lambda store_, run: told.append((run.id, run.status)))
    done, lines = _work(store, tiny_data)
    assert done == 1 and store.get_run(run_id).status == "completed"
    assert told == [(run_id, "completed")]  # the study is told of every finished run
    assert "worker: study prune_check failed: RuntimeError: study store busy" in lines
    assert "worker: study top_up_all failed: RuntimeError: study store busy" in lines


def test_an_empty_queue_asks_the_studies_to_top_up_before_leaving(store, tiny_data, monkeypatch):
    calls = []

    def top_up_all(store_):
        calls.append(1)
        return [_queue(store)] if len(calls) == 1 else []  # a study queues one run, once
    monkeypatch.setattr(core.search.study, "top_up_all", top_up_all)
    done, _ = _work(store, tiny_data)
    assert done == 1 and len(calls) == 2


def test_a_stop_before_the_worker_registers_claims_nothing(store, tiny_data):
    run_id = _queue(store)
    stop = StopRequest()
    stop.signal_name = "SIGTERM"
    stop.event.set()
    done, lines = _work(store, tiny_data, stop=stop)
    assert done == 0 and stop.early
    assert lines == ["worker: SIGTERM received before claiming any run; exiting"]
    assert store.get_run(run_id).status == "queued" and store.live_workers().empty


def test_a_run_queued_on_this_machine_wakes_an_idle_worker_before_its_next_poll(store, tiny_data):
    """queue_run touches a wake file the local worker watches: with a 120 s poll the run is still
    claimed at once (a worker elsewhere would find it at its next poll)."""
    import threading

    from core.store.queue import queue_run

    stop = StopRequest()
    lines: list[str] = []
    worker = threading.Thread(target=run_worker, args=(store, tiny_data), daemon=True,
                              kwargs=dict(poll=120.0, log=lines.append, stop=stop, max_runs=1))
    worker.start()
    deadline = time.monotonic() + 60
    while not any("waiting for queued runs" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the worker found the queue empty and waits on its 120 s poll
    run_id = queue_run(store, make_config("mlp-128-64", **TINY))
    worker.join(60)  # far below the poll: it woke, trained the run and left (max_runs=1)
    stop.event.set()
    assert not worker.is_alive() and store.get_run(run_id).status == "completed", lines


def test_stop_request_turns_sigterm_into_a_flag_and_puts_the_handler_back():
    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequest().install()
    said: list[str] = []
    stop.log = said.append
    try:
        assert stop.installed
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop.event.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.event.is_set() and stop.signal_name == "SIGTERM" and stop.announced
        assert said == ["worker: SIGTERM received, stopping the current run"]
    finally:
        stop.uninstall()
    assert not stop.installed and signal.getsignal(signal.SIGTERM) == before


def test_configure_logging_sends_core_records_to_stderr_with_a_timestamp_once(capsys):
    root = logging.getLogger("core")
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging()
        configure_logging()  # a second call adds no second handler
        logging.getLogger("core.worker").warning("heartbeat not written")
        logging.getLogger("elsewhere").warning("not ours")
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].endswith("WARNING core.worker: heartbeat not written")
        assert err[0][:4].isdigit() and err[0][4] == "-"  # 2026-12-05 11:40:38,123 …
    finally:
        root.handlers[:], root.level = handlers, level


def test_ensure_worker_starts_none_while_one_is_alive(store, tiny_data):
    worker_id = store.register_worker()  # this process: alive
    try:
        assert ensure_worker(store, tiny_data) is None
    finally:
        store.remove_worker(worker_id)


def test_ensure_worker_starts_a_background_worker_that_logs_to_the_artifacts(store, tiny_data):
    pid = ensure_worker(store, tiny_data, idle_exit=0.5)
    try:
        assert pid is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        assert not _alive(pid), "a worker with nothing to do exits after idle_exit"
        log = (store.artifacts / "worker.log").read_text()
        assert "waiting for queued runs" in log and "worker finished 0 run(s)" in log
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it once it exits
    except ChildProcessError:
        return False
    return done == 0
