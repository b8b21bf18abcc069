"""Process-wide state for the pages: the cached store, settings, dataset info, worker, query params."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import streamlit as st

from core import settings
from core.data.dataset import DataError, DatasetInfo, dataset_info
from core.store.facade import RunStore


def _args() -> argparse.Namespace:
    """`--db` / `--data` given after `--` on the streamlit command line (else env, else defaults)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    parser.add_argument("--data")
    parser.add_argument("--no-worker", action="store_true")  # workers run elsewhere: never start one here
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args


def autostart_worker() -> bool:
    """Whether this dashboard starts a local worker (off: `--no-worker`, DIGITLAB_AUTOSTART_WORKER=0)."""
    return settings.autostart_worker() and not _args().no_worker


def db_url() -> str:
    return settings.db_url(_args().db)


def data_path() -> Path:
    return settings.data_path(_args().data)


@st.cache_resource(show_spinner=False)
def _store(url: str) -> RunStore:
    return RunStore(url)


def get_store() -> RunStore:
    """One RunStore (one engine) per store URL for the whole server process."""
    return _store(db_url())


@st.cache_data(ttl=5, show_spinner=False)
def _info(path: str, mtime: float) -> DatasetInfo | None:
    try:
        return dataset_info(path)
    except DataError:
        return None


def get_dataset_info() -> DatasetInfo | None:
    """The loaded dataset's attributes, or None when there is no valid dataset yet."""
    path = data_path()
    mtime = path.stat().st_mtime if path.exists() else 0.0
    return _info(str(path), mtime)


def ensure_worker() -> None:
    """Start a local worker process if none is alive for this store (so one command is enough).

    DIGITLAB_AUTOSTART_WORKER=0, DIGITLAB_NO_WORKER=1 or `--no-worker` turn this off (tests; or a
    team whose workers run on other machines).
    """
    if not autostart_worker():
        return
    from core.worker import ensure_worker as start
    start(get_store(), data_path())


def startup() -> None:
    """Once per browser session: recover runs whose process died; start a worker if runs wait."""
    if st.session_state.get("_digitlab_started"):
        return
    st.session_state["_digitlab_started"] = time.time()
    store = get_store()
    store.recover_stale()
    if not store.list_runs(status="queued").empty and get_dataset_info() is not None:
        ensure_worker()


def dataset_banner() -> None:
    """The loud notice when only the offline 5,000-digit sample is loaded, or nothing at all."""
    info = get_dataset_info()
    if info is None:
        st.warning("No dataset yet: open the **Data** page to ingest MNIST (one click), or run "
                   "`.venv/bin/python -m core ingest --from PATH`.", icon=":material/warning:")
    elif info.offline_sample:
        st.warning(f"Using the offline 5,000-digit MNIST sample ({info.n_train:,} train / {info.n_test:,} test), "
                   "not full MNIST: accuracy will be lower. Get the full set: put the four MNIST IDX files or a "
                   "mnist.npz in a folder, then ingest it on the **Data** page or with `make ingest FROM=DIR` "
                   "(`.venv/bin/python -m core ingest --from DIR`).",
                   icon=":material/warning:")


def query_runs() -> list[str]:
    """Run ids from `?runs=ID1,ID2` (Compare) or `?run=ID` (Run detail)."""
    value = st.query_params.get("runs") or st.query_params.get("run") or ""
    return [v for v in (s.strip() for s in value.split(",")) if v]


def runs_or_stop():
    """The store and all its runs (read fresh: a live run's status is never cached); with no runs,
    says how to start one and ends the page."""
    store = get_store()
    runs = store.list_runs()
    if runs.empty:
        st.info("No runs yet. Start one on the **Train** page or with `.venv/bin/python -m core train`.")
        st.stop()
    return store, runs


# -- remembered selections: Run detail and Compare open on what was looked at last this session ----
def remember(page: str, value) -> None:
    """Keep a page's selection for this browser session (widget state is dropped when the page is left)."""
    st.session_state[f"_digitlab_pick_{page}"] = value


def remembered(page: str):
    """The selection `remember` kept for `page` this session, else None."""
    return st.session_state.get(f"_digitlab_pick_{page}")



# -- warm-up: the first prediction and the first training run start without a cold wait --------------
WARM_WORKER_EVERY = 60.0  # seconds between two checks that a local worker is up (it exits after 10 idle minutes)


@st.cache_resource(show_spinner=False)
def _warm_up(url: str) -> dict:
    """Once per server process: in a background thread, start a local worker (it imports Keras while
    idle), import Keras here, load the Draw page's default model into its cache and trace its
    predict function. Returns the shared status dict the sidebar line reads."""
    import threading

    status = {"stage": "Importing Keras (once per server start)…", "done": False, "error": None,
              "started": time.time(), "seconds": None}

    def work() -> None:
        try:
            warm_worker()
            import keras  # noqa: F401  (the slow part: 5-10 s on these machines)
            import numpy as np

            from core.predict.inference import predict_probabilities
            from dashboard import draw_predictions

            runs = draw_predictions.completed_runs(get_store())
            if not runs.empty:
                row = runs.iloc[0]  # what the Draw page asks first: the best run by test accuracy
                status["stage"] = f"Loading the model of {row['name']}…"
                model = draw_predictions.cached_model(get_store(), row["run_id"])
                predict_probabilities(model, np.zeros((28, 28), dtype="float32"))  # traces predict once
            status.update(stage="Ready", done=True, seconds=time.time() - status["started"])
        except Exception as exc:  # a warm-up that fails only means the first use waits as before
            status.update(stage="Warm-up skipped", done=True, error=f"{type(exc).__name__}: {exc}",
                          seconds=time.time() - status["started"])

    threading.Thread(target=work, name="digitlab-warm-up", daemon=True).start()
    return status


def warm_up() -> dict | None:
    """Start the warm-up (once per server process; DIGITLAB_WARMUP=0 turns it off) and return its status."""
    import os

    if os.environ.get("DIGITLAB_WARMUP", "1").lower() in ("0", "false", "no"):
        return None
    return _warm_up(db_url())


@st.cache_resource(show_spinner=False)
def _worker_checks() -> dict:
    return {"last": 0.0}


def warm_worker(background: bool = False) -> None:
    """Make sure a local worker is up when one could be needed soon (it imports Keras while idle, so
    a run launched a minute later starts training at once); at most every WARM_WORKER_EVERY seconds.
    Never raises: the Launch button starts one too. `background`: without waiting for it."""
    checks = _worker_checks()
    if time.time() - checks["last"] < WARM_WORKER_EVERY or get_dataset_info() is None:
        return
    checks["last"] = time.time()

    def start() -> None:
        try:
            ensure_worker()
        except Exception:
            pass
    if background:
        import threading
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
