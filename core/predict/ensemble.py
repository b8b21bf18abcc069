"""Predictions for a run, or an ensemble of runs: cached models applied to drawings or image files.

Shared by `python -m core predict` and the Draw page, so both give the same answer for the
same image. An ensemble averages its runs' class probabilities (each run counts once): an
ensemble of one run is exactly that run.
"""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from core.predict.inference import ModelUnavailable, load_model, predict_probabilities
from core.predict.preprocess import InferenceError, load_image_file, preprocess
from core.store.schema import FINISHED, MODEL_FILE, StoreError
from core.store.facade import RunStore

# Where Keras 3's .keras format keeps the first Conv2D layer's kernel: its weights file names
# layers by class, in model order (conv2d, conv2d_1, ...), whatever the layers were called.
FIRST_CONV_KERNEL = "layers/conv2d/vars/0"


def model_file(store: RunStore, run_id: str):
    """The run's local model.keras: fetched from the store (hash-checked cache) when it holds the
    model, else the run's artifacts folder (runs trained before models moved into the store)."""
    try:
        if store.artifact(run_id, MODEL_FILE) is not None:
            return store.artifact_file(run_id, MODEL_FILE)
    except StoreError as exc:
        raise ModelUnavailable(f"the model of run {run_id} cannot be read from the store: {exc}") from None
    return store.run_dir(run_id) / MODEL_FILE  # from the id only, never from stored text


def model_for_run(store: RunStore, run_id: str):
    """The run's Keras model (loaded once per file version, safe_mode=True)."""
    run = store.get_run(run_id)
    if run.status not in FINISHED:
        raise ModelUnavailable(f"run {run_id} is {run.status}, not completed: it has no model to predict with")
    return load_model(model_file(store, run_id), run_id=run_id)  # its errors name the run


def combine(probabilities: list) -> np.ndarray:
    """The ensemble's probabilities: the mean of its runs' (each (N, 10) or (10,)), renormalised."""
    if not len(probabilities):
        raise InferenceError("an ensemble needs at least one run")
    mean = np.mean(np.stack([np.asarray(p, dtype=np.float64) for p in probabilities]), axis=0)
    return mean / np.maximum(mean.sum(axis=-1, keepdims=True), 1e-12)


def ensemble_probabilities(store: RunStore, run_ids: list[str], images) -> np.ndarray:
    """Averaged class probabilities (N, 10) of the runs' models on 28×28 images (N, 28, 28)."""
    return combine([predict_probabilities(model_for_run(store, r), images) for r in dict.fromkeys(run_ids)])


def _result(path: str, probs: np.ndarray, extra: dict | None = None) -> dict:
    label = int(np.argmax(probs))
    return {"file": str(path), "label": label, "confidence": float(probs[label]),
            "probabilities": [float(p) for p in probs], **(extra or {})}


def predict_files(store: RunStore, run_ids: str | list[str], paths: list[str]) -> tuple[list[dict], int]:
    """One result dict per file (label, confidence, probabilities, or error); and the error count.

    Each result lists `runs`, the run ids combined (in order). With several runs the label and
    probabilities are the ensemble's (averaged probabilities), and `per_run` holds each run's own.
    """
    ids = list(dict.fromkeys([run_ids] if isinstance(run_ids, str) else run_ids))
    models = [model_for_run(store, r) for r in ids]
    results, failures = [], 0
    for path in paths:
        try:
            image = preprocess(load_image_file(path)).image[None]
            each = [predict_probabilities(m, image)[0] for m in models]
        except InferenceError as exc:
            failures += 1
            results.append({"file": str(path), "error": str(exc)})
            continue
        if len(ids) == 1:
            results.append(_result(path, each[0], {"runs": ids}))
        else:
            per_run = [{"run_id": r, "label": int(np.argmax(p)), "probabilities": [float(v) for v in p]}
                       for r, p in zip(ids, each)]
            results.append(_result(path, combine(each), {"runs": ids, "per_run": per_run}))
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

    path = model_file(store, run_id)
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
