"""Compare (`?runs=ID1,ID2,…` or `?group=NAME`, `&view=<tab>`): 2–10 runs side by side: summary,
the settings that differ, then in tabs overlaid histories, hyperparameters against results,
confusion matrices and their difference."""
import streamlit as st

from dashboard import state
from dashboard.compare import tables, views
from dashboard.format import dataset_differences
from dashboard.run_list import all_groups, newest_finished, unique_labels

MAX_RUNS = 10
LIVE = ("queued", "running")
VIEWS = ["Histories", "Hyperparameters", "Confusion matrices"]

st.title("Compare runs")
store, runs = state.runs_or_stop()

labels = unique_labels(runs)
ids = runs["run_id"].tolist()
requested = list(dict.fromkeys(v.strip() for v in st.query_params.get("runs", "").split(",") if v.strip()))
group = st.query_params.get("group")
if group and group not in all_groups(runs):
    st.warning(f"There is no group named “{group}”.")
    group = None
if group and not requested:
    requested = runs.loc[runs["group_name"] == group, "run_id"].tolist()
    if len(requested) > MAX_RUNS:
        st.info(f"Group “{group}” has {len(requested)} runs; the {MAX_RUNS} newest are compared.")
unknown = [r for r in requested if r not in labels]
if unknown:
    st.warning("These run ids in the link do not exist (deleted, or a typo) and are left out: "
               + ", ".join(f"`{r}`" for r in unknown))
if not requested:  # no link: the runs compared last this session, else the two newest finished runs
    requested = [r for r in state.remembered("compare") or [] if r in labels] or newest_finished(runs, 2)
chosen = st.multiselect("Runs to compare (2–10)", ids, default=[r for r in requested if r in labels][:MAX_RUNS],
                        key="compare_runs", max_selections=MAX_RUNS, format_func=lambda r: labels[r],
                        placeholder="Choose runs")
state.remember("compare", chosen)
if ",".join(chosen) != st.query_params.get("runs", ""):  # the link always says what is compared
    if chosen:
        st.query_params["runs"] = ",".join(chosen)
    else:
        del st.query_params["runs"]
if len(chosen) < 2:
    st.info("Choose at least two runs above, or tick them in the **Runs** table and press Compare.")
    st.stop()

selected = runs.set_index("run_id").loc[chosen].reset_index()
if warning := dataset_differences(dict(zip(selected["run_id"].map(labels), selected["dataset"]))):
    st.warning(warning, icon=":material/dataset:")

# side by side while the tables are narrow, so the charts stay in view
left, right = st.columns(2, gap="large") if len(chosen) <= 4 else (st.container(), st.container())
left.subheader("Summary")
left.dataframe(tables.summary_table(selected, labels), key="compare_summary", placeholder="—")
right.subheader("Settings that differ")
diff = tables.param_diff({labels[r]: cfg for r, cfg in zip(selected["run_id"], selected["config"])})
if diff.empty:
    right.success("These runs have identical settings (a repeat shows how much results vary by chance alone).")
else:
    right.dataframe(diff, key="compare_params", placeholder="—")

# Only the open tab runs and is drawn (lazy tabs), so the page comes up quickly with 10 runs;
# the open tab is in the link (`&view=…`), so a shared link opens the same view.
tab_history, tab_params, tab_confusion = st.tabs(VIEWS, key="view", bind="query-params")
if tab_history.open:
    with tab_history:
        st.fragment(views.histories, run_every=2 if selected["status"].isin(LIVE).any() else None)(
            store, chosen, labels, dict(zip(selected["run_id"], selected["steps_per_epoch"])))
if tab_params.open:
    with tab_params:
        views.hyperparameters(runs, selected, group)
if tab_confusion.open:
    with tab_confusion:
        views.confusion(store, chosen, labels)
