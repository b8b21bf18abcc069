"""The models the pages load, cached per store, run and model file version, and the completed
runs they are chosen from. The Draw page's predictions and explanations and the background
warm-up share this one cache, so a model loaded by one is ready for the others.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.predict.ensemble import model_for_run
from core.store.facade import RunStore
from core.store.schema import FINISHED
from dashboard import poll


def completed_runs(store: RunStore) -> pd.DataFrame:
    """Runs that ended with a model and a test evaluation (completed, and pruned: a study stopped it
    early but kept its model), best test accuracy first (runs without one last)."""
    runs = store.list_runs()
    runs = runs[runs["status"].isin(FINISHED)]
    return runs.sort_values("test_accuracy", ascending=False, na_position="last", kind="stable")


VERSION_EVERY = 10.0       # seconds a run's model version is trusted before it is read again


def model_version(store: RunStore, run_id: str) -> str:
    """The model's version (its hash in the store: a run trained on another machine loads the same
    way), read at most every VERSION_EVERY seconds for the whole process (dashboard/poll.py): a
    drawing asks for it several times, and every visitor drawing at once would read it again."""
    return poll.shared((store.url, "model_version", run_id), VERSION_EVERY, lambda: store.model_version(run_id))


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _cached_model(_store: RunStore, url: str, run_id: str, mtime_ns: str):
    """The run's model, cached per store, run id and model file version (errors are not cached)."""
    return model_for_run(_store, run_id)


def cached_model(store: RunStore, run_id: str):
    """The run's model through the cache above (the Draw page's predictions and explanations share it)."""
    return _cached_model(store, store.url, run_id, model_version(store, run_id))
