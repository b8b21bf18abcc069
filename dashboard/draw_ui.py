"""Pieces of the Draw page: the preprocessing strip, predictions of several runs side by side,
saving a labelled drawing, the drawn-set grid and evaluating runs on it.

The canvas itself (`streamlit_drawable_canvas.st_canvas`) is created in pages/draw.py: the
package registers its component when imported, so it is imported only there. Everything
here takes plain arrays, so the image helpers at the top are testable without Streamlit
running. Models come from `core.predict.model_for_run`, as `python -m core predict` loads
them, so the page and the CLI give the same answer for the same image.
"""
from __future__ import annotations

import io
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image, ImageDraw

from core.drawings import DrawingError, add_drawing, count_drawings, delete_drawing, evaluate_all, \
    evaluate_on_drawn, list_drawings
from core.inference import predict_probabilities
from core.predict import model_for_run
from core.preprocess import EmptyDrawing, InferenceError, Preprocessed, load_image_file, preprocess
from core.schema import StoreError
from core.store import RunStore
from dashboard.auth import can_edit, denied_message, require_editor
from dashboard.charts import confusion_heatmap, probability_bars

CANVAS_KEY = "draw_canvas"        # the canvas's widget key (a suffix is added after each clear)
CANVAS_SIDE = 280                 # canvas pixels: ten times MNIST's 28
STEP_SIDE = 112                   # each preprocessing step is shown in a box this wide
GRID_COLUMNS = 8
GRID_LIMIT = 160                  # drawings shown in the grid at once (newest first)
ORIGINAL_SIDE = 560               # an uploaded original is kept at most this large
FRAME = (38, 39, 48)              # the padding around a step that is not square
BOX_COLOUR = (255, 140, 0)        # the ink's bounding box on the input step
STEP_CAPTIONS = {"input": "your drawing (ink found)", "crop": "cropped to the ink",
                 "scaled": "fitted in 20×20", "centred": "centred in 28×28: what the model sees"}


# ------------------------------------------------------------------------------ images (pure)

def to_uint8(image: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] (or uint8 already) as uint8 0-255."""
    a = np.asarray(image)
    if a.dtype == np.uint8:
        return a
    return np.round(np.clip(a.astype(np.float32), 0, 1) * 255).astype(np.uint8)


def _scale(h: int, w: int, side: int) -> float:
    """Whole-pixel blocks when enlarging into the box (no blur), a fraction when shrinking."""
    longest = max(h, w)
    return float(max(1, side // longest)) if longest <= side else side / longest


def fit_box(image: np.ndarray, side: int = STEP_SIDE) -> np.ndarray:
    """An image in a side×side RGB box, aspect kept (nearest when enlarging, area-averaged when
    shrinking); the rest of the box is a dark frame."""
    im = Image.fromarray(to_uint8(image))
    k = _scale(im.height, im.width, side)
    size = (max(1, round(im.width * k)), max(1, round(im.height * k)))
    im = im.resize(size, Image.NEAREST if k >= 1 else Image.BOX)
    box = Image.new("RGB", (side, side), FRAME)
    box.paste(im.convert("RGB"), ((side - im.width) // 2, (side - im.height) // 2))
    return np.asarray(box)


def input_with_box(pre: Preprocessed, side: int = STEP_SIDE) -> np.ndarray:
    """The input's ink map shrunk into the box, with the ink's bounding box outlined."""
    ink = pre.steps["input"]
    h, w = ink.shape
    boxed = fit_box(ink, side)
    scale = _scale(h, w, side)
    off_y, off_x = (side - round(h * scale)) // 2, (side - round(w * scale)) // 2
    top, left, bottom, right = pre.bbox
    im = Image.fromarray(boxed)
    ImageDraw.Draw(im).rectangle([off_x + left * scale, off_y + top * scale,
                                  off_x + right * scale - 1, off_y + bottom * scale - 1], outline=BOX_COLOUR)
    return np.asarray(im)


def step_images(pre: Preprocessed, side: int = STEP_SIDE) -> list[tuple[str, np.ndarray]]:
    """(caption, RGB image) for each preprocessing step, in order: input → crop → 20×20 → 28×28."""
    out = [(STEP_CAPTIONS["input"], input_with_box(pre, side))]
    out += [(STEP_CAPTIONS[name], fit_box(pre.steps[name], side)) for name in ("crop", "scaled", "centred")]
    return out


def png_bytes(image: np.ndarray, max_side: int = ORIGINAL_SIDE) -> bytes:
    """An image array as PNG bytes, shrunk (aspect kept) so neither side exceeds max_side."""
    im = Image.fromarray(np.asarray(image))
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.BOX)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def ago(ts: float, now: float | None = None) -> str:
    """'just now', '5 min ago', '3 h ago', '2 d ago'."""
    seconds = max(0.0, (now or time.time()) - ts)
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


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


# ------------------------------------------------------------------------------ canvas and upload

def canvas_key() -> str:
    """The canvas's current key; `clear_canvas` changes it, which gives an empty canvas."""
    n = st.session_state.get("draw_canvas_n", 0)
    return CANVAS_KEY if n == 0 else f"{CANVAS_KEY}_{n}"


def clear_canvas() -> None:
    st.session_state["draw_canvas_n"] = st.session_state.get("draw_canvas_n", 0) + 1


def read_upload(upload) -> tuple[np.ndarray | None, bytes | None]:
    """An uploaded file as (image array, PNG original); a bad file shows one st.error and gives (None, None)."""
    if upload is None:
        return None, None
    try:
        image = load_image_file(upload)
    except InferenceError as exc:
        st.error(str(exc), icon=":material/broken_image:")  # the message names the file
        return None, None
    return image, png_bytes(image)


def preprocess_or_explain(image: np.ndarray | None, source: str) -> Preprocessed | None:
    """The preprocessed image, or None after a gentle st.info (nothing drawn, only a speck)."""
    if image is None:
        st.info("Draw a digit on the black canvas (or upload an image): the prediction appears when "
                "you lift the mouse." if source == "canvas" else "Upload a PNG or JPEG of one digit.",
                icon=":material/draw:")
        return None
    try:
        return preprocess(image)
    except EmptyDrawing as exc:
        st.info(f"Draw a digit… ({exc})" if source == "canvas" else f"No digit found in the image: {exc}.",
                icon=":material/draw:")
    except InferenceError as exc:
        st.error(f"Cannot read this image: {exc}")
    return None


# ------------------------------------------------------------------------------ rendering

def show_steps(pre: Preprocessed) -> None:
    """The steps from drawing to model input as small images, then the hints."""
    st.markdown("**What the model sees**")
    for col, (caption, image) in zip(st.columns(4), step_images(pre)):
        col.image(image, caption=caption, width=STEP_SIDE)
    for hint in pre.hints:
        st.warning(hint, icon=":material/lightbulb:")


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
                st.image(fit_box(d["image"], 84), width=84)
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
            messages.append(("success", f"{name}: **{ev.accuracy:.1%}** of {ev.n} drawings read correctly."))
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
    st.plotly_chart(confusion_heatmap(ev.confusion, title="Drawn set: true digit × prediction", height=420),
                    key=f"draw_confusion_{run_id}")


def leaderboard(runs: pd.DataFrame) -> pd.DataFrame:
    """Completed runs with their test and drawn-set accuracy, for a table."""
    cols = {"name": "run", "run_id": "id", "architecture": "architecture", "augment": "augment",
            "test_accuracy": "test accuracy", "drawn_accuracy": "drawn-set accuracy"}
    return runs[list(cols)].rename(columns=cols)

