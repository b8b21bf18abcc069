"""A throwaway PostgreSQL 15 server for tests and benchmarks: initdb into a temporary folder, pg_ctl start.

Debian's server programs (initdb, pg_ctl) are used where they are; initdb refuses to run as
root, so as root the server runs as the `postgres` user (its data folder chowned to it). The
server listens on a free TCP port on 127.0.0.1 with trust authentication: it is only for the
machine it runs on. `PgServer.create_database()` gives each test its own fresh database.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SEARCH = ("/usr/local/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")


def find_programs() -> tuple[str, str] | None:
    """(initdb, pg_ctl), or None when the server programs are not installed."""
    for folder in (None, *SEARCH):
        initdb = shutil.which("initdb", path=folder)
        pg_ctl = shutil.which("pg_ctl", path=folder)
        if initdb and pg_ctl:
            return initdb, pg_ctl
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgServer:
    """One running server; `url(db)` is a psycopg 3 SQLAlchemy URL for one of its databases."""

    def __init__(self, initdb: str, pg_ctl: str):
        self.pg_ctl = pg_ctl
        self.folder = Path(tempfile.mkdtemp(prefix="digitlab-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the server as `postgres`
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        self.start()

    def _run(self, cmd: list[str], check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:2])} failed: {(done.stderr or done.stdout).strip()[-500:]}")
        return done

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
                   f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"),
                   "-w", "-t", "60", "start"])

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"], check=False)

    def restart(self) -> None:
        """Stop (dropping every connection) and start again on the same port."""
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import sqlalchemy as sa

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')  # a name made above: letters and digits
        finally:
            engine.dispose()
        return self.url(name)

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
