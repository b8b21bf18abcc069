"""The Study page's views of one study: progress, the best run, history, importance, slices,
parallel coordinates, intermediate values, and the editor-only actions "stop the study" and
"extend by N runs". The form that starts a study is on the Train page (dashboard/train/).

Every write (stop, extend) asks `require_editor` inside the action itself. Widgets always get
explicit keys (``study_*``).
"""
from __future__ import annotations

import streamlit as st

from core.config import PARAMS, ConfigError
from core.search.report import mixed_datasets_note, summary, trials_table
from core.search.space import describe_spec
from core.search.study import MAX_BUDGET, extend_study, stop_study
from core.store.facade import RunStore
from core.store.schema import StoreError
from dashboard import light_chart, poll
from dashboard.auth import require_editor
from dashboard.charts import key_label, parallel_coordinates
from dashboard.format import percent
from dashboard.nav import page_link
from dashboard.state import LIVE_EVERY
from dashboard.study import charts as study_charts, confirm


EVERY = LIVE_EVERY * 2  # seconds between refreshes of a study in flight


def shared_summary(store: RunStore, name: str) -> dict:
    """The study's summary, read once per refresh tick for every visitor (dashboard/poll.py)."""
    return poll.shared((store.url, "study_summary", name), EVERY, lambda: summary(store, name))


def study_page(store: RunStore, name: str) -> None:
    """Progress, best run, charts and actions of one study; refreshes while its runs are in flight."""
    first = shared_summary(store, name)
    live = first["counts"]["queued"] + first["counts"]["running"] > 0

    @st.fragment(run_every=EVERY if live else None)
    def body() -> None:
        data = shared_summary(store, name)
        if live and data["counts"]["queued"] + data["counts"]["running"] == 0:
            st.rerun()  # it just ended: redraw without the timer
        progress(data)
        best(data)
        confirm.ranking(data)
        charts(store, name, data)
    body()
    actions(store, name, first)


def progress(data: dict) -> None:
    c = data["counts"]
    done = c["completed"] + c["pruned"]
    st.progress(min(1.0, done / data["budget"]) if data["budget"] else 0.0,
                text=f"**{done} of {data['budget']} done** · {c['completed']} completed · {c['pruned']} pruned · "
                     f"{c['running']} running · {c['queued']} queued"
                     + (f" · {c['failed'] + c['interrupted']} failed" if c["failed"] + c["interrupted"] else "")
                     + (" · **stopped**" if data["stopped"] else ""))
    st.caption(f"{data['search']} search · {key_label(data['objective'])} ({data['direction']}) · pruner "
               f"{data['pruner']}"
               + (f" after {max(1, data['warmup_epochs'])} warm-up epoch(s)" if data["pruner"] != "none" else "")
               + " · space: " + "; ".join(f"{label(f)} {describe_spec(s)}" for f, s in data["space"].items()))
    if data.get("mixed_datasets"):
        st.warning(f"This study's {mixed_datasets_note(data['datasets'])}.", icon=":material/dataset:")


def label(field: str) -> str:
    """A study parameter as the Train form names it ("Learning rate")."""
    return PARAMS[field].label if field in PARAMS else field.replace("_", " ")


def objective_text(objective: str, value: float) -> str:
    """An objective value as the rest of the dashboard writes it: accuracies in percent."""
    return f"{value:.2%}" if "accuracy" in objective else f"{value:.4f}"


def best(data: dict) -> None:
    if not data["best_run_id"]:
        st.info("No run has completed yet: the best run appears here as soon as one does.", icon=":material/hourglass:")
        return
    params = ", ".join(f"{label(k).lower()} {v:.4g}" if isinstance(v, float) else f"{label(k).lower()} {v}"
                       for k, v in data["best_params"].items())
    test = f", test accuracy {data['best_test_accuracy']:.2%}" if data["best_test_accuracy"] is not None else ""
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.success(f"**Best run so far**: {key_label(data['objective'])} "
                 f"{objective_text(data['objective'], data['best_value'])}{test} with {params}",
                 icon=":material/trophy:")
    with right:
        page_link("run", "Open the best run", {"run": data["best_run_id"]}, icon=":material/query_stats:")
    confirm.runner_up_warning(data)


def charts(store: RunStore, name: str, data: dict) -> None:
    study, table, values = poll.shared((store.url, "study_trials", name), EVERY, lambda: trials_table(store, name))
    left, right = st.columns([3, 2])
    with left:
        light_chart.plotly_chart(study_charts.history_chart(table, study.objective, study.direction),
                                 key="study_history")
    with right:
        light_chart.plotly_chart(study_charts.importance_chart(data["importance"], data["importance_note"]),
                                 key="study_importance")
    light_chart.plotly_chart(study_charts.intermediate_chart(table, values, study.objective), key="study_intermediate")
    st.markdown("**Slices**: the objective against each parameter")
    fields = list(study.space)
    for start in range(0, len(fields), 3):
        cols = st.columns(3)
        for col, field in zip(cols, fields[start:start + 3]):
            with col:
                light_chart.plotly_chart(study_charts.slice_chart(table, field, study.space[field], study.objective),
                                         key=f"study_slice_{field}")
    finished = table[table["value"].notna()].rename(columns={f"param_{f}": f for f in fields})
    light_chart.plotly_chart(parallel_coordinates(finished.assign(**{study.objective: finished["value"]}), fields,
                                                  study.objective), key="study_parcoords")
    with st.expander(f"The {len(table)} runs", icon=":material/table_rows:"):
        runs_table(table, study.objective, fields)


def runs_table(table, objective: str, fields: list[str]) -> None:
    """The study's runs, newest trial first, with the headers and units the rest of the dashboard uses."""
    accuracy = "accuracy" in objective
    shown = table.sort_values("trial", ascending=False).assign(
        value=percent(table["value"]) if accuracy else table["value"], test_accuracy=percent(table["test_accuracy"]))
    headers = {"trial": "Trial", "name": "Name", "status": "Status", "value": key_label(objective).capitalize()
               + (" %" if accuracy else ""), "epochs_run": "Epochs run", "test_accuracy": "Test accuracy %",
               **{f"param_{f}": label(f) for f in fields}}
    shown = shown[list(headers)].rename(columns=headers)
    in_percent = st.column_config.NumberColumn(format="%.2f %%")
    st.dataframe(shown, hide_index=True, width="stretch", placeholder="—",
                 column_config={"Name": st.column_config.TextColumn(width="large"), "Test accuracy %": in_percent,
                                **({headers["value"]: in_percent} if accuracy else {})})


def actions(store: RunStore, name: str, data: dict) -> None:
    """Stop the study, or extend it by N runs: editor-only, refused inside the action for viewers."""
    st.subheader("Actions")
    confirm.confirm_action(store, name, data)
    left, mid, right = st.columns([1, 1, 1], vertical_alignment="bottom")
    if left.button("Stop the study", key="study_stop", icon=":material/stop_circle:", disabled=data["stopped"],
                   help="queue no more runs and cancel the queued ones; running runs finish"):
        if require_editor("stop a study"):
            try:
                cancelled = stop_study(store, name)
                poll.forget(store.url, "study_summary", name)
            except (ConfigError, StoreError) as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                st.session_state["study_flash"] = f"Stopped {name}: {cancelled} queued run(s) cancelled."
                st.rerun()
    n = mid.number_input("Extend by", min_value=1, max_value=MAX_BUDGET, value=4, step=1, key="study_extend_n",
                         disabled=data["search"] == "grid")
    if right.button(f"Extend by {int(n)} runs", key="study_extend", icon=":material/add_circle:",
                    disabled=data["search"] == "grid", help="raise the budget and queue the next proposals"):
        if require_editor("extend a study"):
            try:
                queued = extend_study(store, name, int(n))
                poll.forget(store.url, "study_summary", name)
            except (ConfigError, StoreError) as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                st.session_state["study_flash"] = f"Extended {name} by {int(n)} runs; {len(queued)} queued now."
                st.session_state["study_start_worker"] = True
                st.rerun()
