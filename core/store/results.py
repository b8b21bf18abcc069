"""A finished run's results, written together in one transaction: its test evaluation, its files (the
trained model) and its final status, so a reader sees all of them or none."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from core.store import artifacts
from core.store.metrics import save_evaluation
from core.store.runs import set_status
from core.store.schema import FINISHED, StoreError


def complete_run(conn: sa.Connection, run_id: str, evaluation: dict, status: str, files: dict[str, bytes | Path],
                 summary: dict[str, Any]) -> None:
    """Save the test evaluation (and `files`, name → bytes or file, e.g. the model) and mark the run
    completed (or `pruned`), in the caller's one transaction: all or nothing.

    `evaluation` has accuracy, loss, n, confusion, report and misclassified (core.train.run.evaluate).
    """
    if status not in FINISHED:
        raise StoreError(f"complete_run ends a run as one of {', '.join(FINISHED)}, not {status!r}")
    for name, data in files.items():
        artifacts.put(conn, run_id, name, data)
    keys = ("accuracy", "loss", "n", "confusion", "report", "misclassified")
    save_evaluation(conn, run_id, "test", *(evaluation.get(k) for k in keys))
    set_status(conn, run_id, status, **summary)

