"""The Runs page's writes: tags added to or removed from the selected runs, and runs deleted.

Each returns how many runs changed and the errors of those that could not (deleted meanwhile,
still running, an unwritable store), so the page reports both after its rerun.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd

from core.store.facade import RunStore
from core.search.study import NOT_COUNTED
from core.store.schema import StoreError


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


def study_delete_note(runs: pd.DataFrame, run_ids: Sequence[str], studies: Iterable[str]) -> str:
    """What deleting `run_ids` does to the studies they belong to (`studies`: the names of studies), or "".

    A deleted study run is not replaced: it takes its place in the study's budget with it (a
    failed or interrupted one held none), so nothing trains because of a delete.
    """
    chosen = runs[runs["run_id"].isin(list(run_ids)) & runs["group_name"].isin(list(studies))
                  & ~runs["status"].isin(NOT_COUNTED)]
    if chosen.empty:
        return ""
    parts = [f"{n} of study {name}" for name, n in chosen.groupby("group_name").size().items()]
    return (f"{'; '.join(parts).capitalize()}: a study does not replace a deleted run, its budget goes down by "
            "one per run instead (nothing new trains). Extend the study on its page to train more.")


def clean_tag(text: str) -> str:
    """A tag as typed, trimmed; commas are not allowed (the table joins tags with them)."""
    return " ".join(text.replace(",", " ").split())[:40]
