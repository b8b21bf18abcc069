"""The live panel's curves: loss and accuracy over training, built once per tick for every viewer.

The figures of a tick are shared by every session watching the run (dashboard/train/live.py reads
them through dashboard/poll.py), so what a figure costs to turn into what the browser is sent is
made once, when it is built (`SharedFigure` keeps its dict, dashboard/plotly_json.py its JSON), not
once per viewer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard import light_chart, plotly_json
from dashboard.charts import complete_epochs

plotly_json.install()  # a chart gets a shared figure's JSON from the figure (fails loudly if changed)


def window_means(batches: pd.DataFrame, steps_per_epoch: int | None) -> pd.DataFrame:
    """Turn Keras' running means (reset every epoch) into the mean over each logging window.

    Keras logs, after in-epoch batch s, the mean m(s) of batches 1..s; the batches between two
    samples s1 < s2 averaged (m2·s2 − m1·s1) / (s2 − s1). Unlike the running mean, this curve
    does not jump when an epoch starts. Without steps per epoch the rows are returned as they are.
    """
    if batches.empty or not steps_per_epoch:
        return batches
    rows = batches.sort_values(["key", "step"], kind="stable").reset_index(drop=True)
    key, epoch = rows["key"].to_numpy(), rows["epoch"].to_numpy()
    s = (rows["step"] - (rows["epoch"] - 1) * steps_per_epoch).to_numpy(dtype=float)
    m = rows["value"].to_numpy(dtype=float)
    # The sample before each one in the same key and epoch (none: the epoch's start, 0 batches, mean 0).
    first = np.ones(len(rows), bool)
    first[1:] = (key[1:] != key[:-1]) | (epoch[1:] != epoch[:-1])
    prev_s = np.where(first, 0.0, np.concatenate([[0.0], s[:-1]]))
    prev_m = np.where(first, 0.0, np.concatenate([[0.0], m[:-1]]))
    with np.errstate(invalid="ignore", divide="ignore"):
        window = np.where(s > prev_s, (m * s - prev_m * prev_s) / (s - prev_s), m)
    return rows.assign(value=window)


class SharedFigure(go.Figure):
    """A figure that every viewer of a tick is sent: its dict is made once, on the first `to_dict()`.

    A chart (dashboard/light_chart.py, as `st.plotly_chart`) turns a figure into JSON (`to_dict()`, a
    deep copy of the whole figure, then encoding) for each viewer on each tick; the live panel's
    figures are built once per tick for everyone (`shared_read`), so their dict and JSON
    (`plotly_json.keep_json`) are too. Do not change the figure after its first `to_dict()`."""

    def to_dict(self) -> dict:
        made = self.__dict__.get("_digitlab_dict")
        if made is None:
            made = self.__dict__["_digitlab_dict"] = plotly_json.FigureDict(super().to_dict())
        return made


def curves_figure(batches: pd.DataFrame, epochs: pd.DataFrame, metric: str, steps_per_epoch: int | None,
                  title: str) -> go.Figure:
    """One metric over training: the mean per logging window as a thin line, epoch train/val as points.

    The x axis is in epochs (batch step / steps per epoch), so both scopes share it: epoch 1
    spans 0 to 1, its training mean is drawn at 0.5 and its validation value at 1.
    """
    spe = steps_per_epoch or 1
    traces = []
    b = window_means(batches[batches["key"] == metric], steps_per_epoch)
    if len(b):
        traces.append({"type": "scatter", "x": (b["step"] / spe).to_numpy(), "y": b["value"].to_numpy(),
                       "mode": "lines", "name": f"{metric} (batches)", "line": {"width": 1.5, "color": "#9ab8d8"}})
    # A training value is the mean over its epoch, so it sits mid-epoch; validation is measured at the end.
    for key, colour, shift, what in ((metric, "#1f77b4", 0.5, "epoch mean"),
                                     (f"val_{metric}", "#ff7f0e", 0.0, "end of epoch")):
        e = epochs[epochs["key"] == key]
        if len(e):
            traces.append({"type": "scatter", "x": (e["epoch"] - shift).to_numpy(), "y": e["value"].to_numpy(),
                           "mode": "lines+markers", "name": f"{key} ({what})", "line": {"color": colour}})
    layout = {"title": {"text": title}, "height": 320, "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
              "xaxis": {"title": {"text": "epoch"}}, "legend": {"orientation": "h", "y": -0.25},
              "hovermode": "x unified"}
    if metric == "accuracy":
        layout["yaxis"] = {"tickformat": ".0%"}
    # One dict, not add_scatter/update_* calls: Plotly validates each call's property paths, which
    # made building the tick's two figures take 2.5 times as long.
    return SharedFigure({"data": traces, "layout": layout})


def curve_figures(batches: pd.DataFrame, epochs: pd.DataFrame,
                  steps_per_epoch: int | None) -> tuple[go.Figure, go.Figure] | None:
    """The loss and accuracy figures of a run's rows (None before its first logging window)."""
    epochs = complete_epochs(epochs, steps_per_epoch)
    if not len(batches) and not len(epochs):
        return None
    figures = (curves_figure(batches, epochs, "loss", steps_per_epoch, "Loss"),
               curves_figure(batches, epochs, "accuracy", steps_per_epoch, "Accuracy"))
    for fig in figures:
        plotly_json.keep_json(fig)  # made now, inside the tick's one shared read, not by each viewer's chart
    return figures


def show_curves(figures: tuple[go.Figure, go.Figure] | None, key: str) -> None:
    if figures is None:
        st.caption("Curves appear after the first logging window (about a second of training).")
        return
    left, right = st.columns(2)
    with left:
        light_chart.plotly_chart(figures[0], key=f"loss_{key}")
    with right:
        light_chart.plotly_chart(figures[1], key=f"acc_{key}")


