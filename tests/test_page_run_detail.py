"""Run detail page through AppTest: empty store, unknown id, a completed run, a conv run, a live run."""
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from core.config import make_config
from core.train.run import train
from tests.helpers import chart_figures

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "run_detail.py")


def _open(run_id: str | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=90)
    if run_id is not None:
        at.query_params["run"] = run_id
    return at.run()


def _text(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def _frame(at: AppTest, column: str):
    """The first dataframe shown with `column` (display-only dataframes have no key in AppTest)."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def _run_id(env, name: str) -> str:
    return env.runs.set_index("name").loc[name, "run_id"]


def test_empty_store_says_how_to_start(app_env):
    at = _open()
    assert not at.exception
    assert "No runs yet" in at.info[0].value


def test_unknown_run_id_is_one_clear_error(populated_env):
    at = _open("doesnotexist")
    assert not at.exception
    assert len(at.error) == 1 and "doesnotexist" in at.error[0].value and not at.info
    assert at.selectbox("detail_run").value is None  # the picker is offered, nothing else renders
    assert not chart_figures(at)


def test_without_a_link_opens_the_newest_finished_run_and_sets_the_url(populated_env):
    newest = populated_env.runs.sort_values("created_at")["run_id"].iloc[-1]
    at = _open()
    assert not at.exception and not at.error and not at.info
    assert at.selectbox("detail_run").value == newest
    assert at.query_params["run"] in ([newest], newest)
    run_id = _run_id(populated_env, "mlp-base")
    at.selectbox("detail_run").select(run_id).run()
    assert not at.exception
    assert at.query_params["run"] in ([run_id], run_id)
    assert at.subheader[0].value == "mlp-base"


def test_the_run_looked_at_last_is_reopened_from_the_sidebar(populated_env):
    """Run detail and Compare opened from the sidebar (no link) show what was looked at last."""
    run_id = _run_id(populated_env, "mlp-base")
    at = AppTest.from_file(str(Path(PAGE).parents[1] / "dashboard" / "app.py"), default_timeout=90)
    at.run()
    at.switch_page("../pages/run_detail.py").run()
    at.selectbox("detail_run").select(run_id).run()
    at.switch_page("../pages/runs.py").run()
    at.query_params.clear()
    at.switch_page("../pages/run_detail.py").run()
    assert not at.exception
    assert at.selectbox("detail_run").value == run_id
    at.switch_page("../pages/compare.py").run()
    pair = sorted(at.multiselect("compare_runs").value)
    assert len(pair) == 2  # the two newest finished runs
    at.multiselect("compare_runs").select(run_id).run()
    at.switch_page("../pages/runs.py").run()
    at.query_params.clear()
    at.switch_page("../pages/compare.py").run()
    assert sorted(at.multiselect("compare_runs").value) == sorted([*pair, run_id])


def test_completed_run_shows_curves_evaluation_gallery_model_and_script(populated_env):
    run_id = _run_id(populated_env, "mlp-base")
    at = _open(run_id)
    assert not at.exception
    assert at.subheader[0].value == "mlp-base"
    assert len(chart_figures(at)) == 4  # loss, accuracy, learning rate, confusion matrix (no kernels: an MLP)
    metrics = {m.label: m.value for m in at.metric}
    run = populated_env.store.get_run(run_id)
    assert metrics["Test accuracy"] == f"{100 * run.test_accuracy:.2f}%"
    report = _frame(at, "F1 %")
    assert list(report["digit"]) == list(range(10)) and "F1 %" in report.columns
    layers = _frame(at, "output shape")
    assert layers["parameters"].sum() == run.n_params
    assert "keras.Sequential" in at.code[0].value and "BATCH_SIZE = 32" in at.code[0].value
    assert "First-layer kernels" not in _text(at)


def test_choosing_a_confusion_cell_filters_the_gallery(populated_env):
    run_id = _run_id(populated_env, "mlp-base")
    wrong = populated_env.store.misclassified(run_id)
    assert not wrong.empty, "the 1-epoch run should make mistakes on random digits"
    true, pred = (int(v) for v in wrong[["true_label", "pred_label"]].value_counts().index[0])
    at = _open(run_id)
    at.selectbox("detail_true").select(true)
    at.selectbox("detail_pred").select(pred).run()
    assert not at.exception
    expected = populated_env.store.misclassified(run_id, true, pred, limit=48)
    gallery = at.get("image")
    assert len(gallery) == 1 and len(gallery[0].captions) == len(expected)
    assert all(c.startswith(f"{true}→{pred} · ") for c in gallery[0].captions)
    total = populated_env.store.evaluation(run_id).confusion[true][pred]
    assert (f"Showing all {len(expected)} such mistakes" if total <= 48
            else f"the 48 most confident of {total:,}") in _text(at)
    at.selectbox("detail_pred").select(true).run()  # the diagonal: correct digits, not mistakes
    assert "pick a cell off the diagonal" in _text(at)
    at.selectbox("detail_true").select(None)
    at.selectbox("detail_pred").select(None).run()  # any mistake: more than the gallery holds
    matrix = populated_env.store.evaluation(run_id).confusion
    total = sum(matrix[t][p] for t in range(10) for p in range(10) if t != p)
    shown = len(populated_env.store.misclassified(run_id, limit=48))
    assert (f"Showing the 48 most confident of {total:,} such mistakes" if total > 48
            else f"Showing all {shown} such mistakes") in _text(at), _text(at)


def test_clicking_a_confusion_cell_sets_the_gallery_filter(populated_env):
    run_id = _run_id(populated_env, "mlp-base")
    true, pred = (int(v) for v in populated_env.store.misclassified(run_id).iloc[0][["true_label", "pred_label"]])
    at = _open(run_id)
    # what the browser sends when the invisible marker on cell (true, pred) is clicked
    at.session_state["detail_confusion"] = {"selection": {"points": [{"x": pred, "y": true, "point_index": 0}],
                                                          "point_indices": [0], "box": [], "lasso": []}}
    at.run()
    assert not at.exception
    assert (at.selectbox("detail_true").value, at.selectbox("detail_pred").value) == (true, pred)
    assert all(c.startswith(f"{true}→{pred} · ") for c in at.get("image")[0].captions)
    shapes = chart_figures(at)[3]["layout"]["shapes"]
    assert shapes[0]["x0"] == pred - 0.5 and shapes[0]["y0"] == true - 0.5  # the chosen cell is outlined


def test_normalised_toggle_and_batch_level_render(populated_env):
    at = _open(_run_id(populated_env, "mlp-base"))
    at.toggle("detail_normalise").set_value(True)
    at.slider("detail_smoothing").set_value(0.6).run()
    assert not at.exception
    at.session_state["detail_level"] = "batch"
    at.run()
    assert not at.exception and len(chart_figures(at)) == 4


def test_conv_run_kernels_then_a_corrupt_then_a_missing_model_file(populated_env):
    """One tiny conv run (4 filters, trained once): kernels shown; a bad model file is one message."""
    config = make_config("custom", layers=[{"type": "Conv2D", "filters": 4, "kernel": 3, "activation": "relu"},
                                           {"type": "MaxPooling2D", "pool": 4}],
                         epochs=1, batch_size=64, name="tiny-conv", augment=True)
    run = train(populated_env.store, config, populated_env.data_path)
    assert run.status == "completed", run.error
    at = _open(run.id)
    assert not at.exception
    assert len(chart_figures(at)) == 5
    assert chart_figures(at)[-1]["data"][0]["type"] == "heatmap"
    assert "The 4 kernels of the first Conv2D layer" in _text(at)
    assert "augmentation, training only" in set(_frame(at, "output shape")["note"])

    populated_env.store.put_artifact(run.id, "model.keras", b"not a keras file")  # the store's copy is bad
    at = _open(run.id)
    assert not at.exception
    assert any(w.value.startswith("The kernels cannot be shown") and "model file" in w.value for w in at.warning)
    assert len(chart_figures(at)) == 4 and at.code  # curves, confusion matrix and script are still there

    populated_env.store.delete_artifact(run.id, "model.keras")
    at = _open(run.id)
    assert not at.exception
    assert any("missing" in w.value for w in at.warning)
    assert "No model file" in _text(at)


def test_running_run_shows_progress_and_partial_curves(populated_env):
    store = populated_env.store
    config = make_config("mlp-512", epochs=4, name="live")
    run_id = store.create_run(config.to_dict(), n_params=407_050)
    store.claim_run("test-worker", run_id)
    store.checkpoint(run_id, [(run_id, "epoch", "loss", 10, 1, 0.9), (run_id, "epoch", "val_loss", 10, 1, np.nan),
                              (run_id, "epoch", "accuracy", 10, 1, 0.7)],
                     epoch=1, step=10, steps_per_epoch=10, last_val_accuracy=0.5, last_val_epoch=1)
    at = _open(run_id)
    assert not at.exception
    assert "epoch 1 of 4 done" in at.get("progress")[0].proto.text
    assert "The test evaluation appears here when the run completes." in _text(at)
    assert "the run is running" in _text(at)


def test_the_dataset_that_trained_the_run_is_shown(populated_env):
    from core.data.dataset import dataset_info

    run_id = _run_id(populated_env, "mlp-base")
    at = _open(run_id)
    sha = dataset_info(populated_env.data_path).sha256
    assert f"Dataset: 360-digit set · 300 train / 60 test · #{sha[:8]} · fit on 270, validated on 30" in _text(at)


def test_a_run_deleted_in_another_tab_is_said_to_be_deleted_with_a_way_back(populated_env):
    """Issue 27, item 5: the open page kept showing the run, then empty curves and a download button
    that did nothing. Its next rerun (a click, or the check every few seconds) says the run is gone."""
    run_id = _run_id(populated_env, "mlp-base")
    at = _open(run_id)
    assert not at.exception and chart_figures(at)
    populated_env.store.delete_run(run_id)  # the other tab
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "This run was deleted" in at.error[0].value
    assert "[Back to Runs](./runs)" in _text(at)
    assert not chart_figures(at) and not at.get("download_button")
