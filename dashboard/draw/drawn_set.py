"""The team's drawn test set on the Draw page: saving a labelled drawing (form, callback and the
message it leaves), the grid of saved drawings, label counts, evaluating runs on the set
and the leaderboard of test against drawn-set accuracy.

Saving, deleting and evaluating are editor actions, checked in the callbacks themselves.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st

from core.predict.drawn_set import evaluate_all, evaluate_on_drawn, score_ensemble_on_drawn
from core.predict.preprocess import InferenceError, Preprocessed
from core.store.drawings import DrawingError, add_drawing, count_drawings, delete_drawing, list_drawings
from core.store.schema import StoreError
from core.store.facade import RunStore
from dashboard.auth import can_edit, denied_message, require_editor
from dashboard.charts import confusion_heatmap
from dashboard.format import percent
from dashboard import light_chart
from dashboard.draw import once
from dashboard.draw.ui import clear_canvas, fit_box, to_uint8

GRID_COLUMNS = 8
GRID_LIMIT = 160                  # drawings shown in the grid at once (newest first)


def ago(ts: float, now: float | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = max(0.0, (now or time.time()) - ts)
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


# ------------------------------------------------------------------------------ saving a drawing

def flash() -> None:
    """The message a save left for this rerun (shown once)."""
    message = st.session_state.pop("draw_flash", None)
    if message:
        kind, text = message
        getattr(st, kind)(text)


def _save(store: RunStore, image28: np.ndarray, original: bytes | None, source: str) -> None:
    """Form callback: save the drawing shown when the form was submitted, then reset the form."""
    if not can_edit():  # enforced in the action, not only by hiding the button
        st.session_state["draw_flash"] = ("error", "Your role is viewer: you cannot save drawings. "
                                                   "Ask an editor, or sign in as one.")
        return
    label, author = st.session_state.get("draw_label"), st.session_state.get("draw_author", "")
    if label is None:
        st.session_state["draw_flash"] = ("warning", "Pick the digit you drew before saving.")
        return
    try:
        drawing_id = add_drawing(store, label, to_uint8(image28), original, author, source)
    except (DrawingError, StoreError) as exc:
        st.session_state["draw_flash"] = ("error", f"Not saved: {exc}")
        return
    total = count_drawings(store)
    st.session_state["draw_flash"] = ("success", f"Saved drawing #{drawing_id} as **{label}**: the drawn set "
                                                 f"now holds {total} drawing{'s' if total != 1 else ''}.")
    st.session_state["draw_label"] = None
    st.session_state["draw_saved"] = True
    if source == "canvas":
        clear_canvas()


def save_form(store: RunStore, pre: Preprocessed, original: bytes | None, source: str) -> None:
    """"Save with label": the 28×28 image and the original go into the team's drawn set."""
    with st.form("draw_save_form", border=True):
        st.markdown("**Add it to the team's drawn test set**")
        left, right = st.columns([1, 2])
        left.selectbox("Label: the digit you drew", list(range(10)), index=None, placeholder="0-9",
                       key="draw_label")
        right.text_input("Your name (optional)", max_chars=100, key="draw_author")
        st.form_submit_button("Save with label", icon=":material/save:", on_click=_save,
                              args=(store, pre.image, original, source))


# ------------------------------------------------------------------------------ the drawn set

def drawn_grid(store: RunStore, label: int | None) -> None:
    """The saved drawings (newest first) as 28×28 tiles with label, author and a delete button."""
    df = list_drawings(store, label)
    if df.empty:
        st.info("No drawings yet" + (f" labelled {label}" if label is not None else "") +
                ": draw a digit on the Draw tab and save it with its label.")
        return
    if len(df) > GRID_LIMIT:
        st.caption(f"Showing the newest {GRID_LIMIT} of {len(df)}.")
        df = df.head(GRID_LIMIT)
    now = time.time()
    rows = [df.iloc[i:i + GRID_COLUMNS] for i in range(0, len(df), GRID_COLUMNS)]
    for chunk in rows:
        for col, (_, d) in zip(st.columns(GRID_COLUMNS), chunk.iterrows()):
            with col:
                tile = once.once(("tile", store.url, int(d["id"]), d["created_at"]),  # encoded once, not per rerun
                                 lambda: once.png(fit_box(d["image"], 84)))
                st.image(tile, width=84, output_format="PNG")
                st.caption(f"**{d['label']}** · {d['author'] or 'anonymous'} · {ago(d['created_at'], now)}")
                if st.button("Delete", key=f"draw_del_{d['id']}", icon=":material/delete:",
                             help=f"Delete drawing #{d['id']} from the drawn set"):
                    if require_editor("delete drawings"):
                        try:
                            delete_drawing(store, int(d["id"]))
                        except DrawingError as exc:
                            st.warning(str(exc))
                        st.rerun()


def label_counts(store: RunStore) -> pd.Series:
    """How many drawings each digit has (0-9, zeros included)."""
    df = list_drawings(store)
    return df["label"].value_counts().reindex(range(10), fill_value=0).rename("drawings")


def _evaluate(store: RunStore, run_id: str | None, name: str, key: str) -> None:
    """Button callback: evaluate one run (or, with run_id None, every completed run) on the drawn set.

    Runs before the page is drawn, so every table and chart below shows the new scores; the
    outcome is kept for `evaluate_buttons` to show.
    """
    if not can_edit():  # it stores an evaluation and the runs' drawn-set accuracy: editors only
        st.session_state[f"{key}_result"] = [("error", denied_message("evaluate runs on the drawn set"))]
        return
    messages = []
    try:
        if run_id is not None:
            with st.spinner(f"Evaluating {name} on the drawn set…"):
                ev = evaluate_on_drawn(store, run_id)
            messages.append(("success", f"{name}: **{ev.accuracy:.2%}** of {ev.n} drawings read correctly."))
        else:
            with st.spinner("Evaluating every completed run on the drawn set…"):
                scores = evaluate_all(store)
            done = [s for s in scores if s.error is None]
            messages.append(("success", f"Evaluated {len(done)} run{'s' if len(done) != 1 else ''} on "
                                        f"{count_drawings(store)} drawings."))
            messages += [("warning", f"{s.name}: {s.error}") for s in scores if s.error]
    except (DrawingError, InferenceError, StoreError) as exc:
        messages.append(("error", str(exc)))
    st.session_state[f"{key}_result"] = messages


def evaluate_buttons(store: RunStore, runs: pd.DataFrame, run_id: str, key: str) -> None:
    """'Evaluate <run> on the drawn set' and 'Evaluate all completed runs', with their outcome."""
    name = runs.loc[runs["run_id"] == run_id, "name"].iloc[0] if run_id in set(runs["run_id"]) else run_id
    left, right = st.columns(2)
    left.button(f"Evaluate {name} on the drawn set", key=f"{key}_one", icon=":material/fact_check:",
                on_click=_evaluate, args=(store, run_id, name, key))
    right.button("Evaluate all completed runs", key=f"{key}_all", icon=":material/checklist:",
                 on_click=_evaluate, args=(store, None, "", key))
    for kind, text in st.session_state.pop(f"{key}_result", []):
        getattr(st, kind)(text)


def evaluation_panel(store: RunStore, runs: pd.DataFrame, run_id: str) -> None:
    """A run's stored drawn-set evaluation (accuracy next to test accuracy, confusion matrix)."""
    ev = store.evaluation(run_id, "drawn")
    if ev is None:
        st.info("This run has not been evaluated on the drawn set yet.")
        return
    row = runs.loc[runs["run_id"] == run_id].iloc[0]
    total = count_drawings(store)
    a, b, c = st.columns(3)
    a.metric("Drawn-set accuracy", f"{ev.accuracy:.1%}")
    b.metric("MNIST test accuracy", "–" if pd.isna(row["test_accuracy"]) else f"{row['test_accuracy']:.1%}")
    c.metric("Drawings evaluated", ev.n)
    if total != ev.n:
        st.caption(f"The drawn set has changed since ({total} drawings now): evaluate again to update.")
    light_chart.plotly_chart(confusion_heatmap(ev.confusion, title="Drawn set: true digit × prediction", height=420),
                             key=f"draw_confusion_{run_id}")


def ensemble_scorer(store: RunStore, runs: pd.DataFrame, captions: dict, key: str) -> None:
    """Score an ensemble of chosen runs (averaged probabilities) on the drawn set, beside each run's own.

    Read-only (an ensemble is not a run, so nothing is stored): open to viewers too.
    """
    st.subheader("Score an ensemble on the drawn set")
    chosen = st.multiselect("Runs to combine (their probabilities are averaged)", list(runs["run_id"]),
                            key=f"{key}_runs", format_func=captions.get)
    if not st.button("Score the ensemble", key=f"{key}_go", icon=":material/join:", disabled=not chosen):
        return
    try:
        with st.spinner(f"Scoring the ensemble of {len(chosen)} runs…"):
            result = score_ensemble_on_drawn(store, chosen)
    except (DrawingError, InferenceError, StoreError) as exc:
        st.error(str(exc))
        return
    names = dict(zip(runs["run_id"], runs["name"]))
    st.success(f"The ensemble of {len(chosen)} runs reads **{result['accuracy']:.2%}** of {result['n']} drawings.")
    st.dataframe(pd.DataFrame([{"run": names.get(r, r), "id": r, "drawn-set accuracy": acc * 100}
                               for r, acc in result["per_run"].items()] +
                              [{"run": "★ ensemble", "id": "", "drawn-set accuracy": result["accuracy"] * 100}]),
                 hide_index=True, column_config={**ACCURACY_COLUMNS, "run": NAME_COLUMN})


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs with their test and drawn-set accuracy (in percent), for a table."""
    cols = {"name": "run", "run_id": "id", "architecture": "architecture", "augment": "augment",
            "test_accuracy": "test accuracy", "drawn_accuracy": "drawn-set accuracy"}
    table = runs[list(cols)].rename(columns=cols)
    return table.assign(**{c: percent(table[c]) for c in ("test accuracy", "drawn-set accuracy")})


# How the Draw page's tables show accuracies (two decimals, as every page does) and names (in full).
ACCURACY_COLUMNS = {c: st.column_config.NumberColumn(format="%.2f%%") for c in ("test accuracy", "drawn-set accuracy")}
NAME_COLUMN = st.column_config.TextColumn("run", width="large")
