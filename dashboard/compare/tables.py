"""The Compare page's tables: the settings that differ, the hyperparameters that vary, each run's
test evaluation and the confusion cells that changed most (the summary of runs and groups is in
groups.py).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from core.config import PARAMS
from core.store.facade import RunStore
from core.store.schema import Evaluation
from dashboard.format import param_text


def param_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows: the parameters whose values differ between the configs, by the label the Train form gives
    them ("Learning rate", not learning_rate; a field no longer known keeps its stored name);
    columns: one per config label."""
    keys = [k for k in dict.fromkeys(k for cfg in configs.values() for k in cfg) if k != "name"]  # names head the columns
    rows = {}
    for key in keys:
        values = [param_text(cfg.get(key)) for cfg in configs.values()]
        if len(set(values)) > 1:
            rows[PARAMS[key].label if key in PARAMS else key] = values
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(configs)).rename_axis("parameter")


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


def confusion_changes(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]], top: int = 6,
                      rates: bool = False) -> pd.DataFrame:
    """The off-diagonal cells (true → predicted mistakes) that changed most between A and B.

    Counts, or with `rates` each mistake as a share of its true digit's test digits (in %): what
    compares A and B when their test sets differ in size (another dataset, or groups of
    different N whose matrices are summed), where more digits would mean more mistakes.
    """
    ma, mb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if rates:
        ma, mb = (100 * m / np.where(m.sum(axis=1, keepdims=True) == 0, 1, m.sum(axis=1, keepdims=True))
                  for m in (ma, mb))
        ma, mb = ma.round(2), mb.round(2)
    rows = [(t, p, ma[t, p], mb[t, p], round(ma[t, p] - mb[t, p], 2))
            for t in range(10) for p in range(10) if t != p and ma[t, p] != mb[t, p]]
    rows.sort(key=lambda r: (-abs(r[4]), r[0], r[1]))
    names = ["A %", "B %", "A − B (points)"] if rates else ["A", "B", "A − B"]
    table = pd.DataFrame(rows[:top], columns=["true", "predicted", *names])
    if not rates:
        table[names] = table[names].astype(int)
    table["mistake"] = table["true"].astype(str) + " → " + table["predicted"].astype(str)
    table["in A"] = np.where(table[names[2]] > 0, "more often (broke)", "less often (fixed)")
    return table[["mistake", *names, "in A"]]
