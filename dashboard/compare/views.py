"""The Compare page's three tabs: overlaid histories, hyperparameters against results
(parallel coordinates), and confusion matrices with the difference between two runs.

Each function draws one tab's content; the page calls only the open tab's (lazy tabs).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import streamlit as st

from core.store.facade import RunStore
from dashboard import charts
from dashboard.compare.tables import confusion_changes, evaluations, varying
from dashboard.run_list import HYPERPARAMETERS, METRICS, all_groups

METRIC_NAMES = {"accuracy": "accuracy", "loss": "loss", "learning_rate": "learning rate",
                "epoch_seconds": "seconds per epoch"}


def histories(store: RunStore, chosen: list[str], labels: Mapping[str, str],
              steps_per_epoch: Mapping[str, int | None] | None = None) -> None:
    """Overlaid histories for one metric; refreshes while any chosen run is live.

    `steps_per_epoch` (run id -> its own) leaves out the epoch end Keras reports for a run
    cancelled mid-epoch."""
    c1, c2, c3, c4 = st.columns([1.2, 1, 1.4, 1.6])
    metric = c1.selectbox("Metric", list(METRIC_NAMES), key="compare_metric", format_func=METRIC_NAMES.get)
    level = c2.segmented_control("Level", ["epoch", "batch"], default="epoch", key="compare_level", required=True) or "epoch"
    split = c3.segmented_control("Split", ["train", "validation", "both"], default="both", key="compare_split", required=True) or "both"
    smoothing = c4.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="compare_smoothing")
    keys = {"train": [metric], "validation": [f"val_{metric}"], "both": [metric, f"val_{metric}"]}[split]
    history = store.histories(chosen, level)
    if level == "epoch":
        history = charts.complete_epochs(history, steps_per_epoch)
    if level == "batch" and split != "train":  # validation exists per epoch only: place it at each epoch's end
        epochs = charts.complete_epochs(store.histories(chosen, "epoch", keys=[f"val_{metric}"]), steps_per_epoch)
        history = pd.concat([history, epochs]) if not epochs.empty else history
    fig = charts.metric_lines(history, keys, smoothing, x="step" if level == "batch" else "epoch",
                              names={r: labels[r] for r in chosen},
                              log_y=metric == "learning_rate", height=380)
    st.plotly_chart(fig, key="compare_history_chart")
    if level == "batch":
        st.caption("Batch level: running means within each epoch (they restart at every epoch); "
                   "validation points sit at each epoch's last step.")


def hyperparameters(runs: pd.DataFrame, selected: pd.DataFrame, group: str | None) -> None:
    """Parallel coordinates: each run's hyperparameters against one result, over a chosen pool of runs."""
    groups = all_groups(runs)
    scopes = ["these runs", "all runs", *[f"group: {g}" for g in groups]]
    p1, p2 = st.columns(2)
    scope = p1.selectbox("Runs shown", scopes, key="compare_scope",  # the runs chosen above, unless a group's link
                         index=scopes.index(f"group: {group}") if group else 0)
    color = p2.selectbox("Result", list(METRICS), key="compare_color", format_func=METRICS.get)
    pool = (runs if scope == "all runs" else selected if scope == "these runs"
            else runs[runs["group_name"] == scope.removeprefix("group: ")])
    dims = varying(pool, (*HYPERPARAMETERS, "n_params"))
    if not dims:
        st.info("The runs shown share all their hyperparameters: nothing to plot against the result.")
        return
    st.plotly_chart(charts.parallel_coordinates(pool, dims, color), key="compare_parcoords")
    st.caption(f"{len(pool)} runs; one line per run. Drag along an axis to highlight a range.")


def confusion(store: RunStore, chosen: list[str], labels: Mapping[str, str]) -> None:
    """Every chosen run's test confusion matrix in one figure, then run A − run B."""
    evals = evaluations(store, chosen)
    missing = [labels[r] for r in chosen if r not in evals]
    if missing:
        st.caption("No test evaluation yet (not completed): " + ", ".join(missing))
    if not evals:
        st.info("None of these runs has a test evaluation yet: it is made when a run completes.")
        return
    normalise = st.toggle("Row-normalised (share of each true digit)", key="compare_normalise",
                          value=len({ev.n for ev in evals.values()}) > 1)
    st.plotly_chart(charts.confusion_grid({labels[r]: ev.confusion for r, ev in evals.items()}, normalise),
                    key="compare_confusion")
    st.caption("Test set. Rows: the true digit; columns: the predicted digit. Hover a cell for its count and share.")
    if len(evals) < 2:
        return
    st.markdown("##### Difference: which mistakes a change fixed or broke")
    with_eval = list(evals)
    d1, d2 = st.columns(2)
    a = d1.selectbox("Run A", with_eval, index=0, key="compare_a", format_func=lambda r: labels[r])
    b = d2.selectbox("Run B", with_eval, index=1, key="compare_b", format_func=lambda r: labels[r])
    if a == b:
        st.info("Pick two different runs as A and B.")
        return
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.difference_heatmap(evals[a].confusion, evals[b].confusion, ("A", "B"), normalise),
                      key="compare_difference")
    changes = confusion_changes(evals[a].confusion, evals[b].confusion)
    with right:
        st.caption(f"A = {labels[a]}, B = {labels[b]}. Blue cells: A does better (more correct on the "
                   "diagonal, fewer of a mistake elsewhere); red: worse.")
        if changes.empty:
            st.info("Both runs make exactly the same mistakes.")
        else:
            st.dataframe(changes, hide_index=True, key="compare_changes", placeholder="—")
