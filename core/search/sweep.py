"""Sweeps: every combination of a few hyperparameter values, queued as one named group (a grid study).

`queue_sweep()` is the Train page's Grid tab: it lays the grid out as a study with search "grid"
(core.search.study.create_study), the same path as `core sweep --search grid`, so both have one set
of limits (core.search.space.check_grid), one group-name check and one dataset check, and every
combination is checked against the dataset before a single run is written. `group_progress()`
summarises a group's runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd

from core.config import TrainConfig
from core.search.space import CHOICES, MAX_GRID_FIELDS, MAX_RUNS, SWEEPABLE, parse_values  # noqa: F401
from core.search.study import create_study
from core.store.facade import RunStore
from core.store.schema import TERMINAL

# The Grid tab's names for the one set of grid limits (re-exported with SWEEPABLE, CHOICES, parse_values).
MAX_FIELDS = MAX_GRID_FIELDS


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


def queue_sweep(store: RunStore, base_config: TrainConfig, grid: dict[str, list], group_name: str,
                data_path: str | os.PathLike | None, parent_id: str | None = None) -> list[str]:
    """Queue every combination of `grid` ({field: [values]}) as group `group_name`; returns the run ids
    in grid order.

    Nothing is written unless every combination is valid for the dataset. Raises ConfigError (bad
    value, too many fields or combinations, empty or already used group name) or DataError (no
    dataset). The sweep is a study with search "grid", so its study view, pruning and parameter
    importance work like any study's; its runs carry their grid position as `trial`.
    """
    space = {field: {"type": "categorical", "choices": list(values)} for field, values in grid.items()}
    return create_study(store, base_config, space, group_name, data_path, search="grid", parent_id=parent_id)


def group_progress(runs: pd.DataFrame) -> GroupProgress:
    """Summarise a group's runs (a `store.list_runs(group=...)` frame)."""
    status = runs["status"] if not runs.empty else pd.Series(dtype=str)
    ordered = runs.sort_values("created_at") if not runs.empty else runs
    return GroupProgress(total=len(runs), queued=int((status == "queued").sum()),
                         running=int((status == "running").sum()),
                         completed=int((status == "completed").sum()),
                         ended=int(status.isin(TERMINAL).sum()), pruned=int((status == "pruned").sum()),
                         run_ids=tuple(ordered["run_id"]) if not runs.empty else ())
