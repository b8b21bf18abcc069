"""Repeats: runs of one config that differ only in their seed (and name), grouped by a config id.

A run's config id is a short hash of its resolved config without `seed` and `name`, plus the
fingerprint of the dataset that trained it: the same hyperparameters on different digits are a
different experiment. Runs that share a config id are repeats, and their spread over seeds is the
noise any comparison must beat (core.search.significance).

`group_runs()` turns the Runs table into one row per config (N, mean ± std of test, best and last
validation accuracy, mean duration, the member runs); `repeat_configs()` makes the N configs a
"repeat with N seeds" queues; `select()` finds what a run id or config id names; `history_band()`
gives a group's mean curve with its band. Pure functions on DataFrames:
nothing here reads the store, imports TensorFlow or draws.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from core.config import TrainConfig
from core.errors import DigitLabError
from core.search.significance import summarize

IGNORED = ("seed", "name")   # fields that do not change what is trained, only which draw of it
ID_CHARS = 12                # hex characters of the SHA-256 kept: 48 bits, no clash among millions of configs
UNKNOWN_DATA = "unknown"     # the fingerprint hashed for a run whose dataset was not recorded
REPEATABLE = ("completed",)  # statuses whose results are comparable repeats (a pruned run stopped early)
MAX_REPEATS = 10            # seeds one "repeat" may queue at once (Train page, --repeat, a study's confirmation)
SUMMARIZED = ("test_accuracy", "best_val_accuracy", "last_val_accuracy")  # each gets mean_*, std_*


def repeat_config(config: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The config its repeats share: every field (missing ones at their default), without seed and name.

    What a new repeat is queued from. A config stored before a field existed lacks that key; it
    trained with the field's default, so the default fills it in.
    """
    data = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
    return {k: v for k, v in {**_DEFAULTS, **data}.items() if k not in IGNORED}


def config_id(config: TrainConfig | Mapping[str, Any], dataset_fingerprint: str | None) -> str:
    """A short stable id of a config and its data: the first ID_CHARS hex of SHA-256 of canonical JSON.

    Two runs share the id exactly when they differ at most in seed and name and trained on the
    same dataset (None or "" for an unrecorded one, which groups only with its like). Canonical:
    keys sorted, tuples as lists, every number as a float (so 10 and 10.0 agree), no whitespace,
    and a field at its default left out (a missing one counts as its default), so adding a field
    to TrainConfig with a default that keeps the old behaviour leaves every existing id as it was.
    The hashed text is json.dumps({"config": {the fields off their default}, "dataset":
    fingerprint}, sort_keys=True, separators=(",", ":")).
    """
    data = config.to_dict() if isinstance(config, TrainConfig) else config
    changed = {}
    for key, value in data.items():
        if key not in IGNORED:
            value = _canonical(value)
            default = _CANONICAL_DEFAULTS.get(key, _MISSING)
            if type(value) is not type(default) or value != default:  # type: so False is not 0.0
                changed[key] = value
    text = _json({"config": changed, "dataset": dataset_fingerprint or UNKNOWN_DATA})
    return hashlib.sha256(text.encode()).hexdigest()[:ID_CHARS]


def repeat_configs(config: TrainConfig, n: int) -> list[TrainConfig]:
    """The configs of N repeats: `config` with seeds s, s+1, ..., s+N-1 (s its own seed), each validated.

    N must be a whole number from 1 to MAX_REPEATS (DigitLabError, one line, before anything is
    queued); a seed past the allowed range is the config's own ConfigError naming `seed`.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_REPEATS:
        raise DigitLabError(f"repeats must be a whole number from 1 to {MAX_REPEATS}, got {n!r}")
    return [replace(config, seed=config.seed + i).validate() for i in range(int(n))]


def dataset_fingerprint(dataset: Mapping[str, Any] | str | None) -> str | None:
    """The fingerprint in a run's recorded dataset ({source, n_train, n_test, sha256, ...}); None if unknown."""
    if isinstance(dataset, Mapping):
        return dataset.get("sha256") or None
    return dataset or None


def config_ids(runs: pd.DataFrame) -> pd.Series:
    """Each run's config id, indexed like `runs`.

    Read from a `config_id` column when the frame has one; else computed from the `config` (the
    resolved config as a dict) and `dataset` (the recorded dataset dict, or None) columns.
    """
    if "config_id" in runs.columns:
        return runs["config_id"]
    missing = [c for c in ("config", "dataset") if c not in runs.columns]
    if missing:
        raise ValueError(f"config ids need the runs' {' and '.join(missing)} column(s), or a config_id column")
    ids = [config_id(cfg if isinstance(cfg, Mapping) else {}, dataset_fingerprint(ds))
           for cfg, ds in zip(runs["config"], runs["dataset"])]
    return pd.Series(ids, index=runs.index, dtype=object)


def group_runs(runs: pd.DataFrame, statuses: tuple[str, ...] | None = REPEATABLE) -> pd.DataFrame:
    """One row per config id: its repeats' N and mean ± sample std (ddof=1) of the accuracies.

    `runs` is the Runs table (RunStore.list_runs(): run_id, name, status, config, dataset,
    test_accuracy, best_val_accuracy, last_val_accuracy, duration). Only runs with a status in
    `statuses` are repeats (None: every run). Columns: config_id, name (the newest member's),
    architecture, dataset, n, mean_/std_ of each SUMMARIZED accuracy (missing values skipped;
    std is NaN for N = 1), ci_low_/ci_high_test_accuracy (the 95 % t interval of the mean, as
    fractions; NaN for N = 1), mean_duration (seconds), seeds, run_ids (in the frame's order,
    newest first from list_runs) and config (without seed and name, to queue more repeats).
    Best mean test accuracy first.
    """
    if statuses is not None and "status" in runs.columns:
        runs = runs[runs["status"].isin(statuses)]
    columns = ["config_id", "name", "architecture", "dataset", "n",
               *(f"{s}_{m}" for m in SUMMARIZED for s in ("mean", "std")),
               "ci_low_test_accuracy", "ci_high_test_accuracy", "mean_duration", "seeds", "run_ids", "config"]
    if runs.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    runs = runs.assign(config_id=config_ids(runs).to_numpy())
    rows = []
    for cid, members in runs.groupby("config_id", sort=False, dropna=False):
        first = members.iloc[0]
        config = first["config"] if isinstance(first.get("config"), Mapping) else {}
        row = {"config_id": cid, "name": first.get("name"), "architecture": first.get("architecture"),
               "dataset": dataset_fingerprint(first.get("dataset")), "n": len(members)}
        for metric in SUMMARIZED:
            summary = summarize(_numbers(members, metric))
            row[f"mean_{metric}"], row[f"std_{metric}"] = summary.mean, summary.std
            if metric == "test_accuracy":
                row["ci_low_test_accuracy"], row["ci_high_test_accuracy"] = summary.ci_low, summary.ci_high
        durations = _numbers(members, "duration")
        row["mean_duration"] = float(durations.mean()) if len(durations) else math.nan
        row["seeds"] = [c.get("seed") if isinstance(c, Mapping) else None for c in members.get("config", [])]
        row["run_ids"] = members["run_id"].tolist()
        row["config"] = repeat_config(config) if config else {}
        rows.append(row)
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("mean_test_accuracy", ascending=False, na_position="last", kind="stable",
                             ignore_index=True)


def select(runs: pd.DataFrame, ident: str) -> pd.DataFrame:
    """The runs an id names: the run with that run id, else the repeats with that config id.

    A run id names that one run (so two single runs can be compared digit by digit); a config
    id names all its repeats. An id that matches neither is a DigitLabError, one line.
    """
    one = runs[runs["run_id"] == ident]
    if not one.empty:
        return one
    group = runs[config_ids(runs) == ident] if not runs.empty else runs
    if group.empty:
        raise DigitLabError(f"no run and no config has the id {ident!r}", hint="`python -m core runs` lists "
                            "run ids and `python -m core runs --group` config ids")
    return group


def history_band(history: pd.DataFrame, x: str = "epoch") -> pd.DataFrame:
    """A group's curves as one mean line with its bands, per metric key and `x` (epoch or step).

    `history` holds the members' metric rows (RunStore histories: run_id, key, step, epoch,
    value). Returns key, x, n (the runs with a value there, for the hover), mean, std (ddof=1),
    sem, min and max, so a chart can switch the band between ±1 std, standard error and min–max.
    """
    cols = ["key", x, "n", "mean", "std", "sem", "min", "max"]
    rows = history.dropna(subset=["value", x])
    if rows.empty:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    grouped = rows.groupby(["key", x], sort=True)["value"]
    band = grouped.agg(n="count", mean="mean", std=lambda v: v.std(ddof=1), min="min", max="max").reset_index()
    band["sem"] = band["std"] / np.sqrt(band["n"])
    return band[cols]


def _json(value: Any) -> str:
    """Compact JSON with sorted keys: the same text for the same value, on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _canonical(value: Any) -> Any:
    """Sorted-key dicts, lists for tuples, floats for every non-boolean number: one text per config."""
    kind = type(value)
    if value is None or kind is str or kind is bool or kind is float:  # the common cases, checked first
        return value
    if kind is int:
        return float(value)
    if isinstance(value, (dict, Mapping)):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return value


_DEFAULTS = TrainConfig().to_dict()  # each field's dataclass default (not a preset's)
_CANONICAL_DEFAULTS = {k: _canonical(v) for k, v in _DEFAULTS.items()}
_MISSING = object()  # a key TrainConfig does not know (a field since removed): always part of the id


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """A column's finite values as floats (an absent column: none)."""
    if column not in frame.columns:
        return pd.Series(dtype=float)
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return values[np.isfinite(values)]
