"""The Draw page reads a drawing once per run: a rerun that keeps the drawing (another widget, a
second visitor drawing the same digit) runs neither the model, nor the explanation, nor the
nearest-digit search, nor the PNG encoding again; a new drawing does."""
from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from core.predict import explain as core_explain
from dashboard.draw import explain as draw_explain, once, predictions as draw_predictions, ui as draw_ui

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "draw.py")


def canvas_value(strokes) -> dict:
    im = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    for stroke in strokes:
        ImageDraw.Draw(im).line(stroke, fill=(255, 255, 255, 255), width=20)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": data}, "backgroundFit": None}


def test_a_drawing_is_computed_once_however_often_the_page_reruns(populated_env, monkeypatch):
    once.clear()
    calls = Counter()

    def counting(owner, name, label):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            calls[label] += 1
            return original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)

    counting(draw_predictions, "predict_probabilities", "predict")
    counting(core_explain.Explainer, "explain", "explain")
    counting(draw_explain, "nearest", "nearest")
    counting(draw_ui, "preprocess", "preprocess")
    counting(once, "png", "png")

    seven = canvas_value([((90, 60), (190, 60)), ((190, 60), (120, 230))])
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state[draw_ui.CANVAS_KEY] = seven
    at.run()
    assert not at.exception and not at.error
    first = Counter(calls)
    assert first["predict"] == first["explain"] == first["nearest"] == first["preprocess"] == 1
    assert first["png"] >= 4 + 3  # the four steps, the three attribution panels, and more

    at.slider(key="draw_brush").set_value(12).run()  # a rerun that keeps the drawing
    second = AppTest.from_file(PAGE, default_timeout=90)  # another visitor draws the same digit
    second.session_state[draw_ui.CANVAS_KEY] = seven
    second.run()
    assert not at.exception and not second.exception
    assert calls == first  # nothing computed or encoded again
    images = [img.url for e in second.main if type(e).__name__ == "Image" for img in e.proto.imgs]
    assert len(images) >= 7 and all(images)

    at.session_state[draw_ui.CANVAS_KEY] = canvas_value([((140, 50), (140, 230))])  # a new drawing: a 1
    at.run()
    assert not at.exception
    assert calls["predict"] == calls["explain"] == calls["nearest"] == calls["preprocess"] == 2


def test_digest_names_pixels_shape_and_type():
    a = np.zeros((28, 28), np.float32)
    b = a.copy()
    b[3, 4] = 0.5
    assert once.digest(a) == once.digest(a.copy()) != once.digest(b)
    assert once.digest(a) != once.digest(a.astype(np.float64)) != once.digest(a.reshape(784))
