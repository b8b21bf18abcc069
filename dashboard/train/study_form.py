"""The Train page's study form: search, budget, a space editor with ranges and scales, objective,
pruner and warm-up, a preview of the space, and the Start button. The study itself is shown
on the Study page (dashboard/study/).

Starting a study asks `require_editor` inside the action itself. Widgets always get explicit
keys (``study_*``).
"""
from __future__ import annotations

import time
from typing import Callable

import pandas as pd
import streamlit as st

from core.config import HELP, PARAMS, ConfigError, TrainConfig
from core.data.dataset import DataError
from core.search.space import describe_spec, grid_size, parse_spec
from core.search.study import MAX_BUDGET, OBJECTIVES, PRUNERS, SEARCHES, create_study
from core.search.sweep import CHOICES, SWEEPABLE
from core.store.facade import RunStore
from core.store.schema import StoreError
from dashboard.auth import require_editor
from dashboard.charts import key_label
from dashboard.nav import page_link

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


def study_options() -> dict:
    """Search, budget, objective, pruner and warm-up; returns them as create_study's keyword arguments."""
    c1, c2, c3 = st.columns(3)
    search = c1.selectbox("Search", SEARCHES, index=SEARCHES.index("tpe"), key="study_search", format_func=lambda s: SEARCH_HELP[s].split(":")[0],
                          help=" · ".join(SEARCH_HELP.values()))
    budget = c2.number_input("Budget (runs)", min_value=1, max_value=MAX_BUDGET, value=12, step=1, key="study_budget",
                             disabled=search == "grid", help="runs in all; a grid runs every combination")
    objective = c3.selectbox("Objective", list(OBJECTIVES), key="study_objective",
                             format_func=lambda o: f"{key_label(o)} ({'maximise' if OBJECTIVES[o] == 'maximize' else 'minimise'})")
    c4, c5 = st.columns(2)
    pruner = c4.selectbox("Pruner", PRUNERS, index=PRUNERS.index("median"), key="study_pruner", help=PRUNER_HELP)
    warmup = c5.number_input("Warm-up epochs", min_value=0, max_value=100, value=1, step=1, key="study_warmup",
                             disabled=pruner == "none", help="every run trains at least this many epochs before "
                                                             "the pruner may stop it")
    return dict(search=search, budget=None if search == "grid" else int(budget), objective=objective, pruner=pruner,
                warmup_epochs=int(warmup))


def field_label(field: str) -> str:
    """A parameter as the Train form labels it ("Learning rate", not learning_rate)."""
    return PARAMS[field].label if field in PARAMS else field


def space_editor(search: str) -> tuple[dict[str, dict], list[str]]:
    """Up to four rows of (field, range with a scale, or a list of values); returns the space and input errors."""
    space: dict[str, dict] = {}
    errors: list[str] = []
    for i in range(MAX_SPACE_FIELDS):
        cols = st.columns([1.2, 1, 1, 0.8], vertical_alignment="bottom")
        taken = {st.session_state.get(f"study_field_{j}") for j in range(MAX_SPACE_FIELDS) if j != i}
        field = cols[0].selectbox(f"Parameter {i + 1}", (NO_FIELD, *(f for f in SWEEPABLE if f not in taken)),
                                  key=f"study_field_{i}", format_func=field_label,
                                  help=HELP.get(st.session_state.get(f"study_field_{i}"), "Pick a field to search over."))
        if field == NO_FIELD:
            continue
        kind, name = SWEEPABLE[field], field_label(field)
        try:
            if kind in ("choice", "bool"):
                values = cols[1].multiselect(f"Values of {name}", CHOICES.get(field, (False, True)), format_func=str,
                                             key=f"study_values_{i}_{field}")
                spec = ",".join(map(str, values))
            else:
                low_hint, high_hint, default_scale = RANGE_EXAMPLES.get(field, ("", "", "linear"))
                scale = "list" if search == "grid" else cols[3].selectbox(
                    "Scale", SCALES, index=SCALES.index(default_scale), key=f"study_scale_{i}_{field}",
                    help="log: values spread evenly over orders of magnitude; linear: evenly over the range; "
                         "list: only the values you type")
                if scale == "list":
                    spec = cols[1].text_input(f"Values of {name}", key=f"study_list_{i}_{field}",
                                              placeholder="comma-separated, e.g. 1e-3, 1e-2")
                else:
                    low = cols[1].text_input(f"{name} from", key=f"study_low_{i}_{field}", placeholder=low_hint)
                    high = cols[2].text_input(f"{name} to", key=f"study_high_{i}_{field}", placeholder=high_hint)
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
    st.dataframe(pd.DataFrame([{"parameter": field_label(f), "kind": s["type"], "searched over": describe_spec(s)}
                               for f, s in space.items()]), hide_index=True, width="stretch")
    n = grid_size(space) if options["search"] == "grid" else options["budget"]
    pruning = (f", a {options['pruner']} pruner stops trailing runs after {max(1, options['warmup_epochs'])} "
               "warm-up epoch(s)" if options["pruner"] != "none" else ", no pruning")
    st.caption(f"{n} run{'s' if n != 1 else ''}: {SEARCH_HELP[options['search']]}; {key_label(options['objective'])} is "
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
