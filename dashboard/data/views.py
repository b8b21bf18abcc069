"""The Data page's views of the HDF5 dataset: its arrays and overview (cached per file
version), random sample digits, and the label-share bar chart.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st


@st.cache_data(max_entries=2, show_spinner="Loading the dataset…")
def dataset_arrays(path: str, mtime: float) -> dict[str, np.ndarray]:
    """The four arrays of the HDF5 dataset, cached per file version (path + mtime)."""
    from core.data.dataset import load_dataset
    data = load_dataset(path)
    return {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}


def file_mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(max_entries=4, show_spinner=False)
def dataset_overview(path: str, mtime: float) -> dict[str, Any]:
    """Label counts per split and the mean image of each class (train split), cached like the arrays."""
    arrays = dataset_arrays(path, mtime)
    counts = pd.DataFrame({split: np.bincount(arrays[f"y_{split}"], minlength=10) for split in ("train", "test")})
    counts.index.name = "label"
    x, y = arrays["x_train"], arrays["y_train"]
    means = [x[y == c].mean(axis=0) / 255.0 if np.any(y == c) else np.zeros((28, 28)) for c in range(10)]
    return {"counts": counts, "means": means}


def sample_digits(path: str, mtime: float, split: str, label: int | None, n: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to `n` random digits of `split` (optionally one label): (images, labels, indices)."""
    arrays = dataset_arrays(path, mtime)
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    pool = np.flatnonzero(y == label) if label is not None else np.arange(len(y))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False)) if len(pool) else pool
    return x[idx], y[idx], idx


def label_bars(counts: pd.DataFrame) -> go.Figure:
    """Grouped bars: each label's share of each split (so splits of any size compare), counts in the hover."""
    fig = go.Figure()
    for split, colour in (("train", "#1f77b4"), ("test", "#ff7f0e")):
        share = counts[split] / max(counts[split].sum(), 1)
        fig.add_bar(x=[str(i) for i in counts.index], y=share, name=f"{split} ({counts[split].sum():,} digits)",
                    marker_color=colour, customdata=counts[split],
                    hovertemplate=f"{split}, label %{{x}}: %{{customdata:,}} digits (%{{y:.1%}})<extra></extra>")
    fig.update_layout(barmode="group", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "y": 1.12})
    fig.update_xaxes(type="category", title="label")
    fig.update_yaxes(tickformat=".0%", title="share of the split")
    return fig
