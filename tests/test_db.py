"""core/store/db.py and core/store/migrate.py on real SQLite files (and, marked postgres, a real server):
engine setup, transactions that nest, retries, the server's clock, and a store made by the previous
release (schema 2) opening, migrating and keeping every run, metric, model, drawing and study."""
from __future__ import annotations

import hashlib
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from core.store import db
from core.store.facade import RunStore
from core.store.migrate import migrate
from core.store.schema import (MODEL_FILE, SCHEMA_VERSION, StoreError, artifact_chunks_t, artifacts_t, drawings_t,
                               evaluations_t, md, meta_t, metrics_t, studies_t)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path, monkeypatch):
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL database (artifacts in tmp_path)."""
    monkeypatch.setenv("DIGITLAB_ARTIFACTS", str(tmp_path / "artifacts"))
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.db'}"
    return request.getfixturevalue("pg_url")


# -- engine setup -----------------------------------------------------------------------------------
def test_sqlite_engine_sets_wal_busy_timeout_and_foreign_keys(tmp_path):
    engine = db.make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    with engine.connect() as conn:
        pragma = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                  for name in ("journal_mode", "busy_timeout", "foreign_keys")}
    assert pragma == {"journal_mode": "wal", "busy_timeout": 30000, "foreign_keys": 1}
    engine.dispose()


def test_urls_are_normalised_and_named_without_their_password(tmp_path):
    assert db.normalize_url("postgres://u@h/d") == db.normalize_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert db.where("postgresql+psycopg://u:secret@h/d") == "postgresql+psycopg://u:***@h/d"
    assert db.where(f"sqlite:///{tmp_path / 'runs.db'}") == str(tmp_path / "runs.db")
    with pytest.raises(StoreError, match="is not a store URL"):
        db.make_engine("not a url")
    with pytest.raises(StoreError, match="no database driver for nonsense://"):
        db.make_engine("nonsense://")


# -- transactions and retries -----------------------------------------------------------------------
def _locked_error() -> OperationalError:
    import sqlite3
    return OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked"))


def test_retry_tries_again_what_another_try_can_fix_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    calls = []

    def busy_twice(conn):
        calls.append(1)
        if len(calls) < 3:
            raise _locked_error()
        return conn.exec_driver_sql("SELECT 7").scalar()
    assert db.retry(engine, "runs.db", busy_twice) == 7 and len(calls) == 3
    calls.clear()
    with pytest.raises(OperationalError):  # out of attempts: the error itself
        db.retry(engine, "runs.db", busy_twice, attempts=2)
    with pytest.raises(ZeroDivisionError):  # not a database error: never retried
        db.retry(engine, "runs.db", lambda c: calls.append(1) or 1 / 0)
    assert len(calls) == 3
    engine.dispose()


def test_scopes_nest_share_one_transaction_and_roll_back_whole(store):
    with store.write() as outer:
        run_id = store.create_run({"architecture": "mlp-128-64", "epochs": 1})
        with store.read() as inner:  # a read inside a write joins it
            assert inner is outer and store.transact(lambda c: c, write=False) is outer
        assert store.get_run(run_id).status == "queued"  # sees its own uncommitted row
    with pytest.raises(RuntimeError):
        with store.write():
            store.update_run(run_id, note="never kept")
            store.create_run({"architecture": "mlp-128-64", "epochs": 1})
            raise RuntimeError("abandon")
    assert store.get_run(run_id).note == "" and len(store.list_runs()) == 1  # both calls rolled back
    with store.read():
        with pytest.raises(StoreError, match="inside a read transaction"):
            store.update_run(run_id, note="x")


def test_server_now_is_this_machines_clock_on_sqlite(store):
    assert abs(store.transact(db.server_now, write=False) - time.time()) < 5


@pytest.mark.postgres
def test_server_now_is_the_servers_clock_on_postgresql(pg_url, monkeypatch):
    store = RunStore(pg_url)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # this host's clock an hour ahead
    assert abs(store.transact(db.server_now, write=False) - real()) < 30
    store.close()


# -- migration --------------------------------------------------------------------------------------
def make_v2_store(url: str, elsewhere) -> dict:
    """A store as the previous release made it (schema 2: runs.model_path), with one of everything.

    Run r1's model is in the store (the artifacts table) and its path in model_path; run r2 finished
    with its model only in the file model_path names (outside artifacts/); r3 is still queued.
    """
    old = sa.MetaData()
    for table in md.sorted_tables:
        table.to_metadata(old)
    old.tables["runs"].append_column(sa.Column("model_path", sa.Text))
    model = b"the trained model"
    (elsewhere / MODEL_FILE).write_bytes(b"a model only its path knew")
    run = dict(architecture="mlp-128-64", config={"architecture": "mlp-128-64", "epochs": 2}, tags=[], note="",
               cancel_requested=False, epoch=2, step=20, test_accuracy=None, group_name=None, trial=None)
    engine = sa.create_engine(db.normalize_url(url))
    with engine.begin() as c:
        old.create_all(c)
        c.execute(sa.insert(meta_t).values(key="schema_version", value="2"))
        c.execute(sa.insert(old.tables["runs"]), [
            dict(run, id="r1", name="one", status="completed", created_at=1.0, test_accuracy=0.9, model_path="x"),
            dict(run, id="r2", name="two", status="completed", created_at=2.0, model_path=str(elsewhere / MODEL_FILE)),
            dict(run, id="r3", name="three", status="queued", created_at=3.0, group_name="s1", trial=0,
                 model_path=None)])
        c.execute(sa.insert(metrics_t), [dict(run_id="r1", scope="epoch", key="val_accuracy", step=s, epoch=s,
                                              value=0.8 + s / 100, ts=1.0) for s in (1, 2)])
        c.execute(sa.insert(evaluations_t).values(run_id="r1", split="test", accuracy=0.9, loss=0.3, n=10,
                                                  confusion=[[1]], report={}, created_at=1.0))
        c.execute(sa.insert(artifacts_t).values(run_id="r1", name=MODEL_FILE, size=len(model),
                                                sha256=hashlib.sha256(model).hexdigest(), chunks=1, created_at=1.0))
        c.execute(sa.insert(artifact_chunks_t).values(run_id="r1", name=MODEL_FILE, chunk=0, data=model))
        c.execute(sa.insert(drawings_t).values(label=3, image=bytes(784), author="ann", created_at=1.0))
        c.execute(sa.insert(studies_t).values(name="s1", search="tpe", objective="val_accuracy", direction="maximize",
                                              budget=4, space={}, base_config={"architecture": "mlp-128-64"},
                                              created_at=1.0))
    engine.dispose()
    return {"model": model}


def test_a_store_made_by_the_previous_release_opens_migrates_and_loses_nothing(url, tmp_path):
    made = make_v2_store(url, tmp_path)
    store = RunStore(url)
    assert store.schema_version() == SCHEMA_VERSION == 4
    assert [(r.id, r.name, r.status) for r in map(store.get_run, ("r1", "r2", "r3"))] == [
        ("r1", "one", "completed"), ("r2", "two", "completed"), ("r3", "three", "queued")]
    assert store.metric_history("r1")["value"].round(2).tolist() == [0.81, 0.82]
    assert store.evaluation("r1").accuracy == 0.9
    assert store.get_artifact("r1", MODEL_FILE) == made["model"]
    assert store.get_artifact("r2", MODEL_FILE) == b"a model only its path knew"  # taken in before the column went
    with store.read() as c:
        assert "model_path" not in {col["name"] for col in sa.inspect(c).get_columns("runs")}
        assert c.execute(sa.select(drawings_t.c.author)).scalars().all() == ["ann"]
        assert c.execute(sa.select(studies_t.c.name, studies_t.c.budget)).all() == [("s1", 4)]
    assert store.claim_run("w").id == "r3"  # the old queue still works
    store.close()
    again = RunStore(url)  # migrating twice changes nothing
    assert again.schema_version() == 4 and len(again.list_runs()) == 3 and again.adopt_local_models() == []
    again.close()


def test_a_store_from_a_newer_release_is_refused_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    RunStore(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.update(meta_t).values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(StoreError, match="newer than this Digit Lab"):
        migrate(engine, "runs.db")
    engine.dispose()
