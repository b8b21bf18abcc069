"""A grid sweep on the Train page: the (hyperparameter, values) inputs, the preview of the runs
the grid makes, and the progress of a queued group (or study) with links to its study view and,
once it ends, to Compare. The Optuna study form lives in dashboard/study_views.py.

Widgets always get explicit keys (``sweep_field_<i>``, ``sweep_values_<i>_<field>``).
"""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.config import HELP
from core.store.facade import RunStore
from core.search.study import get_study
from core.search.sweep import CHOICES, MAX_FIELDS, SWEEPABLE, group_progress, parse_values
from dashboard.nav import page_link
from dashboard.state import LIVE_EVERY

SWEEP_EXAMPLES = {"learning_rate": "1e-2, 1e-3, 1e-4", "batch_size": "64, 128", "epochs": "3, 5",
                  "dropout": "0.2, 0.5", "validation_split": "0.1, 0.2", "seed": "1, 2, 3",
                  "early_stopping": "0, 3", "train_limit": "1000, 5000"}
NO_FIELD = "—"


def sweep_inputs() -> tuple[dict[str, list], list[str]]:
    """Up to three (hyperparameter, values) rows; returns the grid and the input errors."""
    grid: dict[str, list] = {}
    errors: list[str] = []
    for i in range(MAX_FIELDS):
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        field = left.selectbox(f"Hyperparameter {i + 1}", (NO_FIELD, *SWEEPABLE), key=f"sweep_field_{i}",
                               help=HELP.get(st.session_state.get(f"sweep_field_{i}"), "Pick a hyperparameter to vary."))
        if field == NO_FIELD:
            continue
        kind = SWEEPABLE[field]
        with right:
            if kind in ("choice", "bool"):
                options = CHOICES.get(field, (False, True))
                values = st.multiselect(f"Values of {field}", options, key=f"sweep_values_{i}_{field}",
                                        format_func=str)
            else:
                text = st.text_input(f"Values of {field} (comma-separated)", key=f"sweep_values_{i}_{field}",
                                     placeholder=SWEEP_EXAMPLES.get(field, ""))
                try:
                    values = parse_values(field, text) if text.strip() else []
                except Exception as exc:  # ConfigError: one line under the inputs
                    errors.append(str(exc))
                    values = []
        if field in grid:
            errors.append(f"{field} is chosen twice: pick each hyperparameter once")
        elif values:
            grid[field] = list(values)
    return grid, errors


def sweep_preview(grid: dict[str, list]) -> int:
    """Show how many runs the grid makes (and which); returns that number."""
    n = math.prod(len(v) for v in grid.values()) if grid else 0
    if n:
        combos = pd.MultiIndex.from_product(list(grid.values()), names=list(grid)).to_frame(index=False)
        st.caption(f"{n} run{'s' if n != 1 else ''}: every combination below, queued as one group.")
        st.dataframe(combos, hide_index=True, height=min(38 + 35 * n, 300))
    return n


def sweep_panel(store: RunStore, group: str) -> None:
    """A group's progress (queued / running / ended) and, once all ended, a link to Compare."""
    study = get_study(store, group)  # every sweep queued since studies exist is one
    is_study = study is not None
    budget = study.budget if study is not None and study.search != "grid" else None  # a grid queues all at once

    def finished(prog) -> bool:  # a study still to queue runs within its budget has not finished
        return prog.finished and (budget is None or study.stopped or prog.completed + prog.pruned >= budget)

    first = finished(group_progress(store.list_runs(group=group)))

    @st.fragment(run_every=LIVE_EVERY if not first else None)
    def panel() -> None:
        runs = store.list_runs(group=group)
        prog = group_progress(runs)
        if finished(prog) and not first:
            st.rerun()
        counts = (f"{prog.running} running · {prog.queued} queued · {prog.completed} completed"
                  + (f" · {prog.pruned} pruned" if prog.pruned else ""))
        if budget:  # measured against the study's budget, not the runs queued so far ("1 of 2 ended" of 4)
            done = prog.completed + prog.pruned
            st.progress(min(1.0, done / budget), text=f"**{group}**: {done} of {budget} done (its budget) · {counts}")
        else:
            st.progress(prog.fraction, text=f"**{group}**: {prog.ended} of {prog.total} ended · {counts}")
        table = runs.sort_values("created_at")[["name", "status", "test_accuracy", "best_val_accuracy", "run_id"]]
        table = table.assign(test_accuracy=table["test_accuracy"] * 100, best_val_accuracy=table["best_val_accuracy"] * 100)
        percent = {"format": "%.2f%%"}
        st.dataframe(table, hide_index=True, width="stretch", placeholder="—",
                     column_config={"name": st.column_config.TextColumn("name", width="large"),
                                    "test_accuracy": st.column_config.NumberColumn("test accuracy", **percent),
                                    "best_val_accuracy": st.column_config.NumberColumn("best val accuracy", **percent),
                                    "run_id": "run id"})
        if is_study:
            page_link("study", f"Open the study view of {group}", {"study": group}, icon=":material/science:")
        if finished(prog):
            page_link("compare", f"Compare the {prog.total} runs of {group}",
                      {"runs": ",".join(prog.run_ids), "group": group}, icon=":material/compare_arrows:")

    panel()
