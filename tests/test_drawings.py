"""core/store/drawings.py and core/predict/drawn_set.py on real SQLite files: saving, listing, deleting drawings, and scoring real
Keras runs (conftest's populated_env: three 1-epoch runs on synthetic digits) on the drawn set."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.data.dataset import load_dataset
from core.predict.drawn_set import evaluate_all, evaluate_on_drawn
from core.store.drawings import (DrawingError, add_drawing, count_drawings, delete_drawing, drawing_original, drawn_arrays,
                                 list_drawings)
from core.predict.inference import ModelUnavailable, predict_probabilities
from core.predict.ensemble import model_for_run


def png(side: int = 280) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 255)).save(buf, format="PNG")
    return buf.getvalue()


def digit(value: int = 200) -> np.ndarray:
    image = np.zeros((28, 28), np.uint8)
    image[6:22, 13:16] = value
    return image


def test_add_list_original_and_delete_round_trip(store):
    first = add_drawing(store, 1, digit(), png(), author="  Ann   Lee ", source="canvas")
    float_image = digit(255).astype(np.float32) / 255.0
    second = add_drawing(store, 7, float_image, None, author="", source="upload")
    df = list_drawings(store)
    assert df["id"].tolist() == [second, first]  # newest first
    assert df["label"].tolist() == [7, 1]
    assert df["author"].tolist() == ["", "Ann Lee"]
    assert df["source"].tolist() == ["upload", "canvas"]
    assert df["has_original"].tolist() == [False, True]
    assert np.array_equal(df["image"].iloc[1], digit())
    assert np.array_equal(df["image"].iloc[0], digit(255))  # floats in [0, 1] are stored as 0-255
    assert drawing_original(store, first) == png() and drawing_original(store, second) is None
    assert list_drawings(store, label=7)["id"].tolist() == [second]

    delete_drawing(store, first)
    assert list_drawings(store)["id"].tolist() == [second] and count_drawings(store) == 1
    with pytest.raises(DrawingError, match=f"no drawing with id {first}"):
        delete_drawing(store, first)
    with pytest.raises(DrawingError, match="no drawing"):
        drawing_original(store, first)


@pytest.mark.parametrize("label, image, original, source, message", [
    (10, digit(), None, "canvas", "label must be a digit 0-9, got 10"),
    (-1, digit(), None, "canvas", "got -1"),
    ("3", digit(), None, "canvas", "got '3'"),
    (True, digit(), None, "canvas", "got True"),
    (3, np.zeros((28, 27), np.uint8), None, "canvas", r"28×28, got shape \(28, 27\)"),
    (3, np.zeros((28, 28), np.uint8), None, "canvas", "empty"),
    (3, np.full((28, 28), 1.5), None, "canvas", r"\[0, 1\]"),
    (3, np.full((28, 28), np.nan), None, "canvas", "NaN"),
    (3, digit(), b"GIF89a...", "canvas", "must be a PNG"),
    (3, digit(), None, "camera", "source must be one of canvas, upload, got 'camera'"),
])
def test_bad_drawings_are_refused_and_nothing_is_written(store, label, image, original, source, message):
    with pytest.raises(DrawingError, match=message):
        add_drawing(store, label, image, original, source=source)
    assert count_drawings(store) == 0


def test_list_of_an_empty_set_has_the_columns(store):
    df = list_drawings(store)
    assert df.empty and {"id", "label", "image", "author", "created_at"} <= set(df.columns)
    x, y = drawn_arrays(store)
    assert x.shape == (0, 28, 28) and y.shape == (0,)


def _add_test_digits(store, data_path, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    data = load_dataset(data_path)
    x, y = data.x_test[:n], data.y_test[:n].astype(np.int64)
    for image, label in zip(x, y):
        add_drawing(store, int(label), image)
    return x.astype(np.float32) / 255.0, y


def test_evaluate_on_drawn_scores_a_real_model_and_records_it(populated_env):
    store, run_id = populated_env.store, populated_env.runs["run_id"].iloc[0]
    x, y = _add_test_digits(store, populated_env.data_path)
    expected = (predict_probabilities(model_for_run(store, run_id), x).argmax(axis=1) == y).mean()

    ev = evaluate_on_drawn(store, run_id)
    assert ev.split == "drawn" and ev.n == len(y)
    assert ev.accuracy == pytest.approx(expected)
    confusion = np.array(ev.confusion)
    assert confusion.sum() == len(y) and np.trace(confusion) == round(expected * len(y))
    assert confusion.sum(axis=1).tolist() == np.bincount(y, minlength=10).tolist()
    assert store.evaluation(run_id, "drawn").accuracy == pytest.approx(expected)
    assert store.get_run(run_id).drawn_accuracy == pytest.approx(expected)
    runs = store.list_runs().set_index("run_id")
    assert runs.loc[run_id, "drawn_accuracy"] == pytest.approx(expected)
    assert store.evaluation(run_id, "test") is not None  # the test evaluation is kept beside it


def test_evaluate_on_an_empty_drawn_set_says_so(populated_env):
    run_id = populated_env.runs["run_id"].iloc[0]
    with pytest.raises(DrawingError, match="drawn set is empty"):
        evaluate_on_drawn(populated_env.store, run_id)
    with pytest.raises(DrawingError, match="drawn set is empty"):
        evaluate_all(populated_env.store)


def test_evaluate_all_reports_a_run_without_model_and_scores_the_others(populated_env):
    store = populated_env.store
    _add_test_digits(store, populated_env.data_path, n=10)
    broken, *fine = populated_env.runs["run_id"].tolist()
    store.delete_artifact(broken, "model.keras")
    with pytest.raises(ModelUnavailable):
        evaluate_on_drawn(store, broken)

    seen = []
    scores = {s.run_id: s for s in evaluate_all(store, progress=lambda i, n, name: seen.append((i, n)))}
    assert set(scores) == {broken, *fine} and seen == [(0, 3), (1, 3), (2, 3)]
    assert scores[broken].accuracy is None and "missing" in scores[broken].error
    for run_id in fine:
        assert scores[run_id].error is None and 0 <= scores[run_id].accuracy <= 1
        assert store.get_run(run_id).drawn_accuracy == pytest.approx(scores[run_id].accuracy)
    assert store.get_run(broken).drawn_accuracy is None
