"""Process-wide state for the pages: the settings (`--db`, `--data`, `--no-worker`), the cached
store, the dataset's info, and the selections a page remembers for this browser session.

It only reads: starting a worker or the warm-up thread is dashboard/background.py's job.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

import streamlit as st

from core import settings
from core.data.dataset import DataError, DatasetInfo, dataset_info
from core.store.facade import RunStore
from core.store.schema import RunNotFound
from dashboard.nav import page_link

LIVE_EVERY = 2.0  # seconds between refreshes of a live panel (Train, Study); each tick costs every viewer a run


def _args() -> argparse.Namespace:
    """`--db` / `--data` given after `--` on the streamlit command line (else env, else defaults)."""
    return _parse(tuple(sys.argv[1:]))


@functools.lru_cache(maxsize=4)
def _parse(argv: tuple[str, ...]) -> argparse.Namespace:
    """Parsed once per command line: every page asks for the store on every rerun."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--db")
    parser.add_argument("--data")
    parser.add_argument("--no-worker", action="store_true")  # workers run elsewhere: never start one here
    args, _ = parser.parse_known_args(list(argv))
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


# -- runs deleted elsewhere: in another tab, by a teammate, or with `core delete` ------------------
DELETED_CHECK_EVERY = 5.0  # seconds between two checks that the runs a page shows still exist


def missing_runs(store: RunStore, run_ids) -> list[str]:
    """Which of `run_ids` no longer exist in the store."""
    gone = []
    for run_id in run_ids:
        try:
            store.get_run(run_id)
        except RunNotFound:
            gone.append(run_id)
    return gone


ELSEWHERE = "in another tab, by someone else or with `core delete`"


def deleted_notice(message: str = f"This run was deleted ({ELSEWHERE}).") -> None:
    """Say that what the page showed was deleted, with a way back, instead of empty curves or a
    download button that does nothing."""
    st.error(message, icon=":material/delete:")
    page_link("runs", "Back to Runs", icon=":material/arrow_back:")


def watch_for_deletion(store: RunStore, run_ids) -> None:
    """Rerun the whole page as soon as one of `run_ids` is deleted elsewhere, so the page can say so
    (checked every DELETED_CHECK_EVERY seconds, in a fragment that draws nothing)."""
    ids = list(run_ids)

    @st.fragment(run_every=DELETED_CHECK_EVERY)
    def check() -> None:
        if missing_runs(store, ids):
            st.rerun()
    check()
