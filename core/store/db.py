"""The run store's connection layer: engine setup, transactions, retries, one-line errors (migration: migrate.py).

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

import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from core.store.schema import StoreError
from core.settings import sqlite_file

T = TypeVar("T")
log = logging.getLogger("core.store")
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
    except sa.exc.ArgumentError:  # not a URL (make_engine says so in its own line): name it as given
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
    except sa.exc.ArgumentError:  # a SQLite file's path, not a URL: no server to describe
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
            if attempt == 1:
                log.warning("lost the connection to the run store %s: retrying for up to %.0f s", where, reconnect)
        except DBAPIError as exc:
            if attempt >= attempts or not _is_transient(exc):
                raise
            # a busy file or a deadlock is ordinary contention between workers: retried without a word
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


def locked(query: sa.Select, skip: bool = False, key: bool = False) -> sa.Select:
    """`query` locking the rows it reads until commit (PostgreSQL; SQLite compiles it away).

    FOR NO KEY UPDATE by default (metric and evaluation inserts, which reference the run, still
    go ahead); `key`: FOR UPDATE, for a delete; `skip`: rows another transaction holds are passed over.
    """
    return query.with_for_update(skip_locked=skip, key_share=not key)


def quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)



class Transactions:
    """A store's transactions, one open per thread at a time: a scope opened inside another joins it.

    `run(fn)` is datasette's `execute_write_fn` (fn(conn) in one transaction, the whole try retried);
    `scope()` is sqlite-utils' `atomic()` (a with-block, committed at its end, not retried). Both join
    the thread's open transaction when there is one, so a verb called inside `with store.write():`
    becomes part of it. A write cannot join a read (it could not take the write lock).
    """

    def __init__(self, engine: sa.Engine, where: str):
        self.engine, self.where = engine, where
        self.reconnect = 0.0  # seconds a lost server is waited for (0 until the store has opened)
        self._open = threading.local()

    def joined(self, write: bool) -> sa.Connection | None:
        conn, is_write = getattr(self._open, "tx", None) or (None, False)
        if conn is not None and write and not is_write:
            raise StoreError("a write was asked for inside a read transaction: open the write scope outside")
        return conn

    def run(self, fn: Callable[[sa.Connection], T], write: bool = True, attempts: int = 12) -> T:
        joined = self.joined(write)
        if joined is not None:
            return fn(joined)

        def attempt(conn):
            self._open.tx = (conn, write)
            try:
                return fn(conn)
            finally:
                self._open.tx = None
        return retry(self.engine, self.where, attempt, write, attempts, reconnect=self.reconnect)

    @contextmanager
    def scope(self, write: bool = True) -> Iterator[sa.Connection]:
        joined = self.joined(write)
        if joined is not None:
            yield joined
            return
        with session(self.engine, self.where, write) as conn:
            self._open.tx = (conn, write)
            try:
                yield conn
            finally:
                self._open.tx = None
