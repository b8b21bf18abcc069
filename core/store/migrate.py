"""Schema migration: a store made by an older Digit Lab opens, gains what is new, and keeps its data.

`migrate()` runs when a store opens (RunStore). It creates missing tables and columns, drops the
columns a newer version no longer has (schema.DROPPED; schema 3 drops `runs.model_path`, which the
artifacts table replaced, after reporting any model only that column named), widens the status
check to today's statuses, and records SCHEMA_VERSION in `meta`. A store from a newer Digit Lab is
refused in one line.
"""
from __future__ import annotations

import sqlalchemy as sa

from core.store.db import quote, retry
from core.store.schema import DROPPED, FINISHED, MODEL_FILE, SCHEMA_VERSION, STATUSES, StoreError, artifacts_t, md, \
    meta_t, runs_t


def migrate(engine: sa.Engine, where: str) -> dict[str, str]:
    """Create missing tables and columns, drop the columns a newer version left (DROPPED), then record the
    schema version. Never drops data the store still needs: returns {run id: model path} for finished runs
    whose model only the dropped `runs.model_path` named (none in a store made by version 2), for the caller
    to take into the store."""
    def upgrade(conn):
        if conn.dialect.name == "postgresql":  # workers starting at once on a new database: one creates the tables
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(72617)")
        md.create_all(conn)
        inspector = sa.inspect(conn)
        for table in md.sorted_tables:
            have = {c["name"] for c in inspector.get_columns(table.name)}
            for col in table.columns:
                if col.name not in have:  # a store from an older version: add the column
                    ddl = str(sa.schema.CreateColumn(col).compile(dialect=conn.dialect))
                    if col.server_default is None:  # NOT NULL needs a default on existing rows
                        ddl = ddl.replace(" NOT NULL", "")
                    # DDL cannot bind identifiers: table and column names come from `md` only.
                    conn.exec_driver_sql(f"ALTER TABLE {quote(conn, table.name)} ADD COLUMN {ddl}")
        found = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar()
        if found is not None and int(found) > SCHEMA_VERSION:
            raise StoreError(f"the run store {where} has schema version {found}, newer than this "
                             f"Digit Lab ({SCHEMA_VERSION}): upgrade Digit Lab")
        orphans = _models_named_only_by_path(conn, inspector)
        for table, names in DROPPED.items():
            have = {c["name"] for c in inspector.get_columns(table)}
            for name in names:
                if name in have:  # DDL cannot bind identifiers: both come from the schema's DROPPED
                    conn.exec_driver_sql(f"ALTER TABLE {quote(conn, table)} DROP COLUMN {quote(conn, name)}")
        conn.execute(sa.delete(meta_t).where(meta_t.c.key == "schema_version"))
        conn.execute(sa.insert(meta_t).values(key="schema_version", value=str(SCHEMA_VERSION)))
        return orphans
    try:
        orphans = retry(engine, where, upgrade)
        _widen_status_check(engine)
    except sa.exc.DatabaseError as exc:
        raise StoreError(f"cannot use the run store {where}: {str(exc.orig).splitlines()[0]}") from None
    return orphans


def _models_named_only_by_path(conn: sa.Connection, inspector) -> dict[str, str]:
    """Before `runs.model_path` goes (schema 3): finished runs with a path there but no model in the store."""
    if "model_path" not in {c["name"] for c in inspector.get_columns("runs")}:
        return {}
    path, r, a = sa.column("model_path"), runs_t.c, artifacts_t.c
    has_model = sa.select(a.run_id).where(a.run_id == r.id, a.name == MODEL_FILE).exists()
    rows = conn.execute(sa.select(r.id, path).select_from(runs_t).where(
        r.status.in_(FINISHED), path.is_not(None), ~has_model)).all()
    return {run_id: text for run_id, text in rows}


def _widen_status_check(engine: sa.Engine) -> None:
    """An older store's `status_known` check lacks a newer status (`pruned`): rebuild it with today's list.

    PostgreSQL swaps the constraint. SQLite cannot alter a CHECK, so `runs` is rebuilt the way
    SQLite documents (new table, copy, drop, rename) in one transaction with foreign keys off,
    so that dropping the old table cascades to no metric, evaluation or artifact.
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            found = conn.exec_driver_sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                         "WHERE conname = 'status_known'").scalar()
            if found is not None and all(f"'{s}'" in found for s in STATUSES):
                return
            check = ", ".join(f"'{s}'" for s in STATUSES)  # literals from the schema's own tuple
            conn.exec_driver_sql("ALTER TABLE runs DROP CONSTRAINT IF EXISTS status_known")
            conn.exec_driver_sql(f"ALTER TABLE runs ADD CONSTRAINT status_known CHECK (status IN ({check}))")
        return
    if engine.dialect.name != "sqlite":
        return
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        sql = cur.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()[0]
        if all(f"'{s}'" in sql for s in STATUSES):
            return
        cur.execute("PRAGMA foreign_keys=OFF")  # only takes effect outside a transaction
        cur.execute("BEGIN IMMEDIATE")
        try:
            have = [r[1] for r in cur.execute("PRAGMA table_info(runs)").fetchall()]
            names = [c.name for c in runs_t.columns if c.name in have]  # schema's own names
            copy = sa.insert(sa.table("runs_rebuilt", *map(sa.column, names))).from_select(
                names, sa.select(*map(sa.column, names)).select_from(sa.table("runs")))
            ddl = str(sa.schema.CreateTable(runs_t).compile(dialect=engine.dialect)).strip()
            cur.execute(ddl.replace("CREATE TABLE runs", "CREATE TABLE runs_rebuilt", 1))
            cur.execute(str(copy.compile(dialect=engine.dialect)))
            cur.execute("DROP TABLE runs")
            cur.execute("ALTER TABLE runs_rebuilt RENAME TO runs")
            for index in runs_t.indexes:
                cur.execute(str(sa.schema.CreateIndex(index).compile(dialect=engine.dialect)))
            if cur.execute("PRAGMA foreign_key_check").fetchall():
                raise StoreError("rebuilding the runs table would break references; nothing was changed")
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            cur.execute("PRAGMA foreign_keys=ON")
    finally:
        raw.close()


def schema_version(conn: sa.Connection) -> int:
    return int(conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar())
