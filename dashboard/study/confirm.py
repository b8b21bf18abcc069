"""The Study page's check against luck: "Confirm the top K configurations with N seeds" (editor
only), the confirmed configs ranked by their mean test accuracy with 95 % intervals, and a warning
when the best run is not told apart from the runner-up.

A study picks its best run from one seed per config, and per-seed noise on MNIST (0.15–0.17
points) is as large as many differences between configs: repeating the top few configs over
seeds says which lead is real. The numbers come from core.search.report (summary's `confirmed`,
`best_vs_runner_up`); the queueing from core.search.study.confirm_top.
"""
from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from core.errors import DigitLabError
from core.search.repeats import MAX_REPEATS
from core.search.study import MAX_CONFIRM, confirm_top
from core.store.facade import RunStore
from dashboard import poll
from dashboard.auth import require_editor
from dashboard.state import data_path


def runner_up_warning(data: dict) -> None:
    """Under the best run: say so when it cannot be told apart from the runner-up."""
    versus = data.get("best_vs_runner_up")
    if versus and data.get("best_distinguishable") is False:
        st.warning(f"The best run is not distinguishable from the runner-up: {versus['verdict']}. Confirm the top "
                   "configurations with more seeds below before trusting the ranking.", icon=":material/balance:")


def _pct(value: float | None) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.2%}"


def ranking_table(confirmed: list[dict]) -> pd.DataFrame:
    """The confirmed configs, best mean first: N, mean ± std and the 95 % interval of the test accuracy."""
    rows = []
    for r in confirmed:
        std = r.get("std_test_accuracy")
        interval = ("—" if r.get("ci_low_test_accuracy") is None
                    else f"{_pct(r['ci_low_test_accuracy'])} to {_pct(r['ci_high_test_accuracy'])}")
        rows.append({"Rank": r["rank"], "Config": r["name"], "N": r["n"],
                     "Test accuracy (mean ± std)": _pct(r.get("mean_test_accuracy"))
                     + ("" if std is None else f" ± {100 * std:.2f}"),
                     "95 % interval of the mean": interval, "Pending": r["pending"],
                     "Config id": r["config_id"]})
    return pd.DataFrame(rows)


def ranking(data: dict) -> None:
    """The confirmed configs ranked by their mean, with intervals (nothing before a confirmation)."""
    confirmed = data.get("confirmed") or []
    if not confirmed:
        return
    st.markdown("**Confirmed over seeds**: the top configurations ranked by their mean test accuracy")
    st.dataframe(ranking_table(confirmed), hide_index=True, width="stretch", key="study_confirmed",
                 column_config={"Config": st.column_config.TextColumn(width="large")})
    overlap = [r for r in confirmed[1:] if r.get("ci_high_test_accuracy") is not None
               and confirmed[0].get("ci_low_test_accuracy") is not None
               and r["ci_high_test_accuracy"] >= confirmed[0]["ci_low_test_accuracy"]]
    st.caption("Each interval is where the config's true mean lies with 95 % confidence, from its runs' spread "
               "over seeds (N ≥ 2)." + (f" {len(overlap)} of the others overlap the leader's: their order may be "
                                        "luck." if overlap else ""))


def confirm_action(store: RunStore, name: str, data: dict) -> None:
    """Queue N more seeds of each of the K best configs (editor only)."""
    left, mid, right = st.columns([1, 1, 1], vertical_alignment="bottom")
    k = left.number_input("Top K configurations", min_value=1, max_value=MAX_CONFIRM, value=3, step=1,
                          key="study_confirm_k")
    n = mid.number_input("N seeds each", min_value=1, max_value=MAX_REPEATS, value=3, step=1, key="study_confirm_n")
    done = data["counts"]["completed"]
    if right.button(f"Confirm the top {int(k)} configurations with {int(n)} seeds", key="study_confirm",
                    icon=":material/verified:", disabled=not done,
                    help="queue N more runs of each of the K best configs, with new seeds; they use none of the "
                         "study's budget"):
        if require_editor("confirm a study's best configurations"):
            try:
                queued = confirm_top(store, name, int(k), int(n), data_path())
                poll.forget(store.url, "study_summary", name)
            except DigitLabError as exc:
                st.error(str(exc), icon=":material/error:")
            else:
                st.session_state["study_flash"] = (f"Queued {len(queued)} runs to confirm the top {int(k)} "
                                                   f"configurations of {name} with {int(n)} seeds each.")
                st.session_state["study_start_worker"] = True
                st.rerun()
