"""The first layer's kernels on the Run detail page, read from the run's model file once per
model version (from the file's weights when it can, so no TensorFlow import).
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.predict.preprocess import InferenceError
from core.store.facade import RunStore
from core.store.schema import StoreError
from dashboard.charts import conv_kernels


@st.cache_data(max_entries=16, show_spinner=False)
def _kernels(url: str, run_id: str, version: str, _store: RunStore) -> np.ndarray | None:
    from core.predict.ensemble import first_conv_kernels, model_for_run

    try:
        return first_conv_kernels(_store, run_id)  # from the file's weights: no TensorFlow import
    except LookupError:  # a file laid out otherwise (another Keras version): load the model itself
        return conv_kernels(model_for_run(_store, run_id))


def first_layer_kernels(store: RunStore, run_id: str) -> tuple[np.ndarray | None, str]:
    """The run's first Conv2D kernels (filters, k, k), cached per model file; or (None, why not)."""
    version = store.model_version(run_id)  # its hash in the store: the same on every machine
    try:
        if not version:
            raise FileNotFoundError
        kernels = _kernels(store.url, run_id, version, store)
    except FileNotFoundError:
        return None, f"The model file of run {run_id} is missing from the store, so its kernels cannot be shown."
    except (InferenceError, StoreError) as exc:
        return None, f"The kernels cannot be shown: {exc}"
    if kernels is None:
        return None, "This model has no Conv2D layer."
    return kernels, ""
