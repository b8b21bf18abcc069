"""Tables for the Runs, Run detail and Compare pages: formatting, filters, sorting, CSV export,
parameter diffs, per-class reports, confusion changes, test digits and links between pages.

Everything that touches many runs is vectorised (pandas column operations, no per-row
store queries), so a table of 1,000 runs stays fast. Nothing here caches run rows: a live
run's status is always read fresh.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from core.model.architectures import describe
from core.config import TrainConfig
from core.data.dataset import DataError, load_dataset
from core.store.schema import FINISHED, Evaluation, StoreError
from core.store.facade import RunStore

# Hyperparameters shown as table columns and offered to the parallel-coordinates plot.
HYPERPARAMETERS = ("architecture", "optimizer", "learning_rate", "batch_size", "epochs_planned", "dropout",
                   "activation", "validation_split", "lr_schedule", "train_limit", "augment", "elastic", "seed")
METRICS = {"test_accuracy": "test accuracy", "best_val_accuracy": "best validation accuracy",
           "last_val_accuracy": "last validation accuracy", "drawn_accuracy": "drawn-set accuracy"}
# Sort choices on the Runs page: label -> (column, descending by default).
SORTS = {"newest first": ("created_at", True), "test accuracy": ("test_accuracy", True),
         "best validation accuracy": ("best_val_accuracy", True), "drawn-set accuracy": ("drawn_accuracy", True),
         "duration": ("duration", True), "parameters": ("n_params", True), "name": ("name", False),
         "status": ("status", False), "architecture": ("architecture", False)}
STATUS_COLOURS = {"queued": "gray", "running": "blue", "completed": "green", "failed": "red",
                  "cancelled": "orange", "interrupted": "orange", "pruned": "violet"}
PAGES = {"train": ("../pages/train.py", ""), "runs": ("../pages/runs.py", "runs"),
         "run": ("../pages/run_detail.py", "run"), "compare": ("../pages/compare.py", "compare"),
         "draw": ("../pages/draw.py", "draw"), "data": ("../pages/data.py", "data"),
         "study": ("../pages/study.py", "study")}
CSV_COLUMNS = ("run_id", "name", "status", "architecture", "group_name", "tags", "note", "created", *HYPERPARAMETERS[1:],
               "n_params", "epoch", "best_val_accuracy", "best_val_epoch", "last_val_accuracy", "last_val_epoch",
               "test_accuracy", "test_loss", "drawn_accuracy", "duration", "parent_id")


# -- the runs table ------------------------------------------------------------------------
def _percent(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype(float) * 100


def _tags_text(tags: pd.Series) -> pd.Series:
    return tags.map(lambda t: ", ".join(t) if isinstance(t, list) else "")


def duration_text(seconds: float | None) -> str:
    """A duration as every page shows it: "3 s", "1 min 12 s", "2 h 05 min"; "—" when unknown."""
    if seconds is None or pd.isna(seconds) or not np.isfinite(seconds):
        return "—"
    seconds = int(round(float(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


MNIST_SIZES = (60_000, 10_000)


def dataset_label(dataset: Mapping[str, Any] | None, short: bool = False) -> str:
    """Which data trained a run, as people read it: "full MNIST · 60,000 train / 10,000 test ·
    #ae9e8442" (short: "full MNIST · #ae9e8442"); "—" for a run that recorded none (trained
    before runs recorded their dataset, or not started yet)."""
    if not isinstance(dataset, Mapping) or not dataset.get("n_train"):
        return "—"
    n_train, n_test = int(dataset["n_train"]), int(dataset.get("n_test") or 0)
    if dataset.get("offline_sample"):
        kind = "offline 5,000-digit sample"
    elif (n_train, n_test) == MNIST_SIZES:
        kind = "full MNIST"
    else:
        kind = f"{n_train + n_test:,}-digit set"
    sha = f"#{str(dataset.get('sha256') or '')[:8]}" if dataset.get("sha256") else ""
    if short:  # the Runs table's narrow column: "full MNIST #ae9e84", "sample #1c2d3e"
        kind = {"offline 5,000-digit sample": "sample"}.get(kind, kind).replace("-digit set", " digits")
        return " ".join(filter(None, [kind, sha[:7]]))
    return " · ".join(filter(None, [kind, f"{n_train:,} train / {n_test:,} test", sha]))


def dataset_differences(datasets: Mapping[str, Mapping[str, Any] | None]) -> str:
    """One line warning that runs were trained on different data (label -> run's dataset), else ""."""
    by_hash: dict[str, list[str]] = {}
    for label, dataset in datasets.items():
        key = (dataset or {}).get("sha256") if isinstance(dataset, Mapping) else None
        by_hash.setdefault(key or "", []).append(label)
    known = {k: v for k, v in by_hash.items() if k}
    if len(known) > 1:
        parts = [f"{', '.join(labels)}: {dataset_label(datasets[labels[0]])}" for labels in known.values()]
        return ("These runs were trained on different datasets, so their accuracies are not comparable as they "
                "stand (" + "; ".join(parts) + ").")
    if known and "" in by_hash:
        return ("The dataset of " + ", ".join(by_hash[""]) + " was not recorded (trained before runs recorded it): "
                "check it is the same data before comparing.")
    return ""


def status_badge(status: str) -> str:
    """Markdown for a coloured status badge."""
    return f":{STATUS_COLOURS.get(status, 'gray')}-badge[{status}]"


def runs_view(runs: pd.DataFrame) -> pd.DataFrame:
    """list_runs() rows as the Runs table shows them (accuracies in %, durations as text, tags as text)."""
    out = pd.DataFrame({
        "name": runs["name"],
        "status": runs["status"],
        "architecture": runs["architecture"],
        "optimizer": runs["optimizer"],
        "learning rate": pd.to_numeric(runs["learning_rate"], errors="coerce"),
        "batch": pd.to_numeric(runs["batch_size"], errors="coerce"),
        "epochs": runs["epoch"].astype("Int64").astype(str) + " / "
                  + pd.to_numeric(runs["epochs"], errors="coerce").astype("Int64").astype(str).replace("<NA>", "?"),
        "best val %": _percent(runs["best_val_accuracy"]),
        "best @": pd.to_numeric(runs["best_val_epoch"], errors="coerce").astype("Int64"),
        "last val %": _percent(runs["last_val_accuracy"]),
        "last @": pd.to_numeric(runs["last_val_epoch"], errors="coerce").astype("Int64"),
        "test %": _percent(runs["test_accuracy"]),
        "drawn %": _percent(runs["drawn_accuracy"]),
        "duration": pd.to_numeric(runs["duration"], errors="coerce").map(duration_text),
        "params": pd.to_numeric(runs["n_params"], errors="coerce").astype("Int64"),
        "dataset": runs["dataset"].map(lambda d: dataset_label(d, short=True)) if "dataset" in runs else "—",
        "group": runs["group_name"],
        "tags": _tags_text(runs["tags"]),
        "note": runs["note"].fillna(""),
        "created": pd.to_datetime(runs["created_at"], unit="s"),
        "details": "run?run=" + runs["run_id"],
        "id": runs["run_id"],
    })
    return out.reset_index(drop=True)


# What the Runs table shows until the user picks other columns (the Columns button): with the
# widths below it fits the page at 1440 px (about 980 px of table beside the sidebar).
DEFAULT_COLUMNS = ("name", "status", "architecture", "learning rate", "epochs", "best val %", "test %",
                   "duration", "dataset", "details")


def runs_column_config() -> dict[str, Any]:
    """st.dataframe column formats and headers for runs_view(): every header reads on its own."""
    cc = st.column_config
    pct = "%.2f%%"
    return {
        "name": cc.TextColumn("name", width=160, pinned=True),
        "status": cc.TextColumn("status", width=82),
        "architecture": cc.TextColumn("architecture", width=100),
        "optimizer": cc.TextColumn("optimizer"),
        "learning rate": cc.NumberColumn("learning rate", format="%.0e", width=95, help="initial learning rate"),
        "batch": cc.NumberColumn("batch size", format="%d", width=80),
        "epochs": cc.TextColumn("epochs", width=62, help="epochs finished / planned"),
        "best val %": cc.NumberColumn("best val. acc.", format=pct, width=100,
                                      help="best validation accuracy over the epochs"),
        "best @": cc.NumberColumn("best val. epoch", format="%d", help="epoch of the best validation accuracy"),
        "last val %": cc.NumberColumn("last val. acc.", format=pct, help="validation accuracy after the last epoch"),
        "last @": cc.NumberColumn("last val. epoch", format="%d", help="epoch of the last validation accuracy"),
        "test %": cc.NumberColumn("test acc.", format=pct, width=72, help="accuracy on the test split"),
        "drawn %": cc.NumberColumn("drawn-set acc.", format=pct, help="accuracy on the digits drawn on the Draw page"),
        "duration": cc.TextColumn("duration", width=70, help="training time (so far, while running)"),
        "params": cc.NumberColumn("parameters", format="localized"),
        "dataset": cc.TextColumn("dataset", width=130,
                                 help="the data that trained the run and its fingerprint (the Run detail page says more)"),
        "group": cc.TextColumn("group"),
        "tags": cc.TextColumn("tags"),
        "note": cc.TextColumn("note"),
        "created": cc.DatetimeColumn("created (UTC)", format="YYYY-MM-DD HH:mm", width=130),
        "details": cc.LinkColumn("details", display_text="open ↗", width=58,
                                 help="open the run's detail page in a new tab"),
        "id": cc.TextColumn("run id", width=110),
    }


def newest_finished(runs: pd.DataFrame, n: int = 1) -> list[str]:
    """The ids of the `n` newest runs that ended with a model and a test evaluation (completed, pruned)."""
    done = runs[runs["status"].isin(FINISHED)].sort_values("created_at", ascending=False, kind="stable")
    return done["run_id"].head(n).tolist()


def all_tags(runs: pd.DataFrame) -> list[str]:
    """Every tag used by any run, sorted."""
    return sorted({tag for tags in runs["tags"] if isinstance(tags, list) for tag in tags})


def all_groups(runs: pd.DataFrame) -> list[str]:
    return sorted(g for g in runs["group_name"].dropna().unique() if g)


def filter_runs(runs: pd.DataFrame, statuses: Iterable[str] = (), architectures: Iterable[str] = (),
                groups: Iterable[str] = (), tags: Iterable[str] = (), search: str = "") -> pd.DataFrame:
    """Runs matching every given filter (an empty filter matches all); tags match any of those given."""
    mask = pd.Series(True, index=runs.index)
    statuses, architectures, groups, tags = list(statuses), list(architectures), list(groups), set(tags)
    if statuses:
        mask &= runs["status"].isin(statuses)
    if architectures:
        mask &= runs["architecture"].isin(architectures)
    if groups:
        mask &= runs["group_name"].isin(groups)
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


def add_tag(tags: Sequence[str] | None, tag: str) -> list[str]:
    return list(dict.fromkeys([*(tags or []), tag]))


def remove_tag(tags: Sequence[str] | None, tag: str) -> list[str]:
    return [t for t in (tags or []) if t != tag]


def tag_runs(store: RunStore, selected: pd.DataFrame, tag: str, add: bool = True) -> tuple[int, list[str]]:
    """Add (or remove) `tag` on the selected list_runs() rows; returns (runs changed, errors)."""
    changed, errors = 0, []
    for run_id, tags in zip(selected["run_id"], selected["tags"]):
        new = add_tag(tags, tag) if add else remove_tag(tags, tag)
        if new == list(tags or []):
            continue
        try:
            store.update_run(run_id, tags=new)
            changed += 1
        except StoreError as exc:  # deleted meanwhile, or an unwritable store
            errors.append(str(exc))
    return changed, errors


def delete_runs(store: RunStore, run_ids: Iterable[str]) -> tuple[int, list[str]]:
    """Delete runs with their metrics, evaluations and files; returns (deleted, errors such as 'running')."""
    deleted, errors = 0, []
    for run_id in run_ids:
        try:
            store.delete_run(run_id)
            deleted += 1
        except StoreError as exc:
            errors.append(str(exc))
    return deleted, errors


def clean_tag(text: str) -> str:
    """A tag as typed, trimmed; commas are not allowed (the table joins tags with them)."""
    return " ".join(text.replace(",", " ").split())[:40]


# -- comparing runs --------------------------------------------------------------------------------
def _param_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def param_diff(configs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Rows: the parameters whose values differ between the configs; columns: one per config label."""
    keys = [k for k in dict.fromkeys(k for cfg in configs.values() for k in cfg) if k != "name"]  # names head the columns
    rows = {}
    for key in keys:
        values = [_param_text(cfg.get(key)) for cfg in configs.values()]
        if len(set(values)) > 1:
            rows[key] = values
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(configs)).rename_axis("parameter")


def unique_labels(runs: pd.DataFrame) -> dict[str, str]:
    """run id -> its name, with the short id appended where two runs share a name."""
    counts = runs["name"].value_counts()
    return {rid: (name if counts[name] == 1 else f"{name} ({rid[:6]})")
            for rid, name in zip(runs["run_id"], runs["name"])}


def _fmt(value: Any, pattern: str) -> str:
    return "—" if value is None or pd.isna(value) else pattern.format(value)


def summary_table(runs: pd.DataFrame, labels: Mapping[str, str]) -> pd.DataFrame:
    """Compare's side-by-side summary as text: one row per result, one column per run."""
    rows = {
        "status": runs["status"],
        "test accuracy": _percent(runs["test_accuracy"]).map(lambda v: _fmt(v, "{:.2f}%")),
        "best val accuracy": [_fmt(v, "{:.2f}%") + ("" if pd.isna(e) else f" (epoch {int(e)})")
                              for v, e in zip(_percent(runs["best_val_accuracy"]), runs["best_val_epoch"])],
        "last val accuracy": _percent(runs["last_val_accuracy"]).map(lambda v: _fmt(v, "{:.2f}%")),
        "drawn-set accuracy": _percent(runs["drawn_accuracy"]).map(lambda v: _fmt(v, "{:.2f}%")),
        "duration": pd.to_numeric(runs["duration"], errors="coerce").map(duration_text),
        "parameters": pd.to_numeric(runs["n_params"], errors="coerce").map(lambda v: _fmt(v, "{:,.0f}")),
        "dataset": runs["dataset"].map(lambda d: dataset_label(d, short=True)) if "dataset" in runs else "—",
    }
    columns = [labels[r] for r in runs["run_id"]]
    return pd.DataFrame({k: list(v) for k, v in rows.items()}, index=columns).T.rename_axis("result")


def varying(runs: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """The columns whose values are not all the same over `runs` (for parallel coordinates)."""
    out = []
    for col in columns:
        if col in runs.columns and runs[col].map(_param_text).nunique() > 1:
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


# -- one run --------------------------------------------------------------------------------------
def report_table(report: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Per-digit precision, recall, F1 (in %) and support from an Evaluation's report."""
    rows = [{"digit": int(d), "precision %": 100 * r["precision"], "recall %": 100 * r["recall"],
             "F1 %": 100 * r["f1"], "support": int(r["support"])}
            for d, r in sorted(report.items(), key=lambda kv: int(kv[0]))]
    return pd.DataFrame(rows, columns=["digit", "precision %", "recall %", "F1 %", "support"])


def config_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """A run's stored config as (parameter, value) text rows; lists such as layers as compact JSON."""
    rows = [(k, _param_text(v)) for k, v in config.items() if not (k == "layers" and not v)]  # a preset's: none
    return pd.DataFrame(rows, columns=["parameter", "value"])


def layer_table(config: TrainConfig) -> pd.DataFrame:
    """The model summary (layer, output shape, parameters) from core.model.architectures.describe."""
    rows = [{"layer": r.name, "output shape": "(" + ", ".join(map(str, r.output_shape)) + ")",
             "parameters": r.params, "note": r.note} for r in describe(config.hidden_layers())]
    if config.augment:
        rows.insert(1, {"layer": "RandomRotation · RandomTranslation · RandomZoom",
                        "output shape": "(28, 28, 1)", "parameters": 0, "note": "augmentation, training only"})
    if config.elastic:
        rows.insert(1, {"layer": "ElasticDistortion", "output shape": "(28, 28, 1)", "parameters": 0,
                        "note": "elastic distortion, training only"})
    return pd.DataFrame(rows)


@st.cache_data(max_entries=4, show_spinner="Loading the test digits…")
def _test_split(path: str, mtime: float) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset(path)
    return data.x_test, data.y_test


def gallery_digits(path: str | Path, indices: Sequence[int], labels: Sequence[int]) -> tuple[np.ndarray | None, str]:
    """Test images at `indices`, checked against their recorded true `labels`.

    Returns (images, "") or (None, why not): no dataset, or a test split that changed since
    the run was evaluated (the indices would show the wrong digits).
    """
    path = Path(path)
    try:
        x_test, y_test = _test_split(str(path), path.stat().st_mtime)
    except (OSError, DataError) as exc:
        return None, f"The test digits cannot be shown: {exc}"
    idx = np.asarray(indices, dtype=int)
    if idx.size and (idx.max() >= len(y_test) or not np.array_equal(y_test[idx], np.asarray(labels))):
        return None, ("The dataset's test split is not the one this run was evaluated on (it was re-ingested), "
                      "so its misclassified digits cannot be shown.")
    return x_test[idx], ""


# -- links between pages ------------------------------------------------------------------------------
def page_link(page: str, label: str, query: Mapping[str, str] | None = None, icon: str | None = None,
              disabled: bool = False, help: str | None = None) -> None:
    """st.page_link to one of the app's pages (a key of PAGES: 'train', 'run', 'compare', …) with query params.

    When the page runs on its own (not under dashboard/app.py's navigation) there is nothing to
    link to by page, so a plain relative link is written instead.
    """
    path, url_path = PAGES[page]
    try:
        st.page_link(path, label=label, icon=icon, query_params=dict(query or {}), disabled=disabled, help=help)
    except (st.errors.StreamlitAPIException, KeyError):  # KeyError: a page this app does not register
        suffix = f"?{urlencode(dict(query))}" if query else ""
        st.markdown(f"[{label}](./{url_path}{suffix})")


# -- the model ------------------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner=False)
def _kernels(url: str, run_id: str, version: str, _store: RunStore) -> np.ndarray | None:
    from core.predict.ensemble import first_conv_kernels, model_for_run

    try:
        return first_conv_kernels(_store, run_id)  # from the file's weights: no TensorFlow import
    except LookupError:  # a file laid out otherwise (another Keras version): load the model itself
        from dashboard.charts import conv_kernels

        return conv_kernels(model_for_run(_store, run_id))


def first_layer_kernels(store: RunStore, run_id: str) -> tuple[np.ndarray | None, str]:
    """The run's first Conv2D kernels (filters, k, k), cached per model file; or (None, why not)."""
    from core.predict.preprocess import InferenceError

    version = store.model_version(run_id)  # its hash in the store: the same on every machine
    try:
        if not version:
            raise FileNotFoundError
        kernels = _kernels(store.url, run_id, version, store)
    except FileNotFoundError:
        return None, f"The model file of run {run_id} is missing from the store, so its kernels cannot be shown."
    except (InferenceError, StoreError) as exc:
        return None, f"The kernels cannot be shown: {exc}"
    if kernels is None:
        return None, "This model has no Conv2D layer."
    return kernels, ""
