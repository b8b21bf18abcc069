"""The SQL of workers: register, beat, remove, list the live ones, and the Workers panel's overview.

Plain functions of a connection, called inside the caller's transaction (RunStore opens it).
Heartbeats and their ages are on the server's clock, so hosts whose clocks differ agree on who is alive.
"""
from __future__ import annotations

import os
import socket
import uuid

import pandas as pd
import sqlalchemy as sa

from core.store import db
from core.store.schema import TERMINAL, runs_t, workers_t

OVERVIEW = ["worker", "host", "pid", "run_id", "run_name", "heartbeat_age", "runs_done", "started_at"]


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def register(conn: sa.Connection, worker_id: str) -> str:
    now = db.server_now(conn)
    conn.execute(sa.insert(workers_t).values(id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                                             started_at=now, heartbeat_at=now))
    return worker_id


def beat(conn: sa.Connection, worker_id: str) -> None:
    """Beat a worker's heart; one removed meanwhile (thought dead while its server was away) comes back."""
    if not conn.execute(sa.update(workers_t).where(workers_t.c.id == worker_id)
                        .values(heartbeat_at=db.server_now(conn))).rowcount:
        register(conn, worker_id)


def remove(conn: sa.Connection, worker_id: str) -> None:
    conn.execute(sa.delete(workers_t).where(workers_t.c.id == worker_id))


def live_workers(conn: sa.Connection, timeout: float = 15.0) -> pd.DataFrame:
    """Workers that beat within `timeout` s (and, on this host, whose process is alive)."""
    rows = conn.execute(sa.select(workers_t).where(
        workers_t.c.heartbeat_at > db.server_now(conn) - timeout)).mappings().all()
    host = socket.gethostname()
    alive = [dict(r) for r in rows if r["host"] != host or pid_alive(r["pid"])]
    return pd.DataFrame(alive, columns=[c.name for c in workers_t.c])


def overview(conn: sa.Connection, timeout: float = 15.0) -> pd.DataFrame:
    """The live workers for the Workers panel (OVERVIEW columns): worker, host, pid, current run (id and name),
    seconds since the last heartbeat (server clock), runs done (ended, any status), started_at."""
    live = live_workers(conn, timeout)
    if live.empty:
        return pd.DataFrame(columns=OVERVIEW)
    ids, r, now = live["id"].tolist(), runs_t.c, db.server_now(conn)
    current = {w: (i, n) for w, i, n in conn.execute(
        sa.select(r.worker_id, r.id, r.name).where(r.worker_id.in_(ids), r.status == "running")
        .order_by(r.started_at)).all()}
    done = dict(conn.execute(sa.select(r.worker_id, sa.func.count()).where(r.worker_id.in_(ids), r.status.in_(TERMINAL))
                             .group_by(r.worker_id)).all())
    return pd.DataFrame([(w.id, w.host, int(w.pid), *current.get(w.id, (None, None)),
                          max(0.0, now - w.heartbeat_at), int(done.get(w.id, 0)), w.started_at)
                         for w in live.itertuples()], columns=OVERVIEW)


def pid_alive(pid: int) -> bool:
    """A process with this id runs on this host (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux): kill(pid, 0) said it exists
        return True
