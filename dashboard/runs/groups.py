"""The Runs page's "Group repeats" view: one row per config (its repeats differ only in seed and
name), with N, mean ± std of the test, best and last validation accuracies and the mean duration;
each group opens to show its runs, and ticked groups open in Compare as mean lines with bands."""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.search.repeats import REPEATABLE, group_runs
from dashboard.format import duration_text
from dashboard.nav import page_link
from dashboard.runs.table import default_columns, name_width, runs_column_config, runs_view

MAX_OPEN = 30  # groups listed with their runs below the table (the table itself shows every group)


def mean_std(mean: float, std: float) -> str:
    """An accuracy's mean ± sample std in percent ("91.00% ± 1.00"); no ± for one run, "—" for none."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    return f"{mean:.2%}" + ("" if std is None or math.isnan(std) else f" ± {100 * std:.2f}")


def grouped_view(groups: pd.DataFrame) -> pd.DataFrame:
    """group_runs() rows as the table shows them: text for mean ± std, so each cell reads on its own."""
    return pd.DataFrame({
        "name": groups["name"],
        "N": groups["n"].astype(int),
        "test acc.": [mean_std(m, s) for m, s in zip(groups["mean_test_accuracy"], groups["std_test_accuracy"])],
        "best val. acc.": [mean_std(m, s) for m, s in zip(groups["mean_best_val_accuracy"],
                                                          groups["std_best_val_accuracy"])],
        "last val. acc.": [mean_std(m, s) for m, s in zip(groups["mean_last_val_accuracy"],
                                                          groups["std_last_val_accuracy"])],
        "mean duration": groups["mean_duration"].map(duration_text),
        "seeds": groups["seeds"].map(lambda s: ", ".join(str(x) for x in sorted(v for v in s if v is not None))),
        "config id": groups["config_id"],
    })


def compare_keys(groups: pd.DataFrame) -> list[str]:
    """What Compare's link names for each group: its config id, or its one run's id."""
    return [cid if n > 1 else ids[0] for cid, n, ids in zip(groups["config_id"], groups["n"], groups["run_ids"])]


def grouped_runs(runs: pd.DataFrame, shown: pd.DataFrame) -> None:
    """The grouped table of the runs `shown` (filters applied), then each group's runs."""
    groups = group_runs(shown)
    other = int((~shown["status"].isin(REPEATABLE)).sum())
    st.caption(f"{len(groups):,} configs from {int(groups['n'].sum()) if len(groups) else 0:,} completed runs"
               + (f" ({other:,} runs not completed are left out)" if other else "")
               + " · mean ± std over each config's seeds · tick configs to compare them")
    if groups.empty:
        st.info("No completed run among those shown: repeats are grouped once they complete.")
        return
    event = st.dataframe(grouped_view(groups), key=f"runs_groups_{len(shown)}", on_select="rerun",
                         selection_mode="multi-row", hide_index=True, placeholder="—",
                         column_config={"name": st.column_config.TextColumn("name", width="large", pinned=True),
                                        "N": st.column_config.NumberColumn("N", help="completed repeats", width=40)})
    picked = groups.iloc[event.selection.rows]
    keys = compare_keys(picked)
    page_link("compare", f"Compare {len(keys)} selected", {"runs": ",".join(keys)}, ":material/compare_arrows:",
              disabled=not 2 <= len(keys) <= 10 and not (len(keys) == 1 and picked["n"].iloc[0] > 1),
              help="tick 2 to 10 configs (or one with repeats): each group is drawn as its mean with a band")
    by_id = runs.set_index("run_id")
    for row in groups.head(MAX_OPEN).itertuples():
        label = f"{row.name} · N = {row.n} · test {mean_std(row.mean_test_accuracy, row.std_test_accuracy)}"
        with st.expander(label, icon=":material/stacks:"):
            members = by_id.loc[list(row.run_ids)].reset_index()
            columns = default_columns(members)
            st.dataframe(runs_view(members), hide_index=True, column_order=columns, placeholder="—",
                         column_config=runs_column_config(name_width(columns)), key=f"runs_group_{row.config_id}")
    if len(groups) > MAX_OPEN:
        st.caption(f"The runs of the first {MAX_OPEN} configs are listed; filter above to see others.")
