"""The SQL of metrics and evaluations: logged values, a run's scores on a split, its mistakes.

Plain functions of a connection, called inside the caller's transaction (RunStore opens it).
"""
from __future__ import annotations

import time

import pandas as pd
import sqlalchemy as sa

from core.store.schema import Evaluation, clean, evaluations_t, metrics_t, misclassified_t

HISTORY = ["run_id", "scope", "key", "step", "epoch", "value", "ts"]  # a metric history's columns


def insert_metrics(conn: sa.Connection, rows: list[tuple]) -> None:
    """Insert (run_id, scope, key, step, epoch, value) rows in one statement; [] does nothing."""
    if rows:
        now = time.time()
        conn.execute(sa.insert(metrics_t), [
            dict(run_id=r, scope=s, key=k, step=int(st), epoch=None if e is None else int(e),
                 value=clean(v), ts=now) for r, s, k, st, e, v in rows])


def histories(conn: sa.Connection, run_ids: list[str], scope: str = "epoch", keys: list[str] | None = None,
              since_step: int = -1) -> pd.DataFrame:
    """Metric rows of the runs as a DataFrame (HISTORY columns), by run, key and step; NULL → NaN."""
    m = metrics_t.c
    q = (sa.select(m.run_id, m.scope, m.key, m.step, m.epoch, m.value, m.ts)
         .where(m.run_id.in_(run_ids), m.scope == scope, m.step > since_step).order_by(m.run_id, m.key, m.step))
    if keys:
        q = q.where(m.key.in_(keys))
    df = pd.DataFrame(conn.execute(q).all(), columns=HISTORY)
    df["value"] = df["value"].astype(float)
    return df


def save_evaluation(conn: sa.Connection, run_id: str, split: str, accuracy: float | None, loss: float | None,
                    n: int, confusion: list[list[int]], report: dict, misclassified: list[tuple] | None = None) -> None:
    """Store (replace) a run's evaluation on a split, and for 'test' its misclassified examples."""
    conn.execute(sa.delete(evaluations_t).where(evaluations_t.c.run_id == run_id, evaluations_t.c.split == split))
    conn.execute(sa.insert(evaluations_t).values(run_id=run_id, split=split, accuracy=clean(accuracy),
                                                 loss=clean(loss), n=n, confusion=confusion, report=report,
                                                 created_at=time.time()))
    if misclassified is not None:
        conn.execute(sa.delete(misclassified_t).where(misclassified_t.c.run_id == run_id))
        if misclassified:
            conn.execute(sa.insert(misclassified_t), [
                dict(run_id=run_id, idx=int(i), true_label=int(t), pred_label=int(p), confidence=float(q))
                for i, t, p, q in misclassified])


def evaluation(conn: sa.Connection, run_id: str, split: str = "test") -> Evaluation | None:
    row = conn.execute(sa.select(evaluations_t).where(
        evaluations_t.c.run_id == run_id, evaluations_t.c.split == split)).mappings().first()
    return Evaluation(**dict(row)) if row else None


def misclassified(conn: sa.Connection, run_id: str, true_label: int | None = None, pred_label: int | None = None,
                  limit: int = 200) -> pd.DataFrame:
    """Misclassified test digits, most confident mistakes first, optionally one confusion cell."""
    t = misclassified_t.c
    q = sa.select(t.idx, t.true_label, t.pred_label, t.confidence).where(t.run_id == run_id)
    if true_label is not None:
        q = q.where(t.true_label == true_label)
    if pred_label is not None:
        q = q.where(t.pred_label == pred_label)
    rows = conn.execute(q.order_by(t.confidence.desc()).limit(limit)).all()
    return pd.DataFrame(rows, columns=["idx", "true_label", "pred_label", "confidence"])
