"""Sweeps: every combination of a few hyperparameter values, queued as one named group (a grid study).

`expand_grid()` turns a base config and ``{field: [values]}`` into validated configs;
`queue_sweep()` checks all of them against the dataset before it writes a single run, so a
bad value anywhere queues nothing. `parse_values()` reads a typed list such as
"1e-2, 1e-3" for the dashboard, and `group_progress()` summarises a group's runs.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from core.model.architectures import ACTIVATIONS, ARCHITECTURES
from core.config import LR_SCHEDULES, OPTIMIZERS, ConfigError, TrainConfig
from core.data.dataset import dataset_info
from core.store.schema import TERMINAL
from core.store.facade import RunStore

MAX_FIELDS = 3   # hyperparameters varied at once
MAX_RUNS = 48    # combinations in one sweep (each is a full training run)

# Fields a sweep may vary, with the kind of value each takes.
SWEEPABLE: dict[str, str] = {
    "learning_rate": "float", "batch_size": "int", "epochs": "int", "optimizer": "choice",
    "dropout": "float", "activation": "choice", "validation_split": "float", "seed": "int",
    "early_stopping": "int", "lr_schedule": "choice", "train_limit": "int", "augment": "bool",
    "elastic": "bool", "architecture": "choice",
}
CHOICES: dict[str, tuple[str, ...]] = {"optimizer": OPTIMIZERS, "activation": ACTIVATIONS,
                                       "lr_schedule": LR_SCHEDULES, "architecture": ARCHITECTURES}


@dataclass(frozen=True)
class GroupProgress:
    """Where a sweep stands: counts per status and the share of runs that have ended."""
    total: int
    queued: int
    running: int
    completed: int
    ended: int                 # completed, pruned, failed, cancelled or interrupted
    run_ids: tuple[str, ...]   # oldest first, the order they were queued
    pruned: int = 0            # stopped early by a study's pruner (they keep a model and a test score)

    @property
    def fraction(self) -> float:
        return self.ended / self.total if self.total else 0.0

    @property
    def finished(self) -> bool:
        return self.total > 0 and self.ended == self.total


def parse_values(field: str, text: str) -> list[Any]:
    """Read a comma-separated list of values for `field` ("1e-2, 1e-3" → [0.01, 0.001]).

    Raises ConfigError naming the field and the piece that is not a value of the right kind.
    """
    kind = _kind(field)
    pieces = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    if not pieces:
        raise ConfigError(f"{field}: give at least one value, separated by commas")
    values = []
    for piece in pieces:
        try:
            if kind == "float":
                value: Any = float(piece)
            elif kind == "int":
                number = float(piece)
                if not number.is_integer():
                    raise ValueError
                value = int(number)
            elif kind == "bool":
                value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}[piece.lower()]
            else:
                value = piece
        except (ValueError, KeyError):
            allowed = {"float": "a number", "int": "a whole number", "bool": "true or false"}[kind]
            raise ConfigError(f"{field}: {piece!r} is not {allowed}") from None
        values.append(value)
    return values


def expand_grid(base_config: TrainConfig, grid: dict[str, list], max_fields: int = MAX_FIELDS,
                max_runs: int = MAX_RUNS) -> list[TrainConfig]:
    """Every combination of `grid`'s values applied to `base_config`, each validated.

    Runs are named after the base name and the values they vary, e.g.
    "lr-sweep · learning_rate=0.01 · batch_size=64". Raises ConfigError for a field that
    cannot be swept, an empty or repeated value, too many fields or combinations, or the
    first combination that is not a valid config.
    """
    _check_grid(grid, max_fields, max_runs)
    fields = list(grid)
    configs = []
    for combo in itertools.product(*(grid[f] for f in fields)):
        values = dict(zip(fields, combo))
        if values.get("architecture", "custom") != "custom":
            values["layers"] = ()  # a swept preset brings its own stack
        label = " · ".join(f"{f}={_show(values[f])}" for f in fields)
        name = f"{base_config.name} · {label}" if base_config.name else label
        config = replace(base_config, **values, name=name[:200])
        try:
            config.validate()
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
        configs.append(config)
    return configs


def queue_sweep(store: RunStore, base_config: TrainConfig, grid: dict[str, list], group_name: str,
                data_path: str | os.PathLike | None, parent_id: str | None = None) -> list[str]:
    """Validate every combination against the dataset, then queue them all as group `group_name`.

    Nothing is written unless every combination is valid. Returns the run ids in grid order.
    Raises ConfigError (bad value, empty or already used group name) or DataError (no dataset).
    The sweep is recorded as a study with search "grid" (core.search.study), so its study view, pruning
    and parameter importance work like any study's; its runs carry their grid position as `trial`.
    """
    from core.search.study import create_study

    group_name = (group_name or "").strip()
    if not group_name or len(group_name) > 200:
        raise ConfigError(f"group name must be 1 to 200 characters, got {group_name!r:.60}")
    if not store.list_runs(group=group_name).empty:
        raise ConfigError(f"a group named {group_name!r} already exists; choose another name")
    base = replace(base_config, name=base_config.name or group_name)
    configs = expand_grid(base, grid)
    n_train = dataset_info(data_path).n_train
    for config in configs:
        try:
            config.validate(n_train)
        except ConfigError as exc:
            raise ConfigError(f"{config.name}: {exc}") from None
    space = {field: {"type": "categorical", "choices": list(values)} for field, values in grid.items()}
    return create_study(store, base, space, group_name, data_path, search="grid", parent_id=parent_id)


def group_progress(runs: pd.DataFrame) -> GroupProgress:
    """Summarise a group's runs (a `store.list_runs(group=...)` frame)."""
    status = runs["status"] if not runs.empty else pd.Series(dtype=str)
    ordered = runs.sort_values("created_at") if not runs.empty else runs
    return GroupProgress(total=len(runs), queued=int((status == "queued").sum()),
                         running=int((status == "running").sum()),
                         completed=int((status == "completed").sum()),
                         ended=int(status.isin(TERMINAL).sum()), pruned=int((status == "pruned").sum()),
                         run_ids=tuple(ordered["run_id"]) if not runs.empty else ())


def _kind(field: str) -> str:
    if field not in SWEEPABLE:
        raise ConfigError(f"{field!r} cannot be swept; choose from {', '.join(SWEEPABLE)}")
    return SWEEPABLE[field]


def _check_grid(grid: dict[str, list], max_fields: int, max_runs: int) -> None:
    if not grid:
        raise ConfigError("a sweep needs at least one hyperparameter with values")
    if len(grid) > max_fields:
        raise ConfigError(f"a sweep varies at most {max_fields} hyperparameters, got {len(grid)}: {', '.join(grid)}")
    total = 1
    for field, values in grid.items():
        _kind(field)
        values = list(values)
        if not values:
            raise ConfigError(f"{field}: give at least one value")
        seen = set()
        for value in values:
            if value in seen:
                raise ConfigError(f"{field}: the value {_show(value)} is listed twice")
            seen.add(value)
        total *= len(values)
    if total > max_runs:
        raise ConfigError(f"this sweep makes {total} runs; at most {max_runs} are allowed, so use fewer values")


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
