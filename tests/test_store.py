"""The run store against real SQLite files and a real PostgreSQL server: round trips, status rules,
NaN, migrations. The API tests take `rs` (and `store`), parametrized over both databases."""
import math
import sqlite3
import time

import pandas as pd
import pytest
import sqlalchemy as sa

from core.config import make_config
from core.store.schema import SCHEMA_VERSION, RunNotFound, StoreError
from core.store.facade import RunStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def rs(request, tmp_path, monkeypatch):
    """An empty store on a SQLite file, or on a fresh PostgreSQL database (artifacts in tmp_path)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'runs.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        monkeypatch.setenv("DIGITLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    store = RunStore(url)
    yield store
    store.close()


@pytest.fixture
def store(rs):
    return rs


def _run(store, **overrides):
    return store.create_run(make_config("mlp-128-64", **overrides).to_dict(), n_params=109386)


def test_create_and_get_run(rs):
    run_id = _run(rs, name="first")
    run = rs.get_run(run_id)
    assert (run.name, run.status, run.architecture, run.n_params) == ("first", "queued", "mlp-128-64", 109386)
    assert run.config["batch_size"] == 32
    assert rs.list_runs()["run_id"].tolist() == [run_id]


def test_list_runs_hyperparameters_and_duration_for_queued_running_and_finished_runs(rs):
    _run(rs, name="queued", dropout=0.25)
    running = _run(rs, name="running", learning_rate=0.01, train_limit=500)
    done = _run(rs, name="done", batch_size=64, optimizer="sgd-momentum", augment=True)
    for run_id in (running, done):
        rs.claim_run("w", run_id=run_id)
    rs.finish_run(done, "completed")
    rs.update_run(done, tags=["best"])
    with rs.session() as c:  # known start and finish times
        c.execute(sa.text("UPDATE runs SET started_at=100.0, finished_at=NULL WHERE id=:id"), {"id": running})
        c.execute(sa.text("UPDATE runs SET started_at=100.0, finished_at=130.5 WHERE id=:id"), {"id": done})
        c.execute(sa.text("INSERT INTO runs (id, name, architecture, status, config, created_at) "  # an older store's
                          "VALUES ('old1', 'old', 'cnn-small', 'completed', '{\"epochs\": 3}', 1.0)"))  # sparse config
    before = time.time()
    runs = rs.list_runs()
    after = time.time()
    assert runs["name"].tolist() == ["done", "running", "queued", "old"]  # newest first
    by = runs.set_index("name")
    assert by.loc["done", "duration"] == 30.5
    assert before - 100 <= by.loc["running", "duration"] <= after - 100  # still counting
    assert math.isnan(by.loc["queued", "duration"]) and math.isnan(by.loc["old", "duration"])
    assert runs["duration"].dtype == float
    assert by.loc["queued", "dropout"] == 0.25 and math.isnan(by.loc["done", "dropout"])
    assert by.loc["running", "learning_rate"] == 0.01 and by.loc["running", "train_limit"] == 500
    assert (by.loc["done", "batch_size"], by.loc["done", "optimizer"], by.loc["done", "augment"]) == (64, "sgd-momentum", True)
    assert by["epochs_planned"].tolist() == [5, 5, 5, 3] and pd.isna(by.loc["old", "optimizer"])
    assert by.loc["done", "tags"] == ["best"] and by.loc["queued", "tags"] == []
    assert by.loc["done", "config"] == make_config("mlp-128-64", name="done", batch_size=64, optimizer="sgd-momentum",
                                                   augment=True).to_dict()
    assert rs.list_runs(status="queued")["name"].tolist() == ["queued"]
    assert rs.list_runs(status="queued")["duration"].isna().all()  # nothing started yet
    assert rs.list_runs(architecture="nope").empty and rs.list_runs(search="runn")["name"].tolist() == ["running"]


def test_metric_history_round_trip_keeps_nan_as_missing(rs):
    run_id = _run(rs)
    rs.log_metrics([(run_id, "epoch", "loss", s, s + 1, v) for s, v in enumerate([0.9, 0.4, math.nan])])
    history = rs.metric_history(run_id, scope="epoch")
    assert history["value"].isna().tolist() == [False, False, True]
    assert history["value"].iloc[:2].tolist() == [0.9, 0.4]
    rs.log_metrics([])  # no-op


def test_status_changes_follow_the_rules(rs):
    run_id = _run(rs)
    claimed = rs.claim_run("w1")
    assert claimed.id == run_id and claimed.status == "running" and claimed.pid
    assert rs.claim_run("w2") is None  # nothing left to claim
    rs.finish_run(run_id, "completed", test_accuracy=0.97)
    with pytest.raises(StoreError, match="completed; it cannot become running"):
        rs.set_status(run_id, "running")
    assert rs.get_run(run_id).finished_at is not None


def test_cancel_queued_is_immediate_and_running_is_requested(rs):
    a, b = _run(rs), _run(rs)
    assert rs.request_cancel(a) == "cancelled"
    rs.claim_run("w", run_id=b)
    assert rs.request_cancel(b) == "running"
    assert rs.checkpoint(b, [(b, "batch", "loss", 1, 1, 0.5)], step=1) is True


def test_unknown_run_raises(rs):
    with pytest.raises(RunNotFound):
        rs.get_run("missing")
    with pytest.raises(RunNotFound):
        rs.run_dir("../etc")


def test_every_verb_on_an_unknown_run_says_the_same_line(rs):
    """One require_run: the same RunNotFound, with the same hint, whichever verb finds the run missing."""
    calls = [lambda: rs.get_run("missing"), lambda: rs.update_run("missing", note="x"),
             lambda: rs.request_cancel("missing"), lambda: rs.delete_run("missing"),
             lambda: rs.set_status("missing", "running"), lambda: rs.put_artifact("missing", "model.keras", b"x"),
             lambda: rs.params("missing")]
    for call in calls:
        with pytest.raises(RunNotFound, match=r"^no run with id 'missing': `\.venv/bin/python -m core runs` lists the runs$"):
            call()


def test_delete_removes_metrics_evaluation_and_files(rs):
    run_id = _run(rs)
    rs.claim_run("w")
    rs.log_metrics([(run_id, "epoch", "loss", 1, 1, 0.3)])
    rs.save_evaluation(run_id, "test", 0.9, 0.3, 10, [[1] * 10] * 10, {}, [(3, 1, 7, 0.8)])
    rs.finish_run(run_id, "completed")
    rs.run_dir(run_id).mkdir(parents=True)
    (rs.run_dir(run_id) / "model.keras").write_bytes(b"x")
    rs.delete_run(run_id)
    assert rs.list_runs().empty and rs.metric_history(run_id).empty
    assert not rs.run_dir(run_id).exists() and rs.evaluation(run_id) is None


def test_evaluation_and_misclassified_filters(rs):
    run_id = _run(rs)
    rs.save_evaluation(run_id, "test", 0.5, 1.0, 4, [[0] * 10] * 10, {"0": {"f1": 1.0}},
                       [(1, 3, 5, 0.9), (2, 3, 8, 0.6), (7, 4, 9, 0.99)])
    assert rs.evaluation(run_id).accuracy == 0.5
    assert rs.misclassified(run_id)["idx"].tolist() == [7, 1, 2]
    assert rs.misclassified(run_id, true_label=3, pred_label=8)["idx"].tolist() == [2]


def test_stale_running_run_becomes_interrupted(rs):
    run_id = _run(rs)
    rs.claim_run("w")
    with rs.session() as c:  # pretend it ran in a process on another host that stopped beating
        c.execute(sa.text("UPDATE runs SET host='elsewhere', heartbeat_at=0 WHERE id=:id"), {"id": run_id})
    assert rs.recover_stale() == [run_id]
    assert rs.get_run(run_id).status == "interrupted"


def test_older_store_is_migrated_not_wiped(tmp_path):
    path = tmp_path / "old.db"
    con = sqlite3.connect(path)  # a store from before drawn_accuracy, note and tags existed
    con.execute("CREATE TABLE runs (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, architecture "
                "VARCHAR(40) NOT NULL, status VARCHAR(12) NOT NULL, config JSON NOT NULL, created_at FLOAT NOT NULL)")
    con.execute("INSERT INTO runs VALUES ('abc123', 'old run', 'cnn-small', 'completed', '{\"epochs\": 3}', 1.0)")
    con.commit()
    con.close()
    store = RunStore(f"sqlite:///{path}")
    run = store.get_run("abc123")
    assert run.name == "old run" and run.tags == [] and run.note == "" and run.drawn_accuracy is None
    assert store.schema_version() == SCHEMA_VERSION
    store.update_run("abc123", note="still here")
    assert store.get_run("abc123").note == "still here"


def test_wave1_store_gains_pruned_status_and_keeps_every_row(tmp_path):
    """A schema-1 store's CHECK knows no `pruned`: the rebuild of `runs` keeps runs, metrics and evaluations."""
    path = tmp_path / "wave1.db"
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys=ON")
    con.execute("CREATE TABLE runs (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, architecture "
                "VARCHAR(40) NOT NULL, status VARCHAR(12) NOT NULL, config JSON NOT NULL, created_at FLOAT NOT NULL, "
                "CONSTRAINT status_known CHECK (status IN ('queued', 'running', 'completed', 'failed', "
                "'cancelled', 'interrupted')))")
    con.execute("CREATE TABLE metrics (id INTEGER PRIMARY KEY, run_id VARCHAR(32) NOT NULL REFERENCES runs (id) "
                "ON DELETE CASCADE, scope VARCHAR(8) NOT NULL, key VARCHAR(64) NOT NULL, step INTEGER NOT NULL, "
                "epoch INTEGER, value FLOAT, ts FLOAT NOT NULL)")
    con.execute("INSERT INTO runs VALUES ('old1', 'old run', 'cnn-small', 'completed', '{\"epochs\": 3}', 1.0)")
    con.executemany("INSERT INTO metrics (run_id, scope, key, step, epoch, value, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [("old1", "epoch", "loss", s, s, 1.0 / s, 1.0) for s in (1, 2, 3)])
    con.commit()
    con.close()
    store = RunStore(f"sqlite:///{path}")
    assert store.get_run("old1").status == "completed"
    assert store.metric_history("old1")["value"].tolist() == [1.0, 0.5, pytest.approx(1 / 3)]
    new = store.create_run({"architecture": "mlp-128-64", "epochs": 1})
    store.claim_run("w", new)
    store.finish_run(new, "pruned")
    assert store.get_run(new).status == "pruned"
    store.close()
    store = RunStore(f"sqlite:///{path}")  # opening again changes nothing
    assert len(store.metric_history("old1")) == 3 and store.schema_version() == SCHEMA_VERSION
    store.delete_run("old1")  # the rebuilt table still cascades to its metrics
    assert store.metric_history("old1").empty


def test_artifacts_round_trip_in_chunks_cache_by_hash_and_go_with_their_run(store, monkeypatch):
    import core.store.artifacts
    import core.store.schema
    monkeypatch.setattr(core.store.artifacts, "CHUNK_BYTES", 1000)
    run_id = store.create_run({"architecture": "mlp-128-64", "epochs": 1})
    payload = bytes(range(256)) * 20  # 5,120 bytes → 6 chunks
    info = store.put_artifact(run_id, "model.keras", payload)
    assert info.size == len(payload) and info.chunks == 6 and core.store.schema.CHUNK_BYTES > 1000
    assert store.get_artifact(run_id, "model.keras") == payload
    cached = store.artifact_file(run_id, "model.keras")
    assert cached.read_bytes() == payload
    cached.write_bytes(b"tampered")  # a damaged cache is filled again from the store
    assert store.artifact_file(run_id, "model.keras").read_bytes() == payload
    store.put_artifact(run_id, "model.keras", b"v2")  # replaced whole
    assert store.get_artifact(run_id, "model.keras") == b"v2" and len(store.list_artifacts(run_id)) == 1
    with pytest.raises(StoreError, match="not a valid artifact name"):
        store.put_artifact(run_id, "../escape", b"x")
    with pytest.raises(StoreError, match="has no embedding.npz"):
        store.get_artifact(run_id, "embedding.npz")
    store.delete_run(run_id)
    with store.session() as c:
        assert c.execute(sa.text("SELECT count(*) FROM artifact_chunks")).scalar() == 0


def test_unwritable_location_is_one_clear_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StoreError, match="run store"):
        RunStore(f"sqlite:///{blocked / 'runs.db'}")


def test_an_older_stores_local_model_files_are_taken_into_the_store_once(rs):
    """Runs finished before models moved into the store keep them in artifacts/<id>/: adopted on open."""
    old, other = _run(rs, name="old"), _run(rs, name="no-file")
    for run_id in (old, other):
        rs.claim_run("w", run_id=run_id)
        rs.complete_run(run_id, {"accuracy": 0.9, "loss": 0.3, "n": 1, "confusion": [[1]], "report": {}})
    (rs.run_dir(old)).mkdir(parents=True)
    (rs.run_dir(old) / "model.keras").write_bytes(b"an older store's model")
    again = RunStore(rs.url)
    assert again.get_artifact(old, "model.keras") == b"an older store's model"
    assert again.artifact(other, "model.keras") is None  # nothing to take: its run stays without a model
    assert again.adopt_local_models() == []  # idempotent
    again.close()


def test_workers_overview_shows_the_current_run_and_runs_done(rs):
    worker = rs.register_worker()
    first, second = _run(rs), _run(rs)
    rs.claim_run(worker, run_id=first)
    rs.finish_run(first, "completed")
    rs.claim_run(worker, run_id=second)
    [row] = rs.workers_overview().to_dict("records")
    assert (row["worker"], row["run_id"], row["runs_done"]) == (worker, second, 1)
    assert 0 <= row["heartbeat_age"] < 5
    rs.remove_worker(worker)
    assert rs.workers_overview().empty
