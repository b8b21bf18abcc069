"""Digit Lab on a real PostgreSQL 15 server (started by the `pg_server` fixture): atomic claims by many
processes, workers on "other machines" (own folder, own empty artifacts cache) sharing one store and its
models, kill -9 and a server restart mid-run, one clear line for each connection problem, clock-skewed hosts
(heartbeats, and the queue's order). copy-store's round trip through PostgreSQL is in test_transfer.py.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from core import cli
from core.config import make_config
from core.store.schema import metrics_t
from core.store.facade import RunStore
from core.store.queue import queue_run
from tests.helpers import FAKE_WORKER, ROOT, assert_rows_match_progress, env, finish, one_line_error, wait_for

pytestmark = pytest.mark.postgres
TINY = dict(train_limit=200, batch_size=50, epochs=1)


@pytest.fixture
def pg(pg_url, tmp_path, monkeypatch):
    """A RunStore on a fresh PostgreSQL database, its artifacts cache in tmp_path/cache."""
    monkeypatch.setenv("DIGITLAB_ARTIFACTS", str(tmp_path / "cache"))
    store = RunStore(pg_url)
    yield store
    store.close()


def machine(tmp_path: Path, name: str) -> dict[str, str]:
    """A folder standing for another machine: its own working directory and empty artifacts cache."""
    folder = tmp_path / name
    (folder / "artifacts").mkdir(parents=True)
    return {"cwd": str(folder), "DIGITLAB_ARTIFACTS": str(folder / "artifacts")}


def start(args: list[str], where: dict[str, str], **extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=where["cwd"], text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env=env(PYTHONPATH=str(ROOT), DIGITLAB_ARTIFACTS=where["DIGITLAB_ARTIFACTS"], **extra))


def test_eight_processes_claim_forty_runs_each_once_and_lose_no_row(pg, tmp_path):
    n_runs, windows, per_window = 40, 4, 10
    ids = {pg.create_run({"architecture": "mlp-128-64", "epochs": 1}) for _ in range(n_runs)}
    here = machine(tmp_path, "here")
    procs = [start(["-c", FAKE_WORKER, pg.url, f"w{i}", str(windows), str(per_window)], here) for i in range(8)]
    outputs = finish(procs, time.monotonic() + 120, pg)
    for rc, out, err in outputs:
        assert rc == 0 and "Traceback" not in err, err[-2000:]
    claimed = [line for _, out, _ in outputs for line in out.split()]
    assert sorted(claimed) == sorted(ids), "a run was claimed twice or never"
    with pg.session(write=False) as c:
        rows = c.execute(sa.select(metrics_t.c.run_id, metrics_t.c.scope, metrics_t.c.key, metrics_t.c.step)).all()
    assert len(rows) == n_runs * windows * per_window and len(set(rows)) == len(rows)
    assert set(pg.list_runs()["status"]) == {"completed"}


def test_three_workers_on_three_machines_then_a_fourth_predicts_with_every_model(pg, pg_server, tiny_data,
                                                                                 tmp_path, monkeypatch):
    """3 × `python -m core worker`, each in its own folder with its own empty cache, train 6 tiny runs;
    a fourth folder with an empty cache predicts with each, and Run detail shows a conv run's kernels."""
    conv = make_config("custom", layers=[{"type": "Conv2D", "filters": 4, "kernel": 3, "activation": "relu"},
                                         {"type": "MaxPooling2D", "pool": 4}], name="tiny-conv", **TINY)
    ids = [queue_run(pg, conv, tiny_data)] + [queue_run(pg, make_config("mlp-128-64", seed=i, **TINY), tiny_data)
                                              for i in range(5)]
    workers = [start(["-m", "core", "worker", "--once", "--poll", "0.2", "--db", pg.url, "--data", str(tiny_data)],
                     machine(tmp_path, f"worker{i}")) for i in range(3)]
    outputs = finish(workers, time.monotonic() + 300, pg)
    for rc, out, err in outputs:
        assert rc == 0 and "Traceback" not in err, err[-2000:]
    trained = [line.split()[3] for _, out, _ in outputs for line in out.splitlines() if line.startswith("worker: training")]
    assert sorted(trained) == sorted(ids), "a run was trained by two workers, or by none"
    runs = pg.list_runs()  # psycopg hands back JSON decoded: the one-pass decoding must still work
    assert set(runs["status"]) == {"completed"} and sorted(runs["run_id"]) == sorted(ids)
    assert len({pg.get_run(r).worker_id for r in ids}) >= 2  # the queue was shared

    fourth = machine(tmp_path, "fourth")
    image = Path(fourth["cwd"]) / "digit.png"
    from PIL import Image
    Image.fromarray(np.pad(np.full((12, 4), 255, np.uint8), 8)).save(image)
    predictor = ("import json, sys; from core import cli\n"  # one process (one TensorFlow import), every run
                 "for run_id in sys.argv[3:]:\n"
                 "    assert cli.main(['predict', '--db', sys.argv[1], '--run', run_id, '--json', sys.argv[2]]) == 0\n")
    (rc, out, err), = finish([start(["-c", predictor, pg.url, str(image), *ids], fourth)], time.monotonic() + 120, pg)
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    results = [json.loads(line)[0] for line in out.strip().splitlines() if line.startswith("[")]
    assert [r["runs"] for r in results] == [[run_id] for run_id in ids]
    assert all(0 <= r["label"] <= 9 for r in results)
    assert sorted(p.name for p in (Path(fourth["DIGITLAB_ARTIFACTS"])).iterdir()) == sorted(ids)  # fetched, cached

    from streamlit.testing.v1 import AppTest
    viewer = machine(tmp_path, "viewer")
    monkeypatch.setenv("DIGITLAB_DB", pg.url)
    monkeypatch.setenv("DIGITLAB_DATA", str(tiny_data))
    monkeypatch.setenv("DIGITLAB_NO_WORKER", "1")
    monkeypatch.setenv("DIGITLAB_ARTIFACTS", viewer["DIGITLAB_ARTIFACTS"])
    at = AppTest.from_file(str(ROOT / "pages" / "run_detail.py"), default_timeout=60)
    at.query_params["run"] = ids[0]
    at.run()
    assert not at.exception
    text = " ".join(str(getattr(e, "value", "")) for e in at.markdown) + " ".join(c.value for c in at.caption)
    assert "The 4 kernels of the first Conv2D layer" in text
    assert any(b.proto.label.startswith("Download model.keras") for b in at.get("download_button"))


def test_kill_9_of_a_worker_leaves_the_run_interrupted_with_its_rows(pg, tiny_data, tmp_path):
    run_id = queue_run(pg, make_config("mlp-128-64", train_limit=200, batch_size=5, epochs=200), tiny_data)
    proc = start(["-m", "core", "worker", "--poll", "0.2", "--db", pg.url, "--data", str(tiny_data)],
                 machine(tmp_path, "w"), DIGITLAB_FLUSH_SECONDS="0.2")
    try:
        wait_for(lambda: pg.get_run(run_id).step >= 20, 90, "the run to log 20 steps")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert pg.recover_stale() == [run_id]
    run = pg.get_run(run_id)
    assert run.status == "interrupted" and "killed or crashed" in run.error
    assert assert_rows_match_progress(pg, run_id) > 0


def test_server_restart_while_a_worker_trains(pg, pg_server, tiny_data, tmp_path):
    """The server stops and starts again mid-run: the worker reconnects, the run completes, exit 0."""
    run_id = queue_run(pg, make_config("mlp-128-64", train_limit=200, batch_size=5, epochs=15), tiny_data)
    proc = start(["-m", "core", "worker", "--once", "--poll", "0.2", "--db", pg.url, "--data", str(tiny_data)],
                 machine(tmp_path, "w"), DIGITLAB_FLUSH_SECONDS="0.1")
    try:
        wait_for(lambda: pg.get_run(run_id).step >= 10, 90, "the run to log 10 steps")
        pg_server.stop()
        time.sleep(2)  # a few failed commits while it is away
        pg_server.start()
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err[-3000:]
    run = pg.get_run(run_id)
    assert run.status in ("completed", "interrupted"), run
    assert f"worker: run {run_id} {run.status}" in out
    if run.status == "completed":
        assert pg.artifact(run_id, "model.keras") is not None and run.step == run.steps_per_epoch * 15
    assert assert_rows_match_progress(pg, run_id) > 0


def test_heartbeats_use_the_servers_clock(pg, monkeypatch):
    """A worker host whose clock is 90 s behind is not marked interrupted by a host with the right time."""
    run_id = pg.create_run({"architecture": "mlp-128-64", "epochs": 1})
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 90)  # the worker's host
    pg.claim_run("skewed", run_id)
    pg.heartbeat(run_id)
    monkeypatch.setattr(time, "time", real)  # another host, on time
    assert pg.recover_stale(timeout=60) == []
    assert pg.get_run(run_id).status == "running" and abs(pg.get_run(run_id).heartbeat_at - real()) < 30


def test_a_study_run_and_a_plain_run_are_claimed_in_the_order_they_were_queued(pg, tiny_data, monkeypatch):
    """Every run insert stamps the server's clock: from a host whose clock is an hour ahead, a study run queued
    before a plain run is still claimed first (stamped with that host's clock it would sort an hour late)."""
    from core.search.study import create_study
    from core.store.queue import queue_run as queue

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # every module that reads the client's clock
    space = {"learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    [study_run] = create_study(pg, make_config("mlp-128-64", **TINY), space, "skewed", tiny_data, search="random",
                               budget=2)
    time.sleep(0.05)  # the server's clock moves on between the two inserts
    plain = queue(pg, make_config("mlp-128-64", **TINY), tiny_data)
    assert [pg.claim_run("w1").id, pg.claim_run("w2").id] == [study_run, plain]
    assert abs(pg.get_run(study_run).created_at - real()) < 30


def test_connection_problems_are_one_line_each(pg_server, capsys):
    base = pg_server.url().rsplit("/", 1)[0]
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x"
    cases = [(dead, "cannot reach the PostgreSQL server"),
             (base.replace("postgres@", "nobody@") + "/postgres", "refused the login of user 'nobody'"),
             (base + "/no_such_db", "has no database 'no_such_db': create it with `createdb")]
    for url, words in cases:
        assert words in one_line_error(capsys, ["runs", "--db", url])
    code = ("import sys; sys.modules['psycopg'] = None; from core.cli import main; "
            f"sys.exit(main(['runs', '--db', {pg_server.url()!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env())
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "PostgreSQL driver is not installed" in done.stderr and "pip install" in done.stderr


def _closed_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runs_json_and_a_plain_postgresql_url(pg, capsys):
    pg.create_run(make_config("mlp-128-64").to_dict())
    plain = pg.url.replace("postgresql+psycopg://", "postgresql://")
    assert cli.main(["runs", "--json", "--db", plain]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "queued"


def test_dashboard_on_postgresql_shows_runs_and_the_workers_of_other_hosts(pg, tiny_data, monkeypatch):
    """Train page's Workers panel: a worker on another host, its current run and runs done; Runs lists them."""
    from streamlit.testing.v1 import AppTest

    done, current = (queue_run(pg, make_config("mlp-128-64", **TINY), tiny_data) for _ in range(2))
    with pg.session() as c:  # a worker on another machine, beating now (on the server's clock)
        c.execute(sa.text("INSERT INTO workers (id, host, pid, started_at, heartbeat_at) "
                          "VALUES ('gpu-box-2-4242-ab', 'gpu-box-2', 4242, 1.0, EXTRACT(EPOCH FROM now()) - 3)"))
    pg.claim_run("gpu-box-2-4242-ab", done)
    pg.finish_run(done, "failed", error="x")
    pg.claim_run("gpu-box-2-4242-ab", current)
    for name, value in (("DIGITLAB_DB", pg.url), ("DIGITLAB_DATA", str(tiny_data)), ("DIGITLAB_AUTOSTART_WORKER", "0"),
                        ("DIGITLAB_OFFLINE", "1")):
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=60)
    at.run()
    assert not at.exception
    [table] = [d.value for d in at.dataframe if "current run" in d.value.columns]
    row = table[table["host"] == "gpu-box-2"].iloc[0]
    assert row["pid"] == 4242 and current in row["current run"] and row["runs done"] == 1
    assert row["last heartbeat"] in ("3 s ago", "4 s ago", "5 s ago", "6 s ago")
    assert any("Auto-start of a local worker is off" in c.value for c in at.caption)
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60)
    at.run()
    assert not at.exception and not at.error
