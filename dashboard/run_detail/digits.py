"""The test digits the Run detail page shows (its misclassified gallery), read from the dataset
file once per file version and checked against the labels the run's evaluation recorded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import streamlit as st

from core.data.dataset import DataError, load_dataset


@st.cache_data(max_entries=4, show_spinner="Loading the test digits…")
def _test_split(path: str, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset(path)
    return data.x_test, data.y_test


def gallery_digits(path: str | Path, indices: Sequence[int], labels: Sequence[int]) -> tuple[np.ndarray | None, str]:
    """Test images at `indices`, checked against their recorded true `labels`.

    Returns (images, "") or (None, why not): no dataset, or a test split that changed since
    the run was evaluated (the indices would show the wrong digits).
    """
    path = Path(path)
    try:
        x_test, y_test = _test_split(str(path), path.stat().st_mtime)
    except (OSError, DataError) as exc:
        return None, f"The test digits cannot be shown: {exc}"
    idx = np.asarray(indices, dtype=int)
    if idx.size and (idx.max() >= len(y_test) or not np.array_equal(y_test[idx], np.asarray(labels))):
        return None, ("The dataset's test split is not the one this run was evaluated on (it was re-ingested), "
                      "so its misclassified digits cannot be shown.")
    return x_test[idx], ""
