"""The run store: SQLAlchemy Core over SQLite (the default) or PostgreSQL, with a small verb API.

Connection setup, transactions with retries, one-line errors and migration live in core/store/db.py;
tables, the returned dataclasses and the errors in core/store/schema.py. Every status change goes
through `set_status()`. Methods return dataclasses or DataFrames, never rows bound to a connection.

Every check-then-write verb (claim, set_status, cancel, delete, checkpoint, recovery, put_artifact)
reads the rows it checks with `_locked()`: on PostgreSQL, under READ COMMITTED, that is
`SELECT … FOR UPDATE` (claims and recovery add SKIP LOCKED, so workers never wait on each other);
SQLite has no row locks and needs none, its writers hold the whole file from BEGIN IMMEDIATE.
Times that are compared across hosts (heartbeats, starts, ends) come from the server's clock.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, TypeVar

import pandas as pd
import sqlalchemy as sa

from core.store import db
from core.store.schema import (CHUNK_BYTES, FINISHED, TERMINAL, TRANSITIONS, Artifact, Evaluation, Run, RunNotFound, StoreError,
                         artifact_chunks_t, artifacts_t, clean, evaluations_t, meta_t, metrics_t, misclassified_t,
                         runs_frame, runs_t, workers_t)
from core.settings import artifacts_dir, sqlite_file

T = TypeVar("T")
MODEL = "model.keras"  # a finished run's trained model, kept in the store
HEARTBEAT_TIMEOUT = 60.0  # seconds without a heartbeat before a running run counts as interrupted


class RunStore:
    """Runs, metrics, evaluations and drawings in one database."""

    def __init__(self, url: str):
        self.url = url = db.normalize_url(url)
        self.engine = db.make_engine(url)
        self.artifacts = artifacts_dir(url)
        self._where = db.where(url)
        self._reconnect = 0.0  # a server that cannot be reached on open is one clear line at once
        self._verified: dict[Path, tuple[int, int, str]] = {}  # cache file → (size, mtime_ns, sha256) checked
        self._scope = threading.local()  # this thread's open transaction: (connection, write)
        db.migrate(self.engine, self._where)
        self._reconnect = db.RECONNECT_SECONDS  # once open, a lost server is waited for (it may be restarting)
        self.adopt_local_models()

    @property
    def where(self) -> str:
        """The store as messages name it: its SQLite file, else its URL without the password."""
        return self._where

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------
    def session(self, write: bool = True) -> ContextManager[sa.Connection]:
        """One transaction: commit on success, roll back on error, always close."""
        return db.session(self.engine, self._where, write)

    def transact(self, fn: Callable[[sa.Connection], T], write: bool = True, attempts: int = 12) -> T:
        """Run fn(conn) in a transaction, retrying busy, deadlocked or disconnected tries (core.store.db.retry).

        Inside an open scope (`read()`, `write()` or another `transact`) fn joins that transaction instead.
        """
        joined = self._joined(write)
        if joined is not None:
            return fn(joined)

        def inside(conn):
            self._scope.open = (conn, write)
            try:
                return fn(conn)
            finally:
                self._scope.open = None
        return db.retry(self.engine, self._where, inside, write, attempts, reconnect=self._reconnect)

    _tx = transact

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """`with store.read() as conn:` one read transaction; store calls inside it share it."""
        with self._open(False) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """`with store.write() as conn:` one write transaction (all or nothing); store calls inside it share it."""
        with self._open(True) as conn:
            yield conn

    @contextmanager
    def _open(self, write: bool) -> Iterator[sa.Connection]:
        joined = self._joined(write)
        if joined is not None:
            yield joined
            return
        with db.session(self.engine, self._where, write) as conn:
            self._scope.open = (conn, write)
            try:
                yield conn
            finally:
                self._scope.open = None

    def _joined(self, write: bool) -> sa.Connection | None:
        """This thread's open transaction, if any; a write cannot join a read (it could not take the lock)."""
        conn, is_write = getattr(self._scope, "open", None) or (None, False)
        if conn is not None and write and not is_write:
            raise StoreError("a write was asked for inside a read transaction: open the write scope outside")
        return conn

    def schema_version(self) -> int:
        return int(self._tx(lambda c: c.execute(
            sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar(), write=False))

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, config: dict, name: str | None = None, n_params: int | None = None,
                   group: str | None = None, parent_id: str | None = None, trial: int | None = None) -> str:
        """Queue a run for `config` (an already validated TrainConfig.to_dict()); returns its id.

        Stamped with the server's clock, which orders the queue (`trial`: a study run's trial number)."""
        run_id = uuid.uuid4().hex[:12]
        arch = config["architecture"]
        values = dict(id=run_id, name=(name or config.get("name") or f"{arch}-{run_id[:6]}")[:200],
                      architecture=arch, status="queued", config=config, n_params=n_params,
                      group_name=group, parent_id=parent_id, tags=[], note="",
                      epochs=config.get("epochs"), cancel_requested=False, epoch=0, step=0, trial=trial)
        self._tx(lambda c: c.execute(sa.insert(runs_t).values(**values, created_at=db.server_now(c))))
        return run_id

    def get_run(self, run_id: str) -> Run:
        row = self._tx(lambda c: c.execute(sa.select(runs_t).where(runs_t.c.id == run_id)).mappings().first(),
                       write=False)
        if row is None:
            raise RunNotFound(f"no run with id {run_id!r}: `python -m core runs` lists the runs")
        return Run(**{k: row[k] for k in (f.name for f in fields(Run))})

    def list_runs(self, status: str | None = None, architecture: str | None = None,
                  group: str | None = None, search: str | None = None) -> pd.DataFrame:
        """All runs, newest first, with their summary and key hyperparameters as columns.

        Built for thousands of runs: plain tuples instead of mappings, the JSON columns read as
        text and decoded in one json.loads each, one DataFrame built from whole columns.
        (PostgreSQL is asked for the text itself: psycopg would otherwise decode each value.)
        """
        names = [c.name for c in runs_t.c if c.name not in ("config", "error")] + ["config"]
        as_text = {"tags", "config"}  # SQLAlchemy's JSON processor per value costs more than the query
        text = sa.cast if self.is_postgres else sa.type_coerce
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
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        return runs_frame(names, rows)

    def set_status(self, run_id: str, status: str, conn: sa.Connection | None = None, **values: Any) -> None:
        """The only way a run's status changes; checks the transition is allowed."""
        def change(c):
            current = c.execute(_locked(sa.select(runs_t.c.status).where(runs_t.c.id == run_id))).scalar()
            if current is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            if status not in TRANSITIONS.get(current, ()):
                raise StoreError(f"run {run_id} is {current}; it cannot become {status}")
            extra = {"finished_at": db.server_now(c)} if status in TERMINAL else {}
            # the row is locked (PostgreSQL) or the file is (SQLite); the status condition says it twice
            c.execute(sa.update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == current)
                      .values(status=status, **extra, **values))
        return change(conn) if conn is not None else self._tx(change)

    def claim_run(self, worker_id: str, run_id: str | None = None) -> Run | None:
        """Atomically take the oldest queued run (or `run_id`) for a worker; None if there is none.

        SQLite: BEGIN IMMEDIATE, no other writer between the select and the update. PostgreSQL:
        the queued row is locked FOR UPDATE SKIP LOCKED, so concurrent workers take different runs.
        """
        def claim(c):
            q = sa.select(runs_t.c.id).where(runs_t.c.status == "queued")
            q = q.where(runs_t.c.id == run_id) if run_id else q.order_by(runs_t.c.created_at).limit(1)
            found = c.execute(_locked(q, skip=True)).scalar()
            if found is None:
                return None
            now = db.server_now(c)
            self.set_status(found, "running", conn=c, started_at=now, heartbeat_at=now, worker_id=worker_id,
                            host=socket.gethostname(), pid=os.getpid())
            return found
        claimed = self._tx(claim)
        return self.get_run(claimed) if claimed else None

    def checkpoint(self, run_id: str, rows: list[tuple], **progress: Any) -> bool:
        """Write metric rows and progress in one transaction, beat the heart; True if training should stop.

        Stop means a cancel was asked, or the run is no longer running (another process marked
        it interrupted, or it was deleted): then nothing is written.
        """
        def write(c):
            found = c.execute(_locked(sa.select(runs_t.c.status, runs_t.c.cancel_requested)
                                      .where(runs_t.c.id == run_id))).first()
            if found is None or found.status != "running":
                return True
            self._insert_metrics(c, rows)
            c.execute(sa.update(runs_t).where(runs_t.c.id == run_id)
                      .values(heartbeat_at=db.server_now(c), **{k: clean(v) if isinstance(v, float) else v
                                                                for k, v in progress.items()}))
            return bool(found.cancel_requested)
        return self._tx(write)

    def log_metrics(self, rows: Iterable[tuple]) -> None:
        """Insert (run_id, scope, key, step, epoch, value) rows in one transaction; [] does nothing."""
        rows = list(rows)
        if rows:
            self._tx(lambda c: self._insert_metrics(c, rows))

    @staticmethod
    def _insert_metrics(conn: sa.Connection, rows: list[tuple]) -> None:
        if rows:
            now = time.time()
            conn.execute(sa.insert(metrics_t), [
                dict(run_id=r, scope=s, key=k, step=int(st), epoch=None if e is None else int(e),
                     value=clean(v), ts=now) for r, s, k, st, e, v in rows])

    def finish_run(self, run_id: str, status: str, error: str | None = None, **summary: Any) -> None:
        """Mark a running run completed, failed, cancelled or interrupted, with its summary."""
        self.set_status(run_id, status, error=error, **summary)

    def request_cancel(self, run_id: str) -> str:
        """Cancel a queued run at once, or ask a running one to stop; returns the resulting status.

        One transaction, so a worker claiming the run meanwhile cannot slip between the read and the write.
        """
        def cancel(c):
            status = c.execute(_locked(sa.select(runs_t.c.status).where(runs_t.c.id == run_id))).scalar()
            if status is None:
                raise RunNotFound(f"no run with id {run_id!r}: `python -m core runs` lists the runs")
            if status == "queued":
                self.set_status(run_id, "cancelled", conn=c)
                return "cancelled"
            if status == "running":
                c.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(cancel_requested=True))
            return status
        return self._tx(cancel)

    def heartbeat(self, run_id: str) -> None:
        self._tx(lambda c: c.execute(sa.update(runs_t).where(runs_t.c.id == run_id, runs_t.c.status == "running")
                                     .values(heartbeat_at=db.server_now(c))))

    def recover_stale(self, timeout: float = HEARTBEAT_TIMEOUT) -> list[str]:
        """Mark running runs whose process died (dead local pid, or no heartbeat for `timeout` s) interrupted.

        Heartbeats and `now` are both the server's clock, so another host's skew does not count;
        a row locked right now is being written by its live worker and is skipped (PostgreSQL).
        """
        host = socket.gethostname()
        def recover(c):
            stale, now = [], db.server_now(c)
            for r in c.execute(_locked(sa.select(runs_t.c.id, runs_t.c.host, runs_t.c.pid, runs_t.c.heartbeat_at)
                                       .where(runs_t.c.status == "running").order_by(runs_t.c.id), skip=True)).all():
                dead = r.host == host and r.pid and not _pid_alive(r.pid)
                if dead or (r.heartbeat_at or 0) < now - timeout:
                    self.set_status(r.id, "interrupted", conn=c,
                                    error="the process running it stopped (killed or crashed); metrics up to its "
                                          "last write are kept")
                    stale.append(r.id)
            for w in c.execute(sa.select(workers_t.c.id, workers_t.c.host, workers_t.c.pid,
                                         workers_t.c.heartbeat_at)).all():  # forget dead workers
                if (w.host == host and not _pid_alive(w.pid)) or w.heartbeat_at < now - timeout:
                    c.execute(sa.delete(workers_t).where(workers_t.c.id == w.id))
            return stale
        return self._tx(recover)

    def delete_run(self, run_id: str) -> None:
        """Delete a run with its metrics, evaluations and model files."""
        folder = self.run_dir(run_id)  # RunNotFound for an id that could not be one

        def delete(c):  # one transaction, the row locked: a worker cannot claim it between the check and the delete
            status = c.execute(_locked(sa.select(runs_t.c.status).where(runs_t.c.id == run_id), key=True)).scalar()
            if status is None:
                raise RunNotFound(f"no run with id {run_id!r}: `python -m core runs` lists the runs")
            if status == "running":
                raise StoreError(f"run {run_id} is running: cancel it first")
            c.execute(sa.delete(runs_t).where(runs_t.c.id == run_id))
        self._tx(delete)
        shutil.rmtree(folder, ignore_errors=True)

    def update_run(self, run_id: str, **values: Any) -> None:
        """Edit a run's user fields: name, tags, note, group_name, drawn_accuracy."""
        allowed = {"name", "tags", "note", "group_name", "drawn_accuracy"}
        bad = set(values) - allowed
        if bad:
            raise StoreError(f"cannot edit {sorted(bad)[0]!r}; editable fields: {', '.join(sorted(allowed))}")
        self.get_run(run_id)
        self._tx(lambda c: c.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(**values)))

    def run_dir(self, run_id: str) -> Path:
        """artifacts/<run id>/: the path comes from the id alone, never from a name."""
        if not (isinstance(run_id, str) and run_id.isascii() and run_id.isalnum()):
            raise RunNotFound(f"no run with id {run_id!r}")
        return self.artifacts / run_id

    # -- metrics and evaluations ---------------------------------------------------------------
    def metric_history(self, run_id: str, scope: str = "epoch", keys: list[str] | None = None,
                       since_step: int = -1) -> pd.DataFrame:
        """Rows of one run as a DataFrame (run_id, scope, key, step, epoch, value, ts); NULL → NaN."""
        return self.histories([run_id], scope, keys, since_step)

    def histories(self, run_ids: list[str], scope: str = "epoch", keys: list[str] | None = None,
                  since_step: int = -1) -> pd.DataFrame:
        m = metrics_t.c
        q = (sa.select(m.run_id, m.scope, m.key, m.step, m.epoch, m.value, m.ts)
             .where(m.run_id.in_(run_ids), m.scope == scope, m.step > since_step).order_by(m.run_id, m.key, m.step))
        if keys:
            q = q.where(m.key.in_(keys))
        rows = self._tx(lambda c: c.execute(q).all(), write=False)
        df = pd.DataFrame(rows, columns=["run_id", "scope", "key", "step", "epoch", "value", "ts"])
        df["value"] = df["value"].astype(float)
        return df

    def params(self, run_id: str) -> pd.DataFrame:
        """The run's resolved config as (param, value) rows."""
        config = self.get_run(run_id).config
        return pd.DataFrame([(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in config.items()],
                            columns=["param", "value"])

    def save_evaluation(self, run_id: str, split: str, accuracy: float | None, loss: float | None, n: int,
                        confusion: list[list[int]], report: dict, misclassified: list[tuple] | None = None,
                        conn: sa.Connection | None = None) -> None:
        """Store (replace) a run's evaluation on a split, and for 'test' its misclassified examples."""
        def write(c):
            c.execute(sa.delete(evaluations_t).where(evaluations_t.c.run_id == run_id, evaluations_t.c.split == split))
            c.execute(sa.insert(evaluations_t).values(run_id=run_id, split=split, accuracy=clean(accuracy),
                                                      loss=clean(loss), n=n, confusion=confusion, report=report,
                                                      created_at=time.time()))
            if misclassified is not None:
                c.execute(sa.delete(misclassified_t).where(misclassified_t.c.run_id == run_id))
                if misclassified:
                    c.execute(sa.insert(misclassified_t), [
                        dict(run_id=run_id, idx=int(i), true_label=int(t), pred_label=int(p), confidence=float(q))
                        for i, t, p, q in misclassified])
        return write(conn) if conn is not None else self._tx(write)

    def complete_run(self, run_id: str, evaluation: dict, status: str = "completed",
                     artifacts: dict[str, bytes | Path] | None = None, **summary: Any) -> None:
        """Save the test evaluation (and `artifacts`, name → bytes or file, e.g. the model) and mark the
        run completed (or `pruned`) in one transaction: all or nothing.

        `evaluation` has accuracy, loss, n, confusion, report and misclassified (core.train.run.evaluate).
        """
        if status not in FINISHED:
            raise StoreError(f"complete_run ends a run as one of {', '.join(FINISHED)}, not {status!r}")
        keys = ("accuracy", "loss", "n", "confusion", "report", "misclassified")

        def write(c):
            for name, data in (artifacts or {}).items():
                self.put_artifact(run_id, name, data, conn=c)
            self.save_evaluation(run_id, "test", *(evaluation.get(k) for k in keys), conn=c)
            self.set_status(run_id, status, conn=c, **summary)
        self._tx(write)

    def set_dataset(self, run_id: str, dataset: dict) -> None:
        """Record which dataset trains the run (source, split sizes, hash): shown beside its results."""
        self._tx(lambda c: c.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(dataset=dataset)))

    def evaluation(self, run_id: str, split: str = "test") -> Evaluation | None:
        row = self._tx(lambda c: c.execute(sa.select(evaluations_t).where(
            evaluations_t.c.run_id == run_id, evaluations_t.c.split == split)).mappings().first(), write=False)
        return Evaluation(**dict(row)) if row else None

    def misclassified(self, run_id: str, true_label: int | None = None, pred_label: int | None = None,
                      limit: int = 200) -> pd.DataFrame:
        """Misclassified test digits, most confident mistakes first, optionally one confusion cell."""
        t = misclassified_t.c
        q = sa.select(t.idx, t.true_label, t.pred_label, t.confidence).where(t.run_id == run_id)
        if true_label is not None:
            q = q.where(t.true_label == true_label)
        if pred_label is not None:
            q = q.where(t.pred_label == pred_label)
        rows = self._tx(lambda c: c.execute(q.order_by(t.confidence.desc()).limit(limit)).all(), write=False)
        return pd.DataFrame(rows, columns=["idx", "true_label", "pred_label", "confidence"])

    # -- artifacts: files kept in the store, cached locally -------------------------------------
    def put_artifact(self, run_id: str, name: str, data: bytes | Path,
                     conn: sa.Connection | None = None) -> Artifact:
        """Keep `data` (bytes, or a file's contents) as the run's artifact `name`, replacing any before.

        One transaction: readers see the old file or the new one whole, never a mix of chunks.
        """
        _check_artifact_name(name)
        payload = Path(data).read_bytes() if isinstance(data, (str, Path)) else bytes(data)
        digest = hashlib.sha256(payload).hexdigest()
        chunks = [payload[i:i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)] or [b""]
        record = Artifact(run_id=run_id, name=name, size=len(payload), sha256=digest, chunks=len(chunks),
                          created_at=time.time())

        def write(c):  # the run's row locked: two writers of one artifact take turns
            if c.execute(_locked(sa.select(runs_t.c.id).where(runs_t.c.id == run_id))).scalar() is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            c.execute(sa.delete(artifact_chunks_t).where(artifact_chunks_t.c.run_id == run_id,
                                                         artifact_chunks_t.c.name == name))
            c.execute(sa.delete(artifacts_t).where(artifacts_t.c.run_id == run_id, artifacts_t.c.name == name))
            c.execute(sa.insert(artifacts_t).values(**record.__dict__))
            for i, chunk in enumerate(chunks):  # one row per chunk keeps each statement's parameters small
                c.execute(sa.insert(artifact_chunks_t).values(run_id=run_id, name=name, chunk=i, data=chunk))
        write(conn) if conn is not None else self._tx(write)
        return record

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """The files kept with a run, by name."""
        rows = self._tx(lambda c: c.execute(sa.select(artifacts_t).where(artifacts_t.c.run_id == run_id)
                                            .order_by(artifacts_t.c.name)).mappings().all(), write=False)
        return [Artifact(**dict(r)) for r in rows]

    def artifact(self, run_id: str, name: str) -> Artifact | None:
        found = [a for a in self.list_artifacts(run_id) if a.name == name]
        return found[0] if found else None

    def get_artifact(self, run_id: str, name: str) -> bytes:
        """The artifact's bytes, checked against its SHA-256; StoreError if the run has none by that name."""
        def read(c):
            info = c.execute(sa.select(artifacts_t).where(artifacts_t.c.run_id == run_id,
                                                          artifacts_t.c.name == name)).mappings().first()
            if info is None:
                return None, b""
            parts = c.execute(sa.select(artifact_chunks_t.c.data).where(
                artifact_chunks_t.c.run_id == run_id, artifact_chunks_t.c.name == name)
                .order_by(artifact_chunks_t.c.chunk)).scalars().all()
            return dict(info), b"".join(bytes(p) for p in parts)
        info, payload = self._tx(read, write=False)
        if info is None:
            raise StoreError(f"run {run_id} has no {name} in the store")
        if hashlib.sha256(payload).hexdigest() != info["sha256"] or len(payload) != info["size"]:
            raise StoreError(f"run {run_id}'s {name} in the store is damaged (its hash does not match)")
        return payload

    def artifact_file(self, run_id: str, name: str) -> Path:
        """A local file with the artifact's bytes: artifacts/<run id>/<name>, a cache checked by hash.

        Filled from the store on first use (or when the cached file differs); written aside and
        renamed, so a reader never sees half a file.
        """
        _check_artifact_name(name)
        path = self.run_dir(run_id) / name
        info = self.artifact(run_id, name)
        if info is None:
            raise StoreError(f"run {run_id} has no {name} in the store")
        if self._cached(path, info.size, info.sha256):
            return path
        payload = self.get_artifact(run_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}.part")
        try:
            partial.write_bytes(payload)
            os.replace(partial, path)
        except OSError as exc:
            raise StoreError(f"cannot write the local cache {path} ({exc.strerror}): make DIGITLAB_ARTIFACTS "
                             f"a writable folder") from None
        finally:
            partial.unlink(missing_ok=True)
        return path

    def _cached(self, path: Path, size: int, sha256: str) -> bool:
        """The cache file holds exactly these bytes; hashed once per file version (size, mtime) in this process."""
        try:
            stat = path.stat()
        except OSError:
            return False
        if stat.st_size != size:
            return False
        if self._verified.get(path) == (size, stat.st_mtime_ns, sha256):
            return True
        if _sha256_file(path) != sha256:
            return False
        self._verified[path] = (size, stat.st_mtime_ns, sha256)
        return True

    def model_file(self, run_id: str) -> Path:
        """The run's trained model as a local file (the cache, filled from the store on first use)."""
        return self.artifact_file(run_id, MODEL)

    def model_version(self, run_id: str) -> str:
        """What identifies the run's model for caches: its SHA-256 in the store; else, for a file only
        in artifacts/ (an older store not yet adopted), its mtime; "" when the run has no model."""
        info = self.artifact(run_id, MODEL)
        if info is not None:
            return info.sha256
        try:
            return f"mtime:{(self.run_dir(run_id) / MODEL).stat().st_mtime_ns}"
        except OSError:
            return ""

    def delete_artifact(self, run_id: str, name: str) -> None:
        def delete(c):
            c.execute(sa.delete(artifact_chunks_t).where(artifact_chunks_t.c.run_id == run_id,
                                                         artifact_chunks_t.c.name == name))
            c.execute(sa.delete(artifacts_t).where(artifacts_t.c.run_id == run_id, artifacts_t.c.name == name))
        self._tx(delete)
        (self.run_dir(run_id) / name).unlink(missing_ok=True)

    # -- workers ------------------------------------------------------------------------------------
    def register_worker(self) -> str:
        worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

        def add(c):
            now = db.server_now(c)
            c.execute(sa.insert(workers_t).values(id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                                                  started_at=now, heartbeat_at=now))
        self._tx(add)
        return worker_id

    def worker_heartbeat(self, worker_id: str) -> None:
        """Beat a worker's heart; one removed meanwhile (thought dead while its server was away) comes back."""
        def beat(c):
            now = db.server_now(c)
            if not c.execute(sa.update(workers_t).where(workers_t.c.id == worker_id).values(heartbeat_at=now)).rowcount:
                c.execute(sa.insert(workers_t).values(id=worker_id, host=socket.gethostname(), pid=os.getpid(),
                                                      started_at=now, heartbeat_at=now))
        self._tx(beat)

    def remove_worker(self, worker_id: str) -> None:
        self._tx(lambda c: c.execute(sa.delete(workers_t).where(workers_t.c.id == worker_id)))

    def live_workers(self, timeout: float = 15.0) -> pd.DataFrame:
        """Workers that beat within `timeout` s (and, on this host, whose process is alive)."""
        rows = self._tx(lambda c: c.execute(sa.select(workers_t).where(
            workers_t.c.heartbeat_at > db.server_now(c) - timeout)).mappings().all(), write=False)
        host = socket.gethostname()
        alive = [dict(r) for r in rows if r["host"] != host or _pid_alive(r["pid"])]
        return pd.DataFrame(alive, columns=[c.name for c in workers_t.c])

    def workers_overview(self, timeout: float = 15.0) -> pd.DataFrame:
        """The live workers for the Workers panel: worker, host, pid, current run (id and name),
        seconds since the last heartbeat (server clock), runs done (ended, any status), started_at."""
        live = self.live_workers(timeout)
        columns = ["worker", "host", "pid", "run_id", "run_name", "heartbeat_age", "runs_done", "started_at"]
        if live.empty:
            return pd.DataFrame(columns=columns)
        ids = live["id"].tolist()
        r = runs_t.c

        def read(c):
            now = db.server_now(c)
            current = c.execute(sa.select(r.worker_id, r.id, r.name).where(r.worker_id.in_(ids), r.status == "running")
                                .order_by(r.started_at)).all()
            done = c.execute(sa.select(r.worker_id, sa.func.count()).where(r.worker_id.in_(ids), r.status.in_(TERMINAL))
                             .group_by(r.worker_id)).all()
            return now, {w: (i, n) for w, i, n in current}, dict(done)
        now, current, done = self._tx(read, write=False)
        return pd.DataFrame([(w.id, w.host, int(w.pid), *current.get(w.id, (None, None)),
                              max(0.0, now - w.heartbeat_at), int(done.get(w.id, 0)), w.started_at)
                             for w in live.itertuples()], columns=columns)

    # -- models of an older store ------------------------------------------------------------------
    def adopt_local_models(self) -> list[str]:
        """Take into the store the model files an older store kept only in artifacts/<id>/model.keras.

        Only finished runs with no `model.keras` in the store and a readable local file; idempotent
        (a second call finds nothing to do), and the local file stays as the cache. Returns the run ids.
        """
        r, a = runs_t.c, artifacts_t.c
        has_model = sa.select(a.run_id).where(a.run_id == r.id, a.name == MODEL).exists()
        missing = self._tx(lambda c: c.execute(sa.select(r.id).where(r.status.in_(FINISHED), ~has_model)).scalars().all(),
                           write=False)
        adopted = []
        for run_id in missing:
            path = self.artifacts / run_id / MODEL
            if run_id.isascii() and run_id.isalnum() and path.is_file():
                try:
                    self.put_artifact(run_id, MODEL, path)
                except (OSError, RunNotFound):  # unreadable, or deleted meanwhile: nothing to keep
                    continue
                adopted.append(run_id)
        return adopted


def _locked(query: sa.Select, skip: bool = False, key: bool = False) -> sa.Select:
    """`query` locking the rows it reads until commit (PostgreSQL; SQLite compiles it away).

    FOR NO KEY UPDATE by default (metric and evaluation inserts, which reference the run, still
    go ahead); `key`: FOR UPDATE, for a delete; `skip`: rows another transaction holds are passed over.
    """
    return query.with_for_update(skip_locked=skip, key_share=not key)


def _check_artifact_name(name: str) -> None:
    """An artifact name is a plain file name (it becomes a cache path): no folders, no dots first."""
    if not (isinstance(name, str) and 0 < len(name) <= 100 and name.isascii() and not name.startswith(".")
            and all(ch.isalnum() or ch in "._-" for ch in name)):
        raise StoreError(f"{name!r} is not a valid artifact name: use letters, digits, '.', '_' or '-'")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
