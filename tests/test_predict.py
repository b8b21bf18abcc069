"""core/predict/ensemble.py: first-layer kernels read from a .keras file without TensorFlow."""
from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.predict.preprocess import InferenceError
from core.predict.ensemble import first_conv_kernels

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def _save(keras, store, run_id: str, layers: list):
    model = keras.Sequential([keras.Input((28, 28, 1)), *layers])
    path = store.run_dir(run_id) / "model.keras"
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model, path


def test_kernels_match_the_loaded_models_first_conv_layer(store, keras):
    from dashboard.charts import conv_kernels

    L = keras.layers
    for _ in range(3):  # layer names get suffixes (conv2d_7, ...): the file names them by class and order
        L.Conv2D(2, 3)
    model, _ = _save(keras, store, "0123456789ab", [L.RandomRotation(0.1), L.Conv2D(6, 5, activation="relu"),
                                                     L.Conv2D(3, 3), L.Flatten(), L.Dense(10)])
    kernels = first_conv_kernels(store, "0123456789ab")
    assert kernels.shape == (6, 5, 5)
    np.testing.assert_allclose(kernels, conv_kernels(model), rtol=1e-6)


def test_no_conv_layer_corrupt_missing_and_unknown_layout(store, keras):
    L = keras.layers
    _save(keras, store, "mlp000000000", [L.Flatten(), L.Dense(10)])
    assert first_conv_kernels(store, "mlp000000000") is None
    _, path = _save(keras, store, "bad000000000", [L.Conv2D(2, 3), L.Flatten(), L.Dense(10)])
    path.write_bytes(b"not a keras file")
    with pytest.raises(InferenceError, match="bad000000000 is not a readable Keras model"):
        first_conv_kernels(store, "bad000000000")
    with pytest.raises(FileNotFoundError):
        first_conv_kernels(store, "none00000000")
    _, path = _save(keras, store, "odd000000000", [L.Conv2D(2, 3), L.Flatten(), L.Dense(10)])
    with zipfile.ZipFile(path) as z:
        config = z.read("config.json")
    with zipfile.ZipFile(path, "w") as z:  # a Conv2D in the config, weights laid out otherwise
        z.writestr("config.json", config)
        z.writestr("model.weights.h5", _empty_h5())
    with pytest.raises(LookupError):
        first_conv_kernels(store, "odd000000000")


def _empty_h5() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers")
    return buf.getvalue()


def test_reading_kernels_does_not_import_tensorflow():
    code = ("import sys, core.predict.ensemble; from core.store.facade import RunStore; "
            "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ ensembles

def _png(tmp_path, name="seven.png"):
    from PIL import Image, ImageDraw
    im = Image.new("L", (280, 280), 0)
    ImageDraw.Draw(im).line([(90, 60), (190, 60), (120, 230)], fill=255, width=20)
    path = tmp_path / name
    im.save(path)
    return path


def test_an_ensemble_of_one_run_equals_that_run(populated_env, tmp_path):
    from core.predict.inference import predict_probabilities
    from core.predict.ensemble import ensemble_probabilities, model_for_run, predict_files

    store, run_id = populated_env.store, populated_env.runs["run_id"].iloc[0]
    x = np.random.default_rng(0).random((5, 28, 28)).astype("float32")
    alone = predict_probabilities(model_for_run(store, run_id), x)
    assert np.allclose(ensemble_probabilities(store, [run_id], x), alone, atol=1e-12)
    assert np.allclose(ensemble_probabilities(store, [run_id, run_id], x), alone, atol=1e-12)  # counted once
    [one], _ = predict_files(store, [run_id], [str(_png(tmp_path))])
    [single], _ = predict_files(store, run_id, [str(_png(tmp_path))])
    assert one == single and one["runs"] == [run_id] and "per_run" not in one


def test_cli_predict_with_several_runs_averages_them_and_says_which(populated_env, tmp_path, capsys):
    import json

    from core import cli

    ids = populated_env.runs["run_id"].tolist()
    path = str(_png(tmp_path))
    assert cli.main(["predict", "--db", populated_env.db_url, "--run", ids[0], "--run", ids[1], "--json", path]) == 0
    [combined] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert combined["runs"] == ids[:2] and [p["run_id"] for p in combined["per_run"]] == ids[:2]
    each = np.array([p["probabilities"] for p in combined["per_run"]])
    assert np.allclose(combined["probabilities"], each.mean(axis=0), atol=1e-9)
    assert combined["label"] == int(np.argmax(each.mean(axis=0)))
    assert cli.main(["predict", "--db", populated_env.db_url, "--run", ids[0], "--run", ids[1], path]) == 0
    assert "ensemble of 2 runs" in capsys.readouterr().out


def test_the_drawn_set_scores_an_ensemble(populated_env):
    from core.predict.drawn_set import score_ensemble_on_drawn
    from core.store.drawings import DrawingError, add_drawing

    store, ids = populated_env.store, populated_env.runs["run_id"].tolist()
    with pytest.raises(DrawingError, match="empty"):
        score_ensemble_on_drawn(store, ids)
    rng = np.random.default_rng(1)
    for label in range(10):
        add_drawing(store, label, (rng.random((28, 28)) > 0.7).astype(np.uint8) * 255)
    result = score_ensemble_on_drawn(store, ids)
    assert result["runs"] == ids and result["n"] == 10 and set(result["per_run"]) == set(ids)
    alone = score_ensemble_on_drawn(store, ids[:1])
    assert alone["accuracy"] == alone["per_run"][ids[0]]
