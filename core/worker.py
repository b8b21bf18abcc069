"""The worker: claim queued runs one at a time and train them; recover runs whose process died.

`python -m core worker` runs one, on any machine that reaches the store and has the dataset
(PostgreSQL: many machines, one store; claims are atomic, models go into the store); the
dashboard starts a local one when none is alive, unless `settings.autostart_worker()` says no.
A lost database server is waited for (core.store.db.RECONNECT_SECONDS) and the run carries on.
SIGTERM (or SIGINT) stops the current run at its next logging window, marks it cancelled and
exits; one that arrives while the worker is still starting exits before it claims any run. A
worker killed outright leaves a stale heartbeat, and the next worker or dashboard start marks
that run `interrupted` with its metrics kept. Its progress lines go to stdout (`log`); core's log
records, such as warnings about errors it survives, go to stderr with timestamps (`configure_logging`).

Importing this module stays light (no SQLAlchemy, pandas or TensorFlow), so the CLI can catch
the stop signals with `StopRequest` before its slow imports.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from core.settings import REPO_ROOT

if TYPE_CHECKING:
    from core.store.facade import RunStore

logger = logging.getLogger("core.worker")

WORKER_BEAT = 5.0  # seconds between a worker's heartbeats while idle or training


def configure_logging(level: int = logging.INFO) -> None:
    """Send core's log records (warnings about errors the worker survives, the store's reconnects)
    to stderr with timestamps; `python -m core worker` calls it. Its progress lines stay on stdout.

    Calling it again changes nothing: one handler per process.
    """
    root = logging.getLogger("core")
    ours = [h for h in root.handlers if getattr(h, "digitlab_worker", False)]
    if ours:  # write to today's stderr: the one it was made with may be closed by now (and setStream
        with ours[0].lock:  # would flush that closed stream and fail)
            ours[0].stream = sys.stderr
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.digitlab_worker = True
        root.addHandler(handler)
    root.setLevel(level)


class StopRequest:
    """SIGTERM and SIGINT turned into a flag that the worker polls, so a stop always ends cleanly.

    `python -m core worker` installs one before its slow imports, so that a supervisor's SIGTERM
    right after the start is caught too; `run_worker` makes and installs its own when given none.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal_name = ""  # "SIGTERM" or "SIGINT", once one arrived
        self.log: Callable[[str], None] | None = None  # set while the worker loop runs: a signal says so at once
        self.announced = False  # the handler said it (the worker loop was running)
        self.early = False  # the worker stopped while starting, before claiming any run
        self._previous: dict = {}

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> StopRequest:
        """Catch SIGTERM and SIGINT from now on; only the main thread may call it."""
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in self.SIGNALS}
        return self

    def uninstall(self) -> None:
        """Put back the handlers that were there before `install`."""
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _on_signal(self, signum, _frame) -> None:
        self.signal_name = signal.Signals(signum).name
        self.event.set()
        if self.log is not None:
            self.announced = True
            self.log(f"worker: {self.signal_name} received, stopping the current run")


def run_worker(store: RunStore, data_path, once: bool = False, max_runs: int | None = None,
               poll: float = 1.0, idle_exit: float | None = None,
               log: Callable[[str], None] = lambda line: print(line, flush=True),
               stop: StopRequest | None = None) -> int:
    """Train queued runs until stopped; returns how many runs it finished.

    once: stop when the queue is empty. max_runs: stop after that many runs.
    idle_exit: stop after that many seconds without work (the dashboard's own worker).
    stop: a StopRequest already catching the signals (the CLI's); else one is made here and, in
    the main thread, installed for the duration of the call. A stop that arrived before the worker
    registered ends it at once with one line and `stop.early` set: no run is claimed.
    """
    from core.model.execution import thread_environment
    if "tensorflow" not in sys.modules:  # TensorFlow reads these once, when it starts: this worker's share of the cores
        os.environ.update(thread_environment())
    from core.data.dataset import DataError, check_dataset
    from core.search.pruning import prune_check
    from core.search.study import after_run, top_up_all
    from core.store.schema import StoreError
    from core.train.run import execute

    try:  # before this worker registers or claims anything: a worker elsewhere needs its own copy
        check_dataset(data_path)
    except DataError as exc:
        raise DataError(f"this worker cannot train without the dataset: {exc} (each worker machine needs its "
                        f"own copy: copy data/mnist.h5 over and pass --data PATH, or ingest it there)") from None
    stop = StopRequest() if stop is None else stop
    own_signals = not stop.installed and threading.current_thread() is threading.main_thread()
    if own_signals:
        stop.install()
    worker_id, beat_stop, done = None, threading.Event(), 0
    try:
        if not stop.event.is_set():
            worker_id = store.register_worker()
        stop.log = log  # from here on the handler announces a stop itself
        if stop.event.is_set() and not stop.announced:  # it came while starting: claim nothing, say so once
            stop.early = True
            log(f"worker: {stop.signal_name} received before claiming any run; exiting")
            return 0

        def beat():
            while not beat_stop.wait(WORKER_BEAT):
                try:
                    store.worker_heartbeat(worker_id)
                except Exception as exc:  # a missed beat is retried; stale only after several
                    logger.warning("worker %s: heartbeat not written (%s: %s)", worker_id, type(exc).__name__, exc)
        threading.Thread(target=beat, daemon=True).start()
        # TensorFlow takes seconds to import: do it while idle, so a run claimed later starts training
        # at once and its duration and live panel do not include the import.
        threading.Thread(target=_import_keras, daemon=True).start()
        idle_since = time.monotonic()
        log(f"worker {worker_id}: waiting for queued runs in {store.where}")
        while not stop.event.is_set() and (max_runs is None or done < max_runs):
            for run_id in store.recover_stale():
                log(f"worker: run {run_id} was left running by a dead process; marked interrupted")
            if stop.event.is_set():  # no claim once stopped
                break
            run = store.claim_run(worker_id)
            if run is None and _tell_study("top_up_all", top_up_all, store, log=log):  # a study queued its next runs
                continue
            if run is None:
                if once or (idle_exit is not None and time.monotonic() - idle_since > idle_exit):
                    break
                _wait_for_work(store, stop.event, poll)
                continue
            log(f"worker: training run {run.id} ({run.name}, {run.architecture})")
            try:
                prune = _tell_study("prune_check", prune_check, store, run, log=log)  # None: trains to its end
                finished = execute(store, run, data_path, should_stop=stop.event.is_set, prune=prune)
            except StoreError:  # the store cannot be written: stop; the CLI prints why in one line
                log(f"worker: run {run.id} stopped because the store cannot be written; the next worker or "
                    f"dashboard start marks it interrupted, keeping its metrics up to the last write")
                raise
            log(f"worker: run {run.id} {finished.status}"
                + (f", test accuracy {finished.test_accuracy:.4f}" if finished.test_accuracy is not None else "")
                + (f": {finished.error.splitlines()[0]}" if finished.error and finished.status == "failed" else ""))
            done += 1
            _tell_study("after_run", after_run, store, finished, log=log)  # the study queues what comes next
            idle_since = time.monotonic()
    finally:
        stop.log = None
        beat_stop.set()
        if worker_id is not None:
            try:
                store.remove_worker(worker_id)
            except StoreError:  # the store failed: the worker's one error line says so; the row goes stale
                pass
            except Exception as exc:  # its row goes stale and is no longer counted as live
                logger.warning("worker %s: could not unregister (%s: %s)", worker_id, type(exc).__name__, exc)
        if own_signals:
            stop.uninstall()
    return done


def _wait_for_work(store: RunStore, stopped: threading.Event, poll: float, tick: float = 0.1) -> None:
    """Wait up to `poll` seconds, less when a run is queued on this machine (queue_run touches a wake
    file: a stat every `tick` s costs next to nothing, where asking the store that often would cost
    a few % of a core) or when the worker is stopped."""
    from core.store.queue import queued_mark

    mark, deadline = queued_mark(store.url), time.monotonic() + poll
    while not stopped.wait(min(tick, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or queued_mark(store.url) != mark:
            return


def _tell_study(what: str, call: Callable, *args, log: Callable[[str], None]):
    """`call(*args)` for the study (top up, prune, tell); a study that fails never stops the worker.

    The runs already queued still train, and a run whose pruner cannot be built trains to its end;
    the log says why nothing more was queued or pruned.
    """
    try:
        return call(*args)
    except Exception as exc:
        log(f"worker: study {what} failed: {type(exc).__name__}: {exc}")
        logger.debug("study %s failed", what, exc_info=True)
        return None


def _import_keras() -> None:
    try:
        import keras  # noqa: F401
    except Exception:  # silent on purpose: a broken install shows up in the run that needs it, with its message
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
