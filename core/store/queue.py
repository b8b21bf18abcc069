"""Queueing a run: validate its config (against the dataset when one is given), name it, insert it.

`queue_run()` is the one way a run enters the queue, from the CLI, the Train page, a sweep or a
study; the row is written by `RunStore.create_run`, stamped with the database server's clock, so
the queue is claimed in the order runs were queued whatever the clocks of the hosts queueing them.
"""
from __future__ import annotations

import os

from core.config import TrainConfig, auto_name as base_name
from core.data.dataset import check_dataset
from core.model.architectures import count_params
from core.store.facade import RunStore


def queue_run(store: RunStore, config: TrainConfig, data_path: str | os.PathLike | None = None,
              group: str | None = None, parent_id: str | None = None, trial: int | None = None) -> str:
    """Validate `config` and queue it; returns the run id. Nothing is written for a bad config.

    With `data_path`, the config is checked against that dataset (a missing, unreadable or wrongly
    shaped one is a DataError); without, on its own (a study's run: its study checked the dataset).
    Inside an open write scope (a study's locked top-up) the insert joins that transaction.
    """
    config.validate(check_dataset(data_path).n_train if data_path is not None else None)
    return store.create_run(config.to_dict(), name=config.name or auto_name(store, config),
                            n_params=count_params(config.hidden_layers()), group=group, parent_id=parent_id,
                            trial=trial)


def auto_name(store: RunStore, config: TrainConfig) -> str:
    """A run name that says what differs from the architecture's defaults ("mlp-128-64 · lr 0.01",
    core.config.auto_name), else (or when that name is taken) the next free number ("mlp-128-64 #2")."""
    name = base_name(config)
    taken = set(store.list_runs(search=name)["name"])
    number = 1 if name not in taken else 2
    while number > 1 and f"{name} #{number}" in taken:
        number += 1
    return name if number == 1 else f"{name} #{number}"
