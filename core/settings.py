"""Where things live: the store URL, the dataset path and the artifacts folder.

Each setting comes from the command-line flag, else the environment, else the default.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DB = f"sqlite:///{REPO_ROOT / 'runs.db'}"  # runs.db at the repo root, git-ignored
DEFAULT_DATA = REPO_ROOT / "data" / "mnist.h5"    # written by `python -m core ingest`


def db_url(value: str | None = None) -> str:
    """The store's SQLAlchemy URL: `--db`, else DIGITLAB_DB, else sqlite:///<repo>/runs.db.

    A bare file path is accepted and turned into a SQLite URL.
    """
    url = value or os.environ.get("DIGITLAB_DB") or DEFAULT_DB
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    return url


def data_path(value: str | os.PathLike | None = None) -> Path:
    """The HDF5 dataset: `--data`, else DIGITLAB_DATA, else <repo>/data/mnist.h5."""
    return Path(value or os.environ.get("DIGITLAB_DATA") or DEFAULT_DATA).expanduser()


def autostart_worker() -> bool:
    """Whether the dashboard starts a local worker when runs wait and none is alive (default yes).

    DIGITLAB_AUTOSTART_WORKER=0 (or DIGITLAB_NO_WORKER=1, or `--no-worker` after `--` on the
    streamlit command line) turns it off: for a team whose workers run on other machines.
    """
    if os.environ.get("DIGITLAB_NO_WORKER"):
        return False
    return os.environ.get("DIGITLAB_AUTOSTART_WORKER", "1").strip().lower() not in ("0", "false", "no", "off")


def sqlite_file(url: str) -> Path | None:
    """The database file behind a SQLite URL, or None for memory or other databases."""
    if not url.startswith("sqlite:"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


def artifacts_dir(url: str) -> Path:
    """Model files live in `artifacts/` beside the SQLite file (the repo root by default).

    DIGITLAB_ARTIFACTS overrides it; a non-file store uses <repo>/artifacts.
    """
    if os.environ.get("DIGITLAB_ARTIFACTS"):
        return Path(os.environ["DIGITLAB_ARTIFACTS"]).expanduser()
    db_file = sqlite_file(url)
    return (db_file.parent if db_file else REPO_ROOT) / "artifacts"
