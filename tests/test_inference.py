"""core.predict.inference: safe model loading (safe_mode, cache) and predictions.

Keras tests save tiny models under tmp_path; drawings come from tests/drawing_helpers.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from core.predict.inference import (  # noqa: E402
    InferenceError, ModelUnavailable, Prediction, load_model, predict_image, predict_probabilities, score,
)
from core.predict.preprocess import EmptyDrawing, Preprocessed  # noqa: E402
from tests.drawing_helpers import drawing, rgba  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_importing_inference_does_not_import_tensorflow_or_streamlit():
    code = "import sys, core.predict.inference; print(sorted({'tensorflow', 'keras', 'streamlit'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_empty_drawing_is_an_inference_error():
    assert issubclass(EmptyDrawing, InferenceError) and issubclass(ModelUnavailable, InferenceError)


@pytest.fixture(scope="module")
def keras():
    import keras

    return keras


def _save(keras, tmp_path: Path, name: str, layers: list, input_shape=(28, 28, 1)) -> Path:
    model = keras.Sequential([keras.Input(input_shape), *layers])
    path = tmp_path / name
    model.save(path)
    return path


def test_load_model_missing_or_corrupt_is_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match="model file for run r1 is missing"):
        load_model(tmp_path / "r1" / "model.keras")
    garbage = tmp_path / "garbage.keras"
    garbage.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ModelUnavailable, match="corrupt"):
        load_model(garbage)


def test_models_round_trip_and_give_probabilities_for_any_input_layout(tmp_path, keras):
    L = keras.layers
    cnn = _save(keras, tmp_path, "cnn.keras", [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                                               L.Dense(10, activation="softmax")])
    mlp = _save(keras, tmp_path, "mlp.keras", [L.Dense(16, activation="relu"), L.Dense(10, activation="softmax")],
                input_shape=(784,))
    flat = _save(keras, tmp_path, "flat.keras", [L.Flatten(), L.Dense(10)], input_shape=(28, 28))  # logits
    images = np.random.default_rng(0).random((5, 28, 28)).astype(np.float32)
    for path in (cnn, mlp, flat):
        model = load_model(path)
        probs = predict_probabilities(model, images)
        assert probs.shape == (5, 10)
        assert np.allclose(probs.sum(axis=1), 1, atol=1e-5) and probs.min() >= 0
        single = predict_probabilities(model, images[0])
        assert np.allclose(single[0], probs[0], atol=1e-5)
        many = predict_probabilities(model, np.repeat(images, 300, axis=0))  # more than one batch
        assert many.shape == (1500, 10) and np.allclose(many[::300], probs, atol=1e-5)


def test_loaded_models_are_cached_until_the_file_changes(tmp_path, keras):
    path = _save(keras, tmp_path, "model.keras", [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    first = load_model(path)
    assert load_model(str(path)) is first
    _save(keras, tmp_path, "model.keras", [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert load_model(path) is not first


def test_a_model_with_a_lambda_layer_is_refused_by_safe_mode(tmp_path, keras):
    path = _save(keras, tmp_path, "lambda.keras", [keras.layers.Lambda(lambda t: t * 2), keras.layers.Flatten(),
                                                   keras.layers.Dense(10, activation="softmax")])
    with pytest.raises(ModelUnavailable, match="unsafe code"):
        load_model(path)


def test_predict_image_returns_the_most_likely_digit(tmp_path, keras):
    path = _save(keras, tmp_path, "model.keras", [keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    prediction, pre = predict_image(load_model(path), rgba(drawing()))
    assert isinstance(prediction, Prediction) and isinstance(pre, Preprocessed)
    assert len(prediction.probabilities) == 10 and sum(prediction.probabilities) == pytest.approx(1)
    assert prediction.label == int(np.argmax(prediction.probabilities))
    assert prediction.confidence == pytest.approx(max(prediction.probabilities))
    with pytest.raises(EmptyDrawing):
        predict_image(load_model(path), np.zeros((280, 280, 4), np.uint8))


def test_score_counts_confusion_and_per_class_report():
    probs = np.eye(10)[[3, 3, 5, 1]]  # predicted 3, 3, 5, 1
    result = score(probs, np.array([3, 5, 5, 1]))
    assert result["accuracy"] == 0.75 and result["n"] == 4
    confusion = np.array(result["confusion"])
    assert confusion.sum() == 4 and confusion[5, 3] == 1 and confusion[3, 3] == 1
    assert result["report"]["3"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    assert result["report"]["5"]["recall"] == 0.5 and result["report"]["0"]["support"] == 0
