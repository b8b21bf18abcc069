"""The Train page's form as a user meets it after the first hour (issue 27): optional fields that
can be emptied again, a Summary that shows what Launch trains, the run name checked beside its field."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "train.py")


def open_page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def summary_layers(at: AppTest) -> list[str]:
    return next(df.value for df in at.dataframe if "Layer" in df.value.columns)["Layer"].tolist()


def test_emptying_dropout_or_the_train_limit_restores_their_default(app_env):
    """Item 1: emptying "Dropout rate" gave 0.00 (the preset's 20 % dropout silently gone) and emptying
    "Train on at most" gave 0 with an error. Empty means the default: the preset's rates, all digits."""
    at = open_page()
    at.selectbox(key="train_architecture").select("mlp-512-dropout").run()
    assert "Dropout 0.2" in summary_layers(at)
    for field in ("dropout", "train_limit"):  # no number as their widget default: the browser may empty them
        assert not at.number_input(key=f"train_{field}").proto.HasField("default")
    at.number_input(key="train_dropout").set_value(0.3)
    at.number_input(key="train_train_limit").set_value(500).run()
    assert "Dropout 0.3" in summary_layers(at)
    at.number_input(key="train_dropout").set_value(None)
    at.number_input(key="train_train_limit").set_value(None).run()
    assert not at.exception and not at.error
    assert at.number_input(key="train_dropout").value is None
    assert "Dropout 0.2" in summary_layers(at)  # what Launch will train: the preset's rate
    at.button(key="train_launch").click().run()
    run = app_env.store.get_run(app_env.store.list_runs()["run_id"][0])
    assert run.config["dropout"] is None and run.config["train_limit"] is None


def test_an_over_long_run_name_is_named_beside_its_field_and_blocks_launch(app_env):
    """Item 6: 321 characters left Launch enabled, then failed under the button with the internal
    field name and an unclosed quote."""
    at = open_page()
    at.text_input(key="train_name").input("x" * 321).run()
    assert [e.value for e in at.error] == ["Run name must be text of at most 200 characters"]
    assert at.button(key="train_launch").disabled and app_env.store.list_runs().empty
    at.text_input(key="train_name").input("x" * 200).run()
    assert not at.error and not at.button(key="train_launch").disabled


def _running(app_env, epochs: int = 2, spe: int = 6):
    from core.config import make_config
    from core.store.queue import queue_run
    store = app_env.store
    run_id = queue_run(store, make_config("mlp-128-64", epochs=epochs, batch_size=32), app_env.data_path)
    store.claim_run("test-worker", run_id=run_id)
    return store, run_id


def test_time_left_falls_smoothly_across_an_epoch_boundary():
    """Item 9: at the start of epoch 2 the panel sat at "Batch 0 of 422" for 9 s, then jumped from
    29 s to 1 min 30 s: the rate over the last commits took in the pause between epochs. Whole epochs,
    their start and validation included, are now the measure: a second later is a second less."""
    import pandas as pd

    from core.store.schema import Run
    from dashboard.train.live import eta_seconds
    spe, t0 = 422, 1000.0
    # epoch 1 took 40 s (its start, its batches and validation) and ended at t0 + 40
    epochs = pd.DataFrame([("r", "epoch", "epoch_seconds", spe, 1, 40.0, t0 + 40)],
                          columns=["run_id", "scope", "key", "step", "epoch", "value", "ts"])
    batches = pd.DataFrame([("r", "batch", "loss", s, 1, 1.0, t0 + 10 + s * 0.07) for s in range(16, spe, 16)],
                           columns=["run_id", "scope", "key", "step", "epoch", "value", "ts"])
    run = Run(id="r", name="r", architecture="cnn-small", status="running", config={}, epochs=2, step=spe,
              steps_per_epoch=spe, epoch=1)
    lefts = [eta_seconds(run, batches, epochs, now=t0 + 40 + dt) for dt in range(0, 12)]  # "Batch 0" for 11 s
    assert lefts[0] == 40.0 and all(a - b == 1.0 for a, b in zip(lefts, lefts[1:]))
    # the first commit of epoch 2 after the pause does not make it jump
    later = pd.concat([batches, pd.DataFrame([("r", "batch", "loss", spe + 16, 2, 1.0, t0 + 52)],
                                             columns=batches.columns)])
    run2 = Run(**{**run.__dict__, "step": spe + 16})
    assert abs(eta_seconds(run2, later, epochs, now=t0 + 52) - lefts[11] + 1.0) < 0.01
    # slower than the last epoch: the current epoch's own pace, never 0 while batches are left
    slow = Run(**{**run.__dict__, "step": spe + spe // 2})
    assert eta_seconds(slow, batches, epochs, now=t0 + 40 + 60) == pytest.approx(60.0, rel=0.01)


def test_after_the_last_epoch_the_panel_says_it_evaluates_on_the_test_set(app_env):
    """Item 9: "100 % · Time left 0 s" stood for 15 s of test evaluation without a word."""
    store, run_id = _running(app_env)
    store.checkpoint(run_id, [(run_id, "epoch", "epoch_seconds", 12, 2, 3.0)], step=12, steps_per_epoch=6, epoch=2)
    at = open_page()
    assert not at.exception
    assert any("evaluating the model on the test set" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Time left (about)"] == "evaluating…"
    assert not any(p.proto.text.startswith("Batch") for p in at.get("progress"))


def test_a_queued_run_beside_a_starting_worker_says_so(app_env, monkeypatch):
    """Item 13: the page said "No worker is running. One starts … when you launch a run" while it was
    starting one."""
    from dashboard import background, state
    monkeypatch.setattr(state, "autostart_worker", lambda: True)
    monkeypatch.setattr(background, "ensure_worker", lambda store, data_path: None)  # nothing real starts
    store, _ = _running(app_env)  # one training, so the new run waits in the queue
    from core.config import make_config
    from core.store.queue import queue_run
    queued = queue_run(store, make_config("mlp-128-64", epochs=1), app_env.data_path)
    at = open_page()
    at.selectbox(key="train_live_pick").set_value(queued).run()
    shown = "\n".join(str(e.value) for kind in ("caption", "warning", "info", "markdown") for e in getattr(at, kind))
    assert "A worker is starting on this machine" in shown and "No worker is running" not in shown
    assert "One starts on this machine when you launch a run" not in shown
    assert ":blue-badge[running]" not in shown  # no status badge beside "Queued: place …"
