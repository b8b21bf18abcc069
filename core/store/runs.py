"""The SQL of runs: queue, read, list, change status, claim, checkpoint, cancel, recover, delete, edit.

Plain functions of a connection, called inside the caller's transaction (RunStore opens it).
Every status change goes through `set_status()`, every not-found check through `require_run()`.
Check-then-write functions read the rows they check with `db.locked()`: on PostgreSQL that is
`SELECT … FOR UPDATE` (claims and recovery add SKIP LOCKED, so workers never wait on each other);
SQLite has no row locks and needs none, its writer holds the whole file from BEGIN IMMEDIATE.
Times compared across hosts (created, started, heartbeats, finished) come from the server's clock.
"""
from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import fields
from typing import Any

import pandas as pd
import sqlalchemy as sa

from core.store import db
from core.store.metrics import insert_metrics
from core.store.schema import (SOURCES, TERMINAL, TRANSITIONS, Run, RunNotFound, StoreError, clean, runs_frame,
                               runs_t, studies_t, workers_t)
from core.store.workers import pid_alive

EDITABLE = {"name", "tags", "note", "group_name", "drawn_accuracy"}  # what update_run may change
UNCOUNTED_IN_BUDGET = ("failed", "interrupted")  # a study replaces these (core.search.study.NOT_COUNTED)


def require_run(conn: sa.Connection, run_id: str, lock: bool | str = False) -> sa.RowMapping:
    """The run's row, or RunNotFound. `lock`: held until commit (True: FOR NO KEY UPDATE; "key": FOR UPDATE,
    for a delete); SQLite compiles the lock away."""
    q = sa.select(runs_t).where(runs_t.c.id == run_id)
    row = conn.execute(db.locked(q, key=lock == "key") if lock else q).mappings().first()
    if row is None:
        raise RunNotFound(f"no run with id {run_id!r}: `.venv/bin/python -m core runs` lists the runs")
    return row


def create_run(conn: sa.Connection, config: dict, name: str | None = None, n_params: int | None = None,
               group: str | None = None, parent_id: str | None = None, trial: int | None = None,
               source: str = "trained") -> str:
    """Queue a run for `config` (an already validated TrainConfig.to_dict()); returns its id.
    `source`: "trained" here, "tracked" from a script (core.track) or "imported" (core.interop).

    Every run is inserted here, stamped with the server's clock: the queue is claimed in that order,
    so runs queued from hosts whose clocks differ (a study's and a plain one) keep the order they were queued in.
    """
    if source not in SOURCES:
        raise StoreError(f"a run's source is one of {', '.join(SOURCES)}, not {source!r}")
    run_id = uuid.uuid4().hex[:12]
    arch = config["architecture"]
    conn.execute(sa.insert(runs_t).values(
        id=run_id, name=(name or config.get("name") or f"{arch}-{run_id[:6]}")[:200], architecture=arch,
        status="queued", config=config, n_params=n_params, group_name=group, parent_id=parent_id, tags=[], note="",
        epochs=config.get("epochs"), cancel_requested=False, epoch=0, step=0, trial=trial, source=source,
        created_at=db.server_now(conn)))
    return run_id


def get_run(conn: sa.Connection, run_id: str) -> Run:
    row = require_run(conn, run_id)
    return Run(**{k: row[k] for k in (f.name for f in fields(Run))})


def list_runs(conn: sa.Connection, status: str | None = None, architecture: str | None = None,
              group: str | None = None, search: str | None = None, source: str | None = None) -> pd.DataFrame:
    """All runs, newest first, with their summary and key hyperparameters as columns.

    Built for thousands of runs: plain tuples instead of mappings, the JSON columns read as
    text and decoded in one json.loads each, one DataFrame built from whole columns.
    (PostgreSQL is asked for the text itself: psycopg would otherwise decode each value.)
    """
    names = [c.name for c in runs_t.c if c.name not in ("config", "error")] + ["config"]
    as_text = {"tags", "config"}  # SQLAlchemy's JSON processor per value costs more than the query
    text = sa.cast if conn.dialect.name == "postgresql" else sa.type_coerce
    q = (sa.select(*(text(runs_t.c[n], sa.Text).label(n) if n in as_text else runs_t.c[n] for n in names))
         .order_by(runs_t.c.created_at.desc()))
    if status:
        q = q.where(runs_t.c.status == status)
    if architecture:
        q = q.where(runs_t.c.architecture == architecture)
    if group:
        q = q.where(runs_t.c.group_name == group)
    if search:
        q = q.where(runs_t.c.name.contains(search, autoescape=True))
    if source:
        q = q.where(runs_t.c.source == source)
    return runs_frame(names, conn.execute(q).all())


def set_status(conn: sa.Connection, run_id: str, status: str, **values: Any) -> None:
    """The only way a run's status changes; checks the transition is allowed."""
    current = require_run(conn, run_id, lock=True)["status"]
    if status not in TRANSITIONS.get(current, ()):
        raise StoreError(f"run {run_id} is {current}; it cannot become {status}")
    extra = {"finished_at": db.server_now(conn)} if status in TERMINAL else {}
    # the row is locked (PostgreSQL) or the file is (SQLite); the status condition says it twice
    conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == current)
                 .values(status=status, **extra, **values))


def claim_run(conn: sa.Connection, worker_id: str, run_id: str | None = None) -> str | None:
    """Take the oldest queued run (or `run_id`) for a worker; its id, or None if there is none.

    SQLite: BEGIN IMMEDIATE, no other writer between the select and the update. PostgreSQL:
    the queued row is locked FOR UPDATE SKIP LOCKED, so concurrent workers take different runs.
    """
    q = sa.select(runs_t.c.id).where(runs_t.c.status == "queued")
    q = q.where(runs_t.c.id == run_id) if run_id else q.order_by(runs_t.c.created_at).limit(1)
    found = conn.execute(db.locked(q, skip=True)).scalar()
    if found is None:
        return None
    now = db.server_now(conn)
    set_status(conn, found, "running", started_at=now, heartbeat_at=now, worker_id=worker_id,
               host=socket.gethostname(), pid=os.getpid())
    return found


def checkpoint(conn: sa.Connection, run_id: str, rows: list[tuple], progress: dict[str, Any]) -> bool:
    """Write metric rows and progress, beat the heart; True if training should stop.

    Stop means a cancel was asked, or the run is no longer running (another process marked
    it interrupted, or it was deleted): then nothing is written.
    """
    found = conn.execute(db.locked(sa.select(runs_t.c.status, runs_t.c.cancel_requested)
                                   .where(runs_t.c.id == run_id))).first()
    if found is None or found.status != "running":
        return True
    insert_metrics(conn, rows)
    conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id)
                 .values(heartbeat_at=db.server_now(conn), **{k: clean(v) if isinstance(v, float) else v
                                                              for k, v in progress.items()}))
    return bool(found.cancel_requested)


def request_cancel(conn: sa.Connection, run_id: str) -> str:
    """Cancel a queued run at once, or ask a running one to stop; returns the resulting status."""
    status = require_run(conn, run_id, lock=True)["status"]
    if status == "queued":
        set_status(conn, run_id, "cancelled")
        return "cancelled"
    if status == "running":
        conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(cancel_requested=True))
    return status


def heartbeat(conn: sa.Connection, run_id: str) -> None:
    conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == "running")
                 .values(heartbeat_at=db.server_now(conn)))


def recover_stale(conn: sa.Connection, timeout: float) -> list[str]:
    """Mark running runs whose process died (dead local pid, or no heartbeat for `timeout` s) interrupted,
    and forget dead workers; returns the runs' ids.

    Heartbeats and `now` are both the server's clock, so another host's skew does not count;
    a row locked right now is being written by its live worker and is skipped (PostgreSQL).
    """
    host, stale, now = socket.gethostname(), [], db.server_now(conn)
    for r in conn.execute(db.locked(sa.select(runs_t.c.id, runs_t.c.host, runs_t.c.pid, runs_t.c.heartbeat_at)
                                    .where(runs_t.c.status == "running").order_by(runs_t.c.id), skip=True)).all():
        dead = r.host == host and r.pid and not pid_alive(r.pid)
        if dead or (r.heartbeat_at or 0) < now - timeout:
            set_status(conn, r.id, "interrupted",
                       error="the process running it stopped (killed or crashed); metrics up to its last write are kept")
            stale.append(r.id)
    for w in conn.execute(sa.select(workers_t.c.id, workers_t.c.host, workers_t.c.pid, workers_t.c.heartbeat_at)).all():
        if (w.host == host and not pid_alive(w.pid)) or w.heartbeat_at < now - timeout:
            conn.execute(sa.delete(workers_t).where(workers_t.c.id == w.id))
    return stale


def delete_run(conn: sa.Connection, run_id: str) -> None:
    """Delete a run and (by cascade) its metrics, evaluations and artifacts; a running run is refused.

    The row is locked FOR UPDATE: a worker cannot claim it between the check and the delete.
    """
    row = require_run(conn, run_id, lock="key")
    if row["status"] == "running":
        raise StoreError(f"run {run_id} is running: cancel it first")
    conn.execute(sa.delete(runs_t).where(runs_t.c.id == run_id))
    if row["group_name"] and row["trial"] is not None and row["status"] not in UNCOUNTED_IN_BUDGET:
        # A study's run that counted towards its budget takes its place in the budget with it, so the
        # study does not queue (and train) a replacement; extending the study trains more.
        conn.execute(sa.update(studies_t).where(studies_t.c.name == row["group_name"], studies_t.c.budget > 0)
                     .values(budget=studies_t.c.budget - 1))


def update_run(conn: sa.Connection, run_id: str, **values: Any) -> None:
    """Edit a run's user fields (EDITABLE)."""
    bad = set(values) - EDITABLE
    if bad:
        raise StoreError(f"cannot edit {sorted(bad)[0]!r}; editable fields: {', '.join(sorted(EDITABLE))}")
    require_run(conn, run_id)
    conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(**values))


def set_dataset(conn: sa.Connection, run_id: str, dataset: dict) -> None:
    conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(dataset=dataset))


def params_frame(config: dict) -> pd.DataFrame:
    """A run's resolved config as (param, value) rows."""
    return pd.DataFrame([(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in config.items()],
                        columns=["param", "value"])
