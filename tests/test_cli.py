"""The CLI as a user runs it: real subprocesses, exit codes, one-line errors, --json output."""
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import COMMAND_HELP
from tests.idx_helpers import write_mnist_dir

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None, timeout=180):
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
    return proc


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny ingested dataset and a store with one completed run."""
    base = tmp_path_factory.mktemp("cli")
    write_mnist_dir(base / "idx", n_train=400, n_test=100)
    env = {"DIGITLAB_DB": f"sqlite:///{base / 'runs.db'}", "DIGITLAB_DATA": str(base / "mnist.h5")}
    assert cli("ingest", "--from", str(base / "idx"), env=env).returncode == 0
    proc = cli("train", "--arch", "mlp-128-64", "--epochs", "1", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return base, env, result


def test_train_json_last_line_has_the_summary(world):
    _, _, result = world
    assert result["status"] == "completed" and result["params"] == 109_386 and result["epochs_run"] == 1
    assert 0 <= result["test_accuracy"] <= 1 and result["test_loss"] > 0 and result["seconds"] > 0


@pytest.mark.parametrize("args, words", [
    (["--lr", "-1"], "learning_rate"), (["--batch-size", "0"], "batch_size"), (["--epochs", "0"], "epochs"),
    (["--arch", "resnet"], "architecture"), (["--optimizer", "adamw"], "optimizer"),
    (["--dropout", "1.5"], "dropout"), (["--validation-split", "0.9"], "validation_split"),
    (["--epochs", "many"], "invalid int value"), (["--layers", "[oops"], "--layers is not valid JSON"),
    (["--batch-size", "5000"], "training digits"),
])
def test_bad_train_arguments_exit_2_with_one_line_and_no_run(world, args, words):
    base, env, _ = world
    before = _count_runs(base)
    proc = cli("train", "--arch", "mlp-128-64", *args, env=env)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr and "Traceback" not in proc.stderr
    assert _count_runs(base) == before


def _count_runs(base):
    with sqlite3.connect(base / "runs.db") as con:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_runs_show_export_delete(world, tmp_path):
    base, env, result = world
    listed = json.loads(cli("runs", "--json", env=env).stdout)
    assert result["run_id"] in [r["run_id"] for r in listed]
    shown = json.loads(cli("show", result["run_id"], "--json", env=env).stdout)
    assert sum(map(sum, shown["evaluation"]["confusion"])) == 100
    text = cli("show", result["run_id"], env=env).stdout
    assert "confusion matrix" in text and "learning_rate" in text
    # issue 27: an empty field reads as what it trains, not "dropout None"
    assert "— (the preset's rates)" in text and "— (all training digits)" in text and " None" not in text
    out = tmp_path / "runs.csv"
    assert cli("export", "--format", "csv", "--out", str(out), env=env).returncode == 0
    assert result["run_id"] in out.read_text()
    queued = json.loads(cli("train", "--arch", "mlp-128-64", "--queue", "--json", env=env).stdout)
    assert queued["status"] == "queued"
    assert cli("cancel", queued["run_id"], env=env).returncode == 0
    assert cli("delete", queued["run_id"], env=env).returncode == 0
    missing = cli("show", queued["run_id"], env=env)
    assert missing.returncode == 2 and "no run with id" in missing.stderr


def test_ingest_of_truncated_file_fails_cleanly(tmp_path):
    write_mnist_dir(tmp_path / "idx", n_train=20, n_test=5)
    images = tmp_path / "idx" / "train-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-100]))
    out = tmp_path / "out.h5"
    proc = cli("ingest", "--from", str(tmp_path / "idx"), "--out", str(out))
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists() and list(tmp_path.glob("*.h5*")) == []


def test_every_command_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    for command in COMMAND_HELP:
        proc = cli(command, "--help")
        assert proc.returncode == 0 and "--db" in proc.stdout and "--data" in proc.stdout
        assert f"python -m core {command}" in readme, command


def test_every_preset_is_in_the_readme():
    from core.model.architectures import PRESETS
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in PRESETS)


def test_importing_core_does_not_import_streamlit_or_tensorflow():
    code = ("import core, core.store.facade, core.config, core.model.architectures, core.data.dataset, core.data.ingest, core.cli, core.train.run, "
            "core.worker, core.predict.inference, core.predict.ensemble, sys; "
            "print(sorted(m for m in ('streamlit', 'plotly', 'tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
