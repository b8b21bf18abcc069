"""What the dashboard starts besides its pages: a local worker (core.worker.ensure_worker) when
runs wait and auto-start is on, and, once per server process, a warm-up thread that imports
Keras and loads the Draw page's default model, so the first drawing and the first run do not
wait for either.

Only this module starts processes or threads; dashboard/state.py only reads settings and the
store.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
import time
from pathlib import Path

import streamlit as st

from core.worker import ensure_worker
from dashboard import model_cache, state

log = logging.getLogger("dashboard")

WARM_WORKER_EVERY = 60.0  # seconds between two checks that a local worker is up (it exits after 10 idle minutes)


def start_worker() -> None:
    """Start a local worker process if none is alive for this store (so one command is enough).

    DIGITLAB_AUTOSTART_WORKER=0, DIGITLAB_NO_WORKER=1 or `--no-worker` turn this off (tests; or a
    team whose workers run on other machines).
    """
    if state.autostart_worker():
        pid = ensure_worker(state.get_store(), state.data_path())
        if pid is not None:
            atexit.register(_stop_worker, pid)


def _stop_worker(pid: int) -> None:
    """When the dashboard's server stops, so does the worker it started (SIGTERM: a run in training ends
    cancelled with its metrics kept), instead of idling on for up to 10 minutes. Workers started by
    hand are not the dashboard's and keep running."""
    try:
        if Path("/proc").is_dir() and b"core\x00worker" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return  # it exited long ago and the pid now names another process
        os.kill(pid, signal.SIGTERM)
    except OSError:  # already gone: nothing to stop
        pass


def startup() -> None:
    """Once per browser session: recover runs whose process died; start a worker if runs wait."""
    if st.session_state.get("_digitlab_started"):
        return
    st.session_state["_digitlab_started"] = time.time()
    store = state.get_store()
    store.recover_stale()
    if not store.list_runs(status="queued").empty and state.get_dataset_info() is not None:
        start_worker()


# -- warm-up: the first prediction and the first training run start without a cold wait --------------
@st.cache_resource(show_spinner=False)
def _warm_up(url: str) -> dict:
    """Once per server process: in a background thread, start a local worker (it imports Keras while
    idle), import Keras here, load the Draw page's default model into its cache and trace its
    predict function. Returns the shared status dict the sidebar line reads."""
    status = {"stage": "Importing Keras (once per server start)…", "done": False, "error": None,
              "started": time.time(), "seconds": None}

    def work() -> None:
        try:
            warm_worker()
            import keras  # noqa: F401  (the slow part: 5-10 s on these machines)
            import numpy as np

            from core.predict.inference import predict_probabilities

            runs = model_cache.completed_runs(state.get_store())
            if not runs.empty:
                row = runs.iloc[0]  # what the Draw page asks first: the best run by test accuracy
                status["stage"] = f"Loading the model of {row['name']}…"
                model = model_cache.cached_model(state.get_store(), row["run_id"])
                predict_probabilities(model, np.zeros((28, 28), dtype="float32"))  # traces predict once
            status.update(stage="Ready", done=True, seconds=time.time() - status["started"])
        except Exception as exc:  # a warm-up that fails only means the first use waits as before
            status.update(stage="Warm-up skipped", done=True, error=f"{type(exc).__name__}: {exc}",
                          seconds=time.time() - status["started"])

    threading.Thread(target=work, name="digitlab-warm-up", daemon=True).start()
    return status


def warm_up() -> dict | None:
    """Start the warm-up (once per server process; DIGITLAB_WARMUP=0 turns it off) and return its status."""
    if os.environ.get("DIGITLAB_WARMUP", "1").lower() in ("0", "false", "no"):
        return None
    return _warm_up(state.db_url())


@st.cache_resource(show_spinner=False)
def _worker_checks() -> dict:
    return {"last": 0.0}


def warm_worker(background: bool = False) -> None:
    """Make sure a local worker is up when one could be needed soon (it imports Keras while idle, so
    a run launched a minute later starts training at once); at most every WARM_WORKER_EVERY seconds.
    Never raises: the Launch button starts one too. `background`: without waiting for it."""
    checks = _worker_checks()
    if time.time() - checks["last"] < WARM_WORKER_EVERY or state.get_dataset_info() is None:
        return
    checks["last"] = time.time()

    def start() -> None:
        try:
            start_worker()
        except Exception:  # the Launch button tries again and says why; here it is only a head start
            log.warning("could not start a local worker ahead of time", exc_info=True)
    if background:
        threading.Thread(target=start, name="digitlab-warm-worker", daemon=True).start()
    else:
        start()


def warm_up_status() -> None:
    """One line in the sidebar while the warm-up runs (it refreshes itself), then how long it took."""
    status = warm_up()
    if status is None:
        return

    # It polls while Keras loads, then shows how long that took. It never reruns the whole app to stop
    # its timer: a full rerun started from a fragment before the user's first input made the browser
    # show the Train form's values (set through session state) at the widgets' defaults, learning
    # rate 0 and batch size 8, and send those back with the next edit. The timer stops at the next
    # run of the whole page (any input or page change), where `done` turns run_every off.
    @st.fragment(run_every=1.0 if not status["done"] else None)
    def line() -> None:
        if status["done"]:
            if status["error"] is None:
                st.caption(f":material/check_circle: Warmed up in {status['seconds']:.0f} s: Keras and the "
                           "default model are loaded.")
            return
        st.caption(f":material/hourglass_top: Warming up ({time.time() - status['started']:.0f} s): "
                   f"{status['stage']} Pages work meanwhile; the first drawing is read as soon as this ends.")

    with st.sidebar:
        line()
