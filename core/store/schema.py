"""The run store's schema: its tables, their indexes and constraints, the schema version, the
run statuses; and what the store API returns (dataclasses, the runs DataFrame) and raises.

Tables (SQLAlchemy Core, one `MetaData`, `md`):
- `runs`: one row per training run: its name, architecture, status (queued → running →
  completed / pruned / failed / cancelled / interrupted), the resolved config as JSON, tags and note,
  the sweep it belongs to and the run it was forked from, who runs it (host, pid, worker,
  heartbeat), its progress (epoch, step) and summary (best/last validation, test and
  drawn accuracy), the error that stopped it, the dataset that trained it
  (source, split sizes, hash) and, for a study's run, its Optuna trial number.
- `metrics`: logged values, one row per (run, scope, key, step): "batch" rows are running
  means sampled every N steps, "epoch" rows the epoch logs, "pruner" rows the rung values a
  study's pruner noted on the run (core.search.study); NaN and infinities are NULL.
- `evaluations`: one row per (run, split): accuracy, loss, the 10×10 confusion matrix and a
  per-class report, on the test split or on the saved drawings.
- `misclassified`: the test digits a run got wrong, with the predicted label and its confidence.
- `drawings`: digits drawn or uploaded on the Draw page, as 28×28 MNIST-like images with their label.
- `artifacts` + `artifact_chunks`: files kept with a run in the store itself (its `model.keras`,
  an embedding index, …) so any machine with the store URL can load them: one `artifacts` row per
  (run, name) with its size and SHA-256, the bytes in ordered chunks of at most CHUNK_BYTES.
  Deleting a run deletes them (ON DELETE CASCADE). `DIGITLAB_ARTIFACTS` is only a local cache.
- `studies`: a named search (Optuna: random / tpe / grid) over a space of config fields: its
  base config, space, objective and direction, pruner, budget and whether it was stopped. Its
  runs are ordinary runs whose `group_name` is the study's name.
- `workers`: the registered worker processes (host, pid) and their heartbeat; dead ones are removed.
- `meta`: key/value facts about the store itself; `schema_version` for now.

`migrate()` (core/store/migrate.py) creates what is missing when a store opens, so an older `runs.db`
gains new tables and columns and keeps its data, and records SCHEMA_VERSION in `meta`.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.config import runs_columns
from core.errors import DigitLabError

# Recorded in meta; a store with a higher one is refused. 2: pruned, artifacts, studies; 3: runs.model_path dropped
# (the artifacts table holds the model); 4: runs.source (runs that existed before were all trained here).
SCHEMA_VERSION = 4
SOURCES = ("trained", "tracked", "imported")  # where a run came from: trained here, tracked from a script, imported
DROPPED = {"runs": ("model_path",)}  # columns an older version had: migrate() removes them
MODEL_FILE = "model.keras"  # a finished run's trained model, kept in the store under this artifact name
# A run's status, checked by the database; RunStore.set_status() keeps to TRANSITIONS.
# `pruned`: a study's pruner stopped it after an epoch; it keeps its metrics, model and test evaluation.
STATUSES = ("queued", "running", "completed", "pruned", "failed", "cancelled", "interrupted")
TERMINAL = ("completed", "pruned", "failed", "cancelled", "interrupted")
FINISHED = ("completed", "pruned")  # ended with a model and a test evaluation
# Which status may follow which: anything else is a bug, reported as StoreError.
TRANSITIONS = {"queued": {"running", "cancelled"},
               "running": {"completed", "pruned", "failed", "cancelled", "interrupted"}}
CHUNK_BYTES = 4 * 1024 * 1024  # an artifact's bytes are stored in chunks of at most this size

md = sa.MetaData()
runs_t = sa.Table(
    "runs", md,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("architecture", sa.String(40), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("group_name", sa.String(200)),            # a sweep's name
    sa.Column("parent_id", sa.String(32)),              # the run this one was forked from
    sa.Column("tags", sa.JSON, nullable=False, server_default=sa.text("'[]'")),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("n_params", sa.Integer),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("host", sa.String(200)),
    sa.Column("pid", sa.Integer),
    sa.Column("worker_id", sa.String(64)),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("epoch", sa.Integer, nullable=False, server_default="0"),          # epochs finished
    sa.Column("epochs", sa.Integer),                                    # epochs planned
    sa.Column("step", sa.Integer, nullable=False, server_default="0"),           # batches finished (all epochs)
    sa.Column("steps_per_epoch", sa.Integer),
    sa.Column("best_val_accuracy", sa.Float), sa.Column("best_val_epoch", sa.Integer),
    sa.Column("last_val_accuracy", sa.Float), sa.Column("last_val_epoch", sa.Integer),
    sa.Column("last_val_loss", sa.Float),
    sa.Column("last_accuracy", sa.Float), sa.Column("last_loss", sa.Float),
    sa.Column("test_accuracy", sa.Float), sa.Column("test_loss", sa.Float),
    sa.Column("drawn_accuracy", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("dataset", sa.JSON),                      # {source, n_train, n_test, sha256} of the data that trained it
    sa.Column("trial", sa.Integer),                     # a study run's Optuna trial number
    sa.Column("source", sa.String(12), nullable=False, server_default="trained"),  # one of SOURCES
    sa.CheckConstraint(f"status IN {STATUSES}", name="status_known"),
)
sa.Index("ix_runs_status", runs_t.c.status, runs_t.c.created_at)
metrics_t = sa.Table(
    "metrics", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),     # "batch" (running means), "epoch" or "pruner" (core.search.study)
    sa.Column("key", sa.String(64), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),        # global batch step
    sa.Column("epoch", sa.Integer),                       # 1-based
    sa.Column("value", sa.Float),                         # NULL for NaN/inf
    sa.Column("ts", sa.Float, nullable=False),
)
sa.Index("ix_metrics_run", metrics_t.c.run_id, metrics_t.c.scope, metrics_t.c.key, metrics_t.c.step)
evaluations_t = sa.Table(
    "evaluations", md,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("split", sa.String(16), primary_key=True),  # "test" or "drawn"
    sa.Column("accuracy", sa.Float), sa.Column("loss", sa.Float), sa.Column("n", sa.Integer),
    sa.Column("confusion", sa.JSON, nullable=False),      # 10×10 counts, rows = true label
    sa.Column("report", sa.JSON, nullable=False),         # per class: precision, recall, f1, support
    sa.Column("created_at", sa.Float, nullable=False),
)
misclassified_t = sa.Table(
    "misclassified", md,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),       # index into the test split
    sa.Column("true_label", sa.Integer, nullable=False),
    sa.Column("pred_label", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
)
drawings_t = sa.Table(
    "drawings", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("label", sa.Integer, nullable=False),
    sa.Column("image", sa.LargeBinary, nullable=False),    # 28×28 uint8, MNIST-like (ink = 255)
    sa.Column("original", sa.LargeBinary),                 # the drawing or upload as PNG
    sa.Column("author", sa.String(100), nullable=False, server_default=""),
    sa.Column("source", sa.String(16), nullable=False, server_default="canvas"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.CheckConstraint("label BETWEEN 0 AND 9", name="label_digit"),
)
artifacts_t = sa.Table(
    "artifacts", md,
    sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),  # e.g. "model.keras"
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("chunks", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
artifact_chunks_t = sa.Table(
    "artifact_chunks", md,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("chunk", sa.Integer, primary_key=True),      # 0, 1, … in order
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.ForeignKeyConstraint(["run_id", "name"], ["artifacts.run_id", "artifacts.name"], ondelete="CASCADE"),
)
studies_t = sa.Table(
    "studies", md,
    sa.Column("name", sa.String(200), primary_key=True),   # = runs.group_name of its runs
    sa.Column("search", sa.String(16), nullable=False),    # random | tpe | grid
    sa.Column("objective", sa.String(32), nullable=False), # val_accuracy | val_loss
    sa.Column("direction", sa.String(8), nullable=False),  # maximize | minimize
    sa.Column("pruner", sa.String(16), nullable=False, server_default="none"),  # none | median | hyperband
    sa.Column("warmup_epochs", sa.Integer, nullable=False, server_default="1"),
    sa.Column("budget", sa.Integer, nullable=False),       # runs in all (1-200)
    sa.Column("space", sa.JSON, nullable=False),           # field → distribution spec
    sa.Column("base_config", sa.JSON, nullable=False),     # TrainConfig.to_dict() the proposals start from
    sa.Column("seed", sa.Integer),                         # the sampler's seed
    sa.Column("stopped", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
)
workers_t = sa.Table(
    "workers", md,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("host", sa.String(200), nullable=False), sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.Float, nullable=False), sa.Column("heartbeat_at", sa.Float, nullable=False),
)
meta_t = sa.Table("meta", md, sa.Column("key", sa.String(64), primary_key=True), sa.Column("value", sa.Text))


# -- what the store API raises and returns ---------------------------------------------------
class StoreError(DigitLabError):
    """The store cannot do what was asked (unwritable, full, corrupt); one clear line."""


class RunNotFound(StoreError):
    """No run with that id."""


@dataclass(frozen=True)
class Run:
    """One row of `runs`, detached from any connection."""
    id: str; name: str; architecture: str; status: str; config: dict
    group_name: str | None = None; parent_id: str | None = None; tags: list = field(default_factory=list)
    note: str = ""; n_params: int | None = None
    created_at: float = 0.0; started_at: float | None = None; finished_at: float | None = None
    heartbeat_at: float | None = None; host: str | None = None; pid: int | None = None
    worker_id: str | None = None; cancel_requested: bool = False
    epoch: int = 0; epochs: int | None = None; step: int = 0; steps_per_epoch: int | None = None
    best_val_accuracy: float | None = None; best_val_epoch: int | None = None
    last_val_accuracy: float | None = None; last_val_epoch: int | None = None; last_val_loss: float | None = None
    last_accuracy: float | None = None; last_loss: float | None = None
    test_accuracy: float | None = None; test_loss: float | None = None; drawn_accuracy: float | None = None
    error: str | None = None
    dataset: dict | None = None; trial: int | None = None; source: str = "trained"

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (or to now while running)."""
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


@dataclass(frozen=True)
class Artifact:
    """One file kept with a run in the store (`artifacts` row): its bytes live in `artifact_chunks`."""
    run_id: str; name: str; size: int; sha256: str; chunks: int; created_at: float


@dataclass(frozen=True)
class Evaluation:
    """One row of `evaluations`: a run's scores on one split."""
    run_id: str; split: str; accuracy: float | None; loss: float | None; n: int
    confusion: list[list[int]]; report: dict[str, dict[str, float]]; created_at: float


# The config keys list_runs() shows as columns (column name: config key): the registry's Runs columns.
# The architecture is a runs column already; the planned epochs are named apart from the runs' epoch counts.
_HYPERPARAMETERS = {{"epochs": "epochs_planned"}.get(key, key): key for key in runs_columns() if key != "architecture"}


def runs_frame(names: list[str], rows: list[tuple]) -> pd.DataFrame:
    """`runs` rows (columns `names`, tags and config as JSON text) as list_runs() returns them.

    One DataFrame built from whole columns, the JSON decoded in one json.loads per column,
    the key hyperparameters as columns and the duration in seconds (NaN until started).
    """
    if not rows:  # object columns with no rows (empty lists would make them float)
        data: dict[str, Any] = {n: pd.Series(dtype=object) for n in names}
    else:
        data = {n: list(values) for n, values in zip(names, zip(*rows))}
        data["tags"], data["config"] = _json_values(data["tags"]), _json_values(data["config"])
    configs = [cfg if isinstance(cfg, dict) else {} for cfg in data["config"]]
    for key, src in _HYPERPARAMETERS.items():
        data[key] = [cfg.get(src) for cfg in configs]
    started = np.array(data["started_at"], dtype=float)  # None → NaN
    finished = np.array(data["finished_at"], dtype=float)
    duration = np.where(np.isnan(finished), time.time(), finished) - started  # NaN until started
    # all None (an object column) while no run has started, else floats with NaN for the unstarted
    data["duration"] = [None] * len(rows) if np.isnan(duration).all() else duration
    return pd.DataFrame(data).rename(columns={"id": "run_id"})


def _json_values(texts: list[str | None]) -> list[Any]:
    """Decode a column of JSON texts (SQL NULL → None) in one json.loads: ~40% faster than one call per value."""
    try:
        values = json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]")
    except ValueError:  # a malformed text somewhere: found and raised by the one-by-one decode below
        values = None
    if values is None or len(values) != len(texts):  # a malformed text: decode one by one, failing on it
        values = [None if t is None else json.loads(t) for t in texts]
    return values


def clean(value: Any) -> float | None:
    """NaN and infinities become NULL (a gap in charts), everything else a float."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
