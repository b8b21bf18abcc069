"""Scoring runs on the team-drawn test set (the drawings themselves are kept by `core.store.drawings`).

`evaluate_on_drawn` scores a completed run on every stored 28×28 image with the same
`predict_probabilities` the Draw page and `python -m core predict` use, and records the result
as the run's "drawn" evaluation and its `drawn_accuracy`; `score_ensemble_on_drawn` scores an
ensemble without storing anything; `evaluate_all` scores every completed run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from core.store.drawings import DrawingError, count_drawings, drawn_arrays
from core.store.facade import RunStore
from core.store.schema import Evaluation


@dataclass(frozen=True)
class RunScore:
    """One run's result in `evaluate_all`: its drawn-set accuracy, or why it has none."""
    run_id: str
    name: str
    accuracy: float | None
    error: str | None = None


def evaluate_on_drawn(store: RunStore, run_id: str) -> Evaluation:
    """Score a completed run on every drawing; saved as its "drawn" evaluation and drawn_accuracy.

    Raises DrawingError when there are no drawings yet, ModelUnavailable when the run has no
    usable model, RunNotFound for an unknown run.
    """
    from core.predict.inference import predict_probabilities, score
    from core.predict.ensemble import model_for_run

    x, y = drawn_arrays(store)
    if not len(y):
        raise DrawingError("the drawn set is empty: save a few labelled drawings first")
    model = model_for_run(store, run_id)
    result = score(predict_probabilities(model, x), y)
    store.save_evaluation(run_id, "drawn", result["accuracy"], result["loss"], result["n"],
                          result["confusion"], result["report"])
    store.update_run(run_id, drawn_accuracy=result["accuracy"])
    return store.evaluation(run_id, "drawn")


def score_ensemble_on_drawn(store: RunStore, run_ids: list[str]) -> dict:
    """Score the ensemble of `run_ids` (averaged probabilities, `core.predict.ensemble`) on every drawing.

    Returns `core.predict.inference.score`'s dict plus `runs` (the combined ids) and `per_run` (each
    run's own accuracy on the same drawings). Nothing is stored: an ensemble is not a run.
    Raises DrawingError when there are no drawings or no runs, ModelUnavailable for a run
    without a usable model.
    """
    from core.predict.inference import predict_probabilities, score
    from core.predict.ensemble import combine, model_for_run

    ids = list(dict.fromkeys(run_ids))
    if not ids:
        raise DrawingError("choose at least one run to combine")
    x, y = drawn_arrays(store)
    if not len(y):
        raise DrawingError("the drawn set is empty: save a few labelled drawings first")
    each = [predict_probabilities(model_for_run(store, r), x) for r in ids]
    result = score(combine(each), y)
    result["runs"] = ids
    result["per_run"] = {r: float((p.argmax(axis=1) == y).mean()) for r, p in zip(ids, each)}
    return result


def evaluate_all(store: RunStore, progress: Callable[[int, int, str], None] | None = None) -> list[RunScore]:
    """Evaluate every completed run on the drawn set; a run whose model is unusable is reported, not fatal."""
    from core.predict.preprocess import InferenceError

    if not count_drawings(store):
        raise DrawingError("the drawn set is empty: save a few labelled drawings first")
    runs = store.list_runs(status="completed")
    scores = []
    for i, (run_id, name) in enumerate(zip(runs["run_id"], runs["name"])):
        if progress:
            progress(i, len(runs), name)
        try:
            scores.append(RunScore(run_id, name, evaluate_on_drawn(store, run_id).accuracy))
        except InferenceError as exc:
            scores.append(RunScore(run_id, name, None, str(exc)))
    return scores
