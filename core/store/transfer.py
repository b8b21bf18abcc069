"""Move a store: copy every run (with its metrics, evaluations, misclassified digits and files),
the drawings and the studies from one store to another, in either direction (SQLite ↔ PostgreSQL).

`python -m core copy-store --from URL --to URL` calls `copy_store()`. Each run is copied in one
transaction of the target, so an interrupted copy leaves whole runs only, and a re-run copies
what is missing: a run already there unchanged is skipped, one that moved on since (it was
running, it is completed now) is replaced. A target that holds a *different* run under the same
id (another creation time, architecture or config) is refused before anything is written.
Drawings have no stable id across stores: one counts as there when its time, label and image match.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlalchemy as sa

from core.store.schema import (StoreError, artifact_chunks_t, artifacts_t, drawings_t, evaluations_t, metrics_t,
                         misclassified_t, runs_t, studies_t)
from core.store.facade import RunStore

BATCH = 5000  # metric rows per insert statement
IDENTITY = ("created_at", "architecture", "config")  # what makes a run the same run in two stores


@dataclass
class CopyReport:
    runs_copied: int = 0
    runs_replaced: int = 0
    runs_skipped: int = 0
    metric_rows: int = 0
    artifact_bytes: int = 0
    drawings_copied: int = 0
    studies_copied: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"copied {self.runs_copied} run(s), replaced {self.runs_replaced}, skipped {self.runs_skipped} "
                f"already there; {self.metric_rows:,} metric rows, {self.artifact_bytes / 1e6:.1f} MB of models and "
                f"files, {self.drawings_copied} drawing(s), {self.studies_copied} stud(ies)")


def copy_store(src: RunStore, dst: RunStore, progress: Callable[[int, int, str], None] | None = None) -> CopyReport:
    """Copy `src` into `dst` (see the module docstring); `progress(done, total, what)` after each step."""
    if src.where == dst.where:
        raise StoreError(f"--from and --to are the same store ({src.where}): nothing to copy")
    report = CopyReport()
    src_runs = _rows(src, sa.select(runs_t).order_by(runs_t.c.created_at, runs_t.c.id))
    dst_runs = {r["id"]: r for r in _rows(dst, sa.select(runs_t))}
    for run in src_runs:  # refuse before writing anything
        there = dst_runs.get(run["id"])
        if there is not None and any(there[k] != run[k] for k in IDENTITY):
            raise StoreError(f"{dst.where} already holds a different run under the id {run['id']} "
                             f"({there['name']!r}, not {run['name']!r}): nothing was copied; copy into another "
                             f"store, or delete that run there")
    src_studies = _rows(src, sa.select(studies_t).order_by(studies_t.c.created_at))
    dst_studies = {s["name"]: s for s in _rows(dst, sa.select(studies_t))}
    for study in src_studies:
        there = dst_studies.get(study["name"])
        if there is not None and there["created_at"] != study["created_at"]:
            raise StoreError(f"{dst.where} already holds a different study named {study['name']!r}: nothing was "
                             f"copied; rename or delete it there")
    total = len(src_studies) + len(src_runs) + 1
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, what)

    for study in src_studies:
        there = dst_studies.get(study["name"])
        if there != study:
            dst.transact(lambda c, s=study: (c.execute(sa.delete(studies_t).where(studies_t.c.name == s["name"])),
                                        c.execute(sa.insert(studies_t).values(**s))))
            report.studies_copied += 1
        step(f"study {study['name']}")
    for run in src_runs:
        there = dst_runs.get(run["id"])
        if there == run:
            report.runs_skipped += 1
        else:
            rows = _run_rows(src, run["id"])
            dst.transact(lambda c, r=run, rows=rows: _write_run(c, r, rows, replace=there is not None))
            report.runs_replaced += there is not None
            report.runs_copied += there is None
            report.metric_rows += len(rows["metrics"])
            report.artifact_bytes += sum(a["size"] for a in rows["artifacts"])
        step(f"run {run['id']}")
    report.drawings_copied = _copy_drawings(src, dst)
    step("drawings")
    return report


def _rows(store: RunStore, query) -> list[dict[str, Any]]:
    return store.transact(lambda c: [dict(r) for r in c.execute(query).mappings().all()], write=False)


def _run_rows(src: RunStore, run_id: str) -> dict[str, list[dict]]:
    """Everything kept with one run, read in one transaction of the source."""
    m = metrics_t.c

    def read(c):
        return {
            "metrics": [dict(r) for r in c.execute(
                sa.select(m.run_id, m.scope, m.key, m.step, m.epoch, m.value, m.ts)
                .where(m.run_id == run_id).order_by(m.id)).mappings().all()],
            "evaluations": [dict(r) for r in c.execute(
                sa.select(evaluations_t).where(evaluations_t.c.run_id == run_id)).mappings().all()],
            "misclassified": [dict(r) for r in c.execute(
                sa.select(misclassified_t).where(misclassified_t.c.run_id == run_id)).mappings().all()],
            "artifacts": [dict(r) for r in c.execute(
                sa.select(artifacts_t).where(artifacts_t.c.run_id == run_id)).mappings().all()],
            "chunks": [dict(r, data=bytes(r["data"])) for r in c.execute(
                sa.select(artifact_chunks_t).where(artifact_chunks_t.c.run_id == run_id)
                .order_by(artifact_chunks_t.c.name, artifact_chunks_t.c.chunk)).mappings().all()],
        }
    return src.transact(read, write=False)


def _write_run(c: sa.Connection, run: dict, rows: dict[str, list[dict]], replace: bool) -> None:
    """One run and all its rows into the target, in the caller's transaction (replacing an older copy)."""
    if replace:  # the cascade takes its metrics, evaluations, misclassified digits and files
        c.execute(sa.delete(runs_t).where(runs_t.c.id == run["id"]))
    c.execute(sa.insert(runs_t).values(**run))
    metrics = rows["metrics"]
    for i in range(0, len(metrics), BATCH):
        c.execute(sa.insert(metrics_t), metrics[i:i + BATCH])
    for table, key in ((evaluations_t, "evaluations"), (misclassified_t, "misclassified"),
                       (artifacts_t, "artifacts")):
        if rows[key]:
            c.execute(sa.insert(table), rows[key])
    for chunk in rows["chunks"]:  # one statement per chunk (up to 4 MB each)
        c.execute(sa.insert(artifact_chunks_t).values(**chunk))


def _copy_drawings(src: RunStore, dst: RunStore) -> int:
    """Drawings not yet in the target (same time, label and image), in their order; returns how many."""
    d = drawings_t.c

    def key(row) -> tuple:
        return row["created_at"], row["label"], hashlib.sha256(bytes(row["image"])).hexdigest()
    there = {key(r) for r in _rows(dst, sa.select(d.created_at, d.label, d.image))}
    new = [dict(r, image=bytes(r["image"]), original=None if r["original"] is None else bytes(r["original"]))
           for r in _rows(src, sa.select(d.label, d.image, d.original, d.author, d.source, d.created_at).order_by(d.id))
           if key(r) not in there]
    if new:
        dst.transact(lambda c: c.execute(sa.insert(drawings_t), new))
    return len(new)
