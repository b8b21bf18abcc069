"""Reading a drawing with several runs on the Draw page: the completed runs to choose from,
their models (cached per model file version), one `RunPrediction` per run, the majority
label, and the cards that show the runs side by side.

Models come from `core.predict.model_for_run`, as `python -m core predict` loads them, so the
page and the CLI give the same answer for the same image.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from core.inference import predict_probabilities
from core.predict import model_for_run
from core.preprocess import InferenceError
from core.schema import StoreError
from core.store import RunStore
from dashboard.charts import probability_bars


# ------------------------------------------------------------------------------ runs and models

def completed_runs(store: RunStore) -> pd.DataFrame:
    """Completed runs, best test accuracy first (runs without one last)."""
    runs = store.list_runs(status="completed")
    return runs.sort_values("test_accuracy", ascending=False, na_position="last", kind="stable")


def run_caption(row: pd.Series) -> str:
    """'name · 98.9% test' (· drawn 90.0%)."""
    text = f"{row['name']} · {row['run_id']}"
    if pd.notna(row.get("test_accuracy")):
        text += f" · test {row['test_accuracy']:.1%}"
    if pd.notna(row.get("drawn_accuracy")):
        text += f" · drawn {row['drawn_accuracy']:.1%}"
    return text


def _model_mtime(store: RunStore, run_id: str) -> int:
    try:
        return (store.run_dir(run_id) / "model.keras").stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_resource(max_entries=8, show_spinner="Loading the model…")
def _cached_model(_store: RunStore, url: str, run_id: str, mtime_ns: int):
    """The run's model, cached per store, run id and model file version (errors are not cached)."""
    return model_for_run(_store, run_id)


@dataclass(frozen=True)
class RunPrediction:
    run_id: str
    name: str
    probabilities: list[float] | None = None
    error: str | None = None

    @property
    def label(self) -> int | None:
        return None if self.probabilities is None else int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float | None:
        return None if self.probabilities is None else float(max(self.probabilities))


def predict_runs(store: RunStore, runs: pd.DataFrame, run_ids: list[str], image28: np.ndarray) -> list[RunPrediction]:
    """Each chosen run's probabilities for one 28×28 image; a run whose model fails gets an error instead."""
    names = dict(zip(runs["run_id"], runs["name"]))
    out = []
    for run_id in run_ids:
        try:
            model = _cached_model(store, store.url, run_id, _model_mtime(store, run_id))
            probs = predict_probabilities(model, image28[None])[0]
            out.append(RunPrediction(run_id, names.get(run_id, run_id), [float(p) for p in probs]))
        except (InferenceError, StoreError) as exc:
            out.append(RunPrediction(run_id, names.get(run_id, run_id), error=str(exc)))
    return out


def majority(predictions: list[RunPrediction]) -> tuple[int | None, bool]:
    """The label most runs give (ties: the first run's) and whether every run agrees."""
    labels = [p.label for p in predictions if p.label is not None]
    if not labels:
        return None, True
    counts = Counter(labels)
    top = max(counts.values())
    label = next(lb for lb in labels if counts[lb] == top)
    return label, len(counts) == 1


# ------------------------------------------------------------------------------ rendering

def show_predictions(predictions: list[RunPrediction]) -> None:
    """One card per run (prediction, confidence, bars), side by side; disagreements stand out."""
    label, agree = majority(predictions)
    ok = [p for p in predictions if p.label is not None]
    if len(ok) > 1 and agree:
        st.success(f"All {len(ok)} runs read **{label}**.", icon=":material/check_circle:")
    elif len(ok) > 1:
        votes = Counter(p.label for p in ok)
        st.warning("The runs disagree: " + ", ".join(f"**{lb}** ({n} run{'s' if n > 1 else ''})"
                                                     for lb, n in votes.most_common()),
                   icon=":material/call_split:")
    per_row = min(len(predictions), 3)
    for start in range(0, len(predictions), per_row):
        for col, p in zip(st.columns(per_row), predictions[start:start + per_row]):
            with col.container(border=True):
                _prediction_card(p, odd=len(ok) > 1 and p.label is not None and p.label != label)


def _prediction_card(p: RunPrediction, odd: bool) -> None:
    st.markdown(f"**{p.name}**  \n`{p.run_id}`")
    if p.error:
        st.warning(f"No prediction from this run: {p.error}", icon=":material/warning:")
        return
    badge = " :orange-badge[disagrees]" if odd else ""
    sure = "" if p.confidence >= 0.5 else " · :orange[unsure]"
    st.markdown(f"### reads :{'orange' if odd else 'blue'}[{p.label}]{badge}")
    st.caption(f"confidence {p.confidence:.1%}{sure}")
    st.plotly_chart(probability_bars(p.probabilities, highlight=p.label, height=220),
                    key=f"draw_bars_{p.run_id}", config={"displayModeBar": False})
