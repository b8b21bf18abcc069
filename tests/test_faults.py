"""Faults injected into real workers and stores: kill -9, SIGTERM, cancel, stale heartbeats,
a full disk and a read-only store.

After each fault the store passes PRAGMA integrity_check, every metric row committed before
the fault is still there (and consistent with the run's recorded progress), and the user
gets one clear line instead of a traceback.
"""
from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from core import cli
from core.config import make_config
from core.store.schema import StoreError, runs_t
from core.store.facade import RunStore
from core.store.queue import queue_run
from core.train.run import execute
from tests.helpers import assert_rows_match_progress, finish, integrity, metric_rows, one_line_error, wait_for

LONG = dict(train_limit=200, batch_size=5, epochs=200)   # 36 steps an epoch; stopped long before the end
TINY = dict(train_limit=200, batch_size=20, epochs=1)


def worker(spawn, store: RunStore, data: Path, *flags: str, flush: str = "0.2") -> subprocess.Popen:
    return spawn(["-m", "core", "worker", "--poll", "0.2", "--db", store.url, "--data", str(data), *flags],
                 DIGITLAB_FLUSH_SECONDS=flush)


# ------------------------------------------------------------------------------ processes dying


def test_kill_9_mid_epoch_keeps_metrics_and_the_next_worker_goes_on(store, tiny_data, spawn):
    victim = queue_run(store, make_config("mlp-128-64", **LONG), tiny_data)
    nxt = queue_run(store, make_config("mlp-128-64", **TINY), tiny_data)
    # Flush at every batch: on a fast machine a whole 36-step epoch takes less than a 0.2 s window,
    # so the recorded step would only ever be an epoch boundary and "mid-epoch" never be seen.
    first = worker(spawn, store, tiny_data, flush="0")
    wait_for(lambda: (r := store.get_run(victim)).step > (r.steps_per_epoch or 10**9) and r.step % r.steps_per_epoch,
             150, "the first worker to be inside its second epoch or later")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    kept = len(metric_rows(store))
    assert store.get_run(victim).status == "running" and kept > 0

    second = worker(spawn, store, tiny_data, "--once")
    (rc, out, err), = finish([second], time.monotonic() + 150, store)
    assert rc == 0, err
    assert f"run {victim} was left running by a dead process; marked interrupted" in out
    dead, done = store.get_run(victim), store.get_run(nxt)
    assert dead.status == "interrupted" and "killed or crashed" in dead.error
    assert done.status == "completed" and done.worker_id != dead.worker_id
    assert assert_rows_match_progress(store, victim) == kept, "rows were lost or added after the kill"
    assert not (store.run_dir(victim) / "partial.keras").exists()
    assert integrity(store) == "ok"
    print(f"\nkill -9 at step {dead.step} (epoch {dead.epoch + 1}): {kept} rows kept, 0 lost; next run completed")


def test_cancel_within_a_window_then_sigterm_cancels_and_exits(store, tiny_data, spawn, capsys):
    first = queue_run(store, make_config("mlp-128-64", **LONG), tiny_data)
    second = queue_run(store, make_config("mlp-128-64", **LONG), tiny_data)
    waiting = queue_run(store, make_config("mlp-128-64", **TINY), tiny_data)
    proc = worker(spawn, store, tiny_data)

    wait_for(lambda: store.get_run(first).step > 5, 150, "the first run to train")
    asked = time.monotonic()
    assert cli.main(["cancel", first, "--db", store.url]) == 0
    assert "will stop at its next logging window" in capsys.readouterr().out
    wait_for(lambda: store.get_run(first).status == "cancelled", 20, "the cancel to be honoured", poll=0.05)
    took = time.monotonic() - asked

    wait_for(lambda: store.get_run(second).step > 5, 150, "the worker to take the next run")
    proc.send_signal(signal.SIGTERM)
    (rc, out, err), = finish([proc], time.monotonic() + 60, store)
    assert rc == 0 and "SIGTERM received" in out and "worker finished 1 run(s)" not in out, (out, err)
    for run_id in (first, second):
        run = store.get_run(run_id)
        assert run.status == "cancelled" and run.error == "cancelled on request"
        assert 0 < run.step < 200 * run.steps_per_epoch
        assert_rows_match_progress(store, run_id)
    assert store.get_run(waiting).status == "queued", "a stopping worker must not start another run"
    assert integrity(store) == "ok"
    print(f"\ncancel honoured {took:.2f} s after the request (flush window 0.2 s); SIGTERM: cancelled, exit 0")


def test_an_idle_worker_exits_at_once_on_sigterm(store, tiny_data, spawn):
    proc = worker(spawn, store, tiny_data)
    wait_for(lambda: not store.live_workers().empty, 60, "the worker to register")
    proc.send_signal(signal.SIGTERM)
    (rc, out, _), = finish([proc], time.monotonic() + 20, store)
    assert rc == 0 and "SIGTERM received" in out and "worker finished 0 run(s)" in out
    assert store.live_workers().empty, "a stopped worker must unregister"


@pytest.mark.parametrize("sig, delay", [(signal.SIGTERM, 0.2), (signal.SIGTERM, 1.0), (signal.SIGINT, 0.2)])
def test_a_worker_stopped_while_starting_exits_cleanly_and_claims_nothing(store, tiny_data, spawn, sig, delay):
    """A supervisor's stop during the worker's first second or so (its imports) is caught like a later one.

    The run must stay queued, not be cancelled: this worker never started it, and the next worker should.
    The test holds the store's write lock until the signal is sent, so that even a machine fast enough to
    finish the imports in time cannot claim the run before the signal arrives.
    """
    run_id = queue_run(store, make_config("mlp-128-64", **TINY), tiny_data)
    with store.session():  # BEGIN IMMEDIATE: the worker cannot register or claim until we let go
        proc = worker(spawn, store, tiny_data)
        time.sleep(delay)
        proc.send_signal(sig)
    (rc, out, err), = finish([proc], time.monotonic() + 60, store)
    assert rc == 0, (rc, out, err)  # the exit status of a worker stopped while idle, not -15 (killed)
    assert out.splitlines() == [f"worker: {sig.name} received before claiming any run; exiting"], out
    assert not err.strip(), err
    assert store.get_run(run_id).status == "queued" and store.get_run(run_id).worker_id is None
    assert store.list_runs(status="running").empty
    assert store.live_workers().empty, "a stopped worker must not stay registered"
    assert integrity(store) == "ok"


@pytest.mark.parametrize("then_delete", [False, True])
def test_a_run_ended_elsewhere_stops_training_and_gets_no_more_rows(store, tiny_data, then_delete):
    """Another process marked the run interrupted (and maybe deleted it) while it trained here."""
    run_id = queue_run(store, make_config("mlp-128-64", **LONG), tiny_data)
    run = store.claim_run("here", run_id)
    seen = {}

    def elsewhere() -> bool:  # called at every flush, after its rows are written
        if not seen:
            store.set_status(run_id, "interrupted", error="marked by another process")
            seen["rows"] = len(metric_rows(store))
            if then_delete:
                store.delete_run(run_id)
        return False
    final = execute(store, run, tiny_data, should_stop=elsewhere)
    if then_delete:
        assert final.error == "the run was deleted while it trained" and not metric_rows(store)
    else:
        assert (final.status, final.error) == ("interrupted", "marked by another process")
        assert len(metric_rows(store)) == seen["rows"], "rows were written after the run ended"
        assert final.step < final.steps_per_epoch * 200
    assert not list(store.run_dir(run_id).glob("*.keras")) and integrity(store) == "ok"


def test_stale_heartbeats_are_interrupted_by_the_next_worker(store, tiny_data, spawn):
    ids = {name: store.create_run({"architecture": "mlp-128-64", "epochs": 1}) for name in
           ("elsewhere-silent", "elsewhere-alive", "here-dead")}
    for run_id in ids.values():
        store.claim_run("someone", run_id)
    gone = subprocess.Popen(["true"])
    gone.wait()
    now = time.time()
    with store.session() as conn:
        for name, host, pid, beat in (("elsewhere-silent", "other-host", 4242, now - 3600),
                                      ("elsewhere-alive", "other-host", 4242, now + 30),
                                      ("here-dead", socket.gethostname(), gone.pid, now)):
            conn.execute(sa.update(runs_t).where(runs_t.c.id == ids[name]).values(host=host, pid=pid, heartbeat_at=beat))
    store.log_metrics([(ids["here-dead"], "epoch", "loss", 3, 1, 0.5)])

    (rc, out, err), = finish([worker(spawn, store, tiny_data, "--once")], time.monotonic() + 60, store)
    assert rc == 0, err
    status = {name: store.get_run(run_id).status for name, run_id in ids.items()}
    assert status == {"elsewhere-silent": "interrupted", "elsewhere-alive": "running", "here-dead": "interrupted"}
    assert len(store.metric_history(ids["here-dead"])) == 1, "interrupted runs keep their metrics"


def test_the_dashboard_start_interrupts_stale_runs(app_env, monkeypatch):
    from streamlit.testing.v1 import AppTest

    store = app_env.store
    run_id = store.create_run({"architecture": "mlp-128-64", "epochs": 1})
    store.claim_run("someone", run_id)
    with store.session() as conn:
        conn.execute(sa.update(runs_t).where(runs_t.c.id == run_id).values(host="other-host", heartbeat_at=1.0))

    def app():
        from dashboard import background
        background.startup()

    at = AppTest.from_function(app).run(timeout=60)
    assert not at.exception
    assert store.get_run(run_id).status == "interrupted"


# ------------------------------------------------------------------------------ a full disk


def _capped(store: RunStore, spare_pages: int) -> RunStore:
    """The same store, made 'full' for this process with SQLite's max_page_count."""
    with store.session(write=False) as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @sa.event.listens_for(store.engine, "connect")
    def cap(dbapi_conn, _record):
        dbapi_conn.execute(f"PRAGMA max_page_count={int(pages) + spare_pages}")
    store.engine.dispose()  # new connections get the cap
    return store


def test_full_database_writes_nothing_half_way(store, tiny_data):
    run_id = queue_run(store, make_config("mlp-128-64", **TINY), tiny_data)
    store.claim_run("test", run_id)
    _capped(store, spare_pages=3)
    rows = len(metric_rows(store))
    with pytest.raises(StoreError, match="is full: free some space"):
        store.log_metrics([(run_id, "batch", "loss", step, 1, 0.1) for step in range(20_000)])
    assert len(metric_rows(store)) == rows, "a failed batch must leave no row behind"
    with pytest.raises(StoreError, match="is full"):
        for window in range(1000):  # small windows fill the spare pages
            store.log_metrics([(run_id, "batch", "loss", window * 10 + j, 1, 0.1) for j in range(10)])
    assert len(metric_rows(store)) % 10 == 0, "windows are written whole or not at all"
    runs, created = len(store.list_runs()), 0
    with pytest.raises(StoreError, match="is full"):
        for _ in range(1000):  # runs fit until their pages are full too
            queue_run(store, make_config("mlp-128-64", **TINY), tiny_data)
            created += 1
    assert len(store.list_runs()) == runs + created, "the run that did not fit left nothing behind"
    assert store.get_run(run_id).status == "running"
    assert integrity(store) == "ok"


def test_training_into_a_full_database_fails_the_run_with_the_reason(store, tiny_data):
    """The database file cannot grow: metric windows stop fitting, but a status still fits in place."""
    run_id = queue_run(store, make_config("mlp-128-64", **LONG), tiny_data)
    run = store.claim_run("test", run_id)
    _capped(store, spare_pages=6)
    final = execute(store, run, tiny_data)
    assert final.status == "failed"
    assert final.error.startswith(f"StoreError: the disk holding the run store {store.where} is full")
    assert_rows_match_progress(store, run_id)
    assert not list(store.run_dir(run_id).glob("*.keras"))
    assert integrity(store) == "ok"


@contextmanager
def tmpfs(path: Path, size: str, *options: str):
    """Mount a small tmpfs at `path` (root only; the test is skipped elsewhere)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join([f"size={size}", *options]), "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path) -> None:
    """Write zeros into folder/filler until the file system says it is full."""
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


def test_real_full_disk_under_a_running_worker(tmp_path, tiny_data, spawn, capsys):
    with tmpfs(tmp_path / "small", "1m") as disk:
        store = RunStore(f"sqlite:///{disk / 'runs.db'}")
        run_id = queue_run(store, make_config("mlp-128-64", **LONG), tiny_data)
        proc = spawn(["-m", "core", "worker", "--once", "--db", store.url, "--data", str(tiny_data)],
                     DIGITLAB_FLUSH_SECONDS="0", DIGITLAB_ARTIFACTS=str(tmp_path / "artifacts"))
        wait_for(lambda: store.get_run(run_id).step > 5, 150, "the run to train")
        fill(disk)
        (rc, out, err), = finish([proc], time.monotonic() + 60, store)
        assert rc == 2 and err.strip().splitlines() == [
            f"error: the disk holding the run store {disk / 'runs.db'} is full: free some space; nothing was written"]
        assert "marks it interrupted" in out
        line = one_line_error(capsys, ["train", "--queue", "--arch", "mlp-128-64", "--train-limit", "200",
                                       "--db", store.url, "--data", str(tiny_data)])
        assert "is full" in line and len(store.list_runs()) == 1
        assert integrity(store) == "ok"
        kept = assert_rows_match_progress(store, run_id)
        (disk / "filler").unlink()
        assert store.recover_stale() == [run_id] and store.get_run(run_id).status == "interrupted"
        assert assert_rows_match_progress(store, run_id) == kept > 0
        step = store.get_run(run_id).step
        store.close()
    print(f"\nfull disk at step {step}: worker exit 2 with one line, {kept} rows kept, 0 lost, integrity ok")


# ------------------------------------------------------------------------------ read-only store


@contextmanager
def read_only(folder: Path):
    """Make `folder` read-only: a read-only bind mount as root (root ignores file modes), else chmod."""
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
        if done.returncode == 0:
            done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
        if done.returncode:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
            pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
        try:
            yield
        finally:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        return
    modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
    for p in modes:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize("argv", [["runs"], ["show", "abc"], ["worker", "--once"],
                                  ["train", "--queue", "--arch", "mlp-128-64", "--train-limit", "200"]])
def test_read_only_store_is_one_clear_line_and_stays_untouched(tmp_path, tiny_data, capsys, argv):
    folder = tmp_path / "store"
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    queue_run(store, make_config("mlp-128-64", **TINY), tiny_data)
    store.close()
    before = digest(folder)
    with read_only(folder):
        line = one_line_error(capsys, [*argv, "--db", str(folder / "runs.db"), "--data", str(tiny_data)])
    assert "read-only" in line or "not writable" in line, line
    assert digest(folder) == before


@pytest.mark.parametrize("where, words", [("a-file/runs.db", "cannot create the folder"),
                                          ("a-folder", "is a folder, not a file")])
def test_store_path_that_cannot_be_a_store(tmp_path, capsys, where, words):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    assert words in one_line_error(capsys, ["runs", "--db", str(tmp_path / where)])
