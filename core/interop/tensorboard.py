"""TensorBoard both ways: export runs as event files with their hyperparameters; import what Keras' callback wrote.

Export writes one folder per run under OUT (`<name>-<run id>`) with every epoch scalar
(`epoch/<key>`, step = epoch - 1, counted from 0 as Keras' callback does) and batch scalar (`batch/<key>`, step = global batch), the test
score (`test/accuracy`, `test/loss`) and the HParams plugin's values; OUT itself holds the HParams
config (every hyperparameter and the metrics to compare), so `tensorboard --logdir OUT` shows
the runs, their curves and the HParams table. Everything is written with tf.summary and
tensorboard.plugins.hparams.api.

Import reads the folders Keras' TensorBoard callback writes (`<run>/train`, `<run>/validation`)
or any folder of event files. TF2 writes scalars as tensors (plugin "scalars"), so they are read
as tensors; old TF1 scalar events are read too. Every point is kept: the accumulator gets 0
(keep all) for every kind, since its defaults sample (10 tensors per tag).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.interop.models import InteropError
from core.store.facade import RunStore

log = logging.getLogger("core.interop")

EVENTS = "events.out.tfevents."
SPLITS = {"train": "", "validation": "val_"}  # Keras' subfolders and the key prefix each gets
METRICS = ("epoch/val_accuracy", "epoch/val_loss", "epoch/accuracy", "epoch/loss", "test/accuracy", "test/loss")


def folder_name(name: str, run_id: str) -> str:
    """A run's folder under OUT: its name made safe for a path (never a path itself), then its id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name or "").strip("._")[:60]
    return f"{slug}-{run_id}" if slug else run_id


def hparam_values(config: dict, run: dict) -> dict[str, Any]:
    """The run's config as HParams values: numbers, strings and booleans; lists as JSON; unknowns left out."""
    values: dict[str, Any] = {}
    for key, value in config.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, (list, tuple, dict)):
            value = json.dumps(value)
        values[key] = value if isinstance(value, (bool, int, float, str)) else str(value)
    values.update(run_id=run["run_id"], status=run["status"], source=run.get("source") or "trained")
    return values


def export(store: RunStore, out: str | Path, run_ids: list[str] | None = None) -> list[Path]:
    """Write each run (all, or `run_ids`) as an event-file folder under `out`; the folders written."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    runs = select_runs(store, run_ids)
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise InteropError(f"--out {out} is a file; give a folder for the event files")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InteropError(f"cannot make the folder {out}: {exc.strerror}") from None
    all_values = {r["run_id"]: hparam_values(r["config"] or {}, r) for r in runs}
    domains: dict[str, set] = {}
    for values in all_values.values():
        for key, value in values.items():
            domains.setdefault(key, set()).add(value)
    _clear_events(out)
    with tf.summary.create_file_writer(str(out)).as_default():
        hp.hparams_config(hparams=[_hparam(hp, key, seen) for key, seen in sorted(domains.items())],
                          metrics=[hp.Metric(tag, display_name=tag) for tag in METRICS])
    written = []
    for r in runs:
        folder = out / folder_name(r["name"], r["run_id"])
        folder.mkdir(exist_ok=True)
        _clear_events(folder)  # a re-export replaces the run's events instead of doubling its points
        writer = tf.summary.create_file_writer(str(folder))
        with writer.as_default():
            hp.hparams(all_values[r["run_id"]], trial_id=r["run_id"])
            for scope in ("epoch", "batch"):
                for row in store.metric_history(r["run_id"], scope=scope).itertuples():
                    if row.value == row.value:  # NaN (stored NULL) is a gap, not a point
                        step = int(row.epoch - 1 if scope == "epoch" and row.epoch == row.epoch else row.step)
                        tf.summary.scalar(f"{scope}/{row.key}", float(row.value), step=step)
            last = max(0, int(r.get("epoch") or 0) - 1)
            for key in ("accuracy", "loss"):
                value = r.get(f"test_{key}")
                if value is not None and value == value:
                    tf.summary.scalar(f"test/{key}", float(value), step=last)
        writer.close()
        written.append(folder)
    return written


def _hparam(hp, key: str, seen: set):
    """An HParam with a discrete domain when its values are all of one kind, else none (any value)."""
    kinds = {type(v) for v in seen}
    if len(kinds) == 1 and kinds <= {bool, str} or kinds <= {int, float} and len(seen) <= 50:
        try:
            return hp.HParam(key, hp.Discrete(sorted(seen)))
        except (TypeError, ValueError):  # a mix the domain cannot hold: leave it open
            pass
    return hp.HParam(key)


def _clear_events(folder: Path) -> None:
    for old in folder.glob(f"{EVENTS}*"):
        old.unlink()


def select_runs(store: RunStore, run_ids: list[str] | None) -> list[dict]:
    """The runs to export as dicts (list_runs' columns); an unknown id is RunNotFound before anything is written."""
    df = store.list_runs()
    if run_ids:
        for run_id in run_ids:
            store.get_run(run_id)  # RunNotFound, one line
        df = df[df["run_id"].isin(run_ids)]
    if df.empty:
        raise InteropError("no runs to export: the store has none yet")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


# -- import ---------------------------------------------------------------------------------------
@dataclass
class LoggedRun:
    """One run read from event files: its name, epoch and batch rows (key, step, epoch, value) and config."""
    name: str
    folder: Path
    epoch: list[tuple[str, int, int | None, float]] = field(default_factory=list)
    batch: list[tuple[str, int, int | None, float]] = field(default_factory=list)
    config: dict = field(default_factory=dict)


def read_logs(root: str | Path) -> list[LoggedRun]:
    """Every run under `root`: a folder with event files, or a Keras run folder with train/ and validation/."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise InteropError(f"no folder at {root}")
    leaves = sorted({p.parent for p in root.rglob(f"{EVENTS}*") if p.is_file()})
    if not leaves:
        raise InteropError(f"{root} holds no TensorBoard logs (no {EVENTS}* files)")
    runs: dict[Path, LoggedRun] = {}
    for leaf in leaves:
        split = leaf.name if leaf.name in SPLITS and leaf != root else None
        run_dir = leaf.parent if split else leaf
        name = run_dir.name if run_dir != root else root.name
        run = runs.setdefault(run_dir, LoggedRun(name=str(run_dir.relative_to(root)) if run_dir != root else name,
                                                 folder=run_dir))
        _read_leaf(leaf, SPLITS.get(split or "train", ""), run)
    found = [r for r in runs.values() if r.epoch or r.batch]
    if not found:
        raise InteropError(f"{root} holds event files but no scalars to import")
    return found


def _read_leaf(leaf: Path, prefix: str, run: LoggedRun) -> None:
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(str(leaf), size_guidance=ea.STORE_EVERYTHING_SIZE_GUIDANCE)
    try:
        acc.Reload()
    except Exception as exc:  # a corrupt or truncated file: one line naming it
        raise InteropError(f"cannot read the TensorBoard logs in {leaf}: {type(exc).__name__}: {exc}") from None
    tags = acc.Tags()
    points: list[tuple[str, int, float]] = []
    for tag in tags.get("tensors", []):
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        events = acc.Tensors(tag)
        if plugin == "scalars":
            points += [(tag, e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events]
        elif tag == "keras" and events and not run.config:
            run.config = _keras_config(tensor_util.make_ndarray(events[-1].tensor_proto))
    for tag in tags.get("scalars", []):
        points += [(tag, e.step, float(e.value)) for e in acc.Scalars(tag)]
    for tag, step, value in points:
        scope, key = _split_tag(tag)
        if scope is None or (scope == "batch" and prefix):
            continue
        value = value if math.isfinite(value) else float("nan")
        if scope == "epoch":
            run.epoch.append((prefix + key, step + 1, step + 1, value))  # Keras counts epochs from 0
        else:
            run.batch.append((key, step, None, value))


def _split_tag(tag: str) -> tuple[str | None, str]:
    """("epoch", "loss") for Keras' "epoch_loss" or our "epoch/loss"; batch likewise; other tags are epoch values."""
    for scope in ("epoch", "batch"):
        for sep in ("_", "/"):
            if tag.startswith(scope + sep):
                return scope, tag[len(scope) + 1:]
    if tag.startswith(("evaluation_", "test/")) or "/" in tag:
        return None, tag  # Keras' evaluation-vs-iterations curves and our test score: not a history
    return "epoch", tag


def _keras_config(raw: Any) -> dict:
    """What the model JSON Keras' callback writes (tag "keras") declares: optimizer, learning rate, layers."""
    from core.interop.models import declared_config
    try:
        text = raw.item() if hasattr(raw, "item") else raw
        return declared_config(json.loads(text.decode() if isinstance(text, bytes) else text))
    except Exception:  # a model JSON in another shape: the config stays unknown, never guessed
        log.warning("the model description in the TensorBoard logs could not be read", exc_info=True)
        return {}


def fingerprint(run: LoggedRun) -> str:
    """A stable id of what a logged run holds (its name, config and every point): the same logs read
    again give the same fingerprint, so an import can tell it already holds them."""
    content = {"name": run.name, "config": run.config, "epoch": sorted(run.epoch, key=repr),
               "batch": sorted(run.batch, key=repr)}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def already_imported(store: RunStore, logged: list[LoggedRun]) -> dict[int, str]:
    """Index in `logged` -> the id of a run imported earlier from exactly the same logs."""
    runs = store.list_runs()
    known: dict[str, str] = {}
    if not runs.empty and "dataset" in runs.columns:
        for run_id, dataset in zip(runs["run_id"], runs["dataset"]):
            if isinstance(dataset, dict) and dataset.get("fingerprint"):
                known.setdefault(dataset["fingerprint"], run_id)
    return {i: known[fp] for i, fp in enumerate(fingerprint(r) for r in logged) if fp in known}


def import_runs(store: RunStore, logged: list[LoggedRun], model: tuple[Path, dict] | None = None,
                earlier: dict[int, str] | None = None) -> list[str]:
    """Each logged run as a completed, imported run with its histories; their ids (one transaction per run).

    A logged run imported before (the same logs: see `fingerprint`) is not imported twice: its id is
    the earlier run's. `earlier` is already_imported()'s answer when the caller has it (the default
    asks it here; {} imports every run again; a run with a `model` is always imported). Each new run
    records where it came from as its dataset ({"source": "TensorBoard logs", "folder", "fingerprint"}):
    the logs say nothing of the digits it trained on. `model`: a checked model file and its test
    evaluation (core.interop.models), kept with the one run.
    """
    from core.interop.models import complete_with_model
    if model is not None and len(logged) != 1:
        raise InteropError(f"the logs hold {len(logged)} runs; a model goes with a folder of one run")
    if model is not None:
        earlier = {}
    elif earlier is None:
        earlier = already_imported(store, logged)
    ids = []
    for i, run in enumerate(logged):
        if i in earlier:
            ids.append(earlier[i])
            continue
        epochs = max((e for _, _, e, _ in run.epoch), default=0)
        config = {"architecture": "external", "layers": [], "optimizer": None, "learning_rate": None,
                  "batch_size": None, "epochs": epochs or None, **run.config}
        config["layers"] = config["layers"] or []
        with store.write():
            run_id = store.create_run(config, name=run.name[:200], source="imported")
            store.set_dataset(run_id, {"source": "TensorBoard logs", "folder": str(run.folder),
                                       "fingerprint": fingerprint(run)})
            store.claim_run(worker_id=f"import-{os.getpid()}", run_id=run_id)
            store.log_metrics([(run_id, "epoch", k, s, e, v) for k, s, e, v in run.epoch] +
                              [(run_id, "batch", k, s, e, v) for k, s, e, v in run.batch])
            if model is not None:
                complete_with_model(store, run_id, model[0], model[1], **summary(run))
            else:
                store.finish_run(run_id, "completed", **summary(run))
        ids.append(run_id)
    return ids


def summary(run: LoggedRun) -> dict[str, Any]:
    """The run's summary columns from its epoch history, as StoreLogger keeps them while training."""
    last: dict[str, tuple[int, float]] = {}
    best: tuple[int, float] | None = None
    for key, _, epoch, value in sorted(run.epoch, key=lambda p: p[2]):
        if value != value:
            continue
        last[key] = (epoch, value)
        if key == "val_accuracy" and (best is None or value > best[1]):
            best = (epoch, value)
    out: dict[str, Any] = {"epoch": max((e for _, _, e, _ in run.epoch), default=0)}
    for key, column in (("loss", "last_loss"), ("accuracy", "last_accuracy"), ("val_loss", "last_val_loss")):
        if key in last:
            out[column] = last[key][1]
    if "val_accuracy" in last:
        out.update(last_val_accuracy=last["val_accuracy"][1], last_val_epoch=last["val_accuracy"][0])
    if best is not None:
        out.update(best_val_accuracy=best[1], best_val_epoch=best[0])
    return out
