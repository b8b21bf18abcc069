"""The standalone Keras script: valid Python for every option, equivalent to core.train.run, and it runs."""
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core.model.architectures import PRESETS, build_model, count_params
from core.config import LR_SCHEDULES, OPTIMIZERS, make_config
from core.data.ingest import ingest
from core.train.script import keras_script
from core.train.run import load_splits
from tests.idx_helpers import write_mnist_npz

REPO = Path(__file__).resolve().parents[1]
CUSTOM_STACK = [{"type": "Conv2D", "filters": 4, "kernel": 3, "padding": "same", "activation": "tanh"},
                {"type": "BatchNormalization"}, {"type": "Activation", "activation": "elu"},
                {"type": "MaxPooling2D", "pool": 2}, {"type": "Dense", "units": 8, "activation": "gelu"}]


@pytest.fixture(scope="module")
def script_npz(tmp_path_factory):
    """A tiny Keras-style mnist.npz (64 train, 16 test) and the same data ingested as HDF5."""
    folder = tmp_path_factory.mktemp("script_data")
    write_mnist_npz(folder / "mnist.npz", n_train=64, n_test=16)
    h5 = ingest(folder / "mnist.npz", folder / "mnist.h5").path
    return folder / "mnist.npz", h5


def _load_script(tmp_path, config) -> dict:
    """The script's module namespace, without running main()."""
    path = tmp_path / "script.py"
    path.write_text(keras_script(config))
    return runpy.run_path(str(path), run_name="digitlab_script")


@pytest.mark.parametrize("arch", [*PRESETS, "custom"])
@pytest.mark.parametrize("options", [
    {},
    {"augment": True, "lr_schedule": "plateau", "early_stopping": 3, "train_limit": 500},
    {"lr_schedule": "exponential", "dropout": 0.25, "activation": "tanh", "validation_split": 0.0},
])
def test_script_is_valid_python_with_the_run_settings(arch, options):
    layers = CUSTOM_STACK if arch == "custom" else ()
    config = make_config(arch, layers=layers, name="a \"quoted\" name\\", **options)
    source = keras_script(config)
    compile(source, "script.py", "exec")  # SyntaxError fails the test
    assert f"BATCH_SIZE = {config.batch_size}\n" in source and f"EPOCHS = {config.epochs}\n" in source
    assert f"SEED = {config.seed}\n" in source and f"LEARNING_RATE = {config.learning_rate!r}\n" in source
    assert "keras.datasets.mnist.load_data()" in source and "MNIST_NPZ" in source
    assert ("RandomRotation" in source) == config.augment  # a preset (cnn-draw) may augment by default
    assert ("ReduceLROnPlateau" in source) == (config.lr_schedule == "plateau")
    assert ("LearningRateScheduler" in source) == (config.lr_schedule in ("exponential", "cosine"))
    assert ("EarlyStopping" in source) == bool(config.early_stopping)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_has_code(optimizer):
    source = keras_script(make_config("mlp-512", optimizer=optimizer, learning_rate=0.05))
    assert "LEARNING_RATE = 0.05\n" in source
    assert ("momentum=0.9" in source) == (optimizer == "sgd-momentum")


def test_script_split_matches_load_splits(tmp_path, script_npz):
    npz, h5 = script_npz
    config = make_config("mlp-128-64", train_limit=40, validation_split=0.2, seed=7)
    ns = _load_script(tmp_path, config)
    with np.load(npz) as data:
        (x_tr, y_tr), val = ns["split"](data["x_train"], data["y_train"])
    splits = load_splits(config, h5)
    np.testing.assert_array_equal(x_tr, splits.x_train)
    np.testing.assert_array_equal(y_tr, splits.y_train)
    np.testing.assert_array_equal(val[0], splits.x_val)
    np.testing.assert_array_equal(val[1], splits.y_val)
    assert x_tr.shape == (32, 28, 28, 1) and x_tr.dtype == np.float32 and x_tr.max() <= 1.0


def test_script_without_validation_returns_none(tmp_path, script_npz):
    npz, _ = script_npz
    ns = _load_script(tmp_path, make_config("mlp-512", validation_split=0.0))
    with np.load(npz) as data:
        (x_tr, _), val = ns["split"](data["x_train"], data["y_train"])
    assert val is None and len(x_tr) == 64


@pytest.mark.parametrize("arch,options", [("cnn-small", {"augment": True}), ("custom", {"dropout": 0.3}),
                                          ("mlp-512x2-dropout", {"activation": "elu"})])
def test_script_model_is_the_digit_lab_model(tmp_path, arch, options):
    import keras

    config = make_config(arch, layers=CUSTOM_STACK if arch == "custom" else (), seed=3, **options)
    ns = _load_script(tmp_path, config)
    keras.utils.set_random_seed(config.seed)
    theirs = ns["build_model"]()
    keras.utils.set_random_seed(config.seed)
    ours = build_model(config.hidden_layers(), augment=config.augment)
    assert [type(layer).__name__ for layer in theirs.layers] == [type(layer).__name__ for layer in ours.layers]
    assert [tuple(layer.output.shape) for layer in theirs.layers] == [tuple(layer.output.shape) for layer in ours.layers]
    assert theirs.count_params() == ours.count_params() == count_params(config.hidden_layers())
    for a, b in zip(theirs.get_weights(), ours.get_weights()):  # same seed, same layers: same initial weights
        np.testing.assert_array_equal(a, b)


def test_script_runs_one_epoch_on_a_small_npz(tmp_path, script_npz):
    """As a user runs it: a fresh Python process, the data from MNIST_NPZ."""
    npz, _ = script_npz
    config = make_config("cnn-small", epochs=1, batch_size=16, name="tiny run", augment=True,
                         lr_schedule="plateau", early_stopping=1)
    script = tmp_path / "train_tiny.py"
    script.write_text(keras_script(config))
    env = {**os.environ, "MNIST_NPZ": str(npz), "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0",
           "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout
    assert (tmp_path / "mnist_tiny_run.keras").stat().st_size > 0


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_script_main_trains_without_validation(tmp_path, script_npz, monkeypatch, capsys, schedule):
    """A per-epoch schedule and no validation split, run in this process (keras already imported)."""
    npz, _ = script_npz
    config = make_config("mlp-128-64", epochs=2, batch_size=16, lr_schedule=schedule, train_limit=200,
                         validation_split=0.0, optimizer="sgd-momentum")
    script = tmp_path / "script.py"
    script.write_text(keras_script(config))
    monkeypatch.setenv("MNIST_NPZ", str(npz))
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")
    assert "test accuracy" in capsys.readouterr().out
    assert (tmp_path / "mnist_mlp-128-64.keras").stat().st_size > 0


def test_script_reports_learning_rate_schedules_in_docstring():
    for schedule in LR_SCHEDULES:
        source = keras_script(make_config("mlp-512", lr_schedule=schedule, early_stopping=2))
        assert f"Learning-rate schedule: {schedule}; early stopping: patience 2." in source


def test_script_names_its_file_and_checks_it_loads_the_runs_digits(tmp_path, script_npz, monkeypatch, capsys):
    """The docstring's `python FILE` is the download's name, and the data claim is checked, not assumed."""
    from core.data.dataset import dataset_identity
    from core.train.script import script_file_name

    npz, h5 = script_npz
    config = make_config("mlp-128-64", epochs=1, batch_size=32, name="my run")
    assert script_file_name(config) == "mnist_my_run.py"
    same = dataset_identity(h5)
    script = keras_script(config, same)
    assert "python mnist_my_run.py" in script
    assert "trained on 64 training and 16 test digits" in script
    monkeypatch.setenv("MNIST_NPZ", str(npz))
    monkeypatch.chdir(tmp_path)
    namespace = _load_script(tmp_path, config)
    namespace["check_data"](*namespace["load_mnist"]())
    assert "NOTE" not in capsys.readouterr().out
    (tmp_path / "script.py").write_text(keras_script(config, {**same, "sha256": "0" * 64}))
    other = runpy.run_path(str(tmp_path / "script.py"), run_name="digitlab_script")
    other["check_data"](*other["load_mnist"]())
    assert "not the digits the run was trained on" in capsys.readouterr().out
    sample = keras_script(config, {**same, "offline_sample": True})
    assert "offline 5,000-digit sample, NOT full" in sample
