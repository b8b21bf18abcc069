"""The Train page's form as a user meets it after the first hour (issue 27): optional fields that
can be emptied again, a Summary that shows what Launch trains, the run name checked beside its field."""
from __future__ import annotations

from pathlib import Path

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
