"""Bad input never costs data: each is one clear line, and nothing is written or lost.

Every case runs the real CLI (in-process, the same `main()` as `python -m core`) against a
private copy of a store with three trained runs, then checks that stderr holds exactly one
line, the exit code is 2, every table's row count is unchanged and no file changed. Also here:
an older store is migrated in place, and the app is safe by construction (safe_mode model
loading, artifact paths from run ids only, bound SQL parameters).
"""
from __future__ import annotations

import ast
import hashlib
import io
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from core import cli
from core.settings import sqlite_file
from core.store.schema import SCHEMA_VERSION, RunNotFound, StoreError
from core.store.facade import RunStore
from tests.idx_helpers import idx_bytes, write_mnist_dir, write_mnist_npz

ROOT = Path(__file__).resolve().parents[1]
BAD_LAYERS = ['not json', '{"type": "Dense"}', '[]', '[{"type": "Dense", "units": 0}]',
              '[{"type": "Lambda", "function": "__import__(\'os\').system(\'touch /tmp/pwned\')"}]',
              '[{"type": "Conv2D", "filters": 8, "kernel": 3}, ' * 12 + '{"type": "Flatten"}]']
BAD_TRAIN = [["--epochs", "0"], ["--epochs", "-3"], ["--epochs", "ten"], ["--epochs", "100000"],
             ["--lr", "0"], ["--lr", "-0.1"], ["--lr", "nan"], ["--lr", "inf"], ["--lr", "1e9"],
             ["--batch-size", "0"], ["--batch-size", "1000000"], ["--optimizer", "adamw"],
             ["--activation", "swish"], ["--dropout", "1"], ["--dropout", "-0.2"], ["--validation-split", "0.9"],
             ["--seed", "-1"], ["--early-stopping", "-2"], ["--lr-schedule", "cyclic"], ["--train-limit", "5"],
             ["--train-limit", "100000000"], ["--arch", "resnet50"], ["--arch", "custom"], ["--name", "x" * 300],
             ["--no-such-flag"]] + [["--arch", "custom", "--layers", layers] for layers in BAD_LAYERS]
UNKNOWN_IDS = ["nope", "../../etc/passwd", "", "a/b", "0" * 12, "DROP TABLE runs"]


# ------------------------------------------------------------------------------ helpers


def snapshot(env) -> tuple[dict[str, int], dict[str, str]]:
    """Row counts of every table, and a hash of every file under the store's folder and the dataset."""
    with closing(sqlite3.connect(sqlite_file(env.db_url))) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    folder = sqlite_file(env.db_url).parent
    files = {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("runs.db")}
    files["<dataset>"] = hashlib.sha256(Path(env.data_path).read_bytes()).hexdigest()
    return counts, files


def one_line(capsys, argv: list[str], rc: int = 2) -> str:
    """Run the CLI; assert the exit code and exactly one line on stderr, no traceback; return the line."""
    got = cli.main(argv)
    err = capsys.readouterr().err
    assert got == rc and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, got, err)
    return err.strip()


def expect_nothing_written(env, capsys, argv: list[str], words: str = "") -> str:
    before = snapshot(env)
    line = one_line(capsys, argv)
    assert words.lower() in line.lower(), line
    assert snapshot(env) == before, f"{argv} changed the store or a file"
    return line


def completed(env, index: int = 0):
    return env.store.get_run(env.runs.loc[env.runs.status == "completed", "run_id"].iloc[index])


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------ hyperparameters


@pytest.mark.parametrize("args", BAD_TRAIN, ids=lambda a: " ".join(a)[:40])
def test_invalid_hyperparameters_write_nothing(populated_env, capsys, args):
    expect_nothing_written(populated_env, capsys, ["train", *args])


# ------------------------------------------------------------------------------ data files


def broken_idx_folders(tmp_path: Path) -> dict[str, Path]:
    """Folders of four MNIST files where one is corrupt, truncated or wrongly shaped."""
    cases = {}
    for case in ("corrupt", "truncated", "wrong-shape", "swapped", "gzip-garbage", "empty"):
        folder = tmp_path / case
        write_mnist_dir(folder, n_train=20, n_test=10, gz=False)
        images = folder / "train-images-idx3-ubyte"
        labels = folder / "train-labels-idx1-ubyte"
        if case == "corrupt":
            images.write_bytes(b"\x42" * 900)
        elif case == "truncated":
            images.write_bytes(images.read_bytes()[:-100])
        elif case == "wrong-shape":
            images.write_bytes(idx_bytes(np.zeros((20, 27, 27), np.uint8)))
        elif case == "swapped":
            data = images.read_bytes()
            images.write_bytes(labels.read_bytes())
            labels.write_bytes(data)
        elif case == "gzip-garbage":
            images.write_bytes(b"\x1f\x8b" + b"\0" * 50)
        else:
            images.write_bytes(b"")
        cases[case] = folder
    return cases


def broken_npz_files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.npz"
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_mnist_npz(good, n_train=20, n_test=10)
    cases = {"npz-truncated": good.read_bytes()[: len(good.read_bytes()) // 2], "npz-garbage": b"PK\x03\x04" + b"x" * 300}
    files = {name: tmp_path / f"{name}.npz" for name in cases}
    for name, data in cases.items():
        files[name].write_bytes(data)
    np.savez(tmp_path / "npz-keys.npz", images=np.zeros((3, 28, 28), np.uint8))
    np.savez(tmp_path / "npz-shape.npz", x_train=np.zeros((3, 28, 27), np.uint8), y_train=np.zeros(3, np.uint8),
             x_test=np.zeros((3, 28, 28), np.uint8), y_test=np.zeros(3, np.uint8))
    np.savez(tmp_path / "npz-labels.npz", x_train=np.zeros((3, 28, 28), np.uint8), y_train=np.array([0, 1, 12]),
             x_test=np.zeros((3, 28, 28), np.uint8), y_test=np.zeros(3, np.uint8))
    files.update({n: tmp_path / f"{n}.npz" for n in ("npz-keys", "npz-shape", "npz-labels")})
    return files


def test_broken_idx_and_npz_sources_write_no_dataset(populated_env, capsys, tmp_path):
    sources = {**broken_idx_folders(tmp_path / "idx"), **broken_npz_files(tmp_path / "npz"),
               "missing": tmp_path / "no-such-folder"}
    out = tmp_path / "out" / "mnist.h5"
    for name, src in sources.items():
        expect_nothing_written(populated_env, capsys, ["ingest", "--from", str(src), "--out", str(out)])
        assert not out.parent.exists() or not list(out.parent.iterdir()), f"{name} left a file behind"
    print(f"\nbroken dataset sources tried: {len(sources)}")


def broken_h5_files(good: Path, tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.h5" for name in ("garbage", "truncated", "wrong-shape", "no-attrs", "dtype")}
    files["garbage"].write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x07" * 4000)
    files["truncated"].write_bytes(good.read_bytes()[:3000])
    for name in ("wrong-shape", "no-attrs", "dtype"):
        shutil.copy(good, files[name])
    with h5py.File(files["wrong-shape"], "a") as f:
        n = f["train/images"].shape[0]
        del f["train/images"]
        f["train/images"] = np.zeros((n, 27, 27), np.uint8)
    with h5py.File(files["no-attrs"], "a") as f:
        del f.attrs["n_train"]
    with h5py.File(files["dtype"], "a") as f:
        labels = f["test/labels"][...]
        del f["test/labels"]
        f["test/labels"] = labels.astype(np.float32)
    files["missing"] = tmp_path / "missing.h5"
    files["a-folder"] = tmp_path
    return files


def test_broken_hdf5_dataset_queues_and_trains_nothing(populated_env, capsys, tmp_path):
    for name, path in broken_h5_files(Path(populated_env.data_path), tmp_path).items():
        for queue in ([], ["--queue"]):
            expect_nothing_written(populated_env, capsys, ["train", "--arch", "mlp-128-64", "--epochs", "1",
                                                           "--data", str(path), *queue])


# ------------------------------------------------------------------------------ run ids and models


@pytest.mark.parametrize("run_id", UNKNOWN_IDS)
def test_unknown_run_ids(populated_env, capsys, run_id, tmp_path):
    image = tmp_path / "digit.png"
    image.write_bytes(png(np.zeros((28, 28), np.uint8)))
    for argv in (["show", run_id], ["cancel", run_id], ["delete", run_id], ["predict", "--run", run_id, str(image)]):
        assert "no run with id" in expect_nothing_written(populated_env, capsys, argv)


def test_missing_or_corrupt_model_is_one_line_and_the_rest_still_works(populated_env, capsys, tmp_path):
    broken, healthy = completed(populated_env, 0), completed(populated_env, 1)
    image = tmp_path / "digit.png"
    image.write_bytes(png(np.pad(np.full((12, 4), 255, np.uint8), 8)))
    model = populated_env.store.run_dir(broken.id) / "model.keras"
    original = model.read_bytes()
    damages = {"missing": None, "garbage": b"not a zip at all", "truncated": original[: len(original) // 2],
               "empty": b"", "a-folder": "dir"}
    store = populated_env.store
    for damage, content in damages.items():  # the store's copy is damaged (the local file is only its cache)
        store.put_artifact(broken.id, "model.keras", original)
        model.unlink(missing_ok=True)
        shutil.rmtree(model, ignore_errors=True)
        if content == "dir":  # the cache path is taken by a folder
            model.mkdir()
        elif content is None:
            store.delete_artifact(broken.id, "model.keras")
        else:
            store.put_artifact(broken.id, "model.keras", content)
            store.artifact_file(broken.id, "model.keras")  # cached already: predict then writes nothing
        line = expect_nothing_written(populated_env, capsys, ["predict", "--run", broken.id, str(image)])
        assert broken.id in line and any(w in line for w in ("missing", "cannot be loaded", "cannot be read")), \
            (damage, line)
        assert cli.main(["predict", "--run", healthy.id, str(image)]) == 0  # the rest of the app works
        assert cli.main(["show", broken.id]) == 0 and cli.main(["runs"]) == 0
        capsys.readouterr()


def test_a_run_without_a_model_cannot_predict(populated_env, capsys, tmp_path):
    run_id = populated_env.store.create_run({"architecture": "mlp-128-64", "epochs": 1})
    image = tmp_path / "digit.png"
    image.write_bytes(png(np.zeros((28, 28), np.uint8)))
    assert "not completed" in expect_nothing_written(populated_env, capsys, ["predict", "--run", run_id, str(image)])


def test_bad_images_are_one_line_each_and_the_good_one_is_predicted(populated_env, capsys, tmp_path):
    from core.predict.preprocess import MAX_BYTES

    files = {"text.png": b"hello, not an image", "empty.png": b"", "half.png": png(np.zeros((28, 28), np.uint8))[:40],
             "huge.png": b"\x89PNG" + b"\0" * (MAX_BYTES + 1), "blank.png": png(np.zeros((56, 56), np.uint8)),
             "good.png": png(np.pad(np.full((14, 4), 255, np.uint8), 7))}
    bomb = Image.new("L", (6000, 5000))
    bomb.save(tmp_path / "bomb.png")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / n) for n in [*files, "bomb.png", "missing.png"]]
    before = snapshot(populated_env)
    rc = cli.main(["predict", "--run", completed(populated_env).id, *paths])
    out, err = capsys.readouterr()
    assert rc == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == len(paths) - 1 and all(": error: " in line for line in lines), err
    assert "good.png" in out and "good.png" not in err
    for name, words in (("huge.png", "MB limit"), ("bomb.png", "megapixel limit"), ("blank.png", "empty"),
                        ("missing.png", "no such file"), ("text.png", "not a readable image")):
        assert any(name in line and words in line for line in lines), (name, err)
    assert snapshot(populated_env) == before


# ------------------------------------------------------------------------------ stores


def test_a_file_that_is_not_a_store(tmp_path, capsys):
    for name, data in (("garbage.db", b"this is not sqlite" * 100), ("image.db", png(np.zeros((8, 8), np.uint8)))):
        path = tmp_path / name
        path.write_bytes(data)
        line = one_line(capsys, ["runs", "--db", str(path)])
        assert str(path) in line and path.read_bytes() == data, line


def test_a_store_from_a_newer_digit_lab_is_refused_untouched(tmp_path, capsys):
    path = tmp_path / "runs.db"
    RunStore(f"sqlite:///{path}").close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    before = path.read_bytes()
    assert "newer than this Digit Lab" in one_line(capsys, ["runs", "--db", str(path)])
    assert path.read_bytes() == before


OLD_SCHEMA = """
CREATE TABLE runs (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, architecture VARCHAR(40) NOT NULL,
    status VARCHAR(12) NOT NULL, config JSON NOT NULL, created_at FLOAT NOT NULL, started_at FLOAT,
    finished_at FLOAT, test_accuracy FLOAT, model_path TEXT);
CREATE TABLE metrics (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id VARCHAR(32) NOT NULL REFERENCES runs(id),
    scope VARCHAR(8) NOT NULL, key VARCHAR(64) NOT NULL, step INTEGER NOT NULL, epoch INTEGER, value FLOAT,
    ts FLOAT NOT NULL);
INSERT INTO runs VALUES ('0a1b2c3d4e5f', 'from the first version', 'mlp-128-64', 'completed',
    '{"architecture": "mlp-128-64", "epochs": 2, "learning_rate": 0.001}', 1.0, 1.0, 5.0, 0.91, NULL);
INSERT INTO runs VALUES ('aaaabbbbcccc', 'was running', 'cnn-small', 'running', '{"architecture": "cnn-small"}',
    2.0, 2.0, NULL, NULL, NULL);
"""


def test_a_store_from_an_older_schema_is_migrated_not_wiped(tmp_path, capsys):
    path = tmp_path / "runs.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(OLD_SCHEMA)
        conn.executemany("INSERT INTO metrics (run_id, scope, key, step, epoch, value, ts) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [("0a1b2c3d4e5f", "epoch", k, s, s, v, 3.0) for s in (1, 2) for k, v in (("loss", .5), ("val_accuracy", .9))])
    store = RunStore(f"sqlite:///{path}")
    assert store.schema_version() == SCHEMA_VERSION
    old = store.get_run("0a1b2c3d4e5f")
    assert (old.name, old.status, old.test_accuracy, old.tags, old.note, old.epoch) == (
        "from the first version", "completed", 0.91, [], "", 0)
    assert old.config["learning_rate"] == 0.001 and len(store.metric_history(old.id)) == 4
    runs = store.list_runs()
    assert len(runs) == 2 and set(runs["epochs_planned"].dropna()) == {2}
    store.update_run(old.id, tags=["kept"], note="migrated")  # new columns are usable
    assert store.recover_stale() == ["aaaabbbbcccc"]          # old runs take part in the new rules
    store.close()
    assert cli.main(["show", old.id, "--db", str(path)]) == 0 and "from the first version" in capsys.readouterr().out
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ------------------------------------------------------------------------------ safe by construction


def test_a_model_with_code_inside_is_refused_and_its_code_never_runs(populated_env, capsys, tmp_path):
    import keras

    marker = tmp_path / "code-ran"
    payload = keras.layers.Lambda(lambda x, path=str(marker): (open(path, "w").close(), x)[1])
    inputs = keras.Input((28, 28, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(payload(inputs)))
    run = completed(populated_env)
    model_file = tmp_path / "model.keras"
    keras.Model(inputs, outputs).save(model_file)
    populated_env.store.put_artifact(run.id, "model.keras", model_file)  # models live in the store
    marker.unlink()  # building and saving called it; from here on nothing may
    image = tmp_path / "digit.png"
    image.write_bytes(png(np.pad(np.full((12, 4), 255, np.uint8), 8)))
    line = one_line(capsys, ["predict", "--run", run.id, str(image)])
    assert "safe_mode" in line or "arbitrary code" in line, line
    assert not marker.exists(), "the Lambda's code ran while loading the model"


def test_every_model_load_uses_safe_mode():
    """Only core/predict/inference.py loads models, and it passes safe_mode=True."""
    loads = []
    for path in sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("dashboard/**/*.py"), *ROOT.glob("pages/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load_model" \
                    and "keras" in ast.unparse(node.func):
                safe = [k for k in node.keywords if k.arg == "safe_mode"]
                loads.append((path.name, bool(safe) and ast.unparse(safe[0].value) == "True"))
    assert loads and all(safe for _, safe in loads), loads


def test_run_names_never_reach_a_path(populated_env, capsys, tmp_path):
    evil = "../../../escaped/../" + "x" * 20
    assert cli.main(["train", "--arch", "mlp-128-64", "--epochs", "1", "--train-limit", "100", "--batch-size", "50",
                     "--name", evil, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = populated_env.store.get_run(summary["run_id"])
    assert run.name == evil and run.status == "completed"
    artifacts = populated_env.store.artifacts
    assert Path(summary["model_path"]) == artifacts / run.id / "model.keras"
    assert all(p.relative_to(artifacts).parts[0].isalnum() for p in artifacts.rglob("*") if p.is_file()
               and p.name != "worker.log")
    assert not list(tmp_path.parent.rglob("escaped"))
    for bad in ("../x", "a/b", "", ".", "..", "x y", "٣", "abc\x00", "/etc"):
        with pytest.raises(RunNotFound):
            populated_env.store.run_dir(bad)


def test_hostile_text_is_stored_as_data_not_sql(populated_env):
    store = populated_env.store
    hostile = ["x'); DROP TABLE runs; --", '" OR 1=1 --', "\\'; DELETE FROM metrics; --", "100%_done"]
    run_id = completed(populated_env).id
    rows_before = len(store.metric_history(run_id))
    for text in hostile:
        store.update_run(run_id, name=text, note=text, tags=[text])
        run = store.get_run(run_id)
        assert (run.name, run.note, run.tags) == (text, text, [text])
        assert list(store.list_runs(search=text)["run_id"]) == [run_id]
    names = list(store.list_runs()["name"])
    for wildcard in ("%", "_"):  # LIKE wildcards are matched literally
        assert len(store.list_runs(search=wildcard)) == sum(wildcard in name for name in names) >= 1
    assert len(store.list_runs()) == len(populated_env.runs) and len(store.metric_history(run_id)) == rows_before
    with pytest.raises(StoreError):
        store.update_run(run_id, **{"status = 'completed' --": "x"})


SQL_CALLS = {"exec_driver_sql", "text", "execute", "executemany", "executescript"}


def test_sql_is_built_from_bound_parameters_only():
    """No SQL string is assembled with f-strings, % or .format, except DDL from the schema's own names."""
    allowed = {("migrate.py", "ALTER TABLE")}
    found = []
    for path in sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("dashboard/**/*.py"), *ROOT.glob("pages/*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in SQL_CALLS \
                    and node.args:
                arg = node.args[0]
                built = isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Mod)) \
                    or (isinstance(arg, ast.Call) and getattr(arg.func, "attr", None) == "format")
                if built and not any(path.name == f and word in ast.unparse(arg) for f, word in allowed):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, found
    for path in [*ROOT.glob("pages/*.py")]:
        text = path.read_text()
        assert "sqlite3" not in text and "sqlalchemy" not in text, f"{path.name} talks SQL"


# ------------------------------------------------------------------------------ pages


HOSTILE_QUERIES = [{"run": "nope"}, {"run": "../../etc/passwd"}, {"runs": "nope,,../x,' OR 1=1 --"},
                   {"fork": "DROP TABLE runs"}, {"group": "%"}, {"run": "x" * 5000}]


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "pages").glob("*.py")))
def test_pages_survive_unknown_ids_in_urls_and_a_broken_model(populated_env, page):
    """Every page renders (no exception, nothing written) for made-up ids, with one run's model file corrupted."""
    from streamlit.testing.v1 import AppTest

    broken = completed(populated_env)
    (populated_env.store.run_dir(broken.id) / "model.keras").write_bytes(b"corrupt")
    before = snapshot(populated_env)
    for query in [*HOSTILE_QUERIES, {"run": broken.id, "runs": broken.id}]:
        at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, (page, query, [e.value for e in at.exception])
    assert snapshot(populated_env) == before
