"""Repeats: runs of one config that differ only in their seed (and name), grouped by a config id.

A run's config id is a short hash of its resolved config without `seed` and `name`, plus the
fingerprint of the dataset that trained it: the same hyperparameters on different digits are a
different experiment. Runs that share a config id are repeats, and their spread over seeds is the
noise any comparison must beat (core.search.significance).

`group_runs()` turns the Runs table into one row per config (N, mean ± std of test, best and last
validation accuracy, mean duration, the member runs); `repeat_configs()` makes the N configs a
"repeat with N seeds" queues; `select()` finds what a run id or config id names; `history_band()`
gives a group's mean curve with its band. Those are pure functions on DataFrames. The few that read or
write the store come last: `group_frame()` (the grouped Runs table), `queue_repeats()` (queue N
seeds at once, all or nothing) and `compare_selections()` (what `python -m core compare` and the
Compare page call). Nothing here imports TensorFlow or draws.
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
from core.search.significance import Comparison, compare, summarize

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
    check_count("repeats", n, MAX_REPEATS)
    return [replace(config, seed=config.seed + i).validate() for i in range(int(n))]


def check_count(what: str, n: Any, most: int) -> None:
    """DigitLabError (one line) unless `n` is a whole number from 1 to `most`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= most:
        raise DigitLabError(f"{what} must be a whole number from 1 to {most}, got {n!r}")


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


def repeat_sets(runs: pd.DataFrame, statuses: tuple[str, ...] | None = REPEATABLE, least: int = 2) -> dict[str, list[str]]:
    """Config id -> the run ids of its repeats (in the frame's order), for configs with `least` or more.

    What group_runs() tells about membership, without its statistics: a picker needs only this, and
    summarising every config of a 1,000-run store on each page load cost seconds.
    """
    if statuses is not None and "status" in runs.columns:
        runs = runs[runs["status"].isin(statuses)]
    if runs.empty:
        return {}
    members: dict[str, list[str]] = {}
    for cid, rid in zip(config_ids(runs), runs["run_id"]):
        members.setdefault(cid, []).append(rid)
    return {cid: ids for cid, ids in members.items() if len(ids) >= least}


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


# ------------------------------------------------------------------ reading and writing the store
def group_frame(store, statuses: tuple[str, ...] | None = REPEATABLE) -> pd.DataFrame:
    """The Runs page's "Group repeats" table and `runs --group`: group_runs() of every run in the store."""
    return group_runs(store.list_runs(), statuses)


def repeat_plan(config: TrainConfig, n: int, data_path=None) -> list[TrainConfig]:
    """The N configs a "repeat with N seeds" trains or queues (seeds s, s+1, ...), every one checked.

    N is 1 to MAX_REPEATS; with `data_path` each config is validated against that dataset too. A
    named config's repeats are named "NAME · seed S"; unnamed ones get the store's auto names.
    """
    configs = repeat_configs(config, n)
    if config.name and n > 1:
        configs = [replace(c, name=f"{config.name} · seed {c.seed}") for c in configs]
    if data_path is not None:
        from core.data.dataset import check_dataset
        n_train = check_dataset(data_path).n_train
        configs = [c.validate(n_train) for c in configs]
    return [c.validate() for c in configs]


def queue_repeats(store, config: TrainConfig, n: int, data_path=None, group: str | None = None,
                  parent_id: str | None = None) -> list[str]:
    """Queue N repeats of `config` (repeat_plan) in one transaction; returns their run ids.

    Everything is checked before anything is written: N (1 to MAX_REPEATS), every seed, and with
    `data_path` the config against that dataset.
    """
    from core.store.queue import queue_run

    configs = repeat_plan(config, n, data_path)
    with store.write():  # all N or none
        return [queue_run(store, c, group=group, parent_id=parent_id) for c in configs]


def run_config_id(config: TrainConfig | Mapping[str, Any], data_path=None, dataset: Mapping | None = None) -> str:
    """The config id a run of `config` has (or will have) on `dataset`, else on the dataset at `data_path`."""
    if dataset is None and data_path is not None:
        from core.data.dataset import dataset_identity
        dataset = dataset_identity(data_path)
    return config_id(config, dataset_fingerprint(dataset))


def resolve(runs: pd.DataFrame, selection: str | list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The runs a selection names: a run id or a config id (select()), or a list of run ids.

    A list with one unknown id is a DigitLabError naming it, like an unknown single id.
    """
    if isinstance(selection, str):
        return select(runs, selection)
    wanted = [str(i) for i in selection]
    if not wanted:
        raise DigitLabError("an empty selection: choose at least one run")
    missing = [i for i in wanted if i not in set(runs["run_id"])]
    if missing:
        raise DigitLabError(f"no run has the id {missing[0]!r}", hint="`python -m core runs` lists run ids")
    return runs[runs["run_id"].isin(wanted)]


def selection_label(selection: str | list[str] | tuple[str, ...], members: pd.DataFrame | None = None) -> str:
    """How a verdict names a selection: the id given; for a list, its one run id or its shared config id."""
    if isinstance(selection, str):
        return selection
    if len(selection) == 1:
        return str(selection[0])
    if members is not None and not members.empty:
        ids = set(config_ids(members))
        if len(ids) == 1:
            return next(iter(ids))
    return f"{len(selection)} runs ({selection[0]}, …)"


def compare_selections(store, a: str | list[str], b: str | list[str], labels: tuple[str, str] | None = None,
                       runs: pd.DataFrame | None = None) -> Comparison:
    """Compare selection B with selection A on test accuracy: the difference B − A, its 95 % interval
    and the verdict (core.search.significance.compare).

    Each selection is a run id, a config id (all its repeats) or a list of run ids. Only finished
    (completed) runs count. Two single runs are compared digit by digit (McNemar) from their
    stored per-digit correctness; groups of N ≥ 2 by Welch's t. An id that names nothing, or a
    selection whose runs trained on different datasets, is a DigitLabError (one line); so are A
    and B on different datasets (the line names both). `labels` name A and B in the verdict
    (default: the ids given); `runs` is store.list_runs() if the caller has it already.
    """
    from core.store.results import test_correctness

    runs = store.list_runs() if runs is None else runs
    picked = [resolve(runs, a), resolve(runs, b)]
    names = list(labels) if labels else [selection_label(s, m) for s, m in zip((a, b), picked)]
    done = [m[m["status"].isin(REPEATABLE)] for m in picked]
    datasets = [_one_dataset(name, m) for name, m in zip(names, picked)]
    correct = [None, None]
    why = None
    if len(done[0]) == 1 and len(done[1]) == 1:
        correct = [test_correctness(store, d["run_id"].iloc[0]) for d in done]
        old = [name for name, c in zip(names, correct) if c is None]
        if old:
            why = (f"{' and '.join(old)} {'were' if len(old) > 1 else 'was'} trained before per-digit results "
                   f"were stored, so McNemar's test cannot be made")
        elif correct[0].shape != correct[1].shape:
            correct, why = [None, None], "their test sets differ in size, so they cannot be compared digit by digit"
    return compare(names[0], names[1], done[0].get("test_accuracy", []), done[1].get("test_accuracy", []),
                   correct_a=correct[0], correct_b=correct[1], dataset_a=datasets[0], dataset_b=datasets[1],
                   why_unpaired=why)


def _one_dataset(name: str, members: pd.DataFrame) -> Mapping | None:
    """The one dataset a selection's runs trained on (None if none recorded); two is a DigitLabError."""
    found: dict[str, Mapping] = {}
    for ds in members.get("dataset", []):
        fp = dataset_fingerprint(ds) if isinstance(ds, (Mapping, str)) else None
        if fp:
            found.setdefault(fp, ds)
    if len(found) > 1:
        from core.search.significance import dataset_label
        labels = " and ".join(dataset_label(d) for d in list(found.values())[:2])
        raise DigitLabError(f"{name} holds runs trained on different datasets ({labels}): they are not repeats",
                            hint="select runs of one dataset")
    return next(iter(found.values()), None)


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
