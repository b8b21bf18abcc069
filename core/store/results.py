"""A finished run's results, written together in one transaction: its test evaluation, its files (the
trained model, the indices of every test digit it got wrong) and its final status, so a reader sees
all of them or none; and read back, each test digit's correctness (what McNemar's test compares)."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from core.store import artifacts
from core.store.metrics import evaluation as read_evaluation, misclassified, save_evaluation
from core.store.runs import set_status
from core.store.schema import FINISHED, StoreError

# The sorted indices of every test digit a run got wrong, as a .npy of int32: a few hundred bytes for
# a good run. The misclassified table keeps only the most confident mistakes (for the gallery); this
# keeps them all, so two runs can be compared digit by digit. Runs finished before it existed lack it.
MISTAKES_FILE = "test_mistakes.npy"


def complete_run(conn: sa.Connection, run_id: str, evaluation: dict, status: str, files: dict[str, bytes | Path],
                 summary: dict[str, Any]) -> None:
    """Save the test evaluation (and `files`, name → bytes or file, e.g. the model) and mark the run
    completed (or `pruned`), in the caller's one transaction: all or nothing.

    `evaluation` has accuracy, loss, n, confusion, report and misclassified (core.train.run.evaluate),
    and `wrong` (the indices of every test digit it got wrong), kept as MISTAKES_FILE when present.
    """
    if status not in FINISHED:
        raise StoreError(f"complete_run ends a run as one of {', '.join(FINISHED)}, not {status!r}")
    if evaluation.get("wrong") is not None:
        files = {**files, MISTAKES_FILE: mistakes_bytes(evaluation["wrong"])}
    for name, data in files.items():
        artifacts.put(conn, run_id, name, data)
    keys = ("accuracy", "loss", "n", "confusion", "report", "misclassified")
    save_evaluation(conn, run_id, "test", *(evaluation.get(k) for k in keys))
    set_status(conn, run_id, status, **summary)



def mistakes_bytes(wrong) -> bytes:
    """The indices of the wrong test digits as MISTAKES_FILE's bytes: sorted, unique, int32, no pickle."""
    buffer = io.BytesIO()
    np.save(buffer, np.unique(np.asarray(list(wrong), dtype=np.int64)).astype(np.int32), allow_pickle=False)
    return buffer.getvalue()


def test_correctness(store_or_conn, run_id: str) -> np.ndarray | None:
    """Each test digit's correctness for a finished run (True = right, in test-set order), or None.

    Read from MISTAKES_FILE; for a run without it (finished before it was kept), from the
    misclassified table when that holds every mistake (its count matches the confusion matrix).
    None when the run has no test evaluation or only some of its mistakes are known: then McNemar's
    test cannot be made for it. Takes a RunStore (one read transaction) or an open connection.
    """
    if isinstance(store_or_conn, sa.Connection):
        return _correctness(store_or_conn, run_id)
    return store_or_conn.transact(lambda c: _correctness(c, run_id), write=False)


def _correctness(conn: sa.Connection, run_id: str) -> np.ndarray | None:
    ev = read_evaluation(conn, run_id, "test")
    if ev is None or not ev.n:
        return None
    n_wrong = int(ev.n - np.trace(np.asarray(ev.confusion, dtype=np.int64))) if ev.confusion else None
    info, payload = artifacts.read(conn, run_id, MISTAKES_FILE)
    if info is not None:
        wrong = np.load(io.BytesIO(artifacts.checked(run_id, MISTAKES_FILE, info, payload)), allow_pickle=False)
    else:
        wrong = misclassified(conn, run_id, limit=ev.n)["idx"].to_numpy(dtype=np.int64)
    wrong = np.unique(wrong)
    if (n_wrong is not None and wrong.size != n_wrong) or (wrong.size and (wrong[0] < 0 or wrong[-1] >= ev.n)):
        return None  # only the most confident mistakes were kept (or they do not fit this test set)
    correct = np.ones(int(ev.n), dtype=bool)
    correct[wrong] = False
    return correct
