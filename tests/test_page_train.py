"""pages/train.py through AppTest: form, presets, layer builder, launch, sweeps, fork, live panel."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import HELP, make_config
from core.train.run import queue_run
from tests.helpers import chart_figures, running_run

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "train.py")


def open_page(**session) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()


def texts(at: AppTest) -> str:
    """Everything the page wrote as text, for loose assertions."""
    parts = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_without_a_dataset_guides_to_the_data_page(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "missing.h5"))
    at = open_page()
    assert not at.exception
    assert "Data page" in at.info[0].value
    assert "Data page" in texts(at)
    assert not at.button  # no Launch without data


def test_empty_store_shows_the_form_with_help_on_every_field(app_env):
    at = open_page()
    assert not at.exception
    assert at.selectbox(key="train_architecture").value == "mlp-128-64"
    for field in ("learning_rate", "epochs", "seed", "early_stopping", "dropout", "train_limit"):
        assert at.number_input(key=f"train_{field}").help == HELP[field]
    for field in ("optimizer", "activation", "lr_schedule"):
        assert at.selectbox(key=f"train_{field}").help == HELP[field]
    assert at.select_slider(key="train_batch_size").help == HELP["batch_size"]
    assert at.slider(key="train_validation_split").help == HELP["validation_split"]
    assert at.toggle(key="train_augment").help == HELP["augment"]
    assert at.button(key="train_launch") and at.button(key="sweep_launch").disabled
    assert "109,386 parameters" in texts(at)  # mlp-128-64, as model.summary() counts it
    assert "No run is queued or training" in texts(at)


def test_changing_the_preset_resets_fields_to_its_defaults(app_env):
    at = open_page()
    at.number_input(key="train_learning_rate").set_value(0.05)
    at.number_input(key="train_epochs").set_value(9).run()
    at.selectbox(key="train_architecture").select("mlp-512").run()
    assert not at.exception
    assert at.selectbox(key="train_optimizer").value == "rmsprop"  # Deep Learning with Python's choice
    assert at.number_input(key="train_learning_rate").value == pytest.approx(1e-3)
    assert at.number_input(key="train_epochs").value == 5
    assert at.select_slider(key="train_batch_size").value == 128
    assert "One wide hidden layer trained with RMSprop" in texts(at)


def test_launch_queues_a_run_with_the_forms_config(app_env):
    at = open_page()
    at.number_input(key="train_learning_rate").set_value(0.005)
    at.number_input(key="train_epochs").set_value(2)
    at.select_slider(key="train_batch_size").set_value(16)
    at.number_input(key="train_dropout").set_value(0.3)
    at.text_input(key="train_name").input("my first run")
    at.button(key="train_launch").click().run()
    assert not at.exception and not at.error
    runs = app_env.store.list_runs()
    assert len(runs) == 1
    run = app_env.store.get_run(runs["run_id"][0])
    assert run.status == "queued" and run.name == "my first run" and run.parent_id is None
    expected = make_config("mlp-128-64", learning_rate=0.005, epochs=2, batch_size=16, dropout=0.3,
                           name="my first run").to_dict()
    assert run.config == expected
    assert "place 1 in the queue" in texts(at)  # the live panel shows the new run
    assert "No worker is running" in texts(at)  # DIGITLAB_NO_WORKER: none was started


def test_repeat_with_n_seeds_queues_n_runs_of_one_config(app_env):
    """Issue 24: "Repeat with N seeds" queues N runs with seeds s, s+1, … that share one config id."""
    from core.search.repeats import config_ids

    at = open_page()
    at.number_input(key="train_seed").set_value(7)
    at.number_input(key="train_repeats").set_value(3).run()
    assert at.button(key="train_launch").label == "Launch 3 runs (seeds 7–9)"
    at.button(key="train_launch").click().run()
    assert not at.exception and not at.error
    runs = app_env.store.list_runs()
    assert sorted(c["seed"] for c in runs["config"]) == [7, 8, 9] and set(runs["status"]) == {"queued"}
    assert config_ids(runs.assign(dataset=[{"sha256": "x"}] * 3)).nunique() == 1
    assert "Queued 3 runs" in texts(at)


BAD_FIELDS = [  # (widget kind, field, a bad value, the message shown beside the field)
    ("number_input", "learning_rate", 0.0, "Learning rate must be > 0 and ≤ 10"),
    ("number_input", "learning_rate", 20.0, "Learning rate must be > 0 and ≤ 10"),
    ("number_input", "epochs", 0, "Epochs must be an integer ≥ 1 and at most 1,000"),
    ("number_input", "early_stopping", -1, "Early-stopping patience (epochs, 0 = off) must be an integer ≥ 0 and at most 1,000"),
    ("number_input", "train_limit", 3, "Train on at most (digits) must be an integer ≥ 10 and at most 200"),
    ("number_input", "train_limit", 5000, "Train on at most (digits) must be an integer ≥ 10 and at most 200"),
    ("number_input", "dropout", 1.0, "Dropout rate must be in [0, 1) or empty"),
    ("number_input", "seed", -1, "Random seed must be an integer ≥ 0 and at most 2,147,483,647"),
    ("select_slider", "batch_size", 512, "Batch size must be an integer ≥ 1 and at most the 180 training digits"),
]


GOOD = {"learning_rate": 1e-3, "epochs": 2, "early_stopping": 0, "train_limit": 100, "dropout": 0.2, "seed": 1,
        "batch_size": 32}


@pytest.mark.parametrize("kind, field, bad, message", BAD_FIELDS)
def test_a_bad_field_is_named_beside_it_and_blocks_launch(app_env, kind, field, bad, message):
    """What the form shows is what would be trained: a value the config refuses is kept as typed
    (not silently replaced by the last valid one), named by its label beside the field, and
    nothing can be queued until it is fixed."""
    at = open_page()
    getattr(at, kind)(key=f"train_{field}").set_value(bad).run()
    assert not at.exception
    assert getattr(at, kind)(key=f"train_{field}").value == bad  # kept, not clamped
    assert [e.value for e in at.error] == [message]
    column = next(c for c in at.columns if any(w.key == f"train_{field}" for w in getattr(c, kind)))
    assert [e.value for e in column.error] == [message]  # beside the field, not at the bottom
    assert at.button(key="train_launch").disabled  # a browser cannot click it (AppTest refuses too)
    assert app_env.store.list_runs().empty
    getattr(at, kind)(key=f"train_{field}").set_value(GOOD[field]).run()
    assert not at.error and not at.button(key="train_launch").disabled
    at.button(key="train_launch").click().run()
    assert len(app_env.store.list_runs()) == 1


def test_epochs_and_train_limit_as_typed_are_what_is_queued(app_env):
    """The reported case: Epochs 0 and a train limit of 3 queued epochs=5 and no limit."""
    at = open_page()
    at.number_input(key="train_epochs").set_value(0)
    at.number_input(key="train_train_limit").set_value(3).run()
    assert sorted(e.value for e in at.error) == [
        "Epochs must be an integer ≥ 1 and at most 1,000",
        "Train on at most (digits) must be an integer ≥ 10 and at most 200"]
    assert at.button(key="train_launch").disabled and app_env.store.list_runs().empty
    at.number_input(key="train_epochs").set_value(1)
    at.number_input(key="train_train_limit").set_value(100).run()
    at.button(key="train_launch").click().run()
    run = app_env.store.get_run(app_env.store.list_runs()["run_id"][0])
    assert run.config["epochs"] == 1 and run.config["train_limit"] == 100


def test_a_bad_field_blocks_the_sweep_too(app_env):
    at = open_page()
    at.number_input(key="train_epochs").set_value(0)
    at.selectbox(key="sweep_field_0").select("learning_rate").run()
    at.text_input(key="sweep_values_0_learning_rate").input("1e-2, 1e-3").run()
    assert at.button(key="sweep_launch").disabled and app_env.store.list_runs().empty


def test_a_bad_layer_value_is_named_and_blocks_launch(app_env):
    at = open_page()
    at.selectbox(key="train_architecture").select("custom").run()
    dense = next(layer for layer in at.session_state["train_layers"] if layer["type"] == "Dense")
    at.number_input(key=f"train_layer{dense['_id']}_units").set_value(0).run()
    assert not at.exception
    assert "units must be an integer from 1 to 4096, got 0" in at.error[0].value
    assert at.button(key="train_launch").disabled and app_env.store.list_runs().empty


def test_layer_builder_starts_from_the_preset_and_reports_bad_stacks(app_env):
    at = open_page()
    at.selectbox(key="train_architecture").select("custom").run()
    assert not at.exception
    assert [layer["type"] for layer in at.session_state["train_layers"]] == ["Flatten", "Dense", "Dense"]
    assert "109,386 parameters" in texts(at)
    at.selectbox(key="train_new_layer_type").select("Conv2D")
    at.button(key="train_add_layer").click().run()  # a Conv2D after Flatten cannot work
    assert "needs an image-shaped input" in at.error[0].value
    new_id = at.session_state["train_layers"][-1]["_id"]
    for _ in range(3):  # move it up, before the Flatten
        at.button(key=f"train_up{new_id}").click().run()
    assert [layer["type"] for layer in at.session_state["train_layers"]] == ["Conv2D", "Flatten", "Dense", "Dense"]
    assert not at.error
    at.number_input(key=f"train_layer{new_id}_filters").set_value(8).run()
    # Conv2D 8 3×3: 26×26×8 → 5,408 inputs to Dense 128
    assert f"{3 * 3 * 8 + 8 + 5408 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10:,} parameters" in texts(at)
    at.button(key=f"train_remove{new_id}").click().run()
    assert "109,386 parameters" in texts(at)
    at.button(key="train_launch").click().run()
    run = app_env.store.get_run(app_env.store.list_runs()["run_id"][0])
    assert run.architecture == "custom" and [layer["type"] for layer in run.config["layers"]] == ["Flatten", "Dense", "Dense"]


def test_custom_stack_without_layers_is_refused(app_env):
    at = open_page(train_layers=[])
    at.selectbox(key="train_architecture").select("custom").run()
    for layer in list(at.session_state["train_layers"]):
        at.button(key=f"train_remove{layer['_id']}").click().run()
    assert [e.value for e in at.error] == ["Hidden layers: a custom architecture needs at least one layer"]
    assert at.button(key="train_launch").disabled and app_env.store.list_runs().empty


def test_sweep_of_two_by_two_queues_four_runs_in_one_group(app_env):
    at = open_page()
    at.selectbox(key="sweep_field_0").select("learning_rate").run()
    at.text_input(key="sweep_values_0_learning_rate").input("1e-2, 1e-3")
    at.selectbox(key="sweep_field_1").select("batch_size").run()
    at.text_input(key="sweep_values_1_batch_size").input("16, 32").run()
    assert at.button(key="sweep_launch").label == "Queue 4 runs"
    at.text_input(key="sweep_group").input("lr-x-bs")
    at.button(key="sweep_launch").click().run()
    assert not at.exception and not at.error
    runs = app_env.store.list_runs(group="lr-x-bs")
    assert len(runs) == 4 and set(runs["status"]) == {"queued"}
    assert sorted(zip(runs["learning_rate"], runs["batch_size"])) == [(1e-3, 16), (1e-3, 32), (1e-2, 16), (1e-2, 32)]
    assert any("0 of 4 ended" in text for text in progress_texts(at))


def test_sweep_with_an_invalid_value_queues_nothing(app_env):
    at = open_page()
    at.selectbox(key="sweep_field_0").select("learning_rate").run()
    at.text_input(key="sweep_values_0_learning_rate").input("1e-2, 20").run()
    at.button(key="sweep_launch").click().run()
    assert not at.exception
    assert "learning_rate must be a number > 0 and ≤ 10, got 20.0" in at.error[0].value
    assert app_env.store.list_runs().empty
    at.text_input(key="sweep_values_0_learning_rate").input("1e-2, fast").run()
    assert "'fast' is not a number" in at.error[0].value and at.button(key="sweep_launch").disabled


def test_fork_prefills_the_form_and_records_the_parent(populated_env):
    parent = populated_env.store.get_run(populated_env.runs.query("name == 'lr-sweep · learning_rate=0.01'")
                                         ["run_id"].iloc[0])
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["fork"] = parent.id
    at.run()
    assert not at.exception
    assert at.selectbox(key="train_architecture").value == "mlp-512"
    assert at.number_input(key="train_learning_rate").value == pytest.approx(0.01)
    assert at.select_slider(key="train_batch_size").value == 64
    assert at.text_input(key="train_name").value == f"{parent.name} (fork)"
    assert f"Forked from **{parent.name}**" in texts(at)
    at.number_input(key="train_seed").set_value(7)
    at.button(key="train_launch").click().run()
    child = populated_env.store.list_runs(status="queued")
    assert len(child) == 1
    run = populated_env.store.get_run(child["run_id"][0])
    assert run.parent_id == parent.id and run.config == {**parent.config, "seed": 7, "name": f"{parent.name} (fork)"}


def test_fork_of_an_unknown_run_warns(app_env):
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["fork"] = "nope"
    at.run()
    assert not at.exception and "no run 'nope' to fork" in at.warning[0].value


def test_populated_store_shows_a_finished_sweep_with_a_compare_link(populated_env):
    at = open_page()
    assert not at.exception
    assert at.selectbox(key="train_sweep_pick").value == "lr-sweep"
    group = populated_env.runs.query("group_name == 'lr-sweep'").sort_values("created_at")
    link = next(m.value for m in at.markdown if "Compare the 2 runs" in m.value)
    assert f"runs={'%2C'.join(group['run_id'])}" in link and "group=lr-sweep" in link


def test_live_panel_of_a_running_run_shows_progress_and_cancels(app_env):
    store = app_env.store
    run_id = running_run(store, app_env.data_path)
    at = open_page()
    assert not at.exception
    assert at.selectbox(key="train_live_pick").value == run_id
    assert any("Epoch 1 of 2 · 25%" in text for text in progress_texts(at))
    assert "Batch 3 of 6" in progress_texts(at)
    assert [f["layout"]["title"]["text"] for f in chart_figures(at)] == ["Loss", "Accuracy"]
    at.button(key=f"cancel_{run_id}").click().run()
    assert store.get_run(run_id).cancel_requested
    assert at.button(key=f"cancel_{run_id}").disabled


def test_live_panel_of_a_finished_run_links_to_its_details(populated_env):
    run_id = populated_env.runs["run_id"][0]
    at = open_page(train_session_runs=[run_id])
    assert not at.exception
    assert at.selectbox(key="train_live_pick").value == run_id
    assert any(m.label == "Test accuracy" for m in at.metric)
    assert f"(./run?run={run_id})" in texts(at)  # page_link outside st.navigation: a relative link


def test_cancelling_a_queued_run_ends_it_at_once(app_env):
    run_id = queue_run(app_env.store, make_config("mlp-128-64", epochs=1), app_env.data_path)
    at = open_page()
    at.button(key=f"cancel_{run_id}").click().run()
    assert not at.exception
    assert app_env.store.get_run(run_id).status == "cancelled"


def test_window_means_undo_keras_running_means():
    import pandas as pd

    from dashboard.train.curves import window_means
    from dashboard.train.live import progress_numbers
    from core.store.schema import Run

    # batch losses 4, 2 | 3, 1 in epoch 1 and 1, 1 | 2, 2 in epoch 2 (4 steps per epoch, sampled every 2)
    running = [(2, 1, 3.0), (4, 1, 2.5), (6, 2, 1.0), (8, 2, 1.5)]
    batches = pd.DataFrame([("r", "batch", "loss", step, epoch, value) for step, epoch, value in running],
                           columns=["run_id", "scope", "key", "step", "epoch", "value"])
    assert window_means(batches, 4)["value"].tolist() == [3.0, 2.0, 1.0, 2.0]
    assert window_means(batches, None)["value"].tolist() == [3.0, 2.5, 1.0, 1.5]  # unknown epoch length: as logged
    run = Run(id="r", name="r", architecture="mlp-128-64", status="running", config={}, epochs=2, step=6,
              steps_per_epoch=4)
    assert progress_numbers(run) == {"epoch": 2, "batch": 2, "steps": 4, "fraction": 0.75}


# (seconds since the run started, step) of each progress commit of a real cnn-small run, 57 steps ×
# 2 epochs on 8,000 digits (recorded on this machine): the first commit comes 12 s in, after loading
# the data, building the model and tracing it; then about 14 steps a second, validation included.
RECORDED = [(12.19, 16), (13.2, 32), (14.22, 46), (15.4, 57), (16.41, 70), (17.47, 88), (18.47, 104), (19.63, 114)]


def test_time_left_is_estimated_from_recent_steps_not_since_the_start():
    from dashboard.train.live import ETA_MIN_SAMPLES, eta_from_samples

    total, end = 114, RECORDED[-1][0]
    for k in range(1, len(RECORDED) + 1):
        now = RECORDED[k - 1][0]
        left = eta_from_samples(RECORDED[:k], total, now=now)
        if k < ETA_MIN_SAMPLES:
            assert left is None  # "estimating…"
        else:
            assert abs(left - (end - now)) <= max(1.0, 0.25 * (end - now)), (k, left, end - now)
    # What the panel did before: the rate since the run started (build and tracing included)
    t, step = RECORDED[ETA_MIN_SAMPLES - 1]
    assert (total - step) / (step / t) > 3 * (end - t)
    # Time passed since the last commit counts as done; a stalled or finished run does not go negative
    assert eta_from_samples(RECORDED[:4], total, now=RECORDED[3][0] + 1.0) == pytest.approx(
        eta_from_samples(RECORDED[:4], total, now=RECORDED[3][0]) - 1.0)
    assert eta_from_samples(RECORDED[:4], total, now=RECORDED[3][0] + 600) == 0.0
    assert eta_from_samples([(1.0, 5), (2.0, 5), (3.0, 5)], total) is None  # no progress: no rate


def test_time_left_of_a_live_run_reads_its_metric_rows(app_env):
    import pandas as pd

    from core.store.schema import Run
    from dashboard.train.live import eta_seconds, step_samples

    run = Run(id="r", name="r", architecture="mlp-128-64", status="running", config={}, epochs=2, step=46,
              steps_per_epoch=57)
    rows = [("r", "batch", key, step, 1, 0.5, 1000.0 + t) for t, step in RECORDED[:3] for key in ("loss", "accuracy")]
    batches = pd.DataFrame(rows, columns=["run_id", "scope", "key", "step", "epoch", "value", "ts"])
    assert step_samples(batches) == [(1000.0 + t, s) for t, s in RECORDED[:3]]
    assert eta_seconds(run, batches.iloc[:4], now=1014.22) is None
    assert eta_seconds(run, batches, now=1014.22) == pytest.approx(4.6, abs=0.1)


@pytest.mark.parametrize("seconds, text", [(None, "—"), (3.2, "3 s"), (72, "1 min 12 s"), (65, "1 min 5 s"),
                                           (3 * 3600 + 5 * 60, "3 h 05 min"), (float("nan"), "—")])
def test_durations_read_the_same_everywhere(seconds, text):
    from dashboard.format import duration_text

    assert duration_text(seconds) == text


def test_unnamed_runs_are_named_after_what_differs_or_numbered(app_env):
    at = open_page()
    at.button(key="train_launch").click().run()
    at.button(key="train_launch").click().run()
    at.number_input(key="train_learning_rate").set_value(0.01)
    at.select_slider(key="train_batch_size").set_value(64).run()
    at.button(key="train_launch").click().run()
    at.toggle(key="train_augment").set_value(True).run()
    at.button(key="train_launch").click().run()
    names = app_env.store.list_runs().sort_values("created_at")["name"].tolist()
    assert names == ["mlp-128-64", "mlp-128-64 #2", "mlp-128-64 · lr 0.01 · batch 64",
                     "mlp-128-64 · lr 0.01 · batch 64 · augment"]


def test_the_dashboard_warms_up_keras_and_the_default_model_in_the_background(populated_env):
    """The first drawing after a server start is read without 'Loading the model…': the app's
    first visit starts a thread that imports Keras, loads the Draw page's default model into its
    cache and traces its predict function; the sidebar says what is happening meanwhile."""
    import time

    from dashboard import background, model_cache

    at = AppTest.from_file(str(Path(PAGE).parents[1] / "dashboard" / "app.py"), default_timeout=60).run()
    assert not at.exception
    status = background._warm_up(populated_env.db_url)  # the same process-wide status the page started
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "Warming up" in sidebar or "Warmed up" in sidebar
    deadline = time.time() + 90
    while not status["done"] and time.time() < deadline:
        time.sleep(0.2)
    assert status["done"] and status["error"] is None and status["stage"] == "Ready"
    best = model_cache.completed_runs(populated_env.store)["run_id"].iloc[0]
    started = time.perf_counter()
    model_cache.cached_model(populated_env.store, best)
    assert time.perf_counter() - started < 0.5  # already in the cache: no load
    at.run()
    assert "Warmed up in" in " ".join(c.value for c in at.sidebar.caption)
