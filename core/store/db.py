"""The run store's connection layer: engine setup, transactions, retries, one-line errors, migration.

Only `make_engine()` calls `create_engine`. Every transaction goes through `session()`. On SQLite,
writers take the write lock up front (BEGIN IMMEDIATE) so readers and writers never deadlock. On
PostgreSQL (READ COMMITTED) the store's check-then-write verbs lock the rows they check
(`SELECT … FOR UPDATE`), and `server_now()` reads the server's clock, so every host's heartbeats
are compared on one clock. `retry()` retries what is worth retrying with backoff: SQLite's
"database is locked", PostgreSQL's serialization failures and deadlocks, and, once a store has
opened, a dropped connection (a restarting server) for up to RECONNECT_SECONDS.
`where` is how messages name the store: its SQLite file, else its URL without the password.
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
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from core.store.schema import SCHEMA_VERSION, STATUSES, StoreError, md, meta_t, runs_t
from core.settings import sqlite_file

T = TypeVar("T")
RECONNECT_SECONDS = float(os.environ.get("DIGITLAB_RECONNECT_SECONDS", "60"))  # how long to wait for a lost server

_FRIENDLY = {
    "readonly": "the run store {where} is read-only: make it writable or choose another with --db",
    "disk is full": "the disk holding the run store {where} is full: free some space; nothing was written",
    "unable to open": "cannot open the run store {where}: check the path exists and is writable, or use --db",
    "malformed": "the run store {where} is corrupted: restore a backup or point --db at a new file",
    "not a database": "{where} is not a SQLite database: point --db at a Digit Lab store",
}


def normalize_url(url: str) -> str:
    """`postgresql://` and `postgres://` mean psycopg 3, the driver Digit Lab ships (not psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def where(url: str) -> str:
    """How messages name a store: its SQLite file, else its URL with the password hidden."""
    db_file = sqlite_file(url)
    if db_file is not None:
        return str(db_file)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def make_engine(url: str) -> sa.Engine:
    """The one place an engine is made: SQLite gets WAL, a busy timeout and foreign keys;
    PostgreSQL a pre-pinged pool (a connection the server dropped is replaced, not used)."""
    if not url.startswith("sqlite"):
        try:
            parsed = make_url(url)
        except sa.exc.ArgumentError:
            raise StoreError(f"{url!r} is not a store URL: use sqlite:///runs.db or "
                             f"postgresql+psycopg://USER@HOST/DATABASE") from None
        args = {"connect_timeout": 10} if parsed.get_backend_name() == "postgresql" else {}
        try:
            return sa.create_engine(url, pool_pre_ping=True, connect_args=args)
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise StoreError(_missing_driver(parsed, exc)) from None
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


def _missing_driver(url: sa.URL, exc: Exception) -> str:
    if url.get_backend_name() == "postgresql":
        return ("the PostgreSQL driver is not installed: `.venv/bin/pip install 'psycopg[binary]==3.3.9'` "
                "(requirements.txt has it), and use a postgresql+psycopg://USER@HOST/DATABASE URL")
    return f"no database driver for {url.drivername}:// ({exc}): install it, or use sqlite:/// or postgresql+psycopg://"


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
    """A StoreError with one clear line for a full disk, a read-only or corrupt file, or a
    PostgreSQL server that cannot be reached, refuses the login or lacks the database; else `exc`."""
    text = str(exc.orig).lower()
    for needle, message in _FRIENDLY.items():
        if needle in text:
            return StoreError(message.format(where=where))
    if _is_disconnect(exc):
        return ServerUnreachable(_server_problem(text, where) or f"lost the connection to the run store {where}: "
                                 f"{str(exc.orig).splitlines()[0] if str(exc.orig) else type(exc.orig).__name__}")
    server = _server_problem(text, where)
    return StoreError(server) if server else exc


# psycopg's words for a server that cannot be reached or went away (lowercased)
_UNREACHABLE = ("connection refused", "could not connect", "timeout expired", "no route to host",
                "could not translate host name", "name or service not known", "is the server running",
                "server closed the connection", "terminating connection", "the database system is",
                "consuming input failed", "connection is closed", "connection failed", "connection is lost",
                "ssl syscall error", "eof detected")


class ServerUnreachable(StoreError):
    """The database server cannot be reached, or the connection to it was lost; worth retrying later."""


def _server_problem(text: str, where: str) -> str | None:
    """One line, with the fix, for a PostgreSQL connection that failed (psycopg's message, lowercased)."""
    try:
        url = make_url(where)
    except sa.exc.ArgumentError:
        return None
    if url.get_backend_name() != "postgresql":
        return None
    host = f"{url.host or 'localhost'}:{url.port or 5432}"
    if "does not exist" in text and "database" in text:
        return (f"the PostgreSQL server at {host} has no database {url.database!r}: create it with "
                f"`createdb -h {url.host or 'localhost'} -p {url.port or 5432} -U {url.username or 'postgres'} "
                f"{url.database}` (the tables are made on first use)")
    if ("password authentication failed" in text or "no password supplied" in text or "pg_hba.conf" in text
            or ("role" in text and "does not exist" in text)):
        return (f"the PostgreSQL server at {host} refused the login of user {url.username!r}: check the user "
                f"and password in the URL (postgresql+psycopg://USER:PASSWORD@HOST/DATABASE), or create the role")
    if any(n in text for n in _UNREACHABLE):
        return (f"cannot reach the PostgreSQL server at {host}: start it (`pg_ctl -D DATADIR start`, see the "
                f"README's team set-up) or fix the host and port in --db / DIGITLAB_DB")
    return None


def retry(engine: sa.Engine, where: str, fn: Callable[[sa.Connection], T], write: bool = True,
          attempts: int = 12, reconnect: float = 0.0) -> T:
    """Run fn(conn) in a transaction, retrying with backoff what another try can fix.

    SQLite busy/locked, PostgreSQL serialization failures and deadlocks: up to `attempts` tries
    (each SQLite try already waits up to busy_timeout, 30 s, for the lock). A dropped or refused
    connection (ServerUnreachable): retried for `reconnect` seconds (a restarting server), then
    its one clear line. A failed try's transaction was rolled back whole, so fn runs again from the start.
    """
    delay, deadline = 0.05, time.monotonic() + reconnect
    attempt = 0
    while True:
        attempt += 1
        try:
            with session(engine, where, write) as conn:
                return fn(conn)
        except ServerUnreachable:
            if time.monotonic() >= deadline:
                raise
        except DBAPIError as exc:
            if attempt >= attempts or not _is_transient(exc):
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 2.0)


def _is_transient(exc: DBAPIError) -> bool:
    """Worth another try as is: SQLite's "database is locked" / SQLITE_BUSY, PostgreSQL's
    serialization failure (40001) and deadlock (40P01)."""
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


def _is_disconnect(exc: sa.exc.DatabaseError) -> bool:
    """The connection was lost or could not be made: a server restarting or away, a network gone."""
    if getattr(exc, "connection_invalidated", False):
        return True
    code = getattr(exc.orig, "sqlstate", None) or ""
    if code.startswith("08") or code in ("57P01", "57P02", "57P03"):  # connection exception, admin shutdown
        return True
    text = str(exc.orig).lower()
    if "does not exist" in text or "authentication" in text or "pg_hba" in text:  # a login no retry fixes
        return False
    return isinstance(exc, OperationalError) and any(n in text for n in _UNREACHABLE)


def server_now(conn: sa.Connection) -> float:
    """Now as seconds since the epoch on the database server's clock (SQLite: this machine's, its server).

    Heartbeats and the staleness checks use it, so a host whose clock is a few seconds off
    neither looks dead nor marks a healthy run on another host interrupted.
    """
    if conn.dialect.name == "postgresql":
        return float(conn.exec_driver_sql("SELECT EXTRACT(EPOCH FROM clock_timestamp())").scalar())
    return time.time()


def migrate(engine: sa.Engine, where: str) -> None:
    """Create missing tables and columns, then record the schema version; never drop data."""
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


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)

