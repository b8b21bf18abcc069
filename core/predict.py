"""Predictions for a run: its cached model, applied to drawings or image files.

Shared by `python -m core predict` and the Draw page, so both give the same answer for the
same image.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from core.inference import ModelUnavailable, load_model, predict_image
from core.preprocess import InferenceError, load_image_file
from core.store import RunStore

# Where Keras 3's .keras format keeps the first Conv2D layer's kernel: its weights file names
# layers by class, in model order (conv2d, conv2d_1, ...), whatever the layers were called.
FIRST_CONV_KERNEL = "layers/conv2d/vars/0"


def model_for_run(store: RunStore, run_id: str):
    """The run's Keras model (loaded once per file version, safe_mode=True)."""
    run = store.get_run(run_id)
    if run.status != "completed":
        raise ModelUnavailable(f"run {run_id} is {run.status}, not completed: it has no model to predict with")
    path = store.run_dir(run_id) / "model.keras"  # from the id only, never from stored text
    return load_model(path, run_id=run_id)  # its errors name the run


def predict_files(store: RunStore, run_id: str, paths: list[str]) -> tuple[list[dict], int]:
    """One result dict per file (label, confidence, probabilities, or error); and the error count."""
    model = model_for_run(store, run_id)
    results, failures = [], 0
    for path in paths:
        try:
            prediction, _ = predict_image(model, load_image_file(path))
            results.append({"file": str(path), "label": prediction.label, "confidence": prediction.confidence,
                            "probabilities": prediction.probabilities})
        except InferenceError as exc:
            failures += 1
            results.append({"file": str(path), "error": str(exc)})
    return results, failures


def first_conv_kernels(store: RunStore, run_id: str) -> np.ndarray | None:
    """The first Conv2D layer's kernels as (filters, k, k), averaged over input channels; None
    when the model has no Conv2D layer.

    Read straight from the .keras file (a zip with config.json and model.weights.h5) with
    h5py, so showing them never imports TensorFlow. Raises FileNotFoundError for a missing
    file, InferenceError for a file that is not a readable Keras model, and LookupError when
    the file is readable but laid out differently (then load the model with Keras instead).
    """
    import h5py

    path = store.run_dir(run_id) / "model.keras"  # from the id only, never from stored text
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights = archive.read("model.weights.h5")
        with h5py.File(io.BytesIO(weights), "r") as h5:
            layers = config.get("config", {}).get("layers", [])
            if not any(isinstance(layer, dict) and layer.get("class_name") == "Conv2D" for layer in layers):
                return None
            kernel = np.asarray(h5[FIRST_CONV_KERNEL], dtype=float)  # (k, k, in, filters)
    except FileNotFoundError:
        raise
    except KeyError as exc:
        raise LookupError(f"no {FIRST_CONV_KERNEL} in the model file of run {run_id}") from exc
    except (zipfile.BadZipFile, OSError, ValueError, AttributeError) as exc:
        raise InferenceError(f"the model file of run {run_id} is not a readable Keras model "
                             f"({type(exc).__name__}); train the run again") from exc
    if kernel.ndim != 4:
        raise LookupError(f"the first Conv2D kernel of run {run_id} has shape {kernel.shape}, not (k, k, in, filters)")
    return kernel.mean(axis=2).transpose(2, 0, 1)
