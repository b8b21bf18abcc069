"""Reading a drawing with several runs on the Draw page: each run's caption, one `RunPrediction`
per run (its model from dashboard.model_cache, cached per model file version), the majority
label, their ensemble, and how they are shown: one run as a card with its probability bars;
two to ten runs as one compact table (a row per run, a column per digit, shaded by
probability, disagreements marked), with the ensemble's row on top when runs are combined.

Models come from `core.predict.ensemble.model_for_run`, and the ensemble from `core.predict.ensemble.combine`,
as `python -m core predict --run A --run B` computes them, so the page and the CLI give the
same answer for the same image.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from core.predict.inference import predict_probabilities
from core.predict.ensemble import combine
from core.predict.preprocess import InferenceError
from core.store.schema import StoreError
from core.store.facade import RunStore
from dashboard.charts import probability_bars
from dashboard import light_chart
from dashboard.draw import once
from dashboard.model_cache import cached_model, model_version


# ------------------------------------------------------------------------------ runs

def run_caption(row: pd.Series) -> str:
    """'name · id · test 98.90%' (· drawn 90.00%): accuracies with two decimals, as on every page."""
    text = f"{row['name']} · {row['run_id']}"
    if pd.notna(row.get("test_accuracy")):
        text += f" · test {row['test_accuracy']:.2%}"
    if pd.notna(row.get("drawn_accuracy")):
        text += f" · drawn {row['drawn_accuracy']:.2%}"
    return text


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
    """Each chosen run's probabilities for one 28×28 image; a run whose model fails gets an error instead.

    Each run's model reads a drawing once (dashboard/draw/once.py), not on every rerun."""
    names = dict(zip(runs["run_id"], runs["name"]))
    drawing = once.digest(image28)
    out = []
    for run_id in run_ids:
        try:
            probs = once.once(("predict", store.url, drawing, run_id, model_version(store, run_id)),
                              lambda: [float(p) for p in predict_probabilities(cached_model(store, run_id),
                                                                               image28[None])[0]])
            out.append(RunPrediction(run_id, names.get(run_id, run_id), list(probs)))
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


def ensemble(predictions: list[RunPrediction]) -> RunPrediction | None:
    """The runs' averaged probabilities (runs without a prediction left out); None under two runs."""
    ok = [p for p in predictions if p.probabilities is not None]
    if len(ok) < 2:
        return None
    return RunPrediction("+".join(p.run_id for p in ok), f"Ensemble of {len(ok)} runs",
                         [float(v) for v in combine([p.probabilities for p in ok])])


ENSEMBLE_ROW = "★ combined"
DIGIT_COLUMNS = [str(d) for d in range(10)]
SHADE = (31, 119, 180)            # probability cells: this blue, as opaque as the probability
ODD = "background-color: #ffd8a8; color: #7a3e00"   # a run that disagrees with the majority


def probability_table(predictions: list[RunPrediction], combined: RunPrediction | None = None) -> pd.DataFrame:
    """A row per run (the ensemble first when given): run, id, reads, confidence, then P(0)…P(9).

    A run without a prediction keeps its row, with the reason in `reads` and no probabilities.
    """
    rows = []
    for p in ([combined] if combined else []) + predictions:
        row = {"run": ENSEMBLE_ROW if p is combined else p.name, "id": "" if p is combined else p.run_id,
               "reads": "—" if p.label is None else str(p.label),
               "confidence": None if p.confidence is None else p.confidence}
        row.update({d: (None if p.probabilities is None else p.probabilities[i]) for i, d in enumerate(DIGIT_COLUMNS)})
        if p.error:
            row["reads"] = "error"
        rows.append(row)
    return pd.DataFrame(rows, columns=["run", "id", "reads", "confidence", *DIGIT_COLUMNS])


def _cell(v) -> str:
    if v is None or pd.isna(v):
        return ""
    colour = "white" if v >= 0.5 else "#31333f"  # the grid ignores "inherit": small values vanished
    return f"background-color: rgba({SHADE[0]}, {SHADE[1]}, {SHADE[2]}, {0.08 + 0.92 * float(v):.2f}); color: {colour}"


def styled_table(table: pd.DataFrame, majority_label: int | None):
    """The table with each probability shaded, disagreeing runs' answers marked, percentages as text."""
    def reads_style(col: pd.Series) -> list[str]:
        return [ODD if majority_label is not None and r not in ("—", "error", str(majority_label))
                and run != ENSEMBLE_ROW else "" for r, run in zip(col, table["run"])]

    def pct(v) -> str:
        if v is None or pd.isna(v):
            return ""
        return "·" if v < 0.005 else f"{v:.0%}"

    return (table.style.map(_cell, subset=DIGIT_COLUMNS).apply(reads_style, subset=["reads"])
            .format(pct, subset=[*DIGIT_COLUMNS, "confidence"]))


# ------------------------------------------------------------------------------ rendering

def show_predictions(predictions: list[RunPrediction], combine_runs: bool = False) -> RunPrediction | None:
    """One run: its card. Several: the agreement line, then one table of every run's probabilities
    (the ensemble's row first when `combine_runs`); disagreements stand out. Returns the ensemble."""
    label, agree = majority(predictions)
    ok = [p for p in predictions if p.label is not None]
    combined = ensemble(predictions) if combine_runs else None
    if len(predictions) == 1:
        with st.container(border=True):
            _prediction_card(predictions[0], odd=False)
        return None
    if combined is not None:
        st.markdown(f"### combined, the {len(ok)} runs read :green[{combined.label}]")
        st.caption(f"averaged probabilities: {combined.confidence:.1%} for {combined.label} "
                   "(as `.venv/bin/python -m core predict --run A --run B …` combines them)")
    if len(ok) > 1 and agree:
        st.success(f"All {len(ok)} runs read **{label}**.", icon=":material/check_circle:")
    elif len(ok) > 1:
        votes = Counter(p.label for p in ok)
        st.warning("The runs disagree: " + ", ".join(f"**{lb}** ({n} run{'s' if n > 1 else ''})"
                                                     for lb, n in votes.most_common()) +
                   " (marked in orange below)", icon=":material/call_split:")
    table = probability_table(predictions, combined)
    digit = st.column_config.TextColumn(width=38)
    # run, answer and ten digits fit the page's right-hand column at 1440 px (ids are in the picker above)
    st.dataframe(styled_table(table, label if len(ok) > 1 else None), hide_index=True,
                 column_order=["run", "reads", *DIGIT_COLUMNS],
                 column_config={"run": st.column_config.TextColumn("run", width=150),
                                "reads": st.column_config.TextColumn("reads", width=48),
                                **{d: digit for d in DIGIT_COLUMNS}})
    for p in predictions:
        if p.error:
            st.warning(f"No prediction from {p.name} (`{p.run_id}`): {p.error}", icon=":material/warning:")
    return combined


def _prediction_card(p: RunPrediction, odd: bool) -> None:
    st.markdown(f"**{p.name}**  \n`{p.run_id}`")
    if p.error:
        st.warning(f"No prediction from this run: {p.error}", icon=":material/warning:")
        return
    badge = " :orange-badge[disagrees]" if odd else ""
    sure = "" if p.confidence >= 0.5 else " · :orange[unsure]"
    st.markdown(f"### reads :{'orange' if odd else 'blue'}[{p.label}]{badge}")
    st.caption(f"confidence {p.confidence:.1%}{sure}")
    # Built once per answer (a figure is slow to build), not on every rerun; drawing it does not change it.
    bars = once.once(("bars", tuple(p.probabilities)), lambda: probability_bars(p.probabilities, highlight=p.label,
                                                                                height=220))
    light_chart.plotly_chart(bars, key=f"draw_bars_{p.run_id}", config={"displayModeBar": False})
