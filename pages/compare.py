"""Compare (`?runs=ID1,ID2,…` or `?group=NAME`, `&view=<tab>`): 2–10 runs or groups of repeats side by
side: summary, the settings that differ, then in tabs overlaid histories (a group as its mean with a
band), hyperparameters against results, confusion matrices and their difference; last, whether
each difference from the first selection is real. The link's ids are run ids or config ids (a
config's repeats)."""
import streamlit as st

from dashboard import state
from dashboard.compare import groups, tables, verdicts, views
from dashboard.format import dataset_differences
from dashboard.run_list import all_groups, newest_finished, unique_labels

MAX_RUNS = 10
LIVE = ("queued", "running")
VIEWS = ["Histories", "Hyperparameters", "Confusion matrices"]

st.title("Compare runs")
store, runs = state.runs_or_stop()

labels = unique_labels(runs)
picks = groups.options(runs, labels)  # groups of repeats (config ids) first, then every run
requested = list(dict.fromkeys(v.strip() for v in st.query_params.get("runs", "").split(",") if v.strip()))
group = st.query_params.get("group")
if group and group not in all_groups(runs):
    st.warning(f"There is no group named “{group}”.")
    group = None
if group and not requested:
    requested = runs.loc[runs["group_name"] == group, "run_id"].tolist()
    if len(requested) > MAX_RUNS:
        st.info(f"Group “{group}” has {len(requested)} runs; the {MAX_RUNS} newest are compared.")
unknown = [r for r in requested if r not in picks]
if unknown:
    st.warning("These ids in the link match no run and no group of repeats (deleted, or a typo) and are left "
               "out: " + ", ".join(f"`{r}`" for r in unknown))
if not requested:  # no link: the runs compared last this session, else the two newest finished runs
    requested = [r for r in state.remembered("compare") or [] if r in picks] or newest_finished(runs, 2)
p1, p2 = st.columns([5, 1], vertical_alignment="bottom")
chosen = p1.multiselect("Runs or groups of repeats to compare (2–10)", list(picks),
                        default=[r for r in requested if r in picks][:MAX_RUNS], key="compare_runs",
                        max_selections=MAX_RUNS, format_func=picks.get, placeholder="Choose runs or groups")
grouping = p2.toggle("Group repeats", value=True, key="compare_group_repeats",
                     help="runs of one config that differ only in their seed become one group: its mean with a band")
state.remember("compare", chosen)
if ",".join(chosen) != st.query_params.get("runs", ""):  # the link always says what is compared
    if chosen:
        st.query_params["runs"] = ",".join(chosen)
    else:
        del st.query_params["runs"]
selections = groups.resolve(runs, chosen, grouping)
if len(selections) < 2 and not any(s.is_group for s in selections):
    st.info("Choose at least two runs above (or a group of repeats), or tick them in the **Runs** table and "
            "press Compare.")
    st.stop()

member_ids = [r for s in selections for r in s.run_ids]
selected = runs.set_index("run_id").loc[member_ids].reset_index()
first_runs = runs.set_index("run_id").loc[[s.run_ids[0] for s in selections]]
if warning := dataset_differences(dict(zip((s.label for s in selections), first_runs["dataset"]))):
    st.warning(warning, icon=":material/dataset:")

# Letters head the tables (long auto-names would push the other columns out of view); the legend names them.
st.markdown(groups.legend(selections))
wide = len(selections) <= 2 and not any(s.is_group for s in selections)
left, right = st.columns(2, gap="large") if wide else (st.container(), st.container())
left.subheader("Summary")
letters = {s.letter: st.column_config.TextColumn(s.letter, help=s.name) for s in selections}
left.dataframe(groups.summary_table(runs, selections), key="compare_summary", placeholder="—", column_config=letters)
right.subheader("Settings that differ")
diff = tables.param_diff(groups.configs(runs, selections))
if diff.empty:
    right.success("These runs have identical settings (a repeat shows how much results vary by chance alone).")
else:
    right.dataframe(diff, key="compare_params", placeholder="—", column_config=letters)

# Only the open tab runs and is drawn (lazy tabs), so the page comes up quickly with 10 runs;
# the open tab is in the link (`&view=…`), so a shared link opens the same view.
tab_history, tab_params, tab_confusion = st.tabs(VIEWS, key="view", bind="query-params")
if tab_history.open:
    with tab_history:
        st.fragment(views.histories, run_every=2 if selected["status"].isin(LIVE).any() else None)(
            store, selections, dict(zip(selected["run_id"], selected["steps_per_epoch"])))
if tab_params.open:
    with tab_params:
        views.hyperparameters(runs, selections, group)
if tab_confusion.open:
    with tab_confusion:
        views.confusion(store, selections)

verdicts.difference_section(store, runs, selections)
