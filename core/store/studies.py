"""The SQL of studies (core.search.study): their rows, their runs and the metric rows a rebuild reads.

Plain functions of a connection, called inside the caller's transaction (`store.transact(fn)`,
`with store.write() as conn:`), so a top-up reads, counts and queues under one lock of the
study's row. A study's runs are ordinary runs whose `group_name` is the study's name; they are
queued through `RunStore.create_run`, like every run.
"""
from __future__ import annotations

import math

import sqlalchemy as sa

from core.store.schema import metrics_t, runs_t, studies_t

PRUNER_SCOPE = "pruner"  # metric rows that keep a pruner's per-trial state (see pruner_state)


def name_taken(conn: sa.Connection, name: str) -> bool:
    """A study or a group of runs already has this name."""
    return bool(conn.execute(sa.select(studies_t.c.name).where(studies_t.c.name == name)).first() or
                conn.execute(sa.select(runs_t.c.id).where(runs_t.c.group_name == name).limit(1)).first())


def insert_study(conn: sa.Connection, row: dict) -> None:
    conn.execute(sa.insert(studies_t).values(**row))


def study_row(conn: sa.Connection, name: str, lock: bool = False) -> dict | None:
    """The study's row as a dict, or None; `lock`: held until commit (PostgreSQL; SQLite's writer holds the file)."""
    q = sa.select(studies_t).where(studies_t.c.name == name)
    row = conn.execute(q.with_for_update() if lock else q).mappings().first()
    return dict(row) if row else None


def study_rows(conn: sa.Connection) -> list[dict]:
    """Every study's row, newest first."""
    return [dict(r) for r in conn.execute(sa.select(studies_t).order_by(studies_t.c.created_at.desc())).mappings()]


def stop(conn: sa.Connection, name: str) -> None:
    conn.execute(sa.update(studies_t).where(studies_t.c.name == name).values(stopped=True))


def extend(conn: sa.Connection, name: str, n: int) -> None:
    """Raise the budget by `n` and resume the study."""
    conn.execute(sa.update(studies_t).where(studies_t.c.name == name)
                 .values(budget=studies_t.c.budget + n, stopped=False))


def open_searches(conn: sa.Connection, slots: int, not_counted: tuple[str, ...]) -> list[str]:
    """Names of the studies (not grids, not stopped) with budget left and fewer than `slots` runs in flight.

    A run whose status is in `not_counted` does not use up the budget.
    """
    s, r = studies_t.c, runs_t.c
    counted = (sa.select(sa.func.count()).where(r.group_name == s.name, r.status.not_in(not_counted))
               .scalar_subquery())
    in_flight = (sa.select(sa.func.count()).where(r.group_name == s.name, r.status.in_(("queued", "running")))
                 .scalar_subquery())
    return list(conn.execute(sa.select(s.name).where(s.stopped == sa.false(), s.search != "grid",
                                                     counted < s.budget, in_flight < slots)).scalars().all())


def study_runs(conn: sa.Connection, name: str) -> list[dict]:
    """The study's runs, oldest first: id, name, status, config, trial, times, test accuracy, epoch, dataset."""
    r = runs_t.c
    rows = conn.execute(sa.select(r.id, r.name, r.status, r.config, r.trial, r.created_at, r.finished_at,
                                  r.test_accuracy, r.epoch, r.dataset).where(r.group_name == name)
                        .order_by(r.created_at)).mappings().all()
    return [dict(row) for row in rows]


def objective_values(conn: sa.Connection, objective: str, runs: list[dict]) -> dict[str, dict[int, float]]:
    """Each run's objective per epoch ({run id: {epoch: value}}), from the epoch metric rows."""
    ids = [r["id"] for r in runs]
    if not ids:
        return {}
    m = metrics_t.c
    rows = conn.execute(sa.select(m.run_id, m.epoch, m.value).where(
        m.run_id.in_(ids), m.scope == "epoch", m.key == objective).order_by(m.run_id, m.step)).all()
    values: dict[str, dict[int, float]] = {}
    for run_id, epoch, value in rows:
        if epoch is not None and value is not None and math.isfinite(value):
            values.setdefault(run_id, {})[int(epoch)] = float(value)
    return values


def pruner_state(conn: sa.Connection, runs: list[dict]) -> dict[str, dict[str, float]]:
    """What the pruner wrote on each run's trial ({run id: {attribute: value}}), as `prune_check` kept it.

    Optuna's successive-halving (and so Hyperband) pruner records, on the trial itself, the value with
    which it passed each rung ("completed_rung_0" …) and compares a run only with the values others
    recorded at the same rung. A rebuilt study would hold none of them, so every run would be alone at
    its rung and always promoted: Hyperband would never prune. They are kept as metric rows of scope
    "pruner" (written at an epoch end, with the decision) and handed back to the rebuilt trials.
    """
    ids = [r["id"] for r in runs]
    if not ids:
        return {}
    m = metrics_t.c
    rows = conn.execute(sa.select(m.run_id, m.key, m.value).where(
        m.run_id.in_(ids), m.scope == PRUNER_SCOPE).order_by(m.run_id, m.step)).all()
    state: dict[str, dict[str, float]] = {}
    for run_id, key, value in rows:
        if value is not None:
            state.setdefault(run_id, {})[key] = float(value)
    return state
