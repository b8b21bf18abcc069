"""Run detail (`?run=ID`): config, curves (live while training), test evaluation and mistakes,
model summary and first-layer kernels, the model file and the equivalent Keras script."""
import streamlit as st

from core.config import ConfigError, TrainConfig
from core.store.schema import RunNotFound
from dashboard import state
from dashboard.run_detail import views
from dashboard.run_list import newest_finished, unique_labels

st.title("Run detail")
store, runs = state.runs_or_stop()

labels = unique_labels(runs)
status_of = dict(zip(runs["run_id"], runs["status"]))
linked = st.query_params.get("run", "")
ids = runs["run_id"].tolist()
if linked and linked not in labels:
    state.deleted_notice(f"This run was deleted, or the link is wrong: there is no run “{linked}” "
                         f"(deleted {state.ELSEWHERE}?). Pick another run below.")
# the link's run, else the one looked at last this session, else the newest finished run
wanted = linked or next((r for r in [state.remembered("run"), *newest_finished(runs)] if r in labels), "")
run_id = st.selectbox("Run", ids, index=ids.index(wanted) if wanted in labels else None, key="detail_run",
                      format_func=lambda i: f"{labels[i]} · {status_of[i]} · {i}", placeholder="Choose a run")
if run_id is None:
    if not wanted:  # an unknown id already has its error above
        st.info("Choose a run above, or open one from the **Runs** page.")
    st.stop()
if run_id != linked:
    st.query_params["run"] = run_id
state.remember("run", run_id)
try:
    run = store.get_run(run_id)
except RunNotFound:
    state.deleted_notice()
    st.stop()
try:
    config = None
    if run.source == "trained":  # a tracked or imported run was built elsewhere: no config to rebuild it from
        config = TrainConfig.from_dict(run.config)
        config.hidden_layers()
except (ConfigError, TypeError, ValueError) as exc:
    config = None
    st.warning(f"This run's stored config cannot be read by this version of Digit Lab ({exc}); "
               "its model summary and script are not available.")
if run.source != "trained":
    st.caption(f"{'Tracked from a script' if run.source == 'tracked' else 'Imported'}: its model was built outside "
               "Digit Lab, so there is no layer summary or equivalent script; its config shows what could be read "
               "(— where nothing could).")

views.header(run)
if run.status not in views.LIVE:  # a live run's section polls anyway and notices a delete itself
    state.watch_for_deletion(store, [run.id])
st.fragment(views.live_section, run_every=2 if run.status in views.LIVE else None)(store, run)
views.evaluation(store, run)
views.model(store, run, config)
