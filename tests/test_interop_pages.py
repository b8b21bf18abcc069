"""The dashboard side of runs from elsewhere: the Runs page's source column and filter, the Data page's
model import, Run detail and Train's fork on tracked and imported runs (AppTest, real SQLite under tmp_path)."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.interop import models as interop_models
from core.store.schema import MODEL_FILE
from tests.interop_helpers import saved, synthetic_run, tiny_model

keras = pytest.importorskip("keras")
ROOT = Path(__file__).resolve().parents[1]


def test_the_runs_page_shows_each_runs_source_and_filters_on_it(app_env, tmp_path, tiny_data):
    from streamlit.testing.v1 import AppTest
    store = app_env.store
    trained = synthetic_run(store, "ours", n_batch=2)
    path = saved(tiny_model(), tmp_path / "m.keras")
    imported = interop_models.import_model(store, interop_models.check_model(path, tiny_data), name="theirs")
    at = AppTest.from_file(str(ROOT / "pages" / "runs.py"), default_timeout=60).run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "test %" in df.value.columns)
    assert dict(zip(table["name"], table["source"])) == {"ours": "trained here", "theirs": "imported"}
    at.multiselect(key="runs_source").set_value(["imported"]).run()
    table = next(df.value for df in at.dataframe if "test %" in df.value.columns)
    assert list(table["id"]) == [imported] and trained not in list(table["id"])


def test_the_data_page_imports_an_uploaded_model(app_env, tmp_path, tiny_data):
    from streamlit.testing.v1 import AppTest
    from dashboard.data.model_import import import_upload
    at = AppTest.from_file(str(ROOT / "pages" / "data.py"), default_timeout=60).run()
    assert not at.exception and any(e.label == "Import a model trained elsewhere" for e in at.expander)
    data = saved(tiny_model((784,)), tmp_path / "m.keras").read_bytes()
    run_id = import_upload("../../evil/from the browser.keras", data)  # the browser's name never becomes a path
    run = app_env.store.get_run(run_id)
    assert (run.name, run.source, run.status) == ("from the browser", "imported", "completed")
    assert app_env.store.get_artifact(run_id, MODEL_FILE) == data
    with pytest.raises(interop_models.InteropError, match="legacy HDF5"):
        import_upload("old.h5", b"\x89HDF\r\n\x1a\n")
    assert len(app_env.store.list_runs()) == 1


def test_run_detail_opens_tracked_and_imported_runs_whatever_their_config_lacks(app_env, tmp_path, tiny_data):
    """A model saved uncompiled and logs without a model description: no optimizer, no readable layers."""
    from streamlit.testing.v1 import AppTest
    store = app_env.store
    bare = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation="softmax")])
    bare.save(tmp_path / "bare.keras")  # never compiled: its file names no optimizer
    imported = interop_models.import_model(store, interop_models.check_model(tmp_path / "bare.keras", tiny_data))
    assert store.get_run(imported).config["optimizer"] is None
    from core.interop.tensorboard import LoggedRun, import_runs
    (logged,) = import_runs(store, [LoggedRun("bare logs", tmp_path, epoch=[("loss", 1, 1, 0.5)])])
    assert store.get_run(logged).config["architecture"] == "external"
    for run_id in (imported, logged):
        at = AppTest.from_file(str(ROOT / "pages" / "run_detail.py"), default_timeout=60)
        at.query_params["run"] = run_id
        at.run()
        assert not at.exception, (run_id, at.exception)
        assert any("built outside Digit Lab" in c.value for c in at.caption)


def test_forking_a_tracked_or_imported_run_keeps_what_is_known_and_defaults_the_rest(app_env, tmp_path, tiny_data):
    from streamlit.testing.v1 import AppTest
    from core.interop.tensorboard import LoggedRun, import_runs
    (run_id,) = import_runs(app_env.store, [LoggedRun("logs", tmp_path, epoch=[("loss", 1, 1, 0.5)],
                                                      config={"optimizer": "sgd", "learning_rate": 0.05})])
    at = AppTest.from_file(str(ROOT / "pages" / "train.py"), default_timeout=60)
    at.query_params["fork"] = run_id
    at.run()
    assert not at.exception, at.exception
    state = at.session_state
    assert state["train_optimizer"] == "sgd" and state["train_learning_rate"] == 0.05
    assert state["train_batch_size"] is not None and state["train_architecture"] != "external"
