"""Shared fixtures: real SQLite stores, tiny real datasets, environments for AppTest pages.

Fixtures (names are stable; other test files rely on them):

- ``tiny_data`` (function): a tiny synthetic MNIST (200 train / 50 test digits from
  tests/idx_helpers.write_mnist_dir) ingested into ``tmp_path/mnist.h5``; returns that Path.
- ``store`` (function): a real ``RunStore`` on ``tmp_path/runs.db`` (artifacts in
  ``tmp_path/artifacts``), closed afterwards. Empty.
- ``app_env`` (function): points the dashboard at ``store`` and ``tiny_data`` through
  DIGITLAB_DB / DIGITLAB_DATA, sets DIGITLAB_NO_WORKER=1 (pages never spawn a worker
  process in tests) and DIGITLAB_OFFLINE=1. Returns a namespace with ``db_url``,
  ``data_path`` and ``store``. Use with ``AppTest.from_file("pages/x.py")``.
- ``populated_data`` (session): a 300 train / 60 test synthetic dataset (Path), shared.
- ``populated_store`` (session): a ``RunStore`` holding three completed runs, made once per
  test session by ``core.train.run.train`` (1 epoch, ≤300 digits, each with a test evaluation
  and a model file):
      "mlp-base"       mlp-128-64, no group
      "lr-sweep · …"   two mlp-512 runs (learning_rate 0.01 and 0.001) in group "lr-sweep"
  It is shared by every test: treat it as read-only.
- ``pg_server`` (session): one throwaway PostgreSQL 15 server (tests/pg_server.py) for the whole
  run, stopped at the end; skips, saying why, only where initdb/pg_ctl are not installed.
- ``pg_url`` (function): the URL of a fresh, empty database on ``pg_server`` (one per test).
- ``populated_env`` (function): a private copy of ``populated_store`` (database and
  artifacts) under ``tmp_path``, with the same environment as ``app_env``; returns a
  namespace with ``db_url``, ``data_path``, ``store`` and ``runs`` (``store.list_runs()``).
  Use it for page tests that need runs, and for any test that writes.
- ``spawn`` (function): starts ``python ARGS...`` in the repo root (quiet TensorFlow, offline);
  every process still alive at teardown is killed.
- ``network_address`` (function): the dashboard configured to listen on every interface (as
  ``--server.address 0.0.0.0`` does), so every visitor without a password is a viewer.

Plain helpers shared by several test files live in tests/helpers.py; test files never import
each other.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from core.data.ingest import ingest  # noqa: E402
from core.settings import sqlite_file  # noqa: E402
from core.store.facade import RunStore  # noqa: E402
from tests.helpers import GROUP, ROOT, env  # noqa: E402
from tests.idx_helpers import write_mnist_dir  # noqa: E402
from tests.pg_server import PgServer, find_programs  # noqa: E402


def _ingest_tiny(folder: Path, n_train: int, n_test: int) -> Path:
    write_mnist_dir(folder / "idx", n_train=n_train, n_test=n_test)
    return ingest(folder / "idx", folder / "mnist.h5", allow_download=False).path


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _point_env(monkeypatch: pytest.MonkeyPatch, db_url: str, data_path: Path) -> None:
    monkeypatch.setenv("DIGITLAB_DB", db_url)
    monkeypatch.setenv("DIGITLAB_DATA", str(data_path))
    monkeypatch.setenv("DIGITLAB_NO_WORKER", "1")
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")
    monkeypatch.delenv("DIGITLAB_ARTIFACTS", raising=False)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A 200 train / 50 test synthetic MNIST ingested into tmp_path/mnist.h5."""
    return _ingest_tiny(tmp_path, 200, 50)


@pytest.fixture
def store(tmp_path: Path):
    """An empty RunStore on a real SQLite file under tmp_path."""
    run_store = RunStore(_sqlite_url(tmp_path / "runs.db"))
    yield run_store
    run_store.close()


@pytest.fixture
def app_env(monkeypatch: pytest.MonkeyPatch, store: RunStore, tiny_data: Path) -> SimpleNamespace:
    """Environment so AppTest pages read `store` and `tiny_data` and never start a worker."""
    _point_env(monkeypatch, store.url, tiny_data)
    return SimpleNamespace(db_url=store.url, data_path=tiny_data, store=store)


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch):
    """dashboard/poll.py's clock held at a tick start; `frozen.now += LIVE_EVERY` moves to the next tick."""
    from dashboard import poll
    from dashboard.state import LIVE_EVERY

    class Clock:
        now = 1_000_000 * LIVE_EVERY
    monkeypatch.setattr(poll, "clock", lambda: Clock.now)
    return Clock


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server in a temporary folder, on a free port; stopped after the session."""
    programs = find_programs()
    if programs is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) are not installed: "
                    "`apt-get install -y postgresql` brings them (.ci/run does)")
    server = PgServer(*programs)
    yield server
    server.close()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return pg_server.create_database()


@pytest.fixture(scope="session")
def populated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300 train / 60 test synthetic MNIST, shared by the whole session."""
    return _ingest_tiny(tmp_path_factory.mktemp("populated_data"), 300, 60)


@pytest.fixture(scope="session")
def populated_store(tmp_path_factory: pytest.TempPathFactory, populated_data: Path):
    """Three completed runs trained for real (1 epoch on 300 digits); read-only, see above."""
    from core.config import make_config
    from core.train.run import train

    folder = tmp_path_factory.mktemp("populated_store")
    run_store = RunStore(_sqlite_url(folder / "runs.db"))
    n = 300
    plans = [
        (make_config("mlp-128-64", n_train=n, epochs=1, batch_size=32, name="mlp-base"), None),
        (make_config("mlp-512", n_train=n, epochs=1, batch_size=64, learning_rate=1e-2,
                     name=f"{GROUP} · learning_rate=0.01"), GROUP),
        (make_config("mlp-512", n_train=n, epochs=1, batch_size=64, learning_rate=1e-3,
                     name=f"{GROUP} · learning_rate=0.001"), GROUP),
    ]
    for config, group in plans:
        run = train(run_store, config, populated_data, group=group)
        assert run.status == "completed", run.error
    yield run_store
    run_store.close()


@pytest.fixture
def populated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, populated_store: RunStore,
                  populated_data: Path) -> SimpleNamespace:
    """A private, writable copy of populated_store under tmp_path, with app_env's environment."""
    db_file = tmp_path / "runs.db"
    with closing(sqlite3.connect(sqlite_file(populated_store.url))) as src, closing(sqlite3.connect(db_file)) as dst:
        src.backup(dst)  # a consistent copy, WAL included
    if populated_store.artifacts.exists():
        shutil.copytree(populated_store.artifacts, tmp_path / "artifacts")
    run_store = RunStore(_sqlite_url(db_file))
    _point_env(monkeypatch, run_store.url, populated_data)
    yield SimpleNamespace(db_url=run_store.url, data_path=populated_data, store=run_store,
                          runs=run_store.list_runs())
    run_store.close()


@pytest.fixture
def spawn():
    """Start `python ARGS...` in the repo root; every process still alive at teardown is killed."""
    procs: list[subprocess.Popen] = []

    def start(args: list[str], **extra: str) -> subprocess.Popen:
        procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env(**extra), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        return procs[-1]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@pytest.fixture
def network_address():
    """The server configured to listen on every interface (as --server.address 0.0.0.0 does)."""
    from streamlit import config as st_config  # lazily: most tests never touch streamlit

    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    yield
    st_config.set_option("server.address", before)
