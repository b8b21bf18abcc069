"""The Draw page reads a drawing once per run: a rerun that keeps the drawing (another widget, a
second visitor drawing the same digit) runs neither the model, nor the explanation, nor the
nearest-digit search, nor the PNG encoding again; a new drawing does. And a stroke runs only the
Draw tab, never the Drawn set's."""
from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from core.predict import explain as core_explain
from core.store import drawings as core_drawings
from dashboard.draw import drawn_set as draw_drawn_set, explain as draw_explain, once
from dashboard.draw import predictions as draw_predictions, ui as draw_ui

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
    images = [n for e in second.main if type(e).__name__ == "Html" for n in [e.proto.body.count('src="data:image/png')]]
    assert sum(images) >= 4 + 3 + 8  # the steps, the attributions and the nearest digits, from the kept PNGs

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


def test_only_the_open_tab_runs(populated_env, monkeypatch):
    """A stroke reruns the Draw tab alone: the Drawn set (its count, chart, grid and leaderboard) is
    neither read nor drawn; opening the Drawn set runs no model."""
    calls = Counter()
    for owner, name in ((draw_drawn_set, "drawn_grid"), (draw_drawn_set, "leaderboard"),
                        (core_drawings, "count_drawings"), (draw_predictions, "predict_probabilities")):
        original = getattr(owner, name)

        def wrapper(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)
        monkeypatch.setattr(owner, name, wrapper)
    once.clear()
    at = AppTest.from_file(PAGE, default_timeout=90)
    at.session_state[draw_ui.CANVAS_KEY] = canvas_value([((140, 50), (140, 230))])
    at.run()
    at.session_state[draw_ui.CANVAS_KEY] = canvas_value([((90, 60), (190, 60)), ((190, 60), (120, 230))])
    at.run()  # a second stroke
    assert not at.exception and calls["predict_probabilities"] == 2
    assert calls["drawn_grid"] == calls["leaderboard"] == calls["count_drawings"] == 0

    at.session_state["draw_tab"] = "Drawn set"
    at.run()
    assert not at.exception and calls["drawn_grid"] == 1 and calls["count_drawings"] >= 1
    assert calls["predict_probabilities"] == 2  # no model ran
    assert not any("What the model sees" in m.value for m in at.markdown)


def test_simultaneous_drawings_take_turns_and_one_drawing_is_computed_once():
    """Work for different drawings never overlaps (served one after another, so the first answer
    comes after one drawing's work, not after all of them); the same drawing asked for by two
    visitors at once is computed once."""
    import threading
    import time

    once.clear()
    spans, lock = [], threading.Lock()

    def work(tag):
        def compute():
            start = time.perf_counter()
            time.sleep(0.05)
            with lock:
                spans.append((start, time.perf_counter()))
            return tag
        return compute

    threads = [threading.Thread(target=once.once, args=(("turns", i % 3), work(i % 3))) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(spans) == 3                                    # three drawings, each computed once
    spans.sort()
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))  # one at a time
    with once.turn():                                         # re-entrant: a drawing's turn may use once()
        assert once.once(("turns", 0), work(9)) == 0 and once.once(("turns", 7), work(7)) == 7
