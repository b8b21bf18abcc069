"""Predictions for a run: its cached model, applied to drawings or image files.

Shared by `python -m core predict` and the Draw page, so both give the same answer for the
same image.
"""
from __future__ import annotations


from core.inference import ModelUnavailable, InferenceError, load_image_file, load_model, predict_image
from core.store import RunStore


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
