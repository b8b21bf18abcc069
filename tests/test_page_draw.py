"""pages/draw.py through AppTest, with a drawing injected as the canvas's value; and the image
helpers of dashboard/draw/ (ui.py, predictions.py, drawn_set.py).

The canvas (a v2 component) returns {"drawing": {"raw": <fabric JSON>, "data": <PNG data URL>},
"backgroundFit": ...}; AppTest cannot draw, so tests set that value in session state before
a run, as the browser would after a mouse-up.
"""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

from core import cli
from core.store.drawings import add_drawing, drawing_original, list_drawings
from core.predict.preprocess import preprocess
from dashboard.draw import drawn_set, pictures, predictions as draw_predictions, ui as draw_ui
from tests.helpers import chart_figures

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "draw.py")
SAVE = "FormSubmitter:draw_save_form-Save with label"
DRAWN_SET = ("draw_tab", "Drawn set")      # the tabs' key and the Drawn set tab's label


def canvas_png(strokes=(((140, 50), (140, 230)),), width: int = 20) -> bytes:
    """A 280×280 canvas as the page draws it: white strokes on an opaque black background."""
    im = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw = ImageDraw.Draw(im)
    for stroke in strokes:
        draw.line(stroke, fill=(255, 255, 255, 255), width=width, joint="curve")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def canvas_value(png: bytes) -> dict:
    data = "data:image/png;base64," + base64.b64encode(png).decode()
    return {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": data}, "backgroundFit": None}


def open_page(canvas: bytes | None = None, **session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    if canvas is not None:
        at.session_state[draw_ui.CANVAS_KEY] = canvas_value(canvas)
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def readings(at: AppTest) -> list[int]:
    """The digit each prediction card reads, in card order."""
    return [int(m) for e in at.markdown for m in re.findall(r"^### reads :\w+\[(\d)\]", e.value)]


def infos(at: AppTest) -> str:
    return " | ".join(i.value for i in at.info)


# ------------------------------------------------------------------------------ the page

def test_without_completed_runs_the_page_says_how_to_get_one(app_env):
    at = open_page()
    assert not at.exception
    assert "No completed run yet" in infos(at)
    assert "No drawings yet" not in infos(at)  # only the open tab runs
    at.session_state[DRAWN_SET[0]] = DRAWN_SET[1]
    at.run()
    assert "No drawings yet" in infos(at) and "No completed run yet" not in infos(at)


def test_empty_canvas_and_blank_canvas_show_a_gentle_info_and_no_prediction(populated_env):
    at = open_page()
    assert not at.exception and not at.error
    assert "Draw a digit on the black canvas" in infos(at) and readings(at) == []
    at = open_page(canvas=canvas_png(strokes=()))  # cleared with the canvas's own trash button
    assert not at.exception and not at.error
    assert "Draw a digit… (the canvas is empty" in infos(at) and readings(at) == []


def test_a_drawing_is_read_by_the_best_run_as_the_cli_reads_the_same_png(populated_env, tmp_path, capsys):
    runs = populated_env.runs.sort_values("test_accuracy", ascending=False, kind="stable")
    png = canvas_png(strokes=[((90, 60), (190, 60)), ((190, 60), (120, 230))])  # a 7
    at = open_page(canvas=png)
    assert not at.exception and not at.error
    assert at.multiselect(key="draw_runs").value == [runs["run_id"].iloc[0]]  # best test accuracy first
    [label] = readings(at)
    steps = image_captions(at)
    assert steps[:4] == list(draw_ui.STEP_CAPTIONS.values())  # then the "Inside the model" panel's images
    assert [f["data"][0]["type"] for f in chart_figures(at)] == ["bar"]  # the probability bars

    path = tmp_path / "drawn.png"
    path.write_bytes(png)
    cli.main(["predict", "--run", runs["run_id"].iloc[0], "--db", populated_env.db_url, "--json", str(path)])
    [result] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["label"] == label


def test_several_runs_side_by_side_and_a_broken_model_is_a_warning_for_that_run_only(populated_env):
    ids = populated_env.runs["run_id"].tolist()
    populated_env.store.put_artifact(ids[1], "model.keras", b"not a keras file")  # the store's copy is bad
    at = open_page(canvas=canvas_png(), draw_runs=ids)
    assert not at.exception and not at.error
    table = at.dataframe[0].value  # several runs: one table, a row per run, no chart per run
    assert table["id"].tolist() == ids and not chart_figures(at)
    assert table["reads"].tolist()[1] == "error" and all(r.isdigit() for r in table["reads"].tolist()[::2])
    warnings = [w.value for w in at.warning if "No prediction from" in w.value]
    assert len(warnings) == 1 and ids[1] in warnings[0]


def test_hints_appear_for_a_tiny_drawing_touching_the_edge(populated_env):
    at = open_page(canvas=canvas_png(strokes=[((0, 10), (0, 40))], width=4))
    assert not at.exception
    hints = " ".join(w.value for w in at.warning)
    assert "small on the canvas" in hints and "touches the edge" in hints


def test_save_with_label_stores_the_drawing_then_the_grid_shows_it_and_runs_are_scored(populated_env):
    store, png = populated_env.store, canvas_png()
    at = open_page(canvas=png)
    at.button(key=SAVE).click().run()
    assert "Pick the digit you drew" in " ".join(w.value for w in at.warning)
    assert list_drawings(store).empty

    at.selectbox(key="draw_label").set_value(1)
    at.text_input(key="draw_author").set_value("Ann")
    at.button(key=SAVE).click().run()
    assert not at.exception and not at.error
    assert "Saved drawing #1 as **1**" in at.success[0].value
    saved = list_drawings(store)
    assert saved[["label", "author", "source"]].values.tolist() == [[1, "Ann", "canvas"]]
    seen = preprocess(np.asarray(Image.open(io.BytesIO(png)))).image
    assert np.array_equal(saved["image"].iloc[0], draw_ui.to_uint8(seen))  # the 28×28 the model saw
    assert drawing_original(store, int(saved["id"].iloc[0])) == png
    assert "Draw a digit on the black canvas" in infos(at)  # a fresh canvas for the next digit
    assert at.session_state["draw_label"] is None and at.session_state["draw_author"] == "Ann"  # kept for the next

    at.button(key="draw_after_save_all").click().run()
    assert not at.exception and "Evaluated 3 runs on 1 drawings" in at.success[0].value
    at.session_state[DRAWN_SET[0]] = DRAWN_SET[1]
    at.run()
    assert at.button(key="draw_del_1")  # the drawing is in the Drawn set grid
    table = at.dataframe[0].value
    assert table["drawn-set accuracy"].notna().all()
    assert {m.label for m in at.metric} >= {"Drawn-set accuracy", "MNIST test accuracy"}

    at.button(key="draw_del_1").click().run()
    assert not at.exception and list_drawings(store).empty
    assert "No drawings yet" in infos(at)


def test_viewers_may_draw_but_not_save_or_delete(populated_env, monkeypatch):
    at = open_page(canvas=canvas_png(), draw_label=4)
    at.button(key=SAVE).click().run()  # an editor (open mode) saves one
    assert list_drawings(populated_env.store)["label"].tolist() == [4]
    monkeypatch.setattr("dashboard.auth.role", lambda: "viewer")
    at = open_page(canvas=canvas_png(), draw_label=4)
    assert len(readings(at)) == 1  # a viewer still sees predictions
    at.button(key=SAVE).click().run()
    assert any("cannot save drawings" in e.value for e in at.error)
    at.session_state[DRAWN_SET[0]] = DRAWN_SET[1]
    at.run()
    at.button(key="draw_del_1").click().run()
    assert any("you cannot delete drawings" in e.value for e in at.error)
    assert len(list_drawings(populated_env.store)) == 1


def test_upload_of_a_non_image_is_one_clear_error(populated_env):
    at = open_page(draw_source="upload")
    at.file_uploader(key="draw_upload").upload("digit.png", b"this is not an image", "image/png")
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "digit.png" in at.error[0].value
    assert "not a readable image" in at.error[0].value and readings(at) == []


def test_upload_of_a_photo_like_image_is_read(populated_env):
    im = Image.new("L", (400, 300), 235)  # dark ink on light paper, not square
    ImageDraw.Draw(im).line([(200, 40), (200, 260)], fill=20, width=14)
    buf = io.BytesIO()
    im.save(buf, format="JPEG")
    at = open_page(draw_source="upload")
    at.file_uploader(key="draw_upload").upload("one.jpg", buf.getvalue(), "image/jpeg")
    at.run()
    assert not at.exception and not at.error
    assert len(readings(at)) == 1
    at.selectbox(key="draw_label").set_value(1)
    at.button(key=SAVE).click().run()
    saved = list_drawings(populated_env.store)
    assert saved[["label", "source"]].values.tolist() == [[1, "upload"]]
    original = Image.open(io.BytesIO(drawing_original(populated_env.store, int(saved["id"].iloc[0]))))
    assert original.format == "PNG" and original.size == (400, 300)  # kept as PNG, under the size cap


def test_drawn_set_tab_lists_drawings_with_filter_and_stale_evaluation_note(populated_env):
    store = populated_env.store
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12:16] = 255
    for label in (1, 1, 7):
        add_drawing(store, label, image, author="Bo")
    at = open_page(**dict([DRAWN_SET]))
    assert "3 drawings" in " ".join(m.value for m in at.markdown)
    assert len([b for b in at.button if b.key.startswith("draw_del_")]) == 3
    at.selectbox(key="draw_grid_label").set_value(7).run()
    assert [b.key for b in at.button if b.key.startswith("draw_del_")] == ["draw_del_3"]
    at.button(key="draw_eval_one").click().run()
    assert not at.exception and "of 3 drawings read correctly" in at.success[0].value
    add_drawing(store, 2, image)
    at.run()
    assert any("has changed since (4 drawings now)" in c.value for c in at.caption)


def test_a_viewer_cannot_evaluate_runs_on_the_drawn_set(populated_env, monkeypatch):
    image = np.zeros((28, 28), np.uint8)
    image[5:23, 12:16] = 255
    add_drawing(populated_env.store, 1, image)
    monkeypatch.setattr("dashboard.auth.role", lambda: "viewer")
    at = open_page(**dict([DRAWN_SET]))
    for key in ("draw_eval_one", "draw_eval_all"):
        at.button(key=key).click().run()
        assert not at.exception and any("cannot evaluate runs on the drawn set" in e.value for e in at.error)
    assert populated_env.store.list_runs()["drawn_accuracy"].isna().all(), "a viewer's evaluation was stored"


# ------------------------------------------------------------------------------ helpers

def test_fit_box_keeps_aspect_and_enlarges_with_whole_pixels():
    crop = np.zeros((20, 10), np.float32)
    crop[:, :5] = 1.0
    box = draw_ui.fit_box(crop, 112)
    assert box.shape == (112, 112, 3)
    ink = np.argwhere(box[..., 0] == 255)
    assert ink[:, 0].min() == 6 and ink[:, 0].max() == 105  # 20 rows × 5 px, centred
    assert ink[:, 1].max() - ink[:, 1].min() + 1 == 25  # 5 columns × 5 px
    assert tuple(box[0, 0]) == draw_ui.FRAME
    assert draw_ui.fit_box(np.ones((280, 280), np.uint8) * 255, 112).min() == 255  # shrunk to fill the box


def test_step_pictures_outline_the_ink_and_leave_whole_pixel_enlarging_to_the_browser():
    pre = preprocess(np.asarray(Image.open(io.BytesIO(canvas_png()))))
    steps = draw_ui.step_pictures(pre)
    assert [p.caption for p in steps] == list(draw_ui.STEP_CAPTIONS.values())
    assert all(max(p.width, p.height) <= draw_ui.STEP_SIDE for p in steps)
    first = np.asarray(Image.open(io.BytesIO(steps[0].png)).convert("RGB"))
    assert first.shape == (112, 112, 3) and np.all(first == draw_ui.BOX_COLOUR, axis=-1).sum() > 100  # the ink's box
    scaled, centred = (np.asarray(Image.open(io.BytesIO(p.png))) for p in steps[2:])
    assert scaled.shape == (20, 20) and centred.shape == (28, 28)          # encoded at their own size…
    assert (steps[2].width, steps[3].width) == (100, 112) and steps[3].box == draw_ui.STEP_SIDE  # …shown enlarged
    assert np.array_equal(centred, draw_ui.to_uint8(pre.steps["centred"]))


def test_a_row_of_pictures_is_html_with_inline_pngs_and_escaped_captions():
    image = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    body = pictures.row([pictures.picture(image, "7 · 0.93 <b>", scale=6), pictures.picture(image, "plain",
                                                                                          pixelated=False)])
    assert pictures.captions(body) == ["7 · 0.93 <b>", "plain"] and "<b>" not in body
    assert body.count("image-rendering:pixelated") == 1 and 'width="168"' in body and 'width="28"' in body
    encoded = re.search(r'src="data:image/png;base64,([^"]+)"', body).group(1)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded)))), image)
    assert [pictures.display_factor(s) for s in (1, 2, 5, 7, 12, 14, 18)] == [1, 2, 5, 1, 6, 2, 6]


@pytest.mark.parametrize("labels, expected", [
    ([7, 7, 7], (7, True)), ([7, 1, 7], (7, False)), ([1, 7], (1, False)), ([None, 3], (3, True)), ([], (None, True)),
])
def test_majority_and_agreement(labels, expected):
    preds = [draw_predictions.RunPrediction(str(i), "r", None if lb is None else list(np.eye(10)[lb]), None)
             for i, lb in enumerate(labels)]
    assert draw_predictions.majority(preds) == expected


def test_png_bytes_shrinks_large_originals_and_ago_reads_well():
    png = draw_ui.png_bytes(np.zeros((2000, 1000, 3), np.uint8))
    assert Image.open(io.BytesIO(png)).size == (280, 560)
    assert drawn_set.ago(100.0, now=130.0) == "just now"
    assert drawn_set.ago(0.0, now=7200.0) == "2 h ago"
    assert drawn_set.ago(0.0, now=300.0) == "5 min ago"


# ------------------------------------------------------------------------------ ensembles and the explain panel

def image_captions(at: AppTest) -> list[str]:
    """The captions of the page's pictures, in page order (rows of pictures are st.html elements)."""
    return [c for e in at.main if type(e).__name__ == "Html" for c in pictures.captions(e.proto.body)]


def test_combining_runs_shows_the_ensemble_beside_each_run_as_the_cli_combines_them(populated_env, tmp_path, capsys):
    ids = populated_env.runs["run_id"].tolist()
    png = canvas_png(strokes=[((90, 60), (190, 60)), ((190, 60), (120, 230))])
    at = open_page(canvas=png, draw_runs=ids[:2], draw_combine=True)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert table["run"].tolist()[0] == draw_predictions.ENSEMBLE_ROW and table["id"].tolist()[1:] == ids[:2]
    digits = [str(d) for d in range(10)]
    combined = table[digits].iloc[0].to_numpy(float)
    assert np.allclose(combined, table[digits].iloc[1:].to_numpy(float).mean(axis=0), atol=1e-9)

    path = tmp_path / "drawn.png"
    path.write_bytes(png)
    cli.main(["predict", "--db", populated_env.db_url, "--run", ids[0], "--run", ids[1], "--json", str(path)])
    [result] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["runs"] == ids[:2] and np.allclose(result["probabilities"], combined, atol=1e-6)
    assert table["reads"].iloc[0] == str(result["label"])
    assert any(f"read :green[{result['label']}]" in m.value for m in at.markdown)


def test_combine_is_off_with_one_run_and_ten_runs_fit_one_table(populated_env):
    at = open_page(canvas=canvas_png())
    assert at.toggle(key="draw_combine").disabled
    ids = populated_env.runs["run_id"].tolist()
    at = open_page(canvas=canvas_png(), draw_runs=ids, draw_combine=True)
    assert len(at.dataframe[0].value) == len(ids) + 1 and not chart_figures(at)


def test_inside_the_model_panel_shows_attribution_activations_and_nearest_training_digits(populated_env):
    store = populated_env.store
    run_id = populated_env.runs.sort_values("test_accuracy", ascending=False, kind="stable")["run_id"].iloc[0]
    at = open_page(canvas=canvas_png())
    assert not at.exception and not at.error
    assert at.expander[0].label.startswith("Inside the model")
    captions = image_captions(at)
    toward = [c for c in captions if c.startswith("toward ")]
    assert len(toward) == 2 and any(" against " in c for c in captions)  # the top two digits and their difference
    assert any(re.search(r"most active of \d+ units", c) for c in captions)  # the MLP's hidden Dense layer
    neighbours = [c for c in captions if re.fullmatch(r"\d · -?\d\.\d\d", c)]
    assert len(neighbours) == 8
    assert store.artifact(run_id, "embedding.npz") is not None        # built once, kept with the run
    ordered = [c for c in captions if c in draw_ui.STEP_CAPTIONS.values()]
    assert captions.index(ordered[-1]) < captions.index(toward[0])    # the panel comes after the answer


def test_the_panel_explains_an_uploaded_image_and_a_chosen_run(populated_env):
    ids = populated_env.runs["run_id"].tolist()
    im = Image.new("L", (300, 300), 240)
    ImageDraw.Draw(im).line([(150, 40), (150, 260)], fill=10, width=16)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    at = open_page(draw_source="upload", draw_runs=ids, draw_explain_run=ids[2])
    at.file_uploader(key="draw_upload").upload("one.png", buf.getvalue(), "image/png")
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="draw_explain_run").value == ids[2]
    assert len([c for c in image_captions(at) if c.startswith("toward ")]) == 2


def test_explain_view_images_keep_their_shapes_and_limits():
    from dashboard.draw import explain as ev

    maps = np.random.default_rng(0).random((8, 8, 200))
    grid, shown = ev.feature_map_grid(maps)
    small = np.random.default_rng(2).random((26, 26, 32))
    full, _ = ev.feature_map_grid(small)   # the browser's 2× enlargement of the half-size grid gives the same picture
    assert np.array_equal(np.kron(ev.feature_map_grid(small, factor=2)[0], np.ones((2, 2, 1), np.uint8)), full)
    kernels = np.random.default_rng(1).normal(size=(32, 3, 3))
    assert np.array_equal(np.kron(ev.kernel_grid(kernels, factor=6), np.ones((6, 6, 1), np.uint8)),
                          ev.kernel_grid(kernels))
    assert len(shown) == ev.MAX_MAPS and grid.ndim == 3 and grid.dtype == np.uint8  # the 64 most active of 200
    assert set(shown) == set(np.argsort(-maps.mean(axis=(0, 1)))[:ev.MAX_MAPS].tolist())
    strip, order = ev.unit_strip(np.arange(40.0))
    assert order == list(range(39, 23, -1)) and strip.count("#3") == 10 and "background:rgb(253,231,37)" in strip
    image = np.zeros((28, 28))
    image[5:20, 13:15] = 1
    overlay = ev.attribution_overlay(image, np.where(image > 0, 1.0, 0.0), side=168)
    assert overlay.shape == (168, 168, 3)
    assert (overlay[6 * 10, 13 * 6 + 2] == ev.POSITIVE.astype(np.uint8)).all()  # full attribution: pure red
    assert ev.kernel_grid(np.random.default_rng(1).normal(size=(32, 3, 3))).shape[2] == 3


def test_a_bad_upload_is_one_line_where_the_answer_would_be(populated_env):
    """Issue 27, item 13: a .txt or an over-large file showed only as a tooltip on a red row of the
    uploader (the browser refused it by type or size), and the right panel still said "Upload a PNG"."""
    at = open_page(draw_source="upload")
    uploader = at.file_uploader(key="draw_upload")
    assert not uploader.proto.type and uploader.proto.max_upload_size_mb > 10  # refused by the page, in words
    uploader.upload("notes.txt", b"these are not digits", "text/plain")
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "notes.txt is not a readable image" in at.error[0].value
    assert "Upload a PNG" not in infos(at)
    at.file_uploader(key="draw_upload").upload("big.png", b"\x89PNG" + bytes(11_000_000), "image/png")
    at.run()
    assert len(at.error) == 1 and "over the 10 MB limit" in at.error[0].value


def test_pruned_runs_are_offered_and_a_deleted_choice_is_said(populated_env):
    """Issue 27, items 13 and 5: pruned runs keep a model but were not offered; a chosen run deleted
    elsewhere silently vanished from the choice."""
    store = populated_env.store
    runs = store.list_runs(status="completed")
    pruned, gone = runs["run_id"].iloc[0], runs["run_id"].iloc[1]
    import sqlalchemy as sa

    from core.store.schema import runs_t
    store.transact(lambda c: c.execute(sa.update(runs_t).where(runs_t.c.id == pruned).values(status="pruned")))
    at = open_page(canvas=canvas_png(), draw_runs=[gone])
    assert any(pruned in option for option in at.multiselect(key="draw_runs").options)
    store.delete_run(gone)
    at.run()
    assert not at.exception
    assert any("A run you had chosen was deleted" in e.value for e in at.error)


def test_drawn_set_accuracy_reads_with_two_decimals_everywhere():
    """Issue 27, item 13: the drawn-set accuracy read 100.00 %, 100.0 % and 100 % on different pages."""
    import pandas as pd
    row = pd.Series({"name": "a", "run_id": "r1", "test_accuracy": 0.98765, "drawn_accuracy": 1.0})
    assert draw_predictions.run_caption(row) == "a · r1 · test 98.77% · drawn 100.00%"
    table = drawn_set.leaderboard(pd.DataFrame([{**row, "architecture": "mlp-128-64", "augment": False}]))
    assert table["drawn-set accuracy"].tolist() == [100.0] and table["test accuracy"].round(3).tolist() == [98.765]
    assert all(c.get("type_config", {}).get("format") == "%.2f%%" or "%.2f%%" in str(c)
               for c in drawn_set.ACCURACY_COLUMNS.values())
