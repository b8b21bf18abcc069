"""Study: one Optuna study's progress, best run, history, importance, slices and intermediate values.

Open it from the Train page's Sweep tab, from Runs (a group's "Open the study" link) or with
`?study=NAME`. The page only reads, except for the editor-only "stop" and "extend" actions.
"""
import streamlit as st

from core.search.study import list_studies
from dashboard import background, state
from dashboard.study import views

st.title("Study")
store = state.get_store()
studies = list_studies(store)
if not studies:
    st.info("No study yet. Start one on the Train page (Sweep tab → Study), or from the shell with "
            "`.venv/bin/python -m core sweep --arch mlp-128-64 --search tpe --param learning_rate=1e-4:1e-1:log --trials 12`.",
            icon=":material/science:")
    st.stop()

names = [s.name for s in studies]
wanted = st.query_params.get("study")
if wanted and wanted not in names:
    st.warning(f"There is no study named {wanted!r}; showing the newest one.")
if st.session_state.get("study_pick") not in names:
    st.session_state["study_pick"] = wanted if wanted in names else names[0]
name = st.selectbox("Study", names, key="study_pick")
st.query_params["study"] = name

if flash := st.session_state.pop("study_flash", None):
    st.success(flash)
if st.session_state.pop("study_start_worker", False):
    background.start_worker()

views.study_page(store, name)
