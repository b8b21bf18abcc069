"""Train: choose a preset or build a stack, set the hyperparameters, launch a run or a sweep, watch it live.

Training never runs here: the page queues runs in the store and makes sure a local worker
process (`.venv/bin/python -m core worker`) is alive to train them; the live panels only read.
"""
import time

import streamlit as st

from core.config import PARAMS, ConfigError
from core.data.dataset import DataError
from core.store.schema import RunNotFound, StoreError
from core.errors import DigitLabError
from core.search.repeats import MAX_REPEATS, queue_repeats
from core.search.sweep import queue_sweep
from dashboard import background, state
from dashboard.auth import require_editor
from dashboard.nav import page_link
from dashboard.train import form as train_form, live, study_form, sweeps
from dashboard.train.workers import workers_panel

st.title("Train")
store = state.get_store()
info = state.get_dataset_info()
if info is None:
    st.info("Training needs a dataset first: ingest MNIST on the Data page (one click), or run "
            "`.venv/bin/python -m core ingest --from PATH`.", icon=":material/dataset:")
    page_link("data", "Go to the Data page", icon=":material/arrow_forward:")
    st.stop()
state.dataset_banner()
background.warm_worker(background=True)  # a worker importing Keras now trains the run launched below at once


def start_worker() -> None:
    """Make sure a worker will pick the queued runs up; say so if it cannot start."""
    try:
        background.start_worker()
    except Exception as exc:  # e.g. cannot spawn a process: the run stays queued, say how to train it
        st.warning(f"Could not start a worker ({exc}); run `.venv/bin/python -m core worker` in a terminal.")


def watch(run_ids: list[str]) -> None:
    """Show the first of `run_ids` in the live panel and keep them pickable this session."""
    st.session_state["train_session_runs"] = [*st.session_state.get("train_session_runs", []), *run_ids]
    st.session_state["train_live_pick"] = run_ids[0]


# -- fork: ?fork=RUN_ID pre-fills the form with that run's config -------------------------------
parent = None
if fork_id := st.query_params.get("fork"):
    try:
        parent = store.get_run(fork_id)
    except RunNotFound:
        st.warning(f"There is no run {fork_id!r} to fork; start from a preset instead.")
    else:
        if st.session_state.get("train_fork_applied") != parent.id:
            train_form.load_form({**parent.config, "name": f"{parent.name} (fork)"})
            st.session_state["train_fork_applied"] = parent.id
        st.caption(f"Forked from **{parent.name}** (`{parent.id}`): change what you want to try and launch; "
                   "the new run records it as its parent.")
parent_id = parent.id if parent else None

values, form_errors = train_form.config_form(info.n_train)  # errors are shown beside their fields; they block launching

st.subheader("Launch")
one_tab, sweep_tab = st.tabs(["One run", "Sweep"])
with one_tab:
    n1, n2 = st.columns([4, 1])
    name = n1.text_input(PARAMS["name"].label, key="train_name", help=PARAMS["name"].help,
                         placeholder="empty: named after what differs from the defaults, e.g. mlp-128-64 · lr 0.01")
    repeats = int(n2.number_input("Repeat with N seeds", min_value=1, max_value=MAX_REPEATS, value=1, step=1,
                                  key="train_repeats", help="train the same settings N times with seeds s, s+1, …: "
                                  "Compare then shows their mean with a band and whether a difference is real"))
    if bad_name := train_form.name_error(name):  # beside its field, and it blocks launching like the others
        st.error(bad_name, icon=":material/error:")
    if form_errors:
        st.caption(f"Fix the field{'s' if len(form_errors) > 1 else ''} marked in red above to launch: "
                   + "; ".join(form_errors.values()))
    seed = values.get("seed") if isinstance(values.get("seed"), int) else None
    launch = "Launch" if repeats == 1 else f"Launch {repeats} runs" + (
        f" (seeds {seed}–{seed + repeats - 1})" if seed is not None else "")
    if st.button(launch, key="train_launch", type="primary", icon=":material/rocket_launch:",
                 disabled=bool(form_errors or bad_name)) and not (form_errors or bad_name):
        if require_editor("train a model"):
            try:
                run_ids = queue_repeats(store, train_form.build_config(values, name), repeats, state.data_path(),
                                        parent_id=parent_id)
            except DigitLabError as exc:  # a bad field, the dataset, the store: nothing was queued
                st.error(str(exc), icon=":material/error:")
            else:
                watch(run_ids)
                start_worker()
                if repeats > 1:
                    st.success(f"Queued {repeats} runs of these settings; when they finish, Compare shows them as "
                               "one group with its mean and band.")
with sweep_tab:
    kind = st.radio("Kind", ("Grid sweep", "Study"), horizontal=True, key="sweep_kind",
                    captions=("every combination of a few values, queued as one group",
                              "Optuna proposes each run's values (TPE or random) and can stop poor runs early"))
    if kind == "Study":
        st.caption("The rest of the form above is the base config; the study varies the parameters below.")
        started = study_form.study_launcher(store, lambda: train_form.build_config(values, name), state.data_path(),
                                             parent_id, blocked=bool(form_errors))
        if started:
            st.session_state["train_sweep_pick"] = started[0]
            watch(started[1])
            start_worker()
    else:
        st.caption("Vary up to three hyperparameters; every combination is trained with the rest of the form "
                   "above, queued as one group that you can compare when it finishes.")
        grid, errors = sweeps.sweep_inputs()
        for error in errors:
            st.error(error, icon=":material/error:")
        n_runs = sweeps.sweep_preview(grid)
        group = st.text_input("Group name", key="sweep_group", help="Names the sweep's runs and groups them for Compare.",
                              placeholder="empty: sweep-<date>-<time>")
        if st.button(f"Queue {n_runs} runs" if n_runs else "Queue the sweep", key="sweep_launch", type="primary",
                     disabled=not n_runs or bool(errors) or bool(form_errors), icon=":material/grid_view:"):
            if require_editor("queue a sweep"):
                group = group.strip() or time.strftime("sweep-%Y%m%d-%H%M%S")
                try:
                    run_ids = queue_sweep(store, train_form.build_config(values, name), grid, group, state.data_path(),
                                             parent_id=parent_id)
                except (ConfigError, DataError, StoreError) as exc:
                    st.error(str(exc), icon=":material/error:")
                else:
                    st.session_state["train_sweep_pick"] = group
                    watch(run_ids)
                    start_worker()
                    st.success(f"Queued {len(run_ids)} runs as group **{group}**.")

# -- live: the run launched last (or any queued or running run) ----------------------------------
st.subheader("Live")
runs = store.list_runs()
mine = st.session_state.get("train_session_runs", [])
watchable = runs[runs["status"].isin(["queued", "running"]) | runs["run_id"].isin(mine)]
if watchable.empty:
    st.caption("No run is queued or training. Launch one above; its progress appears here.")
else:
    picked = live.run_picker(watchable, key="train_live_pick", label="Run to watch",
                             default_id=mine[-1] if mine else None)
    live.live_run(store, picked["run_id"])

groups = [g for g in runs.sort_values("created_at", ascending=False)["group_name"].dropna().unique()]
if groups:
    st.subheader("Sweep progress")
    if st.session_state.get("train_sweep_pick") not in groups:
        st.session_state.pop("train_sweep_pick", None)
    chosen = st.selectbox("Group", groups, key="train_sweep_pick")
    sweeps.sweep_panel(store, chosen)

# -- workers: who trains the queue, on this machine or any other on the same store -------------------
workers_panel(store)
