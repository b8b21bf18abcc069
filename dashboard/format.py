"""How every page writes numbers, durations, statuses and datasets: "1 min 12 s", a coloured
status badge, "full MNIST · 60,000 train / 10,000 test · #ae9e8442", a parameter's value as text.

Plain functions over values and pandas columns; none reads the store or Streamlit state.
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Mapping

import numpy as np
import pandas as pd

STATUS_COLOURS = {"queued": "gray", "running": "blue", "completed": "green", "failed": "red",
                  "cancelled": "orange", "interrupted": "orange", "pruned": "violet"}
MNIST_SIZES = (60_000, 10_000)


def percent(series: pd.Series) -> pd.Series:
    """A column of fractions as percentages (anything not a number becomes NaN)."""
    return pd.to_numeric(series, errors="coerce").astype(float) * 100


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


def when_text(iso: str) -> str:
    """An ISO timestamp as people read it, in this machine's time zone: "5 Dec 2026, 10:23"; the text
    itself when it is not one."""
    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    moment = moment.astimezone() if moment.tzinfo else moment
    return f"{moment.day} {moment:%b %Y, %H:%M}"


def value_text(value: Any, pattern: str) -> str:
    """`pattern` filled with `value`, or "—" when there is none."""
    return "—" if value is None or pd.isna(value) else pattern.format(value)


def param_text(value: Any) -> str:
    """A config value as text: "—" for none, lists such as layers as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, separators=(", ", ": "))
    return str(value)


def status_badge(status: str) -> str:
    """Markdown for a coloured status badge."""
    return f":{STATUS_COLOURS.get(status, 'gray')}-badge[{status}]"


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
        unknown = [f"{label} ({datasets[label]['source']})" if isinstance(datasets[label], Mapping)
                   and datasets[label].get("source") else label for label in by_hash[""]]
        return ("The training data of " + ", ".join(unknown) + " is not known (imported or tracked from outside "
                "Digit Lab, or trained before runs recorded their data): check it is the same data before comparing.")
    return ""
