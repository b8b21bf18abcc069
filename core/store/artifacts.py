"""Files kept with a run in the store (`artifacts` + `artifact_chunks`), and their local cache.

The SQL is plain functions of a connection, called inside the caller's transaction. `LocalCache`
keeps each artifact as artifacts/<run id>/<name> on this machine, checked against the store's
SHA-256 before use, so a model is fetched once per machine and a damaged copy is fetched again.
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Callable

import sqlalchemy as sa

from core.store.runs import require_run
from core.store.schema import CHUNK_BYTES, FINISHED, MODEL_FILE, Artifact, RunNotFound, StoreError, artifact_chunks_t, \
    artifacts_t, runs_t

log = logging.getLogger("core.store")



def check_name(name: str) -> None:
    """An artifact name is a plain file name (it becomes a cache path): no folders, no dots first."""
    if not (isinstance(name, str) and 0 < len(name) <= 100 and name.isascii() and not name.startswith(".")
            and all(ch.isalnum() or ch in "._-" for ch in name)):
        raise StoreError(f"{name!r} is not a valid artifact name: use letters, digits, '.', '_' or '-'")


def put(conn: sa.Connection, run_id: str, name: str, data: bytes | Path) -> Artifact:
    """Keep `data` (bytes, or a file's contents) as the run's artifact `name`, replacing any before.

    In the caller's transaction: readers see the old file or the new one whole, never a mix of chunks.
    """
    check_name(name)
    payload = Path(data).read_bytes() if isinstance(data, (str, Path)) else bytes(data)
    chunks = [payload[i:i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)] or [b""]
    record = Artifact(run_id=run_id, name=name, size=len(payload), sha256=hashlib.sha256(payload).hexdigest(),
                      chunks=len(chunks), created_at=time.time())
    require_run(conn, run_id, lock=True)  # the run's row locked: two writers of one artifact take turns
    delete(conn, run_id, name)
    conn.execute(sa.insert(artifacts_t).values(**record.__dict__))
    for i, chunk in enumerate(chunks):  # one row per chunk keeps each statement's parameters small
        conn.execute(sa.insert(artifact_chunks_t).values(run_id=run_id, name=name, chunk=i, data=chunk))
    return record


def list_artifacts(conn: sa.Connection, run_id: str) -> list[Artifact]:
    """The files kept with a run, by name."""
    rows = conn.execute(sa.select(artifacts_t).where(artifacts_t.c.run_id == run_id)
                        .order_by(artifacts_t.c.name)).mappings().all()
    return [Artifact(**dict(r)) for r in rows]


def read(conn: sa.Connection, run_id: str, name: str) -> tuple[dict | None, bytes]:
    """The artifact's row and its bytes joined from the chunks; (None, b"") if the run has none by that name."""
    info = conn.execute(sa.select(artifacts_t).where(artifacts_t.c.run_id == run_id,
                                                     artifacts_t.c.name == name)).mappings().first()
    if info is None:
        return None, b""
    parts = conn.execute(sa.select(artifact_chunks_t.c.data).where(
        artifact_chunks_t.c.run_id == run_id, artifact_chunks_t.c.name == name)
        .order_by(artifact_chunks_t.c.chunk)).scalars().all()
    return dict(info), b"".join(bytes(p) for p in parts)


def checked(run_id: str, name: str, info: dict | None, payload: bytes) -> bytes:
    """`payload` if it matches its row's size and SHA-256; StoreError if missing or damaged."""
    if info is None:
        raise StoreError(f"run {run_id} has no {name} in the store")
    if hashlib.sha256(payload).hexdigest() != info["sha256"] or len(payload) != info["size"]:
        raise StoreError(f"run {run_id}'s {name} in the store is damaged (its hash does not match)")
    return payload


def delete(conn: sa.Connection, run_id: str, name: str) -> None:
    conn.execute(sa.delete(artifact_chunks_t).where(artifact_chunks_t.c.run_id == run_id,
                                                    artifact_chunks_t.c.name == name))
    conn.execute(sa.delete(artifacts_t).where(artifacts_t.c.run_id == run_id, artifacts_t.c.name == name))


def models_to_adopt(conn: sa.Connection) -> list[str]:
    """Finished runs with no MODEL_FILE in the store (an older store kept it only in artifacts/<id>/)."""
    r, a = runs_t.c, artifacts_t.c
    has_model = sa.select(a.run_id).where(a.run_id == r.id, a.name == MODEL_FILE).exists()
    return list(conn.execute(sa.select(r.id).where(r.status.in_(FINISHED), ~has_model)).scalars().all())


class LocalCache:
    """artifacts/<run id>/<name> on this machine: a copy of the store's bytes, checked by hash."""

    def __init__(self, root: Path):
        self.root = root
        self._verified: dict[Path, tuple[int, int, str]] = {}  # cache file → (size, mtime_ns, sha256) checked

    def run_dir(self, run_id: str) -> Path:
        """artifacts/<run id>/: the path comes from the id alone, never from a name."""
        if not (isinstance(run_id, str) and run_id.isascii() and run_id.isalnum()):
            raise RunNotFound(f"no run with id {run_id!r}")
        return self.root / run_id

    def file(self, run_id: str, name: str, info: Artifact | None, fetch: Callable[[], bytes]) -> Path:
        """artifacts/<run id>/<name> holding the artifact `info` describes: the cached file when its bytes match,
        else `fetch()`'s bytes written there (on first use, or when the cached file differs)."""
        if info is None:
            raise StoreError(f"run {run_id} has no {name} in the store")
        path = self.run_dir(run_id) / name
        return path if self.holds(path, info.size, info.sha256) else self.fill(path, fetch())

    def holds(self, path: Path, size: int, sha256: str) -> bool:
        """The cache file holds exactly these bytes; hashed once per file version (size, mtime) in this process."""
        try:
            stat = path.stat()
        except OSError:  # no cached copy yet (or unreadable): it is fetched again
            return False
        if stat.st_size != size:
            return False
        if self._verified.get(path) == (size, stat.st_mtime_ns, sha256):
            return True
        if sha256_file(path) != sha256:
            return False
        self._verified[path] = (size, stat.st_mtime_ns, sha256)
        return True

    def fill(self, path: Path, payload: bytes) -> Path:
        """Write the bytes aside and rename, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            partial.write_bytes(payload)
            os.replace(partial, path)
        except OSError as exc:
            raise StoreError(f"cannot write the local cache {path} ({exc.strerror}): make DIGITLAB_ARTIFACTS "
                             f"a writable folder") from None
        finally:
            partial.unlink(missing_ok=True)
        return path

    def mtime_version(self, run_id: str, name: str) -> str:
        """For a file only in the cache (an older store not yet adopted): its mtime; "" when there is none."""
        try:
            return f"mtime:{(self.run_dir(run_id) / name).stat().st_mtime_ns}"
        except OSError:  # no such file: the run has no model
            return ""

    def local_models(self, run_ids: list[str]) -> list[tuple[str, Path]]:
        """(run id, cached model file) for the runs whose model file is here."""
        found = []
        for run_id in run_ids:
            path = self.root / run_id / MODEL_FILE
            if run_id.isascii() and run_id.isalnum() and path.is_file():
                found.append((run_id, path))
        return found


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adopt(store, paths: dict[str, str]) -> list[str]:
    """Take into `store` (a RunStore) the models an older store kept only as files: artifacts/<id>/model.keras,
    or (`paths`, from the migration that dropped `runs.model_path`) the file that column named.

    Only finished runs with no model in the store and a readable file; idempotent (a second call finds
    nothing to do), and the local file stays as the cache. Returns the run ids.
    """
    missing = store.transact(models_to_adopt, write=False)
    found = dict(store.cache.local_models(missing))
    found.update({r: Path(p) for r, p in paths.items() if r in missing and r not in found})
    adopted = []
    for run_id, path in found.items():
        try:
            store.transact(lambda c, r=run_id, p=path: put(c, r, MODEL_FILE, p))
        except RunNotFound:  # deleted meanwhile: nothing to keep
            continue
        except OSError as exc:
            log.warning("run %s: its model file %s cannot be read (%s); it stays out of the store", run_id, path,
                        exc.strerror or exc)
            continue
        adopted.append(run_id)
    return adopted
