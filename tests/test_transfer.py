"""core/store/transfer.py: copy-store between two real SQLite files (and, marked postgres, the round trip
SQLite → PostgreSQL → SQLite of a store with real Keras runs): everything copied once, whole runs only,
a re-run copies nothing twice, a different run under the same id is refused before anything is written."""
from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa

from core import cli
from core.store.drawings import add_drawing, list_drawings
from core.store.facade import RunStore
from core.store.schema import (StoreError, artifacts_t, drawings_t, evaluations_t, metrics_t, misclassified_t, runs_t,
                               studies_t)
from core.store.transfer import copy_store
from tests.helpers import one_line_error

EVALUATION = {"accuracy": 0.9, "loss": 0.3, "n": 2, "confusion": [[1]], "report": {}, "misclassified": [(0, 1, 2, 0.9)]}


@pytest.fixture
def two(tmp_path):
    """A small source store (a completed run with metrics, evaluation and model; a queued run; a drawing;
    a study) and an empty target, both SQLite files."""
    src, dst = RunStore(f"sqlite:///{tmp_path / 'src.db'}"), RunStore(f"sqlite:///{tmp_path / 'dst.db'}")
    done = src.create_run({"architecture": "mlp-128-64", "epochs": 1}, name="done")
    src.create_run({"architecture": "cnn-small", "epochs": 2}, name="waiting")
    src.claim_run("w", done)
    src.log_metrics([(done, "epoch", "val_accuracy", 10, 1, 0.9), (done, "batch", "loss", 5, None, float("nan"))])
    src.complete_run(done, EVALUATION, artifacts={"model.keras": b"weights" * 1000}, test_accuracy=0.9)
    add_drawing(src, 7, np.pad(np.full((12, 12), 255, np.uint8), 8), author="ann")
    with src.write() as c:
        c.execute(sa.insert(studies_t).values(name="s1", search="tpe", objective="val_accuracy", direction="maximize",
                                              budget=4, space={}, base_config={"architecture": "mlp-128-64"},
                                              created_at=7.0))
    yield src, dst
    src.close()
    dst.close()


def test_copy_store_copies_everything_once(two):
    src, dst = two
    steps = []
    report = copy_store(src, dst, progress=lambda done, total, what: steps.append((done, total)))
    assert (report.runs_copied, report.runs_skipped, report.drawings_copied, report.studies_copied) == (2, 0, 1, 1)
    assert report.metric_rows == 2 and report.artifact_bytes == 7000 and steps[-1] == (4, 4)
    assert snapshot(dst) == snapshot(src)
    again = copy_store(src, dst)
    assert (again.runs_copied, again.runs_skipped, again.drawings_copied, again.studies_copied) == (0, 2, 0, 0)
    assert len(list_drawings(dst)) == 1


def test_a_run_that_moved_on_is_replaced_whole(two):
    src, dst = two
    copy_store(src, dst)
    waiting = src.list_runs(status="queued")["run_id"].iloc[0]
    src.claim_run("w", waiting)
    report = copy_store(src, dst)
    assert (report.runs_replaced, report.runs_skipped) == (1, 1) and dst.get_run(waiting).status == "running"


def test_a_different_run_under_the_same_id_is_refused_before_anything_is_written(two):
    src, dst = two
    copy_store(src, dst)
    run_id = src.list_runs()["run_id"].iloc[0]
    with dst.write() as c:
        c.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(created_at=1.0))
    before = snapshot(dst)
    with pytest.raises(StoreError, match="already holds a different run under the id"):
        copy_store(src, dst)
    assert snapshot(dst) == before
    with pytest.raises(StoreError, match="are the same store"):
        copy_store(src, src)


# -- the round trip through PostgreSQL, with real runs ---------------------------------------------
TABLES = {"runs": (runs_t, "id"), "evaluations": (evaluations_t, "run_id, split"),
          "misclassified": (misclassified_t, "run_id, idx"), "artifacts": (artifacts_t, "run_id, name")}


def snapshot(store: RunStore) -> dict:
    """Everything copy-store carries, in a form comparable across databases."""
    out = {}
    with store.read() as c:
        for name, (table, order) in TABLES.items():
            out[name] = [dict(r) for r in c.execute(sa.select(table).order_by(sa.text(order))).mappings()]
        m = metrics_t.c
        out["metrics"] = [tuple(r) for r in c.execute(sa.select(m.run_id, m.scope, m.key, m.step, m.epoch, m.value, m.ts)
                                                      .order_by(m.run_id, m.scope, m.key, m.step))]
        d = drawings_t.c
        out["drawings"] = [(r.label, bytes(r.image), r.created_at) for r in
                           c.execute(sa.select(d.label, d.image, d.created_at).order_by(d.created_at))]
        out["studies"] = [dict(r) for r in c.execute(sa.select(studies_t)).mappings()]
    out["models"] = {r["run_id"]: store.get_artifact(r["run_id"], r["name"]) for r in out["artifacts"]}
    return out


@pytest.mark.postgres
def test_copy_store_round_trip_sqlite_postgres_sqlite(populated_env, pg_url, tmp_path, capsys):
    src = populated_env.store
    with src.session() as c:
        c.execute(sa.insert(drawings_t).values(label=3, image=bytes(range(256)) * 3 + bytes(16), created_at=5.0))
        c.execute(sa.insert(studies_t).values(name="s1", search="tpe", objective="val_accuracy", direction="maximize",
                                              budget=4, space={"learning_rate": "log:1e-4:1e-2"},
                                              base_config={"architecture": "mlp-128-64"}, created_at=7.0))
    back = f"sqlite:///{tmp_path / 'back.db'}"
    assert cli.main(["copy-store", "--from", src.url, "--to", pg_url]) == 0
    out, err = capsys.readouterr()
    assert "copied 3 run(s)" in out and "1 drawing(s)" in err + out and "copying [" in err
    assert cli.main(["copy-store", "--from", pg_url, "--to", back]) == 0
    capsys.readouterr()
    original = snapshot(src)
    assert original["models"] and len(original["metrics"]) > 0
    for url in (pg_url, back):
        other = RunStore(url)
        assert snapshot(other) == original, url
        other.close()
    assert cli.main(["copy-store", "--from", src.url, "--to", pg_url]) == 0  # again: nothing copied twice
    assert "copied 0 run(s), replaced 0, skipped 3" in capsys.readouterr().out
    target = RunStore(pg_url)
    assert snapshot(target) == original
    with target.session() as c:  # a different run under one of the ids
        c.execute(sa.update(runs_t).where(runs_t.c.id == original["runs"][0]["id"]).values(created_at=1.0))
    target.close()
    line = one_line_error(capsys, ["copy-store", "--from", src.url, "--to", pg_url])
    assert "holds a different run under the id" in line
