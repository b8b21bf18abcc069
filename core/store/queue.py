"""Queueing a run: validate its config (against the dataset when one is given), name it, insert it.

`queue_run()` is the one way a run enters the queue, from the CLI, the Train page, a sweep or a
study; the row is written by `RunStore.create_run`, stamped with the database server's clock, so
the queue is claimed in the order runs were queued whatever the clocks of the hosts queueing them.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

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
    run_id = store.create_run(config.to_dict(), name=config.name or auto_name(store, config),
                              n_params=count_params(config.hidden_layers()), group=group, parent_id=parent_id,
                              trial=trial)
    notify_queued(store.url)
    return run_id


def wake_file(url: str) -> Path:
    """A file in this machine's temp folder, one per store, that queue_run touches: workers on this
    machine watch it and claim a new run at once instead of at their next poll of the store (up
    to a second later). Workers elsewhere keep polling; nothing depends on the file existing."""
    return Path(tempfile.gettempdir()) / f"digitlab-queued-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def notify_queued(url: str) -> None:
    try:
        wake_file(url).touch()
    except OSError:  # a read-only or full temp folder: the workers' polling still finds the run
        pass


def queued_mark(url: str) -> int:
    """The wake file's change time in ns (0 when absent): it moves whenever a run is queued here."""
    try:
        return wake_file(url).stat().st_mtime_ns
    except OSError:
        return 0


def auto_name(store: RunStore, config: TrainConfig) -> str:
    """A run name that says what differs from the architecture's defaults ("mlp-128-64 · lr 0.01",
    core.config.auto_name), else (or when that name is taken) the next free number ("mlp-128-64 #2")."""
    name = base_name(config)
    taken = set(store.list_runs(search=name)["name"])
    number = 1 if name not in taken else 2
    while number > 1 and f"{name} #{number}" in taken:
        number += 1
    return name if number == 1 else f"{name} #{number}"
