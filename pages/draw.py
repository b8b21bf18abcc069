"""Draw: test runs on a digit drawn with the mouse (or uploaded), see what the model sees, and
grow the team's drawn test set."""
import streamlit as st

from core.store.drawings import count_drawings
from dashboard.draw import drawn_set, explain as explain_views, once, predictions as draw_predictions, ui
from dashboard.model_cache import completed_runs
from dashboard.state import ELSEWHERE, deleted_notice, get_store

st.title("Draw")
st.caption("Draw a digit and watch one or more trained runs read it. Save drawings with their label to "
           "build the team's own test set, then score any run on it.")
store = get_store()
runs = completed_runs(store)
captions = {row["run_id"]: draw_predictions.run_caption(row) for _, row in runs.iterrows()}
# Only the open tab runs (lazy tabs): a stroke on the canvas never redraws the Drawn set.
draw_tab, set_tab = st.tabs(["Draw", "Drawn set"], key="draw_tab", on_change="rerun")

if set_tab.open:
    with set_tab:
        total = count_drawings(store)
        st.markdown(f"**{total} drawing{'s' if total != 1 else ''}** saved by the team")
        if total:
            st.bar_chart(drawn_set.label_counts(store), height=140, x_label="digit", y_label="drawings")
        only = st.selectbox("Show", ["all digits", *range(10)], key="draw_grid_label")
        drawn_set.drawn_grid(store, None if only == "all digits" else only)
        if total and not runs.empty:
            st.subheader("Score runs on the drawn set")
            picked = st.selectbox("Run", list(runs["run_id"]), key="draw_eval_run", format_func=captions.get)
            drawn_set.evaluate_buttons(store, runs, picked, key="draw_eval")
            drawn_set.evaluation_panel(store, runs, picked)  # the buttons' callbacks ran first: `runs` is up to date
            drawn_set.ensemble_scorer(store, runs, captions, key="draw_ens")
            st.dataframe(drawn_set.leaderboard(runs), hide_index=True, placeholder="—",
                         column_config={**drawn_set.ACCURACY_COLUMNS, "run": drawn_set.NAME_COLUMN})


# The whole Draw tab is a fragment: a stroke (or any widget in it) reruns only this part, not the
# page's header, the run list or the tabs. Visitors' drawings take turns (see dashboard/draw/once.py).
@st.fragment
def drawing() -> None:
    with once.turn():
        draw_tab_body()


def draw_tab_body() -> None:
    ids = list(runs["run_id"])
    remembered = st.session_state.get("draw_runs")
    if remembered is not None and any(r not in ids for r in remembered):  # a chosen run was deleted since
        st.session_state["draw_runs"] = [r for r in remembered if r in ids]
        st.session_state["draw_deleted"] = len(remembered) - len(st.session_state["draw_runs"])
    chosen = st.multiselect("Runs to ask (the best by test accuracy is chosen first)", ids,
                            default=None if remembered is not None else ids[:1], key="draw_runs",
                            format_func=captions.get)
    combine = st.toggle("Combine the selected runs", key="draw_combine", disabled=len(chosen) < 2,
                        help="Average the selected runs' probabilities (an ensemble) and show its answer "
                             "beside each run's own.")
    pad, side = st.columns([1, 2], gap="large")
    with pad:
        source = st.segmented_control("Input", ["canvas", "upload"], default="canvas", key="draw_source",
                                      format_func={"canvas": "Draw", "upload": "Upload an image"}.get) or "canvas"
        if source == "canvas":
            from streamlit_drawable_canvas import st_canvas  # registers its component: import inside the page

            brush = st.slider("Brush width (px)", 4, 40, 20, key="draw_brush")
            canvas = st_canvas(stroke_width=brush, stroke_color="#FFFFFF", background_color="#000000",
                               height=ui.CANVAS_SIDE, width=ui.CANVAS_SIDE, drawing_mode="freedraw",
                               return_image_data=True, key=ui.canvas_key())
            st.caption("Undo, redo and clear (the bin) are in the canvas's toolbar: point at the canvas to see it.")
            original = canvas.image_bytes
            image, problem = ui.canvas_image(original), None
        else:  # any file: a wrong one is explained in one line beside, never only as a tooltip
            upload = st.file_uploader("A PNG or JPEG of one digit, any size, dark on light or light on dark",
                                      key="draw_upload", max_upload_size=ui.UPLOAD_LIMIT_MB)
            image, original, problem = ui.read_upload(upload)

    with side:  # messages live beside the canvas, never above it: the canvas must not move between strokes
        drawn_set.flash()
        if gone := st.session_state.pop("draw_deleted", 0):
            deleted_notice(f"{'A run' if gone == 1 else f'{gone} runs'} you had chosen "
                           f"{'was' if gone == 1 else 'were'} deleted ({ELSEWHERE}): the drawing is no longer "
                           f"read by {'it' if gone == 1 else 'them'}.")
        if st.session_state.get("draw_saved"):
            drawn_set.evaluate_buttons(store, runs, chosen[0] if chosen else ids[0], key="draw_after_save")
        name = ui.drawing_name(original)
        pre = ui.preprocess_or_explain(image, source, problem, name)
        if pre is None:
            st.stop()  # not `return`: a stopped run keeps the save form's author for the next digit
        ui.show_steps(pre, name)
        if not chosen:
            st.info("Choose at least one run above to read the drawing.")
            st.stop()
        draw_predictions.show_predictions(draw_predictions.predict_runs(store, runs, chosen, pre.image),
                                          combine_runs=combine and len(chosen) > 1)
        drawn_set.save_form(store, pre, original, source)

    # After the answers (already on screen): what happened inside one of the runs. Not a fragment of
    # its own: everything in it is kept per drawing and run (dashboard/draw/once.py), so picking
    # another run reruns the Draw tab cheaply, and a nested fragment cost every drawing a deep copy
    # of the page's element tree.
    with st.expander("Inside the model: feature maps, why this digit, nearest training digits", expanded=True):
        explain_id = chosen[0]
        if len(chosen) > 1:
            explain_id = st.selectbox("Run to look inside", chosen, key="draw_explain_run", format_func=captions.get)
        explain_views.explain_panel(store, explain_id, captions.get(explain_id, explain_id), pre.image)


if draw_tab.open:
    with draw_tab:
        if runs.empty:
            st.info("No completed run yet: train one on the Train page (or `.venv/bin/python -m core train`), "
                    "then draw here.", icon=":material/model_training:")
        else:
            drawing()
