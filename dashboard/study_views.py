"""A study on the dashboard: the Train page's study form (search, budget, a space editor with
ranges and scales, objective, pruner and warm-up, a preview of the space) and the study page
(progress, the best run, history, importance, slices, parallel coordinates, intermediate values,
and the editor-only actions "stop the study" and "extend by N runs").

Every write (create, stop, extend) asks `require_editor` inside the action itself. Widgets
always get explicit keys (``study_*``).
"""
from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import streamlit as st

from core.config import HELP, ConfigError, TrainConfig
from core.data.dataset import DataError
from core.store.schema import StoreError
from core.store.facade import RunStore
from core.search.study import (MAX_BUDGET, OBJECTIVES, PRUNERS, SEARCHES, create_study, describe_spec, extend_study,
                        grid_size, parse_spec, stop_study, summary, trials_table)
from core.search.sweep import CHOICES, SWEEPABLE
from dashboard import study_charts
from dashboard.auth import require_editor
from dashboard.charts import parallel_coordinates
from dashboard.live import LIVE_EVERY
from dashboard.tables import page_link

MAX_SPACE_FIELDS = 4
SCALES = ("log", "linear", "list")
NO_FIELD = "—"
RANGE_EXAMPLES = {"learning_rate": ("1e-4", "1e-1", "log"), "batch_size": ("16", "256", "log"),
                  "dropout": ("0.0", "0.5", "linear"), "epochs": ("1", "5", "linear"),
                  "validation_split": ("0.1", "0.3", "linear"), "seed": ("1", "100", "linear"),
                  "early_stopping": ("0", "3", "linear"), "train_limit": ("1000", "10000", "log")}
SEARCH_HELP = {"tpe": "tpe: Bayesian (Tree-structured Parzen Estimator) — learns from finished runs which values "
                      "look promising",
               "random": "random: every run draws its values independently",
               "grid": "grid: every combination of the listed values, queued at once"}
PRUNER_HELP = ("Stop a run after an epoch when it trails the others: median stops it below the median of finished "
               "runs at the same epoch, hyperband compares runs in successive-halving brackets.")


# -- the Train page's study form -------------------------------------------------------------------
def study_options() -> dict:
    """Search, budget, objective, pruner and warm-up; returns them as create_study's keyword arguments."""
    c1, c2, c3 = st.columns(3)
    search = c1.selectbox("Search", SEARCHES, index=SEARCHES.index("tpe"), key="study_search", format_func=lambda s: SEARCH_HELP[s].split(":")[0],
                          help=" · ".join(SEARCH_HELP.values()))
    budget = c2.number_input("Budget (runs)", min_value=1, max_value=MAX_BUDGET, value=12, step=1, key="study_budget",
                             disabled=search == "grid", help="runs in all; a grid runs every combination")
    objective = c3.selectbox("Objective", list(OBJECTIVES), key="study_objective",
                             format_func=lambda o: f"{o} ({'maximise' if OBJECTIVES[o] == 'maximize' else 'minimise'})")
    c4, c5 = st.columns(2)
    pruner = c4.selectbox("Pruner", PRUNERS, index=PRUNERS.index("median"), key="study_pruner", help=PRUNER_HELP)
    warmup = c5.number_input("Warm-up epochs", min_value=0, max_value=100, value=1, step=1, key="study_warmup",
                             disabled=pruner == "none", help="every run trains at least this many epochs before "
                                                             "the pruner may stop it")
    return dict(search=search, budget=None if search == "grid" else int(budget), objective=objective, pruner=pruner,
                warmup_epochs=int(warmup))


def space_editor(search: str) -> tuple[dict[str, dict], list[str]]:
    """Up to four rows of (field, range with a scale, or a list of values); returns the space and input errors."""
    space: dict[str, dict] = {}
    errors: list[str] = []
    for i in range(MAX_SPACE_FIELDS):
        cols = st.columns([1.2, 1, 1, 0.8], vertical_alignment="bottom")
        field = cols[0].selectbox(f"Parameter {i + 1}", (NO_FIELD, *SWEEPABLE), key=f"study_field_{i}",
                                  help=HELP.get(st.session_state.get(f"study_field_{i}"), "Pick a field to search over."))
        if field == NO_FIELD:
            continue
        kind = SWEEPABLE[field]
        try:
            if kind in ("choice", "bool"):
                values = cols[1].multiselect(f"Values of {field}", CHOICES.get(field, (False, True)), format_func=str,
                                             key=f"study_values_{i}_{field}")
                spec = ",".join(map(str, values))
            else:
                low_hint, high_hint, default_scale = RANGE_EXAMPLES.get(field, ("", "", "linear"))
                scale = "list" if search == "grid" else cols[3].selectbox(
                    "Scale", SCALES, index=SCALES.index(default_scale), key=f"study_scale_{i}_{field}",
                    help="log: values spread evenly over orders of magnitude; linear: evenly over the range; "
                         "list: only the values you type")
                if scale == "list":
                    spec = cols[1].text_input(f"Values of {field}", key=f"study_list_{i}_{field}",
                                              placeholder="comma-separated, e.g. 1e-3, 1e-2")
                else:
                    low = cols[1].text_input(f"{field} from", key=f"study_low_{i}_{field}", placeholder=low_hint)
                    high = cols[2].text_input(f"{field} to", key=f"study_high_{i}_{field}", placeholder=high_hint)
                    spec = (f"{low.strip()}:{high.strip()}" + (":log" if scale == "log" else "")
                            if low.strip() and high.strip() else "")
            if not spec.strip():
                continue
            if field in space:
                raise ConfigError(f"{field} is chosen twice: pick each field once")
            space[field] = parse_spec(field, spec, search)
        except ConfigError as exc:
            errors.append(str(exc))
    return space, errors


def space_preview(space: dict[str, dict], options: dict) -> int:
    """The space as a table and what the study will do; returns its number of runs (0: nothing to queue)."""
    if not space:
        st.caption("Pick at least one parameter and give its range or values.")
        return 0
    st.dataframe(pd.DataFrame([{"parameter": f, "kind": s["type"], "searched over": describe_spec(s)}
                               for f, s in space.items()]), hide_index=True, width="stretch")
    n = grid_size(space) if options["search"] == "grid" else options["budget"]
    pruning = (f", a {options['pruner']} pruner stops trailing runs after {max(1, options['warmup_epochs'])} "
               "warm-up epoch(s)" if options["pruner"] != "none" else ", no pruning")
    st.caption(f"{n} run{'s' if n != 1 else ''}: {SEARCH_HELP[options['search']]}; {options['objective']} is "
               f"{'maximised' if OBJECTIVES[options['objective']] == 'maximize' else 'minimised'}{pruning}. "
               "Runs are queued as the workers free up, one per live worker.")
    return n


def study_launcher(store: RunStore, build_config: Callable[[], TrainConfig], data_path, parent_id: str | None,
                   blocked: bool = False) -> tuple[str, list[str]] | None:
    """The whole study form and its Start button; returns (study name, queued run ids) once started."""
    options = study_options()
    space, errors = space_editor(options["search"])
    for error in errors:
        st.error(error, icon=":material/error:")
    n = space_preview(space, options)
    name = st.text_input("Study name", key="study_name", help="Names the study and groups its runs.",
                         placeholder="empty: study-<date>-<time>")
    if not st.button(f"Start the study ({n} runs)" if n else "Start the study", key="study_launch", type="primary",
                     disabled=not n or bool(errors) or blocked, icon=":material/science:"):
        return None
    if not require_editor("start a study"):
        return None
    name = name.strip() or time.strftime("study-%Y%m%d-%H%M%S")
    try:
        run_ids = create_study(store, build_config(), space, name, data_path, parent_id=parent_id, **options)
    except (ConfigError, DataError, StoreError) as exc:
        st.error(str(exc), icon=":material/error:")
        return None
    st.success(f"Started the study **{name}**: {len(run_ids)} run(s) queued now, the next ones as workers free up.")
    page_link("study", f"Open the study {name}", {"study": name}, icon=":material/science:")
    return name, run_ids


# -- the study page ----------------------------------------------------------------------------------
def study_page(store: RunStore, name: str) -> None:
    """Progress, best run, charts and actions of one study; refreshes while its runs are in flight."""
    first = summary(store, name)
    live = first["counts"]["queued"] + first["counts"]["running"] > 0

    @st.fragment(run_every=LIVE_EVERY * 2 if live else None)
    def body() -> None:
        data = summary(store, name)
        if live and data["counts"]["queued"] + data["counts"]["running"] == 0:
            st.rerun()  # it just ended: redraw without the timer
        progress(data)
        best(data)
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
    st.caption(f"{data['search']} search · {data['objective']} ({data['direction']}) · pruner {data['pruner']}"
               + (f" after {max(1, data['warmup_epochs'])} warm-up epoch(s)" if data["pruner"] != "none" else "")
               + " · space: " + "; ".join(f"{f} {describe_spec(s)}" for f, s in data["space"].items()))


def best(data: dict) -> None:
    if not data["best_run_id"]:
        st.info("No run has completed yet: the best run appears here as soon as one does.", icon=":material/hourglass:")
        return
    params = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in data["best_params"].items())
    test = f", test accuracy {data['best_test_accuracy']:.2%}" if data["best_test_accuracy"] is not None else ""
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.success(f"**Best run so far**: {data['objective']} {data['best_value']:.4f}{test} with {params}",
                 icon=":material/trophy:")
    with right:
        page_link("run", "Open the best run", {"run": data["best_run_id"]}, icon=":material/query_stats:")


def charts(store: RunStore, name: str, data: dict) -> None:
    study, table, values = trials_table(store, name)
    left, right = st.columns([3, 2])
    left.plotly_chart(study_charts.history_chart(table, study.objective, study.direction), key="study_history")
    right.plotly_chart(study_charts.importance_chart(data["importance"], data["importance_note"]),
                       key="study_importance")
    st.plotly_chart(study_charts.intermediate_chart(table, values, study.objective), key="study_intermediate")
    st.markdown("**Slices**: the objective against each parameter")
    fields = list(study.space)
    for start in range(0, len(fields), 3):
        cols = st.columns(3)
        for col, field in zip(cols, fields[start:start + 3]):
            col.plotly_chart(study_charts.slice_chart(table, field, study.space[field], study.objective),
                             key=f"study_slice_{field}")
    finished = table[table["value"].notna()].rename(columns={f"param_{f}": f for f in fields})
    st.plotly_chart(parallel_coordinates(finished.assign(**{study.objective: finished["value"]}), fields,
                                         study.objective), key="study_parcoords")
    with st.expander(f"The {len(table)} runs", icon=":material/table_rows:"):
        shown = table.drop(columns=["finished_at"]).rename(columns={"value": study.objective})
        st.dataframe(shown.sort_values("trial", ascending=False), hide_index=True, width="stretch",
                     placeholder="—")


def actions(store: RunStore, name: str, data: dict) -> None:
    """Stop the study, or extend it by N runs: editor-only, refused inside the action for viewers."""
    st.subheader("Actions")
    left, mid, right = st.columns([1, 1, 1], vertical_alignment="bottom")
    if left.button("Stop the study", key="study_stop", icon=":material/stop_circle:", disabled=data["stopped"],
                   help="queue no more runs and cancel the queued ones; running runs finish"):
        if require_editor("stop a study"):
            try:
                cancelled = stop_study(store, name)
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
            except (ConfigError, StoreError) as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                st.session_state["study_flash"] = f"Extended {name} by {int(n)} runs; {len(queued)} queued now."
                st.session_state["study_start_worker"] = True
                st.rerun()
