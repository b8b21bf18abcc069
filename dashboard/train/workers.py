"""The Workers panel (Train page): every live worker on any machine, what it trains, when it last beat.

Reads `RunStore.workers_overview()` (heartbeat ages on the database server's clock, so a worker
host with a skewed clock shows the right age) and refreshes itself every few seconds; the read of
a tick is shared by every visitor (dashboard/poll.py).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.store.facade import RunStore
from dashboard import poll, state
from dashboard.format import duration_text

REFRESH = 5.0  # seconds between refreshes (workers beat every 5 s)


def workers_panel(store: RunStore) -> None:
    """A table of the live workers, and whether this dashboard starts one itself."""
    st.subheader("Workers")
    auto = state.autostart_worker()

    @st.fragment(run_every=REFRESH)
    def body() -> None:
        workers = poll.shared((store.url, "workers_overview"), REFRESH, store.workers_overview)  # one read a tick
        if workers.empty:
            st.caption("No worker is up yet. " + (  # the Train page warms one up in the background
                "This dashboard is starting one on this machine (about 10 s: it imports Keras first); it "
                "trains queued runs as soon as it is up." if auto else
                "This dashboard does not start one (auto-start is off): start "
                f"`.venv/bin/python -m core worker --db {_url_hint(store)} --data PATH` on a machine with the dataset."))
            return
        st.dataframe(_rows(workers), hide_index=True, key="workers_table",
                     column_config={"runs done": st.column_config.NumberColumn(format="%d")})
        where = "on this machine and elsewhere" if store.is_postgres else "on this machine"
        one = len(workers) == 1
        st.caption(f"{len(workers)} worker{'' if one else 's'} {where} take{'s' if one else ''} queued runs from "
                   f"{store.where}. " + ("" if auto else "Auto-start of a local worker is off."))
    body()


def _rows(workers: pd.DataFrame) -> pd.DataFrame:
    """The panel's columns: host, pid, current run, last heartbeat, runs done, up for."""
    running = [f"{name} · {run_id}" if run_id else "idle" for run_id, name in zip(workers["run_id"], workers["run_name"])]
    return pd.DataFrame({
        "host": workers["host"], "pid": workers["pid"], "current run": running,
        "last heartbeat": [f"{duration_text(age)} ago" for age in workers["heartbeat_age"]],
        "runs done": workers["runs_done"],
    })


def _url_hint(store: RunStore) -> str:
    """The store URL to give a worker elsewhere: the password hidden (type it in yourself)."""
    return store.where if store.is_postgres else "URL"
