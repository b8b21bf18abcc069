"""Runs: every run in one table: filter, sort, select; tag, note, delete, export, compare, fork."""
import streamlit as st

from core.store.schema import StoreError
from core.search.study import get_study
from dashboard import auth, state
from dashboard.nav import page_link
from dashboard.run_list import all_groups, unique_labels
from dashboard.runs import actions, groups as grouped, table

st.title("Runs")
store, runs = state.runs_or_stop()

if flash := st.session_state.pop("runs_flash", None):  # the outcome of the last action, after its rerun
    done, errors = flash
    st.success(done)
    for error in errors:
        st.warning(error)

# -- filters and sorting ------------------------------------------------------------------
f1, f5, f2, f3, f4 = st.columns(5)
statuses = f1.multiselect("Status", sorted(runs["status"].unique()), key="runs_status")
sources = f5.multiselect("Source", list(table.SOURCE_LABELS), key="runs_source", format_func=table.SOURCE_LABELS.get,
                         help="trained here, tracked from a script or notebook, or imported")
architectures = f2.multiselect("Architecture", sorted(runs["architecture"].unique()), key="runs_arch")
groups = f3.multiselect("Group", all_groups(runs), key="runs_group")
tags = f4.multiselect("Tag", table.all_tags(runs), key="runs_tags")
s1, s2, s3, s6, s4, s5 = st.columns([1.15, 1, 0.6, 0.95, 0.62, 0.72], vertical_alignment="bottom")
search = s1.text_input("Search", key="runs_search", placeholder="name or id")
sort = s2.selectbox("Sort by", list(table.SORTS), key="runs_sort")
reverse = s3.toggle("Reverse", key="runs_reverse")
by_config = s6.toggle("Group repeats", key="runs_group_repeats",
                      help="one row per config (runs that differ only in their seed), with mean ± std over the seeds")
s4.button("Refresh", key="runs_refresh", icon=":material/refresh:", help="read the runs again")
headers = {c: cfg["label"] for c, cfg in table.runs_column_config().items()}
defaults = table.default_columns(runs)
with s5.popover("Columns", icon=":material/view_column:", help="choose the table's columns"):
    columns = st.multiselect("Columns shown", list(table.runs_view(runs.head(0)).columns),
                             default=list(defaults), key="runs_columns",
                             format_func=lambda c: headers.get(c, c))

view = table.sort_runs(table.filter_runs(runs, statuses, architectures, groups, tags, search, sources), sort, reverse)
if by_config:
    grouped.grouped_runs(runs, view)
    st.stop()
running = int((runs["status"] == "running").sum())
st.caption(f"{len(view):,} of {len(runs):,} runs shown" + (f" · {running} running (Refresh to update)" if running else "")
           + " · tick rows to act on them")

# A new table key whenever the rows shown change, so a selection never points at rows that moved.
signature = (len(runs), runs["run_id"].iloc[0], tuple(statuses), tuple(architectures), tuple(groups), tuple(tags),
             search, sort, reverse, tuple(sources))
if st.session_state.get("runs_signature") != signature:
    st.session_state["runs_signature"] = signature
    st.session_state["runs_table_n"] = st.session_state.get("runs_table_n", 0) + 1
event = st.dataframe(table.runs_view(view), key=f"runs_table_{st.session_state['runs_table_n']}", on_select="rerun",
                     selection_mode="multi-row", hide_index=True,
                     column_config=table.runs_column_config(table.name_width(columns or defaults)),
                     column_order=columns or defaults,
                     height=min(38 + 35 * len(view), 560), placeholder="—")
selected = view.iloc[event.selection.rows]
ids = selected["run_id"].tolist()
labels = unique_labels(runs)

c1, c2, c3, c4 = st.columns(4)
st.session_state.setdefault("runs_pending_delete", [])
with c1:
    page_link("compare", f"Compare {len(ids)} selected", {"runs": ",".join(ids)}, ":material/compare_arrows:",
                     disabled=not 2 <= len(ids) <= 10, help="select 2 to 10 runs")
with c2:
    page_link("run", "Open details", {"run": ids[0]} if len(ids) == 1 else None, ":material/query_stats:",
                     disabled=len(ids) != 1, help="select one run")
with c3:
    page_link("train", "Fork on Train page", {"fork": ids[0]} if len(ids) == 1 else None,
                     ":material/call_split:", disabled=len(ids) != 1, help="train again from this run's settings")
with c4:
    export = selected if ids else view
    st.download_button(f"Export {len(export):,} as CSV", lambda: table.runs_csv(export), file_name="digitlab-runs.csv",
                       mime="text/csv", key="runs_export", icon=":material/download:", on_click="ignore",
                       help="the selected runs, or every run shown when none is selected")

# -- a study's runs: a link to its study view (history, importance, slices)
picked_groups = set(selected["group_name"].dropna()) if ids else set(groups)
if len(picked_groups) == 1 and get_study(store, study_name := picked_groups.pop()) is not None:
    page_link("study", f"Open the study {study_name}", {"study": study_name}, ":material/science:")

if not ids:
    st.stop()

# -- actions on the selected runs ------------------------------------------------------------------
st.subheader(f"{len(ids)} selected: " + ", ".join(labels[i] for i in ids[:5]) + (" …" if len(ids) > 5 else ""))
t1, t2, t3 = st.columns([2, 1, 1], vertical_alignment="bottom")
tag = actions.clean_tag(t1.text_input("Tag", key="runs_tag_text", placeholder="e.g. baseline"))
for column, add, label in ((t2, True, "Add tag"), (t3, False, "Remove tag")):
    if column.button(label, key=f"runs_{label.split()[0].lower()}_tag", disabled=not tag) \
            and auth.require_editor("tag runs"):
        changed, errors = actions.tag_runs(store, selected, tag, add)
        st.session_state["runs_flash"] = (f"{'Added' if add else 'Removed'} tag “{tag}” on {changed} run(s).", errors)
        st.rerun()

if len(ids) == 1:
    note = st.text_area("Note", value=selected["note"].iloc[0] or "", key=f"runs_note_{ids[0]}",
                        placeholder="what this run tried, what you learned")
    if st.button("Save note", key="runs_save_note") and auth.require_editor("edit notes"):
        try:
            store.update_run(ids[0], note=note)
        except StoreError as exc:  # deleted meanwhile, or an unwritable store
            st.error(str(exc))
        else:
            st.session_state["runs_flash"] = (f"Saved the note of {labels[ids[0]]}.", [])
            st.rerun()

pending = [i for i in st.session_state["runs_pending_delete"] if i in set(runs["run_id"])]
if not pending:
    if st.button(f"Delete {len(ids)} run(s)…", key="runs_delete", icon=":material/delete:"):
        st.session_state["runs_pending_delete"] = ids
        st.rerun()
else:
    studies = [name for name in runs["group_name"].dropna().unique() if get_study(store, name) is not None]
    st.warning(f"Delete {len(pending)} run(s) for good: " + ", ".join(labels[i] for i in pending)
               + "? Their metrics, evaluations and model files are removed too. "
               + actions.study_delete_note(runs, pending, studies))
    yes, no = st.columns(2)
    if no.button("Keep them", key="runs_delete_cancel"):
        st.session_state["runs_pending_delete"] = []
        st.rerun()
    if yes.button("Yes, delete", key="runs_delete_confirm", type="primary") and auth.require_editor("delete runs"):
        deleted, errors = actions.delete_runs(store, pending)
        st.session_state["runs_pending_delete"] = []
        st.session_state["runs_flash"] = (f"Deleted {deleted} run(s).", errors)
        st.rerun()
