"""core.interop and its commands: import a .keras model, export to TensorBoard and MLflow, import TensorBoard logs.

Tiny models on ≤64 digits, 1 epoch; real SQLite stores (ours and MLflow's) under tmp_path.
TensorBoard files are read back with TensorBoard's own EventAccumulator keeping every point.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from core.interop import models as interop_models
from core.predict.inference import load_model, predict_probabilities
from core.store.facade import RunStore
from core.store.schema import MODEL_FILE
from tests.interop_helpers import run_cli, saved, synthetic_run, tiny_model

keras = pytest.importorskip("keras")
ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
KEEP_ALL = ea.STORE_EVERYTHING_SIZE_GUIDANCE  # 0 for every kind: no sampling (the defaults keep 10 tensors per tag)


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


# -- import-model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(28, 28, 1), (784,)])
def test_an_imported_model_is_a_scored_run_that_draw_and_predict_use(tmp_path, tiny_data, db, capsys, shape):
    path = saved(tiny_model(shape), tmp_path / "elsewhere.keras")
    code, out, err = run_cli(["import-model", str(path), "--name", "from a notebook", "--json"], capsys, db, tiny_data)
    assert code == 0, err
    run_id = json.loads(out.strip().splitlines()[-1])["run_id"]
    store = RunStore(db)
    run = store.get_run(run_id)
    assert (run.name, run.status, run.source) == ("from a notebook", "completed", "imported")
    ev = store.evaluation(run_id)
    assert ev.n == 50 and run.test_accuracy == pytest.approx(ev.accuracy) and sum(map(sum, ev.confusion)) == 50
    assert run.config["layers"][-1] == {"type": "Dense", "units": 16, "activation": "relu"}
    # what the file declares (its config.json), though safe loading skips the compile state
    assert run.config["optimizer"] == "adam" and run.config["learning_rate"] == pytest.approx(1e-3)
    assert run.config["batch_size"] is None and run.dataset is None  # not in the file: unknown, not a guess
    model = load_model(store.model_file(run_id), run_id=run_id)
    assert predict_probabilities(model, np.zeros((3, 28, 28), dtype="float32")).shape == (3, 10)
    assert store.artifact(run_id, MODEL_FILE).size == path.stat().st_size


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.keras"
    text.write_text("not a model")
    fake_zip = tmp_path / "fake.keras"
    shutil.make_archive(str(tmp_path / "fake"), "zip", root_dir=tmp_path, base_dir="notes.keras")
    (tmp_path / "fake.zip").rename(fake_zip)
    legacy = tmp_path / "legacy.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n")
    return {"missing": (tmp_path / "absent.keras", "no model file"),
            "text": (text, "is not a Keras model"),
            "zip without a model": (fake_zip, "corrupt or unreadable"),
            "legacy h5": (legacy, ".save('model.keras')"),
            "wrong input": (saved(tiny_model((32, 32, 1)), tmp_path / "cifar.keras"), "takes input of shape (32, 32, 1)"),
            "wrong output": (saved(tiny_model(outputs=5), tmp_path / "five.keras"), "outputs shape (5,)")}


def test_bad_model_files_are_one_line_exit_2_and_nothing_written(tmp_path, tiny_data, db, capsys):
    for what, (path, words) in bad_files(tmp_path).items():
        code, out, err = run_cli(["import-model", str(path)], capsys, db, tiny_data)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, (what, err)
    assert not (tmp_path / "runs.db").exists()  # not even an empty store


def test_a_model_over_the_size_limit_is_refused(tmp_path, tiny_data, db, capsys, monkeypatch):
    path = saved(tiny_model(), tmp_path / "big.keras")
    monkeypatch.setattr(interop_models, "MAX_MODEL_BYTES", 1024)
    code, _, err = run_cli(["import-model", str(path)], capsys, db, tiny_data)
    assert code == 2 and "models up to" in err and not (tmp_path / "runs.db").exists()


# -- TensorBoard export ---------------------------------------------------------------------------
def tensors(folder: Path) -> tuple[ea.EventAccumulator, dict[str, list]]:
    from tensorboard.util import tensor_util
    acc = ea.EventAccumulator(str(folder), size_guidance=KEEP_ALL)
    acc.Reload()
    return acc, {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in acc.Tensors(tag)]
                 for tag in acc.Tags()["tensors"] if acc.SummaryMetadata(tag).plugin_data.plugin_name == "scalars"}


def test_tensorboard_export_keeps_every_point_and_the_hparams(tmp_path, store, tiny_data, capsys):
    a, b = synthetic_run(store, "run a"), synthetic_run(store, "../run b", n_batch=20)
    out = tmp_path / "tb"
    code, text, err = run_cli(["export", "--format", "tensorboard", "--out", str(out)], capsys, store.url, tiny_data)
    assert code == 0 and "wrote 2 runs" in text, err
    folders = {p.name: p for p in out.iterdir() if p.is_dir()}
    assert set(folders) == {f"run_a-{a}", f"run_b-{b}"}  # a name never becomes a path
    acc, scalars = tensors(folders[f"run_a-{a}"])
    history = store.metric_history(a, scope="batch", keys=["loss"])
    assert scalars["batch/loss"] == [(int(s), pytest.approx(v)) for s, v in zip(history["step"], history["value"])]
    assert len(scalars["batch/loss"]) == 1500 and len(scalars["batch/accuracy"]) == 1500
    assert [s for s, _ in scalars["epoch/val_accuracy"]] == [0, 1, 2]  # Keras' TensorBoard counts epochs from 0
    assert scalars["test/accuracy"] == [(2, pytest.approx(0.75))]
    from tensorboard.plugins.hparams import plugin_data_pb2
    content = acc.PluginTagToContent("hparams")
    values = plugin_data_pb2.HParamsPluginData.FromString(next(iter(content.values()))).session_start_info.hparams
    assert values["learning_rate"].number_value == pytest.approx(1e-3) and values["run_id"].string_value == a
    root = ea.EventAccumulator(str(out), size_guidance=KEEP_ALL)
    root.Reload()
    config = plugin_data_pb2.HParamsPluginData.FromString(
        next(iter(root.PluginTagToContent("hparams").values()))).experiment
    assert {"learning_rate", "optimizer", "batch_size"} <= {h.name for h in config.hparam_infos}
    assert "epoch/val_accuracy" in {m.name.tag for m in config.metric_infos}
    # a re-export replaces the events instead of doubling the points
    assert run_cli(["export", "--format", "tensorboard", "--out", str(out), "--run", a], capsys, store.url, tiny_data)[0] == 0
    assert len(tensors(folders[f"run_a-{a}"])[1]["batch/loss"]) == 1500


def test_export_stays_csv_by_default_and_bad_export_input_is_one_line(tmp_path, store, tiny_data, capsys):
    run_id = synthetic_run(store, n_batch=4)
    code, out, _ = run_cli(["export"], capsys, store.url, tiny_data)
    assert code == 0 and out.startswith("run_id,") and run_id in out
    for args, words in ((["--format", "tensorboard"], "needs --out"), (["--format", "mlflow"], "needs --to"),
                        (["--format", "tensorboard", "--out", str(tmp_path / "tb"), "--run", "nosuchrun"], "no run"),
                        (["--format", "mlflow", "--to", "http://127.0.0.1:9"], "cannot reach the MLflow server"),
                        (["--format", "mlflow", "--to", f"sqlite:///{tmp_path}/absent/m.db"], "does not exist")):
        code, _, err = run_cli(["export", *args], capsys, store.url, tiny_data)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, (args, err)
    assert not (tmp_path / "tb").exists() and not (tmp_path / "absent").exists()


# -- TensorBoard import ---------------------------------------------------------------------------
def keras_logs(folder: Path) -> Path:
    """What keras.callbacks.TensorBoard writes for a 2-epoch fit with validation: run/train, run/validation."""
    x = np.random.default_rng(1).random((48, 28, 28, 1)).astype("float32")
    tiny_model().fit(x, np.arange(48) % 10, epochs=2, batch_size=16, validation_split=0.25, verbose=0,
                     callbacks=[keras.callbacks.TensorBoard(str(folder / "notebook-run"), update_freq=1)])
    return folder


def test_keras_tensorboard_logs_import_as_runs_with_their_histories(tmp_path, tiny_data, db, capsys):
    logs = keras_logs(tmp_path / "logs")
    code, out, err = run_cli(["import-tensorboard", str(logs), "--json"], capsys, db, tiny_data)
    assert code == 0, err
    (run_id,) = json.loads(out.strip().splitlines()[-1])["run_ids"]
    store = RunStore(db)
    run = store.get_run(run_id)
    assert (run.name, run.status, run.epoch, run.source) == ("notebook-run", "completed", 2, "imported")
    assert store.artifact(run_id, MODEL_FILE) is None  # no model unless one is given
    epoch = store.metric_history(run_id)
    counts = epoch.groupby("key").size().to_dict()
    assert {k: counts.get(k) for k in ("loss", "accuracy", "val_loss", "val_accuracy")} == dict.fromkeys(
        ("loss", "accuracy", "val_loss", "val_accuracy"), 2)
    assert run.best_val_accuracy == pytest.approx(epoch[epoch.key == "val_accuracy"]["value"].max())
    assert len(store.metric_history(run_id, scope="batch", keys=["loss"])) == 6  # 2 epochs × 3 steps (36 digits by 16)
    assert run.config["optimizer"] == "adam" and run.config["learning_rate"] == pytest.approx(1e-3)
    assert run.config["architecture"] == "custom" and run.config["layers"] == [
        {"type": "Flatten"}, {"type": "Dense", "units": 16, "activation": "relu"}]
    assert run.dataset["source"] == "TensorBoard logs" and run.dataset["folder"].endswith("notebook-run")
    # the same logs again: nothing new, the earlier run is named; --again makes a second copy
    code, out, err = run_cli(["import-tensorboard", str(logs)], capsys, db, tiny_data)
    assert code == 0 and "already in the store, not imported again: notebook-run (" + run_id in out, out + err
    assert len(store.list_runs()) == 1
    code, out, err = run_cli(["import-tensorboard", str(logs), "--again", "--json"], capsys, db, tiny_data)
    assert code == 0 and json.loads(out.strip().splitlines()[-1])["imported"] != [run_id]
    assert len(store.list_runs()) == 2


def test_import_tensorboard_with_a_model_and_a_round_trip(tmp_path, tiny_data, store, capsys):
    a = synthetic_run(store, "round trip", n_batch=30)
    out = tmp_path / "tb"
    assert run_cli(["export", "--format", "tensorboard", "--out", str(out)], capsys, store.url, tiny_data)[0] == 0
    model = saved(tiny_model(), tmp_path / "m.keras")
    db2 = f"sqlite:///{tmp_path / 'other.db'}"
    code, text, err = run_cli(["import-tensorboard", str(out), "--model", str(model), "--json"], capsys, db2, tiny_data)
    assert code == 0, err
    other = RunStore(db2)
    (run_id,) = json.loads(text.strip().splitlines()[-1])["run_ids"]
    for scope in ("epoch", "batch"):
        mine, theirs = store.metric_history(a, scope=scope), other.metric_history(run_id, scope=scope)
        key = ["key", "epoch"] if scope == "epoch" else ["key", "step"]
        mine, theirs = mine.sort_values(key), theirs.sort_values(key)
        assert list(zip(mine.key, mine[key[1]])) == list(zip(theirs.key, theirs[key[1]]))
        assert list(theirs.value) == pytest.approx(list(mine.value))
    assert other.artifact(run_id, MODEL_FILE) is not None and other.evaluation(run_id).n == 50


def test_folders_without_logs_are_one_line_and_nothing_written(tmp_path, tiny_data, db, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hello")
    for folder, words in ((tmp_path / "empty", "holds no TensorBoard logs"), (tmp_path / "other", "no TensorBoard"),
                          (tmp_path / "absent", "no folder")):
        code, _, err = run_cli(["import-tensorboard", str(folder)], capsys, db, tiny_data)
        assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "runs.db").exists()


# -- MLflow export --------------------------------------------------------------------------------
def test_mlflow_export_to_a_sqlite_store_carries_everything_and_skips_on_re_export(tmp_path, tiny_data, store,
                                                                                    capsys, monkeypatch):
    from mlflow.tracking import MlflowClient
    from core.interop import mlflow as interop_mlflow
    a = synthetic_run(store, "to mlflow", n_batch=1200)  # 2 × 1200 batch points: several log_batch calls
    path = saved(tiny_model(), tmp_path / "m.keras")
    imported = interop_models.import_model(store, interop_models.check_model(path, tiny_data))
    calls = []
    real = MlflowClient.log_batch
    monkeypatch.setattr(MlflowClient, "log_batch", lambda self, run_id, metrics=(), params=(), tags=(), **kw: (
        calls.append((len(metrics), len(params))), real(self, run_id, metrics=metrics, params=params, tags=tags, **kw))[1])
    monkeypatch.setattr(interop_mlflow, "MAX_PARAMS", 5)  # config has ~17 params: four calls for them
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    code, out, err = run_cli(["export", "--format", "mlflow", "--to", uri], capsys, store.url, tiny_data)
    assert code == 0 and "exported 2 runs" in out, err
    assert all(m <= 1000 and p <= 5 for m, p in calls) and max(m for m, _ in calls) == 1000
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("Digit Lab")
    (mine,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`digitlab.run_id` = '{a}'")
    assert mine.info.status == "FINISHED" and mine.data.tags["mlflow.runName"] == "to mlflow"
    assert mine.data.params["learning_rate"] == "0.001" and mine.data.metrics["test_accuracy"] == pytest.approx(0.75)
    history = client.get_metric_history(mine.info.run_id, "batch_loss")
    stored = store.metric_history(a, scope="batch", keys=["loss"])
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(int(s), pytest.approx(v)) for s, v in zip(stored["step"], stored["value"])]
    assert {m.timestamp for m in history} <= {int(t * 1000) for t in stored["ts"]}
    assert [m.step for m in client.get_metric_history(mine.info.run_id, "val_accuracy")] == [1, 2, 3]
    (theirs,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`digitlab.run_id` = '{imported}'")
    assert [f.path for f in client.list_artifacts(theirs.info.run_id, "model")] == ["model/model.keras"]
    assert (tmp_path / "mlartifacts").is_dir()  # beside the MLflow store, never ./mlruns where the command ran
    code, out, _ = run_cli(["export", "--format", "mlflow", "--to", uri], capsys, store.url, tiny_data)
    assert code == 0 and "exported 0 runs" in out and "2 were there already" in out
    assert len(client.search_runs([exp.experiment_id])) == 2
    assert not (tmp_path / "elsewhere" / "mlruns").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mlflow_server_command() -> list[str] | None:
    """`mlflow server` needs the full mlflow package (Flask); Digit Lab pins only mlflow-skinny.
    DIGITLAB_MLFLOW=/path/to/mlflow names a full install's command; else this venv's, if it has Flask."""
    if os.environ.get("DIGITLAB_MLFLOW"):
        return [os.environ["DIGITLAB_MLFLOW"]]
    import importlib.util
    return [sys.executable, "-m", "mlflow"] if importlib.util.find_spec("flask") else None


@pytest.mark.slow
def test_mlflow_export_to_a_running_server(tmp_path, tiny_data, store, capsys):
    command = mlflow_server_command()
    if command is None:
        pytest.skip("`mlflow server` needs the full mlflow package: set DIGITLAB_MLFLOW to its `mlflow` command")
    port = free_port()
    server = subprocess.Popen([*command, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                               "--artifacts-destination", str(tmp_path / "server-artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
                time.sleep(1)
        a = synthetic_run(store, "served", n_batch=1100)
        path = saved(tiny_model(), tmp_path / "m.keras")
        interop_models.import_model(store, interop_models.check_model(path, tiny_data))
        code, out, err = run_cli(["export", "--format", "mlflow", "--to", uri], capsys, store.url, tiny_data)
        assert code == 0 and "exported 2 runs" in out, err
        from mlflow.tracking import MlflowClient
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("Digit Lab")
        (run,) = client.search_runs([exp.experiment_id], filter_string=f"tags.`digitlab.run_id` = '{a}'")
        assert len(client.get_metric_history(run.info.run_id, "batch_loss")) == 1100
        assert "exported 0 runs" in run_cli(["export", "--format", "mlflow", "--to", uri], capsys, store.url, tiny_data)[1]
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


# -- where a run came from: runs.source (schema 4) ----------------------------------------------------
def test_runs_filter_on_their_source_and_the_cli_knows_every_source(tmp_path, tiny_data, store, capsys):
    from core.cli.runs import SOURCES as CLI_SOURCES
    from core.store.schema import SOURCES
    assert CLI_SOURCES == SOURCES
    trained = synthetic_run(store, "here", n_batch=2)
    path = saved(tiny_model(), tmp_path / "m.keras")
    imported = interop_models.import_model(store, interop_models.check_model(path, tiny_data))
    assert store.get_run(trained).source == "trained" and store.get_run(imported).source == "imported"
    assert list(store.list_runs(source="imported")["run_id"]) == [imported]
    code, out, _ = run_cli(["runs", "--source", "trained", "--json"], capsys, store.url, tiny_data)
    assert code == 0 and [r["run_id"] for r in json.loads(out)] == [trained] and json.loads(out)[0]["source"] == "trained"
    code, _, err = run_cli(["runs", "--source", "elsewhere"], capsys, store.url, tiny_data)
    assert code == 2 and "elsewhere" in err


def test_an_older_store_opens_with_every_run_trained_here_and_keeps_everything(tmp_path, tiny_data):
    """A schema-3 store (no runs.source) gains the column on open; its runs, metrics and models stay."""
    import sqlite3
    from contextlib import closing
    db_file = tmp_path / "old.db"
    old = RunStore(f"sqlite:///{db_file}")
    run_id = synthetic_run(old, "from before", n_batch=10)
    path = saved(tiny_model(), tmp_path / "m.keras")
    imported = interop_models.import_model(old, interop_models.check_model(path, tiny_data))
    before = {r: (old.metric_history(r, scope="batch"), old.evaluation(r), old.artifact(r, MODEL_FILE))
              for r in (run_id, imported)}
    old.close()
    with closing(sqlite3.connect(db_file)) as conn:  # make it the store version 3 wrote
        conn.execute("ALTER TABLE runs DROP COLUMN source")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        conn.commit()
        assert "source" not in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    store = RunStore(f"sqlite:///{db_file}")
    assert store.schema_version() == 4
    assert {store.get_run(r).source for r in (run_id, imported)} == {"trained"}  # version 3 knew nothing else
    for r, (batch, ev, art) in before.items():
        assert store.metric_history(r, scope="batch").equals(batch)
        assert store.evaluation(r) == ev and store.artifact(r, MODEL_FILE) == art
    assert load_model(store.model_file(imported), run_id=imported) is not None
    store.close()

