"""Models: load a run's .keras file safely and predict digits with it.

`load_model` uses Keras' `safe_mode` (no arbitrary code) and caches models by file;
`predict_probabilities` classifies 28×28 images in batches, and `predict_image` first turns
a drawing or photo into one with `core.predict.preprocess.preprocess`. Keras and TensorFlow are
imported only inside `load_model`: importing this module is cheap.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.predict.preprocess import SIZE, InferenceError, Preprocessed, preprocess

MAX_CACHED = 8           # loaded models kept in memory
BATCH = 1024             # images per model call when predicting many


class ModelUnavailable(InferenceError):
    """A model file that is missing, unreadable or refused by safe_mode."""


@dataclass(frozen=True)
class Prediction:
    label: int
    confidence: float
    probabilities: list[float]


_MODELS: OrderedDict[tuple[str, int], Any] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def load_model(path: str | Path, run_id: str | None = None) -> Any:
    """Load a .keras model with safe_mode (no arbitrary code), cached by (path, mtime).

    `run_id` only names the run in error messages (default: the file's folder or stem).

    Raises ModelUnavailable when the file is missing, corrupt or refused by safe_mode.
    """
    path = Path(path)
    label = run_id or (path.parent.name if path.stem == "model" else path.stem)  # runs/<id>/model.keras
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        raise ModelUnavailable(f"model file for run {label} is missing: {path}") from None
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        import keras

        from core.model.architectures import elastic_layer_class
        from core.model.execution import float32_copy
        elastic_layer_class()  # registers Digit Lab's own (training-only) augmentation layer for loading
        try:
            # a run trained in mixed_bfloat16 predicts (and is explained) in float32, with the same weights
            model = float32_copy(keras.models.load_model(path, safe_mode=True, compile=False))
        except Exception as exc:
            text = " ".join(str(exc).split())
            if "safe_mode" in text or "unsafe" in text.lower():
                raise ModelUnavailable(f"model file for run {label} was refused: it holds unsafe code "
                                       f"(a Python lambda), which safe_mode forbids: {path}") from None
            raise ModelUnavailable(f"model file for run {label} is corrupt or unreadable ({path}): "
                                   f"{type(exc).__name__}: {text[:200]}") from None
        for old in [k for k in _MODELS if k[0] == key[0]]:  # the file was rewritten
            del _MODELS[old]
        _MODELS[key] = model
        while len(_MODELS) > MAX_CACHED:
            _MODELS.popitem(last=False)
        return model


def _input_shape(model: Any) -> tuple[int, ...]:
    """The model's input shape without the batch axis, e.g. (28, 28, 1) or (784,)."""
    try:
        shape = tuple(model.inputs[0].shape)[1:]
    except (AttributeError, IndexError, TypeError):  # a model without `inputs` (subclassed): its declared shape
        shape = tuple(getattr(model, "input_shape", (None, 28, 28, 1)))[1:]
    if None in shape or int(np.prod(shape)) != SIZE * SIZE:
        raise InferenceError(f"model input shape {shape} does not hold a 28×28 image")
    return tuple(int(d) for d in shape)


def predict_probabilities(model: Any, images: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 10) for images (N, 28, 28) (or one (28, 28)) in [0, 1].

    Reshapes to the model's input, (28, 28, 1), (28, 28) or (784,). Runs `predict_on_batch`
    on chunks of BATCH images: its compiled function costs ~1 ms for one image on the small
    CNN, where an eager `model(x)` costs ~10 ms and `model.predict` over 100 ms.
    Logits are turned into probabilities with a softmax.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 2 and x.shape == (SIZE, SIZE):
        x = x[None]
    if x.ndim >= 2 and len(x) == 0:
        return np.zeros((0, 10))
    if x.ndim < 2 or x[0].size != SIZE * SIZE:
        raise InferenceError(f"expected images of shape (N, 28, 28), got {np.shape(images)}")
    x = x.reshape((len(x), *_input_shape(model)))
    run = getattr(model, "predict_on_batch", None) or (lambda batch: model(batch, training=False))
    outputs = []
    for start in range(0, len(x), BATCH):
        out = run(x[start:start + BATCH])
        outputs.append(np.asarray(out[0] if isinstance(out, (list, tuple)) else out, dtype=np.float64))
    probs = np.concatenate(outputs) if outputs else np.zeros((0, 10))
    if probs.ndim != 2 or probs.shape[1] != 10:
        raise InferenceError(f"model returned shape {probs.shape}, expected (N, 10) class scores")
    if probs.size and (probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1, atol=1e-3)):
        probs = np.exp(probs - probs.max(axis=1, keepdims=True))
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)


def score(probs: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, log loss, 10×10 confusion (rows = true digit) and per-class report of predictions:
    how a run is scored on the test split (core.train.run) and on the drawn set (core.predict.drawn_set)."""
    pred = probs.argmax(axis=1)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (y, pred), 1)
    report = {}
    for c in range(10):
        tp, predicted, support = confusion[c, c], confusion[:, c].sum(), confusion[c, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[str(c)] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                          "support": int(support)}
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0))))
    return {"accuracy": float((pred == y).mean()), "loss": loss if math.isfinite(loss) else None,
            "n": int(len(y)), "confusion": confusion.tolist(), "report": report}


def predict_image(model: Any, image: np.ndarray | Image.Image) -> tuple[Prediction, Preprocessed]:
    """Preprocess one drawing or photo and classify it."""
    pre = preprocess(image)
    probs = predict_probabilities(model, pre.image[None])[0]
    label = int(np.argmax(probs))
    return Prediction(label, float(probs[label]), [float(p) for p in probs]), pre
