"""The run store: SQLAlchemy Core over SQLite (or any SQL database), with a small verb API.

Connection setup, transactions with busy retries, one-line errors and migration live in
core/db.py; tables, the returned dataclasses and the errors in core/schema.py. Every status
change goes through `set_status()`. Methods return dataclasses or DataFrames, never rows
bound to a connection.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, TypeVar

import pandas as pd
import sqlalchemy as sa

from core import db
from core.schema import (CHUNK_BYTES, FINISHED, TERMINAL, TRANSITIONS, Artifact, Evaluation, Run, RunNotFound, StoreError,
                         artifact_chunks_t, artifacts_t, clean, evaluations_t, meta_t, metrics_t, misclassified_t,
                         runs_frame, runs_t, workers_t)
from core.settings import artifacts_dir, sqlite_file

T = TypeVar("T")
HEARTBEAT_TIMEOUT = 60.0  # seconds without a heartbeat before a running run counts as interrupted


class RunStore:
    """Runs, metrics, evaluations and drawings in one database."""

    def __init__(self, url: str):
        self.url = url
        self.engine = db.make_engine(url)
        self.artifacts = artifacts_dir(url)
        self._where = str(sqlite_file(url) or url)
        db.migrate(self.engine, self._where)

    def close(self) -> None:
        self.engine.dispose()

    # -- transactions -------------------------------------------------------------------
    def session(self, write: bool = True) -> ContextManager[sa.Connection]:
        """One transaction: commit on success, roll back on error, always close."""
        return db.session(self.engine, self._where, write)

    def _tx(self, fn: Callable[[sa.Connection], T], write: bool = True, attempts: int = 12) -> T:
        """Run fn(conn) in a transaction, retrying while SQLite says busy/locked (core.db.retry)."""
        return db.retry(self.engine, self._where, fn, write, attempts)

    def schema_version(self) -> int:
        return int(self._tx(lambda c: c.execute(
            sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar(), write=False))

    # -- runs -----------------------------------------------------------------------------
    def create_run(self, config: dict, name: str | None = None, n_params: int | None = None,
                   group: str | None = None, parent_id: str | None = None) -> str:
        """Queue a run for `config` (an already validated TrainConfig.to_dict()); returns its id."""
        run_id = uuid.uuid4().hex[:12]
        arch = config["architecture"]
        values = dict(id=run_id, name=(name or config.get("name") or f"{arch}-{run_id[:6]}")[:200],
                      architecture=arch, status="queued", config=config, n_params=n_params,
                      group_name=group, parent_id=parent_id, tags=[], note="", created_at=time.time(),
                      epochs=config.get("epochs"), cancel_requested=False, epoch=0, step=0)
        self._tx(lambda c: c.execute(sa.insert(runs_t).values(**values)))
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
        """
        names = [c.name for c in runs_t.c if c.name not in ("config", "error")] + ["config"]
        as_text = {"tags", "config"}  # SQLAlchemy's JSON processor per value costs more than the query
        q = (sa.select(*(sa.type_coerce(runs_t.c[n], sa.Text).label(n) if n in as_text else runs_t.c[n]
                         for n in names))
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
            current = c.execute(sa.select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
            if current is None:
                raise RunNotFound(f"no run with id {run_id!r}")
            if status not in TRANSITIONS.get(current, ()):
                raise StoreError(f"run {run_id} is {current}; it cannot become {status}")
            extra = {"finished_at": time.time()} if status in TERMINAL else {}
            c.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(status=status, **extra, **values))
        return change(conn) if conn is not None else self._tx(change)

    def claim_run(self, worker_id: str, run_id: str | None = None) -> Run | None:
        """Atomically take the oldest queued run (or `run_id`) for a worker; None if there is none."""
        def claim(c):
            q = sa.select(runs_t.c.id).where(runs_t.c.status == "queued")
            q = q.where(runs_t.c.id == run_id) if run_id else q.order_by(runs_t.c.created_at).limit(1)
            found = c.execute(q).scalar()
            if found is None:
                return None
            now = time.time()
            self.set_status(found, "running", conn=c, started_at=now, heartbeat_at=now, worker_id=worker_id,
                            host=socket.gethostname(), pid=os.getpid())
            return found
        claimed = self._tx(claim)  # BEGIN IMMEDIATE: no other writer between the select and the update
        return self.get_run(claimed) if claimed else None

    def checkpoint(self, run_id: str, rows: list[tuple], **progress: Any) -> bool:
        """Write metric rows and progress in one transaction, beat the heart; True if training should stop.

        Stop means a cancel was asked, or the run is no longer running (another process marked
        it interrupted, or it was deleted): then nothing is written.
        """
        def write(c):
            found = c.execute(sa.select(runs_t.c.status, runs_t.c.cancel_requested)
                              .where(runs_t.c.id == run_id)).first()
            if found is None or found.status != "running":
                return True
            self._insert_metrics(c, rows)
            c.execute(sa.update(runs_t).where(runs_t.c.id == run_id)
                      .values(heartbeat_at=time.time(), **{k: clean(v) if isinstance(v, float) else v
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
            status = c.execute(sa.select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
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
                                     .values(heartbeat_at=time.time())))

    def recover_stale(self, timeout: float = HEARTBEAT_TIMEOUT) -> list[str]:
        """Mark running runs whose process died (dead local pid, or no heartbeat for `timeout` s) interrupted."""
        host, now = socket.gethostname(), time.time()
        def recover(c):
            stale = []
            for r in c.execute(sa.select(runs_t.c.id, runs_t.c.host, runs_t.c.pid, runs_t.c.heartbeat_at)
                               .where(runs_t.c.status == "running")).all():
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

        def delete(c):  # one transaction: a worker cannot claim the run between the check and the delete
            status = c.execute(sa.select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
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

    def complete_run(self, run_id: str, evaluation: dict, status: str = "completed", **summary: Any) -> None:
        """Save the test evaluation and mark the run completed (or `pruned`) in one transaction: both or neither.

        `evaluation` has accuracy, loss, n, confusion, report and misclassified (core.train.evaluate).
        """
        if status not in FINISHED:
            raise StoreError(f"complete_run ends a run as one of {', '.join(FINISHED)}, not {status!r}")
        keys = ("accuracy", "loss", "n", "confusion", "report", "misclassified")

        def write(c):
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

        def write(c):
            if c.execute(sa.select(runs_t.c.id).where(runs_t.c.id == run_id)).scalar() is None:
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
        info = self.artifact(run_id, name)
        path = self.run_dir(run_id) / name
        if info is None:
            raise StoreError(f"run {run_id} has no {name} in the store")
        if path.is_file() and path.stat().st_size == info.size and _sha256_file(path) == info.sha256:
            return path
        payload = self.get_artifact(run_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}.part")
        try:
            partial.write_bytes(payload)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path

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
        now = time.time()
        self._tx(lambda c: c.execute(sa.insert(workers_t).values(id=worker_id, host=socket.gethostname(),
                                                                  pid=os.getpid(), started_at=now, heartbeat_at=now)))
        return worker_id

    def worker_heartbeat(self, worker_id: str) -> None:
        self._tx(lambda c: c.execute(sa.update(workers_t).where(workers_t.c.id == worker_id)
                                     .values(heartbeat_at=time.time())))

    def remove_worker(self, worker_id: str) -> None:
        self._tx(lambda c: c.execute(sa.delete(workers_t).where(workers_t.c.id == worker_id)))

    def live_workers(self, timeout: float = 15.0) -> pd.DataFrame:
        """Workers that beat within `timeout` s (and, on this host, whose process is alive)."""
        rows = self._tx(lambda c: c.execute(sa.select(workers_t).where(
            workers_t.c.heartbeat_at > time.time() - timeout)).mappings().all(), write=False)
        host = socket.gethostname()
        alive = [dict(r) for r in rows if r["host"] != host or _pid_alive(r["pid"])]
        return pd.DataFrame(alive, columns=[c.name for c in workers_t.c])


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
