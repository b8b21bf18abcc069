"""The worker: claim queued runs one at a time and train them; recover runs whose process died.

`python -m core worker` runs one; the dashboard starts a local one when none is alive.
SIGTERM (or SIGINT) stops the current run at its next logging window, marks it cancelled and
exits; a worker killed outright leaves a stale heartbeat, and the next worker or dashboard
start marks that run `interrupted` with its metrics kept.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from core.settings import REPO_ROOT
from core.schema import StoreError
from core.store import RunStore

WORKER_BEAT = 5.0  # seconds between a worker's heartbeats while idle or training


def run_worker(store: RunStore, data_path, once: bool = False, max_runs: int | None = None,
               poll: float = 1.0, idle_exit: float | None = None,
               log: Callable[[str], None] = lambda line: print(line, flush=True)) -> int:
    """Train queued runs until stopped; returns how many runs it finished.

    once: stop when the queue is empty. max_runs: stop after that many runs.
    idle_exit: stop after that many seconds without work (the dashboard's own worker).
    """
    from core.train import execute

    stop = threading.Event()

    def on_signal(signum, _frame):
        log(f"worker: {signal.Signals(signum).name} received, stopping the current run")
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    worker_id = store.register_worker()
    beat_stop = threading.Event()

    def beat():
        while not beat_stop.wait(WORKER_BEAT):
            try:
                store.worker_heartbeat(worker_id)
            except Exception:
                pass
    threading.Thread(target=beat, daemon=True).start()
    # TensorFlow takes seconds to import: do it while idle, so a run claimed later starts training
    # at once and its duration and live panel do not include the import.
    threading.Thread(target=_import_keras, daemon=True).start()
    done, idle_since = 0, time.monotonic()
    log(f"worker {worker_id}: waiting for queued runs in {store.url}")
    try:
        while not stop.is_set() and (max_runs is None or done < max_runs):
            for run_id in store.recover_stale():
                log(f"worker: run {run_id} was left running by a dead process; marked interrupted")
            run = store.claim_run(worker_id)
            if run is None:
                if once or (idle_exit is not None and time.monotonic() - idle_since > idle_exit):
                    break
                stop.wait(poll)
                continue
            log(f"worker: training run {run.id} ({run.name}, {run.architecture})")
            try:
                finished = execute(store, run, data_path, should_stop=stop.is_set)
            except StoreError:  # the store cannot be written: stop; the CLI prints why in one line
                log(f"worker: run {run.id} stopped because the store cannot be written; the next worker or "
                    f"dashboard start marks it interrupted, keeping its metrics up to the last write")
                raise
            log(f"worker: run {run.id} {finished.status}"
                + (f", test accuracy {finished.test_accuracy:.4f}" if finished.test_accuracy is not None else "")
                + (f": {finished.error.splitlines()[0]}" if finished.error and finished.status == "failed" else ""))
            done += 1
            idle_since = time.monotonic()
    finally:
        beat_stop.set()
        try:
            store.remove_worker(worker_id)
        except Exception:
            pass
    return done


def _import_keras() -> None:
    try:
        import keras  # noqa: F401
    except Exception:  # a broken install shows up in the run that needs it, with its message
        pass


def ensure_worker(store: RunStore, data_path, idle_exit: float = 600.0) -> int | None:
    """Start a background worker for this store unless one is alive; returns the new pid or None.

    The worker outlives the dashboard's script runs (own session) and exits after `idle_exit`
    seconds without work. Its output goes to artifacts/worker.log.
    """
    store.recover_stale()
    if not store.live_workers().empty:
        return None
    store.artifacts.mkdir(parents=True, exist_ok=True)
    log_file = open(store.artifacts / "worker.log", "ab")
    cmd = [sys.executable, "-m", "core", "worker", "--db", store.url, "--data", str(Path(data_path).resolve()),
           "--idle-exit", str(idle_exit)]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True, env={**os.environ})
    log_file.close()
    deadline = time.monotonic() + 10  # wait until it registers so a rerun does not start a second one
    while time.monotonic() < deadline and proc.poll() is None and store.live_workers().empty:
        time.sleep(0.1)
    return proc.pid
