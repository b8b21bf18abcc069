"""Helpers over `RunStore.list_runs()` that several pages share: the hyperparameter and metric
columns, labels that tell runs apart, groups, and the newest finished runs to open on.

Everything is vectorised (pandas column operations, no per-row store queries), so 1,000 runs
stay fast. Nothing here caches run rows: a live run's status is always read fresh.
"""
from __future__ import annotations

import pandas as pd

from core.config import runs_columns
from core.store.schema import FINISHED

# The list_runs() column of each Runs-table field of the registry (core.config.runs_columns): the
# field's own name, except the planned epochs, which list_runs() names apart from its progress columns.
FRAME_COLUMNS = {field: {"epochs": "epochs_planned"}.get(field, field) for field in runs_columns()}
# The hyperparameter columns of list_runs(), as tables, the CSV export and the parallel-coordinates plot use them.
HYPERPARAMETERS = tuple(FRAME_COLUMNS.values())
METRICS = {"test_accuracy": "test accuracy", "best_val_accuracy": "best validation accuracy",
           "last_val_accuracy": "last validation accuracy", "drawn_accuracy": "drawn-set accuracy"}


def newest_finished(runs: pd.DataFrame, n: int = 1) -> list[str]:
    """The ids of the `n` newest runs that ended with a model and a test evaluation (completed, pruned)."""
    done = runs[runs["status"].isin(FINISHED)].sort_values("created_at", ascending=False, kind="stable")
    return done["run_id"].head(n).tolist()


def all_groups(runs: pd.DataFrame) -> list[str]:
    """Every group name used by any run, sorted."""
    return sorted(g for g in runs["group_name"].dropna().unique() if g)


def unique_labels(runs: pd.DataFrame) -> dict[str, str]:
    """run id -> its name, with the short id appended where two runs share a name."""
    counts = runs["name"].value_counts()
    return {rid: (name if counts[name] == 1 else f"{name} ({rid[:6]})")
            for rid, name in zip(runs["run_id"], runs["name"])}
