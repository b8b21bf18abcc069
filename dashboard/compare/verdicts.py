"""Compare's "Is the difference real?": every selection against the first (the reference), with the
difference in test accuracy, its 95 % interval, the test that fits and the one-line verdict, all
from core.search.repeats.compare_selections (what `python -m core compare` prints too)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import DigitLabError
from core.search.repeats import compare_selections
from core.search.significance import MCNEMAR, WELCH, Comparison
from core.store.facade import RunStore
from dashboard.compare.groups import Selection

TESTS = {WELCH: "Welch's t (seeds)", MCNEMAR: "McNemar (this test set)", None: "none"}


def comparisons(store: RunStore, runs: pd.DataFrame,
                selections: list[Selection]) -> list[tuple[Selection, Comparison | None, str | None]]:
    """(selection, its comparison with the reference or None, the error that stopped it or None)."""
    ref, out = selections[0], []
    for s in selections[1:]:
        try:
            out.append((s, compare_selections(store, list(ref.run_ids), list(s.run_ids), labels=(ref.letter, s.letter),
                                              runs=runs), None))
        except DigitLabError as exc:  # e.g. trained on different datasets: said in its own words
            out.append((s, None, str(exc)))
    return out


def table(found: list[tuple[Selection, Comparison | None, str | None]]) -> pd.DataFrame:
    """One row per compared selection: its letter against the reference, N, the difference and interval."""
    rows = []
    for s, c, _ in found:
        if c is None:
            continue
        interval = "—" if c.ci_low is None else f"{c.ci_low:+.2f} to {c.ci_high:+.2f}"
        rows.append({"compared": f"{c.b} − {c.a}", "N": f"{c.n_b} vs {c.n_a}",
                     "difference (points)": None if c.difference is None else round(c.difference, 2),
                     "95 % CI (points)": interval, "p-value": c.p_value, "test": TESTS.get(c.test, c.test)})
    return pd.DataFrame(rows)


def difference_section(store: RunStore, runs: pd.DataFrame, selections: list[Selection]) -> None:
    """The differences in test accuracy from the reference (A), each with its verdict."""
    st.subheader("Is the difference real?")
    if len(selections) < 2:
        st.info("One selection: add another run or group to test a difference against it.")
        return
    found = comparisons(store, runs, selections)
    st.caption(f"Reference: **A** ({selections[0].name}). Test accuracy of each other selection minus A's, in "
               "percentage points, with its 95 % confidence interval.")
    for s, c, error in found:
        if c is None:
            st.warning(f"**{s.letter} vs A**: {error}", icon=":material/block:")
        elif c.distinguishable:
            st.success(c.verdict, icon=":material/check_circle:")
        else:
            st.info(c.verdict, icon=":material/help:")
    shown = table(found)
    if not shown.empty:
        st.dataframe(shown, hide_index=True, key="compare_verdicts", placeholder="—",
                     column_config={"p-value": st.column_config.NumberColumn(format="%.3g"),
                                    "difference (points)": st.column_config.NumberColumn(format="%+.2f")})
    st.caption("Groups of 2 or more seeds each: Welch's t interval on the runs' test accuracies, which measures "
               "how much results vary between seeds. Two single runs: McNemar's exact test on the digits one "
               "got right and the other wrong; it holds for this test set only and cannot see seed noise, so "
               "another seed may reverse it. Anything else gets no test: add seeds (Train page, Repeat).")
