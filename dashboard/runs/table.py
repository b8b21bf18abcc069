"""The Runs page's table: list_runs() rows as the table shows them, its column formats and the
columns shown by default, the filters, the sort choices and the CSV export.

Everything is vectorised (pandas column operations, no per-row store queries), so a table of
1,000 runs stays fast.
"""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd
import streamlit as st

from core.config import PARAMS, runs_columns
from dashboard.format import dataset_label, duration_text, percent
from dashboard.run_list import FRAME_COLUMNS, HYPERPARAMETERS

# Sort choices on the Runs page: label -> (column, descending by default).
SORTS = {"newest first": ("created_at", True), "test accuracy": ("test_accuracy", True),
         "best validation accuracy": ("best_val_accuracy", True), "drawn-set accuracy": ("drawn_accuracy", True),
         "duration": ("duration", True), "parameters": ("n_params", True), "name": ("name", False),
         "status": ("status", False), "architecture": ("architecture", False)}
# Where a run came from (runs.source), as the table and the Source filter name it.
SOURCE_LABELS = {"trained": "trained here", "tracked": "tracked", "imported": "imported"}
CSV_COLUMNS = ("run_id", "name", "status", "source", "architecture", "group_name", "tags", "note", "created",
               *HYPERPARAMETERS[1:],
               "n_params", "epoch", "best_val_accuracy", "best_val_epoch", "last_val_accuracy", "last_val_epoch",
               "test_accuracy", "test_loss", "drawn_accuracy", "duration", "parent_id")


def _tags_text(tags: pd.Series) -> pd.Series:
    return tags.map(lambda t: ", ".join(t) if isinstance(t, list) else "")


def _hyperparameter(runs: pd.DataFrame, field: str) -> pd.Series | None:
    """One registry field's values as its Runs column shows them (None where list_runs() has no such column)."""
    column = FRAME_COLUMNS[field]
    if field == "epochs":  # progress with the plan: "3 / 5"
        return (runs["epoch"].astype("Int64").astype(str) + " / "
                + pd.to_numeric(runs["epochs"], errors="coerce").astype("Int64").astype(str).replace("<NA>", "?"))
    if column not in runs:
        return None
    if PARAMS[field].kind in ("int", "float"):
        return pd.to_numeric(runs[column], errors="coerce")
    return runs[column]


def _source(runs: pd.DataFrame) -> pd.Series:
    """Each run's source; a frame without the column (an older store's) had only runs trained here."""
    return runs["source"].fillna("trained") if "source" in runs else pd.Series("trained", index=runs.index)


def runs_view(runs: pd.DataFrame) -> pd.DataFrame:
    """list_runs() rows as the Runs table shows them (accuracies in %, durations as text, tags as text).

    The hyperparameter columns are the registry's (core.config.runs_columns), headed by their
    Runs column names ("learning rate", "batch size", …).
    """
    out = pd.DataFrame({
        "name": runs["name"],
        "status": runs["status"],
        "source": _source(runs).map(SOURCE_LABELS),
        **{header: _hyperparameter(runs, field) for field, header in runs_columns().items()},
        "best val %": percent(runs["best_val_accuracy"]),
        "best @": pd.to_numeric(runs["best_val_epoch"], errors="coerce").astype("Int64"),
        "last val %": percent(runs["last_val_accuracy"]),
        "last @": pd.to_numeric(runs["last_val_epoch"], errors="coerce").astype("Int64"),
        "test %": percent(runs["test_accuracy"]),
        "drawn %": percent(runs["drawn_accuracy"]),
        "duration": pd.to_numeric(runs["duration"], errors="coerce").map(duration_text),
        "params": pd.to_numeric(runs["n_params"], errors="coerce").astype("Int64"),
        "dataset": runs["dataset"].map(lambda d: dataset_label(d, short=True)) if "dataset" in runs else "—",
        "group": runs["group_name"],
        "tags": _tags_text(runs["tags"]),
        "note": runs["note"].fillna(""),
        "created": pd.to_datetime(runs["created_at"], unit="s"),
        "details": "run?run=" + runs["run_id"],
        "id": runs["run_id"],
    }, index=runs.index)
    return out.reset_index(drop=True)


# What the Runs table shows until the user picks other columns (the Columns button): with the
# widths below it fits the page at 1440 px (about 980 px of table beside the sidebar).
DEFAULT_COLUMNS = ("name", "status", "source", "architecture", "learning rate", "epochs", "best val %", "test %",
                   "duration", "dataset", "details")


# The name column's width, and the width it gains while the dataset column is hidden (the default
# columns then still fit 1440 px; "source" is shown only when runs came from elsewhere).
NAME_WIDTH = 160
DATASET_WIDTH = 130


def default_columns(runs: pd.DataFrame) -> tuple[str, ...]:
    """DEFAULT_COLUMNS, less "source" while every run was trained here and "dataset" while every run
    trained on the same data: such a column says nothing new, and its width shows more of each name."""
    alike = set()
    if not (_source(runs) != "trained").any():
        alike.add("source")
    if "dataset" in runs and runs["dataset"].map(_dataset_key).nunique() <= 1:
        alike.add("dataset")
    return tuple(c for c in DEFAULT_COLUMNS if c not in alike)


def name_width(columns: Iterable[str]) -> int:
    """The name column's width: wider by the dataset column's while that one is hidden."""
    return NAME_WIDTH + (0 if "dataset" in set(columns) else DATASET_WIDTH)


def _dataset_key(dataset: Any) -> Any:
    return dataset.get("sha256") if isinstance(dataset, dict) else None
# How some hyperparameter columns look; the others get their kind's default (see `runs_column_config`).
HYPERPARAMETER_LOOKS = {"architecture": {"width": 100}, "epochs": {"width": 62, "help": "epochs finished / planned"},
                        "learning_rate": {"format": "%.0e", "width": 95, "help": "initial learning rate"},
                        "batch_size": {"width": 80}}


def _hyperparameter_config(field: str, header: str) -> Any:
    cc, kind, looks = st.column_config, PARAMS[field].kind, HYPERPARAMETER_LOOKS.get(field, {})
    if field == "epochs":
        return cc.TextColumn(header, **looks)
    if kind == "int":
        return cc.NumberColumn(header, **{"format": "%d", **looks})
    if kind == "float":
        return cc.NumberColumn(header, **looks)
    if kind == "bool":
        return cc.CheckboxColumn(header, **looks)
    return cc.TextColumn(header, **looks)


def runs_column_config(name_width: int = NAME_WIDTH) -> dict[str, Any]:
    """st.dataframe column formats and headers for runs_view(): every header reads on its own."""
    cc = st.column_config
    pct = "%.2f%%"
    return {
        "name": cc.TextColumn("name", width=name_width, pinned=True),
        "status": cc.TextColumn("status", width=82),
        "source": cc.TextColumn("source", width=84, help="trained here; tracked from a script or notebook "
                                "(core.track.DigitLabCallback); or imported (a .keras model or TensorBoard logs)"),
        **{header: _hyperparameter_config(field, header) for field, header in runs_columns().items()},
        "best val %": cc.NumberColumn("best val. acc.", format=pct, width=100,
                                      help="best validation accuracy over the epochs"),
        "best @": cc.NumberColumn("best val. epoch", format="%d", help="epoch of the best validation accuracy"),
        "last val %": cc.NumberColumn("last val. acc.", format=pct, help="validation accuracy after the last epoch"),
        "last @": cc.NumberColumn("last val. epoch", format="%d", help="epoch of the last validation accuracy"),
        "test %": cc.NumberColumn("test acc.", format=pct, width=72, help="accuracy on the test split"),
        "drawn %": cc.NumberColumn("drawn-set acc.", format=pct, help="accuracy on the digits drawn on the Draw page"),
        "duration": cc.TextColumn("duration", width=70, help="training time (so far, while running)"),
        "params": cc.NumberColumn("parameters", format="localized"),
        "dataset": cc.TextColumn("dataset", width=DATASET_WIDTH,
                                 help="the data that trained the run and its fingerprint (the Run detail page says more)"),
        "group": cc.TextColumn("group"),
        "tags": cc.TextColumn("tags"),
        "note": cc.TextColumn("note"),
        "created": cc.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm", width=130),
        "details": cc.LinkColumn("details", display_text="open ↗", width=58,
                                 help="open the run's detail page in a new tab"),
        "id": cc.TextColumn("run id", width=110),
    }


def all_tags(runs: pd.DataFrame) -> list[str]:
    """Every tag used by any run, sorted."""
    return sorted({tag for tags in runs["tags"] if isinstance(tags, list) for tag in tags})


def filter_runs(runs: pd.DataFrame, statuses: Iterable[str] = (), architectures: Iterable[str] = (),
                groups: Iterable[str] = (), tags: Iterable[str] = (), search: str = "",
                sources: Iterable[str] = ()) -> pd.DataFrame:
    """Runs matching every given filter (an empty filter matches all); tags match any of those given."""
    mask = pd.Series(True, index=runs.index)
    statuses, architectures, groups, tags = list(statuses), list(architectures), list(groups), set(tags)
    if statuses:
        mask &= runs["status"].isin(statuses)
    if architectures:
        mask &= runs["architecture"].isin(architectures)
    if groups:
        mask &= runs["group_name"].isin(groups)
    if sources := list(sources):  # "trained", "tracked", "imported" (SOURCE_LABELS' keys)
        mask &= _source(runs).isin(sources)
    if tags:
        mask &= runs["tags"].map(lambda t: isinstance(t, list) and not tags.isdisjoint(t))
    if search.strip():
        needle = search.strip()
        mask &= (runs["name"].str.contains(needle, case=False, regex=False)
                 | runs["run_id"].str.startswith(needle.lower()))
    return runs[mask]


def sort_runs(runs: pd.DataFrame, label: str, reverse: bool = False) -> pd.DataFrame:
    """Sort by a SORTS label (missing values last); `reverse` flips the label's usual order."""
    column, descending = SORTS[label]
    key = (lambda s: s.str.lower()) if column in ("name", "status", "architecture") else None
    return runs.sort_values(column, ascending=descending == reverse, na_position="last", kind="stable", key=key)


def runs_csv(runs: pd.DataFrame) -> bytes:
    """The runs as CSV (UTF-8): ids, settings, metrics (fractions, not %), tags joined by ';'."""
    out = runs.assign(tags=runs["tags"].map(lambda t: ";".join(t) if isinstance(t, list) else ""),
                      created=pd.to_datetime(runs["created_at"], unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out[[c for c in CSV_COLUMNS if c in out.columns]].to_csv(index=False).encode("utf-8")
