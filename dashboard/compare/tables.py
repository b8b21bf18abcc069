"""The Compare page's tables: the settings that differ, the side-by-side summary, the
hyperparameters that vary, each run's test evaluation and the confusion cells that changed most.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from core.store.facade import RunStore
from core.store.schema import Evaluation
from dashboard.format import dataset_label, duration_text, param_text, percent, value_text


def param_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows: the parameters whose values differ between the configs; columns: one per config label."""
    keys = [k for k in dict.fromkeys(k for cfg in configs.values() for k in cfg) if k != "name"]  # names head the columns
    rows = {}
    for key in keys:
        values = [param_text(cfg.get(key)) for cfg in configs.values()]
        if len(set(values)) > 1:
            rows[key] = values
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(configs)).rename_axis("parameter")


def summary_table(runs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Compare's side-by-side summary as text: one row per result, one column per run."""
    rows = {
        "status": runs["status"],
        "test accuracy": percent(runs["test_accuracy"]).map(lambda v: value_text(v, "{:.2f}%")),
        "best val accuracy": [value_text(v, "{:.2f}%") + ("" if pd.isna(e) else f" (epoch {int(e)})")
                              for v, e in zip(percent(runs["best_val_accuracy"]), runs["best_val_epoch"])],
        "last val accuracy": percent(runs["last_val_accuracy"]).map(lambda v: value_text(v, "{:.2f}%")),
        "drawn-set accuracy": percent(runs["drawn_accuracy"]).map(lambda v: value_text(v, "{:.2f}%")),
        "duration": pd.to_numeric(runs["duration"], errors="coerce").map(duration_text),
        "parameters": pd.to_numeric(runs["n_params"], errors="coerce").map(lambda v: value_text(v, "{:,.0f}")),
        "dataset": runs["dataset"].map(lambda d: dataset_label(d, short=True)) if "dataset" in runs else "—",
    }
    columns = [labels[r] for r in runs["run_id"]]
    return pd.DataFrame({k: list(v) for k, v in rows.items()}, index=columns).T.rename_axis("result")


def varying(runs: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The columns whose values are not all the same over `runs` (for parallel coordinates)."""
    out = []
    for col in columns:
        if col in runs.columns and runs[col].map(param_text).nunique() > 1:
            out.append(col)
    return out


def evaluations(store: RunStore, run_ids: Iterable[str], split: str = "test") -> dict[str, Evaluation]:
    """run id -> its evaluation on `split`, for runs that have one (a handful of runs: one query each)."""
    found = {rid: store.evaluation(rid, split) for rid in run_ids}
    return {rid: ev for rid, ev in found.items() if ev is not None}


def confusion_changes(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], top: int = 6) -> pd.DataFrame:
    """The off-diagonal cells (true → predicted mistakes) that changed most between runs A and B."""
    ma, mb = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    rows = [(t, p, int(ma[t, p]), int(mb[t, p]), int(ma[t, p] - mb[t, p]))
            for t in range(10) for p in range(10) if t != p and ma[t, p] != mb[t, p]]
    rows.sort(key=lambda r: (-abs(r[4]), r[0], r[1]))
    table = pd.DataFrame(rows[:top], columns=["true", "predicted", "A", "B", "A − B"])
    table["mistake"] = table["true"].astype(str) + " → " + table["predicted"].astype(str)
    table["in A"] = np.where(table["A − B"] > 0, "more often (broke)", "less often (fixed)")
    return table[["mistake", "A", "B", "A − B", "in A"]]
