"""The Draw page's input side: the canvas key, reading an upload, preprocessing with a gentle
message, and the strip of images showing each preprocessing step.

The canvas itself (`streamlit_drawable_canvas.st_canvas`) is created in pages/draw.py: the
package registers its component when imported, so it is imported only there. The image helpers
at the top take plain arrays, so they are testable without Streamlit running. Predictions live
in dashboard/draw_predictions.py, the team's drawn set in dashboard/drawn_set.py.
"""
from __future__ import annotations

import hashlib
import io

import numpy as np
import streamlit as st
from PIL import Image, ImageDraw

from core.predict.preprocess import EmptyDrawing, InferenceError, Preprocessed, load_image_file, preprocess
from dashboard.draw import once as per_drawing, pictures

CANVAS_KEY = "draw_canvas"        # the canvas's widget key (a suffix is added after each clear)
CANVAS_SIDE = 280                 # canvas pixels: ten times MNIST's 28
STEP_SIDE = 112                   # each preprocessing step is shown in a box this wide
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


def step_pictures(pre: Preprocessed, side: int = STEP_SIDE) -> list[pictures.Picture]:
    """Each preprocessing step as it is shown, in order: input → crop → 20×20 → 28×28, each in a
    side×side box. A step that is enlarged by whole pixels (the 20×20 and the 28×28, a small
    crop) is encoded at its own size and enlarged by the browser; the others as fit_box draws them."""
    out = [pictures.picture(input_with_box(pre, side), STEP_CAPTIONS["input"])]
    for name in ("crop", "scaled", "centred"):
        image = to_uint8(pre.steps[name])
        h, w = image.shape[:2]
        if max(h, w) <= side:
            out.append(pictures.picture(image, STEP_CAPTIONS[name], scale=int(_scale(h, w, side)), box=side))
        else:
            out.append(pictures.picture(fit_box(image, side), STEP_CAPTIONS[name]))
    return out


def png_bytes(image: np.ndarray, max_side: int = ORIGINAL_SIDE) -> bytes:
    """An image array as PNG bytes, shrunk (aspect kept) so neither side exceeds max_side."""
    im = Image.fromarray(np.asarray(image))
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.BOX)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------------------ canvas and upload

def canvas_key() -> str:
    """The canvas's current key; `clear_canvas` changes it, which gives an empty canvas."""
    n = st.session_state.get("draw_canvas_n", 0)
    return CANVAS_KEY if n == 0 else f"{CANVAS_KEY}_{n}"


def clear_canvas() -> None:
    st.session_state["draw_canvas_n"] = st.session_state.get("draw_canvas_n", 0) + 1


# The uploader takes any file up to this many MB, so that a wrong type or a too-large image reaches
# the page and is explained in one line (load_image_file's limits), not as a tooltip on a red row.
UPLOAD_LIMIT_MB = 50


def drawing_name(original: bytes | None) -> str | None:
    """A short name for a drawing or upload, from its file's bytes (a few kB: cheaper to hash than
    the decoded pixels): the key of what is computed once per drawing."""
    return None if original is None else hashlib.blake2b(original, digest_size=12).hexdigest()


def canvas_image(png: bytes | None) -> np.ndarray | None:
    """The canvas's drawing (the PNG it sends) as an array, decoded once per drawing, not per rerun."""
    if png is None:
        return None
    return per_drawing.once(("canvas", drawing_name(png)), lambda: np.asarray(Image.open(io.BytesIO(png))))


def read_upload(upload) -> tuple[np.ndarray | None, bytes | None, str | None]:
    """An uploaded file as (image array, PNG original, None), or (None, None, why) for a bad file:
    the page shows `why` where the answer would be (the message names the file)."""
    if upload is None:
        return None, None, None
    try:
        image = load_image_file(upload)
    except InferenceError as exc:
        return None, None, str(exc)
    return image, png_bytes(image), None


def preprocess_or_explain(image: np.ndarray | None, source: str, problem: str | None = None,
                          name: str | None = None) -> Preprocessed | None:
    """The preprocessed image, or None after a gentle st.info (nothing drawn, only a speck) or, for a
    bad upload, one st.error saying what is wrong with it. `name` (drawing_name of the file the
    image came from) keys the once-per-drawing cache; without it, the pixels do."""
    if problem:
        st.error(problem, icon=":material/broken_image:")
        return None
    if image is None:
        st.info("Draw a digit on the black canvas (or upload an image): the prediction appears when "
                "you lift the mouse." if source == "canvas" else "Upload a PNG or JPEG of one digit.",
                icon=":material/draw:")
        return None
    try:
        return once("preprocess", image, lambda: preprocess(image), name)
    except EmptyDrawing as exc:
        st.info(f"Draw a digit… ({exc})" if source == "canvas" else f"No digit found in the image: {exc}.",
                icon=":material/draw:")
    except InferenceError as exc:
        st.error(f"Cannot read this image: {exc}")
    return None


# ------------------------------------------------------------------------------ rendering

def once(what: str, image: np.ndarray, compute, name: str | None = None):
    """`compute()` once per drawing (named by `name`, else by `image`'s pixels), kept for later reruns."""
    return per_drawing.once((what, name or per_drawing.digest(image)), compute)


def show_steps(pre: Preprocessed, name: str | None = None) -> None:
    """The steps from drawing to model input as small images, then the hints."""
    st.markdown("**What the model sees**")
    st.html(once("steps", pre.steps["input"], lambda: pictures.row(step_pictures(pre), gap=12), name))
    for hint in pre.hints:
        st.warning(hint, icon=":material/lightbulb:")
