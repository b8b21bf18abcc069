"""Export runs to an MLflow tracking server or store: one MLflow run per Digit Lab run.

Each carries its config as params, its epoch and batch histories as metrics with their steps
and timestamps (epoch keys as they are, batch keys as `batch_<key>`), its test score, and its
model as the artifact `model/model.keras`. Writes go through `MlflowClient.log_batch` in
chunks within its limits (MAX_METRICS metrics and MAX_PARAMS params per call). Every MLflow
run is tagged with its Digit Lab run id (TAG): a re-export skips runs already there, and
replaces one an interrupted export left unfinished.

The tracking URI is checked before anything is written: a server that does not answer, or a
SQLite file in a folder that does not exist, is one line.
"""
from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from core.interop.models import InteropError
from core.interop.tensorboard import select_runs
from core.store.facade import RunStore
from core.store.schema import MODEL_FILE, TERMINAL

log = logging.getLogger("core.interop")

EXPERIMENT = "Digit Lab"
TAG = "digitlab.run_id"
DONE = "digitlab.exported"  # "complete" once every param, metric and the model are written
MAX_METRICS, MAX_PARAMS = 1000, 100  # log_batch's limits per call
PROBE_SECONDS = 5.0
STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "failed": "FAILED", "cancelled": "KILLED",
          "interrupted": "FAILED"}  # Digit Lab's terminal statuses as MLflow's


def check_uri(uri: str) -> None:
    """Refuse, in one line, a tracking URI that cannot be written: an http(s) server that does not
    answer its /health, a SQLite file whose folder is missing, an unknown scheme."""
    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=PROBE_SECONDS) as reply:
                if reply.status >= 400:
                    raise InteropError(f"the MLflow server at {uri} answered {reply.status}")
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InteropError(f"cannot reach the MLflow server at {uri} ({reason})",
                               hint="start it (`mlflow server`) or check --to") from None
    elif uri.startswith("sqlite:///"):
        folder = Path(uri[len("sqlite:///"):]).expanduser().parent
        if not folder.is_dir():
            raise InteropError(f"cannot make the MLflow store {uri}: the folder {folder} does not exist")
    elif not uri.startswith(("postgresql", "mysql", "file:", "databricks")) and "://" in uri:
        raise InteropError(f"{uri} is not an MLflow tracking URI (http://host:5000, sqlite:///mlflow.db, …)")


def artifact_location(uri: str) -> str | None:
    """Models exported to a SQLite store go beside its file (mlartifacts/), not into ./mlruns under
    whatever folder the command ran in (MLflow's default); a server chooses its own (None)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).expanduser().resolve().parent / "mlartifacts").as_uri()
    return None


def chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def export(store: RunStore, uri: str, run_ids: list[str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict[str, list[str]]:
    """Export the runs (all, or `run_ids`) to `uri`; {"exported": ids, "skipped": ids already there}."""
    runs = select_runs(store, run_ids)  # an unknown id: one line, nothing written
    check_uri(uri)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a server that dies mid-export: fail in seconds
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=uri)
    try:
        experiment = client.get_experiment_by_name(EXPERIMENT)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(
            EXPERIMENT, artifact_location=artifact_location(uri))
    except Exception as exc:
        raise InteropError(f"cannot use the MLflow store at {uri}: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:200]}") from None
    done = {"exported": [], "skipped": []}
    for i, run in enumerate(runs, 1):
        existing = client.search_runs([experiment_id], filter_string=f"tags.`{TAG}` = '{run['run_id']}'")
        if run["status"] in TERMINAL and any(r.data.tags.get(DONE) == "complete" for r in existing):
            done["skipped"].append(run["run_id"])
        else:
            for stale in existing:  # stopped half-way, or exported while it still trained: export it again
                client.delete_run(stale.info.run_id)
            _export_run(store, client, experiment_id, run)
            done["exported"].append(run["run_id"])
        if progress:
            progress(i, len(runs))
    return done


def _export_run(store: RunStore, client, experiment_id: str, run: dict) -> str:
    from mlflow.entities import Metric, Param, RunTag

    start = int((run.get("started_at") or run["created_at"]) * 1000)
    tags = {TAG: run["run_id"], "mlflow.runName": run["name"], "digitlab.status": run["status"],
            "digitlab.architecture": run["architecture"], "digitlab.source": run.get("source") or "trained",
            **{f"digitlab.tag.{t}": "1" for t in (run.get("tags") or [])}}
    created = client.create_run(experiment_id, start_time=start, tags=tags, run_name=run["name"])
    mid = created.info.run_id
    params = [Param(k, _param_text(v)) for k, v in (run["config"] or {}).items() if v is not None]
    metrics = []
    for scope in ("epoch", "batch"):
        for row in store.metric_history(run["run_id"], scope=scope).itertuples():
            if row.value == row.value:  # NaN (stored NULL): a gap, not a point
                key = row.key if scope == "epoch" else f"batch_{row.key}"
                step = int(row.epoch) if scope == "epoch" and row.epoch == row.epoch else int(row.step)
                metrics.append(Metric(key, float(row.value), int(float(row.ts) * 1000), step))
    end = int((run.get("finished_at") or run["created_at"]) * 1000)
    for key in ("test_accuracy", "test_loss", "drawn_accuracy"):
        if run.get(key) is not None:
            metrics.append(Metric(key, float(run[key]), end, int(run.get("epoch") or 0)))
    for part in chunks(params, MAX_PARAMS):
        client.log_batch(mid, params=part)
    for part in chunks(metrics, MAX_METRICS):
        client.log_batch(mid, metrics=part)
    if store.artifact(run["run_id"], MODEL_FILE) is not None:
        client.log_artifact(mid, str(store.model_file(run["run_id"])), artifact_path="model")
    client.log_batch(mid, tags=[RunTag(DONE, "complete")])
    if run["status"] in TERMINAL:  # a run still training stays RUNNING there; the next export replaces it
        client.set_terminated(mid, status=STATUS[run["status"]], end_time=end)
    return mid


def _param_text(value: Any) -> str:
    """A param value as MLflow keeps it (text, at most 6000 characters)."""
    text = json.dumps(value) if isinstance(value, (list, dict, tuple)) else str(value)
    return text[:6000]
