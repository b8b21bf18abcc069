"""The run store's connection layer: engine setup, transactions, busy retries, one-line errors, migration.

Only `make_engine()` calls `create_engine`. Every transaction goes through `session()`; writers
take SQLite's write lock up front (BEGIN IMMEDIATE) so readers and writers never deadlock, and
`retry()` retries a busy database with backoff instead of surfacing "database is locked".
`where` is how messages name the store: its SQLite file, else its URL.
"""
from __future__ import annotations

import os
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from core.schema import SCHEMA_VERSION, STATUSES, StoreError, md, meta_t, runs_t
from core.settings import sqlite_file

T = TypeVar("T")

_FRIENDLY = {
    "readonly": "the run store {where} is read-only: make it writable or choose another with --db",
    "disk is full": "the disk holding the run store {where} is full: free some space; nothing was written",
    "unable to open": "cannot open the run store {where}: check the path exists and is writable, or use --db",
    "malformed": "the run store {where} is corrupted: restore a backup or point --db at a new file",
    "not a database": "{where} is not a SQLite database: point --db at a Digit Lab store",
}


def make_engine(url: str) -> sa.Engine:
    """The one place an engine is made: SQLite gets WAL, a busy timeout and foreign keys."""
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True)
    db_file = sqlite_file(url)
    if db_file is not None:
        _check_writable(db_file)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see "begin" below)
        cur = dbapi_conn.cursor()
        if db_file is not None:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        write = conn.get_execution_options().get("digitlab_write", True)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _check_writable(db_file: Path) -> None:
    """Refuse, in one line, a SQLite store Digit Lab could not write: before anything is written.

    SQLite needs the file and its folder writable (WAL keeps -wal and -shm files beside it).
    """
    try:
        db_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder for the run store {db_file}: {exc.strerror}; "
                         f"choose another place with --db or DIGITLAB_DB") from None
    if db_file.is_dir():
        raise StoreError(f"the run store {db_file} is a folder, not a file: point --db at a file such as runs.db")
    if db_file.exists() and not os.access(db_file, os.R_OK | os.W_OK):
        raise StoreError(f"the run store {db_file} is read-only: make it writable or choose another with --db")
    if not os.access(db_file.parent, os.W_OK | os.X_OK):
        raise StoreError(f"the folder of the run store {db_file} is not writable (SQLite keeps its journal "
                         f"there): make it writable or choose another place with --db")


@contextmanager
def session(engine: sa.Engine, where: str, write: bool = True) -> Iterator[sa.Connection]:
    """One transaction: commit on success, roll back on error, always close."""
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(digitlab_write=write)
            with conn.begin():
                yield conn
    except sa.exc.DatabaseError as exc:
        friendly = _friendly(exc, where)
        if friendly is exc:
            raise
        raise friendly from None


def _friendly(exc: sa.exc.DatabaseError, where: str) -> Exception:
    """A StoreError with one clear line for a full disk, a read-only or corrupt file; else `exc`."""
    text = str(exc.orig).lower()
    for needle, message in _FRIENDLY.items():
        if needle in text:
            return StoreError(message.format(where=where))
    return exc


def retry(engine: sa.Engine, where: str, fn: Callable[[sa.Connection], T], write: bool = True,
          attempts: int = 12) -> T:
    """Run fn(conn) in a transaction, retrying with backoff while SQLite says busy/locked.

    Each attempt already waits up to busy_timeout (30 s) for the lock, so "database is
    locked" only reaches a caller after minutes of a lock held elsewhere.
    """
    delay = 0.05
    for attempt in range(attempts):
        try:
            with session(engine, where, write) as conn:
                return fn(conn)
        except OperationalError as exc:
            if attempt == attempts - 1 or not _is_busy(exc):
                raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 2.0)


def _is_busy(exc: OperationalError) -> bool:
    """SQLite's "database is locked" / "database table is locked" / SQLITE_BUSY: worth a retry."""
    text = str(exc.orig).lower()
    return "locked" in text or "busy" in text


def migrate(engine: sa.Engine, where: str) -> None:
    """Create missing tables and columns, then record the schema version; never drop data."""
    def upgrade(conn):
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
                    conn.exec_driver_sql(f"ALTER TABLE {_quote(conn, table.name)} ADD COLUMN {ddl}")
        found = conn.execute(sa.select(meta_t.c.value).where(meta_t.c.key == "schema_version")).scalar()
        if found is not None and int(found) > SCHEMA_VERSION:
            raise StoreError(f"the run store {where} has schema version {found}, newer than this "
                             f"Digit Lab ({SCHEMA_VERSION}): upgrade Digit Lab")
        conn.execute(sa.delete(meta_t).where(meta_t.c.key == "schema_version"))
        conn.execute(sa.insert(meta_t).values(key="schema_version", value=str(SCHEMA_VERSION)))
    try:
        retry(engine, where, upgrade)
        _widen_status_check(engine)
    except sa.exc.DatabaseError as exc:
        raise StoreError(f"cannot use the run store {where}: {str(exc.orig).splitlines()[0]}") from None


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
            columns = ", ".join(f'"{c.name}"' for c in runs_t.columns if c.name in have)  # schema's own names
            ddl = str(sa.schema.CreateTable(runs_t).compile(dialect=engine.dialect)).strip()
            cur.execute(ddl.replace("CREATE TABLE runs", "CREATE TABLE runs_rebuilt", 1))
            cur.execute(f"INSERT INTO runs_rebuilt ({columns}) SELECT {columns} FROM runs")
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


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)

