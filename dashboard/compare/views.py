"""The Compare page's three tabs: overlaid histories, hyperparameters against results
(parallel coordinates), and confusion matrices with the difference between two runs.

Each function draws one tab's content; the page calls only the open tab's (lazy tabs).
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import streamlit as st

from core.store.facade import RunStore
from core.search.repeats import history_band
from dashboard import charts, light_chart
from dashboard.compare.charts import BANDS, band_lines
from dashboard.compare.groups import Selection, group_frame, summed_confusion
from dashboard.compare.tables import confusion_changes, evaluations, varying
from dashboard.run_list import HYPERPARAMETERS, METRICS, all_groups

METRIC_NAMES = {"accuracy": "accuracy", "loss": "loss", "learning_rate": "learning rate",
                "epoch_seconds": "seconds per epoch"}


def histories(store: RunStore, selections: list[Selection],
              steps_per_epoch: Mapping[str, int | None] | None = None) -> None:
    """Overlaid histories for one metric; refreshes while any chosen run is live.

    Single runs are lines, as on Run detail; a group of repeats is its mean with a band (±1 std,
    standard error or min–max) and, on request, its runs as thin lines. `steps_per_epoch` (run id
    -> its own) leaves out the epoch end Keras reports for a run cancelled mid-epoch."""
    grouped = any(s.is_group for s in selections)
    c1, c2, c3, c4 = st.columns([1.2, 1, 1.4, 1.6])
    metric = c1.selectbox("Metric", list(METRIC_NAMES), key="compare_metric", format_func=METRIC_NAMES.get)
    level = c2.segmented_control("Level", ["epoch", "batch"], default="epoch", key="compare_level", required=True) or "epoch"
    split = c3.segmented_control("Split", ["train", "validation", "both"], default="both", key="compare_split", required=True) or "both"
    smoothing = c4.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="compare_smoothing")
    if grouped:
        b1, b2 = st.columns([2, 1], vertical_alignment="bottom")
        band = b1.segmented_control("Band around each group's mean", list(BANDS), default="±1 std", key="compare_band",
                                    required=True) or "±1 std"
        show_members = b2.toggle("Show members", key="compare_members", help="each run of a group as a thin line")
    keys = {"train": [metric], "validation": [f"val_{metric}"], "both": [metric, f"val_{metric}"]}[split]
    chosen = [r for s in selections for r in s.run_ids]
    history = store.histories(chosen, level)
    if level == "epoch":
        history = charts.complete_epochs(history, steps_per_epoch)
    if level == "batch" and split != "train":  # validation exists per epoch only: place it at each epoch's end
        epochs = charts.complete_epochs(store.histories(chosen, "epoch", keys=[f"val_{metric}"]), steps_per_epoch)
        history = pd.concat([history, epochs]) if not epochs.empty else history
    x = "step" if level == "batch" else "epoch"
    if not grouped:
        fig = charts.metric_lines(history, keys, smoothing, x=x, names={s.run_ids[0]: s.label for s in selections},
                                  log_y=metric == "learning_rate", height=380)
    else:
        if smoothing > 0 and not history.empty:  # each run smoothed, then averaged
            history = history.sort_values(x).assign(value=lambda h: h.groupby(["run_id", "key"])["value"].transform(
                lambda v: charts.smooth(v.to_numpy(dtype=float), smoothing)))
        rows = {s.label: history[history["run_id"].isin(s.run_ids)] if not history.empty else history
                for s in selections}
        fig = band_lines({label: history_band(r, x) for label, r in rows.items()}, keys, BANDS[band], x,
                         members=rows if show_members else None, log_y=metric == "learning_rate")
    light_chart.plotly_chart(fig, key="compare_history_chart")
    if grouped:
        st.caption(f"Each group: the mean of its runs, with a band of {band} around it; hover a point for N, "
                   "the runs with a value there.")
    if level == "batch":
        st.caption("Batch level: running means within each epoch (they restart at every epoch); "
                   "validation points sit at each epoch's last step.")


def hyperparameters(runs: pd.DataFrame, selections: list[Selection], group: str | None) -> None:
    """Parallel coordinates: hyperparameters against one result, over a chosen pool of runs; the
    selections themselves are one line each (a group at its mean)."""
    groups = all_groups(runs)
    scopes = ["these runs", "all runs", *[f"group: {g}" for g in groups]]
    p1, p2 = st.columns(2)
    scope = p1.selectbox("Runs shown", scopes, key="compare_scope",  # the runs chosen above, unless a group's link
                         index=scopes.index(f"group: {group}") if group else 0)
    color = p2.selectbox("Result", list(METRICS), key="compare_color", format_func=METRICS.get)
    pool = (runs if scope == "all runs" else group_frame(runs, selections, METRICS) if scope == "these runs"
            else runs[runs["group_name"] == scope.removeprefix("group: ")])
    dims = varying(pool, (*HYPERPARAMETERS, "n_params"))
    if not dims:
        st.info("The runs shown share all their hyperparameters: nothing to plot against the result.")
        return
    light_chart.plotly_chart(charts.parallel_coordinates(pool, dims, color), key="compare_parcoords")
    grouped = scope == "these runs" and any(s.is_group for s in selections)
    lines = "selections; one line per selection, a group at its mean" if grouped else "runs; one line per run"
    st.caption(f"{len(pool)} {lines}. Drag along an axis to highlight a range.")


def confusion(store: RunStore, selections: list[Selection]) -> None:
    """Each selection's test confusion matrix (a group's summed over its runs) in one figure, then A − B."""
    evals = evaluations(store, [r for s in selections for r in s.run_ids])
    missing = [s.label for s in selections if not any(r in evals for r in s.run_ids)]
    if missing:
        st.caption("No test evaluation yet (not completed): " + ", ".join(missing))
    matrices = {s.letter: summed_confusion(evals[r].confusion for r in s.run_ids if r in evals) for s in selections}
    sizes = {s.letter: sum(evals[r].n for r in s.run_ids if r in evals) for s in selections}
    names = {s.letter: s.label for s in selections}
    matrices = {k: m for k, m in matrices.items() if m is not None}
    if not matrices:
        st.info("None of these runs has a test evaluation yet: it is made when a run completes.")
        return
    same_size = len({sizes[k] for k in matrices}) == 1
    normalise = st.toggle("Row-normalised (share of each true digit)", key="compare_normalise", value=not same_size)
    light_chart.plotly_chart(charts.confusion_grid({names[k]: m for k, m in matrices.items()}, normalise),
                             key="compare_confusion")
    st.caption("Test set. Rows: the true digit; columns: the predicted digit. A group's matrix is the sum of its "
               "runs'. Hover a cell for its count and share.")
    if len(matrices) < 2:
        return
    st.markdown("##### Difference: which mistakes a change fixed or broke")
    with_eval = list(matrices)
    d1, d2 = st.columns(2)
    a = d1.selectbox("A", with_eval, index=0, key="compare_a", format_func=names.get)
    b = d2.selectbox("B", with_eval, index=1, key="compare_b", format_func=names.get)
    if a == b:
        st.info("Pick two different runs or groups as A and B.")
        return
    rates = sizes[a] != sizes[b]  # counts of mistakes grow with the digits tested: compare shares then
    left, right = st.columns([3, 2])
    with left:
        light_chart.plotly_chart(charts.difference_heatmap(matrices[a], matrices[b], (a, b), normalise or rates),
                                 key="compare_difference")
    changes = confusion_changes(matrices[a], matrices[b], rates=rates)
    with right:
        st.caption(f"A = {names[a]}, B = {names[b]}. Blue cells: A does better (more correct on the "
                   "diagonal, fewer of a mistake elsewhere); red: worse.")
        if rates:
            st.caption(f"A was tested on {sizes[a]:,} digits and B on {sizes[b]:,}"
                       + (" (its runs' test sets added)" if any(s.is_group for s in selections) else "")
                       + ": raw counts of mistakes would not compare, so each mistake is its share of that "
                       "true digit's test digits, in %.")
        if changes.empty:
            st.info("Both make exactly the same mistakes.")
        else:
            st.dataframe(changes, hide_index=True, key="compare_changes", placeholder="—")
