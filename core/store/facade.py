"""The run store: a facade over SQLAlchemy Core on SQLite (the default) or PostgreSQL, with a small verb API.

Each concern's SQL is plain functions of a connection in its own module: runs, metrics (and
evaluations), artifacts (with the local cache), workers, studies, drawings, results. Connection
setup, transactions, retries and one-line errors are in db.py, migration in migrate.py; tables, the
returned dataclasses and the errors in schema.py. A verb opens one transaction and calls those functions, so it is all or
nothing. Methods return dataclasses or DataFrames, never rows bound to a connection.

`with store.read() as conn:` and `with store.write() as conn:` open a transaction that the
store's verbs called inside it join (they nest, on the same thread), so several verbs share one
transaction; `store.transact(fn)` runs fn(conn) in one, retrying a busy or lost try as a whole.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, TypeVar

import pandas as pd
import sqlalchemy as sa

from core.settings import artifacts_dir
from core.store import artifacts, db, metrics, migrate, results, runs, workers
from core.store.schema import MODEL_FILE, Artifact, Evaluation, Run

T = TypeVar("T")
HEARTBEAT_TIMEOUT = 60.0  # seconds without a heartbeat before a running run counts as interrupted


class RunStore:
    """Runs, metrics, evaluations, artifacts, workers, studies and drawings in one database."""

    def __init__(self, url: str):
        self.url = url = db.normalize_url(url)
        self.engine = db.make_engine(url)
        self.artifacts = artifacts_dir(url)
        self.cache = artifacts.LocalCache(self.artifacts)
        self.where = db.where(url)  # the store as messages name it: its SQLite file, else its URL sans password
        self._tx = db.Transactions(self.engine, self.where)  # a server that cannot be reached on open: one line
        orphans = migrate.migrate(self.engine, self.where)
        self._tx.reconnect = db.RECONNECT_SECONDS  # once open, a lost server is waited for (it may be restarting)
        self.adopt_local_models(orphans)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    def transact(self, fn: Callable[[sa.Connection], T], write: bool = True, attempts: int = 12) -> T:
        """fn(conn) in one transaction, retrying busy, deadlocked or disconnected tries; joins an open one
        (core.store.db.Transactions, like the scopes below)."""
        return self._tx.run(fn, write, attempts)

    def read(self) -> ContextManager[sa.Connection]:
        """`with store.read() as conn:` one read transaction; the store's verbs called inside it share it."""
        return self._tx.scope(write=False)

    def write(self) -> ContextManager[sa.Connection]:
        """`with store.write() as conn:` one write transaction, all or nothing; verbs inside it share it."""
        return self._tx.scope(write=True)

    def session(self, write: bool = True) -> ContextManager[sa.Connection]:
        """One transaction: commit on success, roll back on error, always close (`read()` / `write()`)."""
        return self._tx.scope(write)

    def _read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._tx.run(lambda c: fn(c, *args, **kwargs), write=False)

    def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return self._tx.run(lambda c: fn(c, *args, **kwargs))

    def schema_version(self) -> int:
        return self._read(migrate.schema_version)

    # -- runs (core.store.runs) ---------------------------------------------------------------
    def create_run(self, config: dict, name: str | None = None, n_params: int | None = None, group: str | None = None,
                   parent_id: str | None = None, trial: int | None = None, source: str = "trained") -> str:
        """Queue a run for `config` (a validated TrainConfig.to_dict()) on the server's clock; its id. See SOURCES."""
        return self._write(runs.create_run, config, name, n_params, group, parent_id, trial, source)

    def get_run(self, run_id: str) -> Run:
        return self._read(runs.get_run, run_id)

    def list_runs(self, status: str | None = None, architecture: str | None = None,
                  group: str | None = None, search: str | None = None, source: str | None = None) -> pd.DataFrame:
        """All runs, newest first, with their summary and key hyperparameters as columns (and `source`)."""
        return self._read(runs.list_runs, status, architecture, group, search, source)

    def set_status(self, run_id: str, status: str, **values: Any) -> None:
        """The only way a run's status changes; checks the transition is allowed."""
        self._write(runs.set_status, run_id, status, **values)

    def claim_run(self, worker_id: str, run_id: str | None = None) -> Run | None:
        """Atomically take the oldest queued run (or `run_id`) for a worker; None if there is none."""
        claimed = self._write(runs.claim_run, worker_id, run_id)
        return self.get_run(claimed) if claimed else None

    def checkpoint(self, run_id: str, rows: list[tuple], **progress: Any) -> bool:
        """Write metric rows and progress in one transaction, beat the heart; True if training should stop."""
        return self._write(runs.checkpoint, run_id, rows, progress)

    def log_metrics(self, rows: Iterable[tuple]) -> None:
        """Insert (run_id, scope, key, step, epoch, value) rows in one transaction; [] does nothing."""
        if rows := list(rows):
            self._write(metrics.insert_metrics, rows)

    def finish_run(self, run_id: str, status: str, error: str | None = None, **summary: Any) -> None:
        """Mark a running run completed, failed, cancelled or interrupted, with its summary."""
        self.set_status(run_id, status, error=error, **summary)

    def request_cancel(self, run_id: str) -> str:
        """Cancel a queued run at once, or ask a running one to stop; returns the resulting status."""
        return self._write(runs.request_cancel, run_id)

    def heartbeat(self, run_id: str) -> None:
        self._write(runs.heartbeat, run_id)

    def recover_stale(self, timeout: float = HEARTBEAT_TIMEOUT) -> list[str]:
        """Mark running runs whose process died interrupted (and forget dead workers); returns their ids."""
        return self._write(runs.recover_stale, timeout)

    def delete_run(self, run_id: str) -> None:
        """Delete a run with its metrics, evaluations and model files."""
        folder = self.run_dir(run_id)  # RunNotFound for an id that could not be one
        self._write(runs.delete_run, run_id)
        shutil.rmtree(folder, ignore_errors=True)  # only a cache: what cannot be removed is harmless

    def update_run(self, run_id: str, **values: Any) -> None:
        """Edit a run's user fields: name, tags, note, group_name, drawn_accuracy."""
        self._write(runs.update_run, run_id, **values)

    def set_dataset(self, run_id: str, dataset: dict) -> None:
        """Record which dataset trains the run (source, split sizes, hash): shown beside its results."""
        self._write(runs.set_dataset, run_id, dataset)

    def run_dir(self, run_id: str) -> Path:
        """artifacts/<run id>/: the path comes from the id alone, never from a name."""
        return self.cache.run_dir(run_id)

    # -- metrics and evaluations (core.store.metrics) --------------------------------------------
    def metric_history(self, run_id: str, scope: str = "epoch", keys: list[str] | None = None,
                       since_step: int = -1) -> pd.DataFrame:
        """Rows of one run as a DataFrame (run_id, scope, key, step, epoch, value, ts); NULL → NaN."""
        return self.histories([run_id], scope, keys, since_step)

    def histories(self, run_ids: list[str], scope: str = "epoch", keys: list[str] | None = None,
                  since_step: int = -1) -> pd.DataFrame:
        return self._read(metrics.histories, run_ids, scope, keys, since_step)

    def params(self, run_id: str) -> pd.DataFrame:
        """The run's resolved config as (param, value) rows."""
        return runs.params_frame(self.get_run(run_id).config)

    def save_evaluation(self, run_id: str, split: str, accuracy: float | None, loss: float | None, n: int,
                        confusion: list[list[int]], report: dict, misclassified: list[tuple] | None = None) -> None:
        """Store (replace) a run's evaluation on a split, and for 'test' its misclassified examples."""
        self._write(metrics.save_evaluation, run_id, split, accuracy, loss, n, confusion, report, misclassified)

    def complete_run(self, run_id: str, evaluation: dict, status: str = "completed",
                     artifacts: dict[str, bytes | Path] | None = None, **summary: Any) -> None:
        """Save the test evaluation and `artifacts` and mark the run completed or pruned (core.store.results)."""
        self._write(results.complete_run, run_id, evaluation, status, artifacts or {}, summary)

    def evaluation(self, run_id: str, split: str = "test") -> Evaluation | None:
        return self._read(metrics.evaluation, run_id, split)

    def misclassified(self, run_id: str, true_label: int | None = None, pred_label: int | None = None,
                      limit: int = 200) -> pd.DataFrame:
        """Misclassified test digits, most confident mistakes first, optionally one confusion cell."""
        return self._read(metrics.misclassified, run_id, true_label, pred_label, limit)

    # -- artifacts: files kept in the store, cached locally (core.store.artifacts) ---------------
    def put_artifact(self, run_id: str, name: str, data: bytes | Path) -> Artifact:
        """Keep `data` (bytes, or a file's contents) as the run's artifact `name`, replacing any before."""
        return self._write(artifacts.put, run_id, name, data)

    def list_artifacts(self, run_id: str) -> list[Artifact]:
        """The files kept with a run, by name."""
        return self._read(artifacts.list_artifacts, run_id)

    def artifact(self, run_id: str, name: str) -> Artifact | None:
        return next((a for a in self.list_artifacts(run_id) if a.name == name), None)

    def get_artifact(self, run_id: str, name: str) -> bytes:
        """The artifact's bytes, checked against its SHA-256; StoreError if the run has none by that name."""
        return artifacts.checked(run_id, name, *self._read(artifacts.read, run_id, name))

    def artifact_file(self, run_id: str, name: str) -> Path:
        """A local file with the artifact's bytes (artifacts/<run id>/<name>), checked by hash, filled on first use."""
        artifacts.check_name(name)
        return self.cache.file(run_id, name, self.artifact(run_id, name), lambda: self.get_artifact(run_id, name))

    def model_file(self, run_id: str) -> Path:
        """The run's trained model as a local file (the cache, filled from the store on first use)."""
        return self.artifact_file(run_id, MODEL_FILE)

    def model_version(self, run_id: str) -> str:
        """What identifies the run's model for caches: its SHA-256 in the store, else its cache file's mtime, or ""."""
        info = self.artifact(run_id, MODEL_FILE)
        return info.sha256 if info is not None else self.cache.mtime_version(run_id, MODEL_FILE)

    def delete_artifact(self, run_id: str, name: str) -> None:
        self._write(artifacts.delete, run_id, name)
        (self.run_dir(run_id) / name).unlink(missing_ok=True)

    def adopt_local_models(self, paths: dict[str, str] | None = None) -> list[str]:
        """Take into the store the models an older store kept only as files (core.store.artifacts.adopt)."""
        return artifacts.adopt(self, paths or {})

    # -- workers (core.store.workers) --------------------------------------------------------------
    def register_worker(self) -> str:
        return self._write(workers.register, workers.new_worker_id())

    def worker_heartbeat(self, worker_id: str) -> None:
        """Beat a worker's heart; one removed meanwhile (thought dead while its server was away) comes back."""
        self._write(workers.beat, worker_id)

    def remove_worker(self, worker_id: str) -> None:
        self._write(workers.remove, worker_id)

    def live_workers(self, timeout: float = 15.0) -> pd.DataFrame:
        """Workers that beat within `timeout` s (and, on this host, whose process is alive)."""
        return self._read(workers.live_workers, timeout)

    def workers_overview(self, timeout: float = 15.0) -> pd.DataFrame:
        """The live workers for the Workers panel (core.store.workers.overview)."""
        return self._read(workers.overview, timeout)
