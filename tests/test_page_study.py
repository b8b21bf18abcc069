"""pages/study.py and the Train page's study form through AppTest: the form queues a study, the
view shows progress, the best run, history, importance, slices, parallel coordinates and
intermediate values; stop and extend are editor-only, refused inside the action for viewers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.search.study import create_study, get_study, top_up
from dashboard import poll
from tests.helpers import EVALUATION, SPACE, chart_figures, finish_trial

ROOT = Path(__file__).resolve().parents[1]
PAGE = str(ROOT / "pages" / "study.py")
TRAIN = str(ROOT / "pages" / "train.py")
BASE = TrainConfig(architecture="mlp-128-64", epochs=3, batch_size=32)


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts + [p.proto.text for p in at.get("progress")])


@pytest.fixture
def a_study(app_env):
    """A 6-run random study: three finished (one pruned), one running, queued ones, on 4 live workers."""
    store = app_env.store
    workers = [store.register_worker() for _ in range(4)]
    ids = create_study(store, BASE, SPACE, "explore", app_env.data_path, search="random", budget=6, pruner="median")
    for run_id, values, status in zip(ids, ([0.5, 0.7, 0.8], [0.3, 0.6, 0.9], [0.1])
                                      , ("completed", "completed", "pruned")):
        finish_trial(store, run_id, values, status)
    store.claim_run("w", run_id=ids[3])
    assert len(top_up(store, "explore")) == 2  # the budget's last two, for the free workers
    yield app_env, ids
    for worker in workers:
        store.remove_worker(worker)


def test_no_study_yet_says_how_to_start_one(app_env):
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception and "No study yet" in at.info[0].value


def test_the_view_shows_progress_best_run_and_every_chart(a_study):
    env, ids = a_study
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["study"] = "explore"
    at.run()
    assert not at.exception, at.exception
    shown = texts(at)
    assert "3 of 6 done" in shown and "2 completed · 1 pruned · 1 running" in shown
    assert "Best run so far" in shown and "validation accuracy 90.00%" in shown
    titles = [json.dumps(figure) for figure in chart_figures(at)]
    for title in ("Optimization history", "Parameter importance", "Intermediate values", "learning rate",
                  "optimizer", "parcoords"):
        assert any(title in spec for spec in titles), title
    assert any("pruned" in spec and '"symbol":"x"' in spec.replace(" ", "") for spec in titles)


def test_an_editor_stops_and_extends_the_study(a_study):
    env, ids = a_study
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    queued = len(env.store.list_runs(group="explore", status="queued"))
    assert queued >= 1
    at.button(key="study_stop").click().run()
    assert not at.exception and f"{queued} queued run(s) cancelled" in texts(at)
    assert get_study(env.store, "explore").stopped
    at.number_input(key="study_extend_n").set_value(2).run()
    at.button(key="study_extend").click().run()
    study = get_study(env.store, "explore")
    assert not at.exception and study.budget == 8 and not study.stopped and "Extended explore by 2 runs" in texts(at)


def test_a_viewer_cannot_stop_or_extend(a_study, network_address):
    env, ids = a_study
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    at.switch_page("../pages/study.py").run()
    before = env.store.list_runs(group="explore")
    at.button(key="study_stop").click().run()
    assert any("you cannot stop a study" in e.value for e in at.error)
    at.button(key="study_extend").click().run()
    assert any("you cannot extend a study" in e.value for e in at.error)
    study = get_study(env.store, "explore")
    assert not study.stopped and study.budget == 6
    assert env.store.list_runs(group="explore")["status"].tolist() == before["status"].tolist()


def test_the_train_page_study_form_previews_and_queues_a_study(app_env):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.radio(key="sweep_kind").set_value("Study").run()
    at.selectbox(key="study_search").select("tpe")
    at.number_input(key="study_budget").set_value(5)
    at.selectbox(key="study_pruner").select("median").run()
    at.selectbox(key="study_field_0").select("learning_rate").run()
    assert at.selectbox(key="study_scale_0_learning_rate").value == "log"
    at.text_input(key="study_low_0_learning_rate").input("1e-4")
    at.text_input(key="study_high_0_learning_rate").input("1e-1").run()
    at.selectbox(key="study_field_1").select("optimizer").run()
    at.multiselect(key="study_values_1_optimizer").select("adam").select("sgd").run()
    assert not at.exception
    preview = next(d.value for d in at.dataframe if "searched over" in d.value.columns)
    assert preview["searched over"].tolist() == ["0.0001 … 0.1 (log)", "adam, sgd"]
    assert "5 runs" in texts(at) and "median pruner" in texts(at)
    at.text_input(key="study_name").input("from-form")
    at.button(key="study_launch").click().run()
    assert not at.exception, at.exception
    study = get_study(app_env.store, "from-form")
    assert study is not None and study.search == "tpe" and study.budget == 5 and study.pruner == "median"
    runs = app_env.store.list_runs(group="from-form")
    assert len(runs) == 1 and runs["trial"].tolist() == [0] and "Started the study" in texts(at)


def test_a_bad_range_in_the_form_is_named_and_blocks_the_start(app_env):
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.radio(key="sweep_kind").set_value("Study").run()
    at.selectbox(key="study_field_0").select("learning_rate").run()
    at.text_input(key="study_low_0_learning_rate").input("0.1")
    at.text_input(key="study_high_0_learning_rate").input("0.01").run()
    assert any("learning_rate: the range '0.1:0.01:log' needs low < high" in e.value for e in at.error)
    assert at.button(key="study_launch").disabled and app_env.store.list_runs().empty


def test_runs_links_a_study_group_to_its_view(a_study):
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()
    at.multiselect(key="runs_group").select("explore").run()
    assert not at.exception
    assert "pruned" in at.multiselect(key="runs_status").options
    assert "[Open the study explore](./study?study=explore)" in [m.value for m in at.markdown]  # no navigation here


def test_a_restarted_dashboard_shows_the_same_study(a_study):
    """Nothing of a study lives in the dashboard's memory: a new process (cleared caches) shows the same picture."""
    import streamlit as st
    first = AppTest.from_file(PAGE, default_timeout=60).run()
    st.cache_resource.clear()
    st.cache_data.clear()
    again = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not again.exception
    assert [p.proto.text for p in again.get("progress")] == [p.proto.text for p in first.get("progress")]
    assert [s.value for s in again.success] == [s.value for s in first.success]


def test_deleting_a_study_run_queues_no_replacement_and_the_dialog_says_so(app_env):
    """Issue 27, item 2: deleting trial #1 of a finished study queued, trained and pruned a trial #4 at
    once. A deleted run now takes its place in the budget with it; the confirm dialog says so."""
    from core.search.study import top_up_all
    store = app_env.store
    ids = create_study(store, BASE, SPACE, "done", app_env.data_path, search="random", budget=2)
    finish_trial(store, ids[0], [0.5, 0.6])
    ids.append(top_up(store, "done")[0])
    finish_trial(store, ids[1], [0.4, 0.7])
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()
    shown = next(df.value for df in at.dataframe if "id" in df.value.columns)
    at.session_state[f"runs_table_{at.session_state['runs_table_n']}"] = {
        "selection": {"rows": [shown["id"].tolist().index(ids[0])], "columns": [], "cells": []}}
    at.run()
    at.button(key="runs_delete").click().run()
    warning = next(w.value for w in at.warning if "for good" in w.value)
    assert "1 of study done" in warning and "does not replace a deleted run" in warning
    at.button(key="runs_delete_confirm").click().run()
    assert not at.exception and "Deleted 1 run(s)." in [s.value for s in at.success]
    assert get_study(store, "done").budget == 1
    assert top_up_all(store) == [] and len(store.list_runs(group="done")) == 1  # nothing new to train
    assert top_up(store, "done") == []


def test_a_study_on_two_datasets_says_so_and_json_keeps_value_types(app_env, capsys):
    """Issue 27, items 2 and 10: runs that trained on different data are named on the page and in
    `study --json`, whose best_params keep their types (32, not "32"); accuracies read in percent."""
    import json

    from core.cli import main
    store = app_env.store
    space = {"batch_size": {"type": "categorical", "choices": [32, 64]}}
    ids = create_study(store, BASE, space, "mixed", app_env.data_path, search="random", budget=2)
    for i, (n_train, values) in enumerate(((60_000, [0.5, 0.9]), (5_000, [0.3, 0.4]))):
        if i:
            ids += top_up(store, "mixed")  # full MNIST was ingested in between
        store.set_dataset(ids[i], {"source": f"set {i}", "n_train": n_train, "n_test": 100, "sha256": f"{i}" * 64})
        finish_trial(store, ids[i], values)
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["study"] = "mixed"
    at.run()
    assert not at.exception
    assert any("different datasets" in w.value and "60,000 training digits" in w.value for w in at.warning)
    assert "validation accuracy 90.00%" in texts(at)
    table = at.dataframe[0].value
    assert {"Trial", "Name", "Status", "Validation accuracy %", "Test accuracy %", "Batch size"} <= set(table.columns)
    assert not {"run_id", "val_accuracy", "epochs_run"} & set(table.columns)
    assert sorted(table["Validation accuracy %"].dropna()) == pytest.approx([40.0, 90.0])
    capsys.readouterr()
    assert main(["study", "mixed", "--json", "--db", app_env.db_url]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["mixed_datasets"] is True and [d["runs"] for d in data["datasets"]] == [1, 1]
    assert isinstance(data["best_params"]["batch_size"], int)


def test_confirming_the_top_configs_ranks_them_with_intervals_and_warns_on_a_tie(a_study):
    """Issue 24: "Confirm the top K configurations with N seeds" queues N runs of each of the K best
    configs; once they finish, the view ranks those configs by their mean with 95 % intervals, and the
    best run warns when it cannot be told apart from the runner-up."""
    env, ids = a_study
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["study"] = "explore"
    at.run()
    at.number_input(key="study_confirm_k").set_value(2)
    at.number_input(key="study_confirm_n").set_value(2)
    at.button(key="study_confirm").click().run()
    assert not at.exception, at.exception
    assert "Queued 4 runs to confirm the top 2 configurations" in texts(at)
    runs = env.store.list_runs()
    queued = runs[runs["group_name"] == "explore · confirm"]
    assert len(queued) == 4 and set(queued["status"]) == {"queued"}
    for run_id, acc in zip(queued["run_id"], (0.90, 0.92, 0.91, 0.93)):  # two configs, overlapping spreads
        env.store.claim_run("test-worker", run_id=run_id)
        env.store.complete_run(run_id, {**EVALUATION, "accuracy": acc}, test_accuracy=acc)
    poll.forget()  # the page shares one summary per refresh tick: read the runs finished behind its back
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["study"] = "explore"
    at.run()
    assert not at.exception, at.exception
    ranking = next(df.value for df in at.dataframe if "Rank" in df.value.columns)
    assert list(ranking["Rank"]) == [1, 2] and list(ranking["N"]) == [3, 3]  # the study's run and its 2 repeats
    assert all(" to " in text for text in ranking["95 % interval of the mean"])
    assert any("not distinguishable from the runner-up" in w.value for w in at.warning)


def test_the_study_form_names_parameters_by_label_and_offers_each_once(app_env):
    """Issue 27, item 13: the parameter menus used snake_case and offered a parameter already chosen."""
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.radio(key="sweep_kind").set_value("Study").run()
    at.selectbox(key="study_field_0").select("learning_rate").run()
    assert "Learning rate" in at.selectbox(key="study_field_0").options
    assert not any("_" in option for option in at.selectbox(key="study_field_1").options)
    assert "Learning rate" not in at.selectbox(key="study_field_1").options  # chosen above: not offered again
    assert at.text_input(key="study_low_0_learning_rate").label == "Learning rate from"
    assert "validation accuracy (maximise)" in at.selectbox(key="study_objective").options


def test_the_train_pages_study_progress_counts_against_the_budget(app_env):
    """Issue 27, item 13: the sweep panel said "1 of 2 ended" for a study with a budget of 4."""
    store = app_env.store
    ids = create_study(store, BASE, SPACE, "budget4", app_env.data_path, search="random", budget=4)
    finish_trial(store, ids[0], [0.5])
    top_up(store, "budget4")
    at = AppTest.from_file(TRAIN, default_timeout=60).run()
    at.selectbox(key="train_sweep_pick").select("budget4").run()
    texts_ = [p.proto.text for p in at.get("progress")]
    assert any("1 of 4 done (its budget)" in t for t in texts_), texts_
    assert not any("Compare the" in m.value for m in at.markdown)  # not finished: more runs will be queued
