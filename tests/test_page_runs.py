"""Runs page through AppTest: empty store, filters, selection actions, tags, notes, delete, 1,000 runs."""
import io
import time
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from core.config import make_config
from core.store.schema import runs_t
from dashboard.runs import table as tables
from tests.helpers import GROUP

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "runs.py")


def _open() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=60).run()


def _table(at: AppTest) -> pd.DataFrame:
    return next(df.value for df in at.dataframe if "test %" in df.value.columns)


def _select(at: AppTest, rows: list[int]) -> AppTest:
    """Tick table rows (by position in the table shown), as a click in the browser does."""
    key = f"runs_table_{at.session_state['runs_table_n']}"
    at.session_state[key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def _text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning", "success", "subheader")
                     for e in getattr(at, kind))


def test_empty_store_says_how_to_start(app_env):
    at = _open()
    assert not at.exception
    assert "No runs yet" in at.info[0].value
    assert not at.dataframe


def test_table_lists_every_run_with_its_results(populated_env):
    at = _open()
    assert not at.exception
    table = _table(at)
    assert len(table) == 3 and set(table["name"]) == set(populated_env.runs["name"])
    row = table.set_index("name").loc["mlp-base"]
    run = populated_env.runs.set_index("name").loc["mlp-base"]
    assert row["test %"] == 100 * run["test_accuracy"] and row["params"] == run["n_params"]
    assert row["epochs"] == "1 / 1" and row["status"].endswith("completed")
    assert row["details"] == f"run?run={run['run_id']}"
    assert "3 of 3 runs shown" in _text(at)


def test_filters_search_and_sort(populated_env):
    at = _open()
    at.multiselect("runs_group").set_value([GROUP]).run()
    assert set(_table(at)["group"]) == {GROUP}
    at.multiselect("runs_group").set_value([])
    at.multiselect("runs_arch").set_value(["mlp-128-64"]).run()
    assert list(_table(at)["name"]) == ["mlp-base"]
    at.multiselect("runs_arch").set_value([])
    at.text_input("runs_search").input("0.001").run()
    assert list(_table(at)["name"]) == [f"{GROUP} · learning_rate=0.001"]
    at.text_input("runs_search").input("")
    at.selectbox("runs_sort").select("name").run()
    names = list(_table(at)["name"])
    assert names == sorted(names, key=str.lower)
    at.toggle("runs_reverse").set_value(True).run()
    assert list(_table(at)["name"]) == names[::-1]
    at.multiselect("runs_status").set_value(["completed"]).run()
    assert not at.exception and len(_table(at)) == 3


def test_selection_offers_compare_details_and_fork_links(populated_env):
    at = _select(_open(), [0, 1])
    assert not at.exception
    shown = _table(at)
    ids = list(shown["id"].iloc[[0, 1]])
    assert f"?runs={ids[0]}%2C{ids[1]}" in _text(at)  # outside app.py's navigation: plain links
    assert at.subheader[0].value.startswith("2 selected")
    at = _select(at, [2])
    assert f"?fork={shown['id'].iloc[2]}" in _text(at) and f"?run={shown['id'].iloc[2]}" in _text(at)


def test_tags_are_added_filtered_and_removed(populated_env):
    at = _select(_open(), [0, 1])
    ids = list(_table(at)["id"].iloc[[0, 1]])
    at.text_input("runs_tag_text").input("baseline, v2").run()
    at.button("runs_add_tag").click().run()
    assert not at.exception
    assert "Added tag “baseline v2” on 2 run(s)." in _text(at)
    tags = populated_env.store.list_runs().set_index("run_id")["tags"]
    assert tags[ids[0]] == ["baseline v2"] and tags[ids[1]] == ["baseline v2"]
    at.multiselect("runs_tags").set_value(["baseline v2"]).run()
    assert sorted(_table(at)["id"]) == sorted(ids)
    at = _select(at, [0])
    at.button("runs_remove_tag").click().run()
    assert "Removed tag “baseline v2” on 1 run(s)." in _text(at)
    assert sorted(populated_env.store.list_runs().set_index("run_id")["tags"].map(len)) == [0, 0, 1]


def test_note_is_saved(populated_env):
    at = _select(_open(), [0])
    run_id = _table(at)["id"].iloc[0]
    at.text_area(f"runs_note_{run_id}").input("lr too high: loss jumps").run()
    at.button("runs_save_note").click().run()
    assert not at.exception
    assert populated_env.store.get_run(run_id).note == "lr too high: loss jumps"
    assert _table(at).set_index("id").loc[run_id, "note"] == "lr too high: loss jumps"


def test_delete_needs_confirmation_then_removes_metrics_and_files(populated_env):
    store = populated_env.store
    at = _select(_open(), [0])
    run_id = _table(at)["id"].iloc[0]
    assert (store.run_dir(run_id) / "model.keras").exists()
    at.button("runs_delete").click().run()
    assert "for good" in at.warning[0].value
    assert len(store.list_runs()) == 3  # nothing deleted before the confirmation
    at.button("runs_delete_cancel").click().run()
    assert not at.warning and len(store.list_runs()) == 3
    at.button("runs_delete").click().run()
    at.button("runs_delete_confirm").click().run()
    assert not at.exception
    assert run_id not in set(store.list_runs()["run_id"]) and len(_table(at)) == 2
    assert store.metric_history(run_id).empty and store.evaluation(run_id) is None
    assert not store.run_dir(run_id).exists()
    assert "Deleted 1 run(s)." in _text(at)


def test_a_running_run_is_not_deleted(populated_env):
    store = populated_env.store
    run_id = store.create_run(make_config("mlp-512", epochs=2).to_dict())
    store.claim_run("w", run_id)
    at = _open()
    assert "1 running" in _text(at)
    at = _select(at, [0])
    assert _table(at)["id"].iloc[0] == run_id
    at.button("runs_delete").click().run()
    at.button("runs_delete_confirm").click().run()
    assert not at.exception
    assert store.get_run(run_id).status == "running"
    assert "Deleted 0 run(s)." in _text(at) and "cancel it first" in at.warning[0].value


def test_a_viewer_cannot_tag_or_delete(populated_env, monkeypatch):
    from dashboard import auth

    monkeypatch.setattr(auth, "role", lambda: "viewer")
    at = _select(_open(), [0])
    at.text_input("runs_tag_text").input("nope").run()
    at.button("runs_add_tag").click().run()
    assert not at.exception and "you cannot tag runs" in at.error[0].value
    at.button("runs_delete").click().run()
    at.button("runs_delete_confirm").click().run()
    assert "you cannot delete runs" in at.error[0].value
    runs = populated_env.store.list_runs()
    assert len(runs) == 3 and runs["tags"].map(len).sum() == 0


def test_csv_export_of_runs():
    runs = pd.DataFrame({"run_id": ["a1", "b2"], "name": ["x", "y, z"], "status": ["completed", "failed"],
                         "architecture": ["mlp-512", "cnn-small"], "tags": [["t1", "t2"], []], "note": ["", "n"],
                         "created_at": [0.0, 60.0], "test_accuracy": [0.98, None], "group_name": [None, "g"]})
    table = pd.read_csv(io.BytesIO(tables.runs_csv(runs)))
    assert list(table["name"]) == ["x", "y, z"] and table["tags"].iloc[0] == "t1;t2"
    assert table["test_accuracy"].iloc[0] == 0.98 and pd.isna(table["test_accuracy"].iloc[1])
    assert table["created"].iloc[1] == "1970-01-01T00:01:00Z"


def test_a_thousand_runs_render_in_one_table(app_env):
    """Rows inserted in one transaction; the page must show all of them, unpaged, quickly."""
    config = make_config("mlp-512", epochs=3).to_dict()
    now = time.time()
    rows = [dict(id=f"r{i:05d}", name=f"run {i}", architecture="mlp-512", status="completed", config=config,
                 n_params=407_050, tags=["bulk"] if i % 2 else [], note="", created_at=now - i, started_at=now - i - 60,
                 finished_at=now - i, epochs=3, epoch=3, step=300, cancel_requested=False,
                 best_val_accuracy=0.9 + i / 1e5, best_val_epoch=2, test_accuracy=0.95) for i in range(1000)]
    app_env.store.transact(lambda c: c.execute(sa.insert(runs_t), rows))
    start = time.perf_counter()
    at = _open()
    seconds = time.perf_counter() - start
    assert not at.exception
    assert len(_table(at)) == 1000
    assert seconds < 20, f"the Runs page took {seconds:.1f} s for 1,000 runs"
    at.multiselect("runs_tags").set_value(["bulk"]).run()
    assert len(_table(at)) == 500


def test_every_run_records_and_shows_its_dataset_and_headers_read_on_their_own(populated_env):
    from core.data.dataset import dataset_info
    from dashboard.runs.table import DEFAULT_COLUMNS, runs_column_config

    info = dataset_info(populated_env.data_path)
    for run_id in populated_env.runs["run_id"]:
        d = populated_env.store.get_run(run_id).dataset
        assert d["sha256"] == info.sha256 and (d["n_train"], d["n_test"]) == (300, 60)
        assert d["n_fit"] + d["n_val"] == 300
    at = _open()
    table = _table(at)
    assert set(table["dataset"]) == {f"360 digits #{info.sha256[:6]}"}
    headers = [cfg["label"] for cfg in runs_column_config().values()]
    assert len(headers) == len(set(headers)) and not any("@" in h for h in headers)
    shown = next(df for df in at.dataframe if "test %" in df.value.columns).proto.column_order
    # every run was trained here, on the same data: those two columns would say nothing new
    assert list(shown) == [c for c in DEFAULT_COLUMNS if c not in ("source", "dataset")]


def test_source_and_dataset_columns_show_once_runs_differ_in_them_and_the_name_gets_their_width():
    import pandas as pd
    from dashboard.runs.table import DATASET_WIDTH, DEFAULT_COLUMNS, NAME_WIDTH, default_columns, name_width

    one, other = {"sha256": "a" * 64}, {"sha256": "b" * 64}
    alike = default_columns(pd.DataFrame({"source": ["trained", None], "dataset": [one, None]}))
    assert "source" not in alike and "dataset" not in alike
    assert "source" not in default_columns(pd.DataFrame({"run_id": ["a"]}))  # an older store's frame
    differ = pd.DataFrame({"source": ["trained", "imported"], "dataset": [one, other]})
    assert default_columns(differ) == DEFAULT_COLUMNS and name_width(DEFAULT_COLUMNS) == NAME_WIDTH
    assert name_width(alike) == NAME_WIDTH + DATASET_WIDTH  # the width the hidden dataset column had


def test_group_repeats_shows_one_row_per_config_and_its_runs(app_env):
    """Issue 24: "Group repeats" folds runs that differ only in their seed into one row with N and
    mean ± std; each group opens to list its runs; ticked groups link to Compare by config id."""
    from core.store.queue import queue_run

    store = app_env.store
    ids = []
    for seed, acc in ((42, 0.90), (43, 0.92), (44, 0.94), (42, 0.80)):
        config = make_config("mlp-128-64", epochs=1, seed=seed, learning_rate=1e-3 if acc > 0.85 else 1e-2)
        run_id = queue_run(store, config, app_env.data_path)
        store.claim_run("tester", run_id)
        store.checkpoint(run_id, [], epoch=1, best_val_accuracy=acc - 0.01, last_val_accuracy=acc - 0.02)
        store.complete_run(run_id, {"accuracy": acc, "loss": 0.3, "n": 50, "confusion": [[0] * 10] * 10,
                                    "report": {}, "misclassified": []}, test_accuracy=acc, test_loss=0.3)
        ids.append(run_id)
    queue_run(store, make_config("mlp-128-64", epochs=1, seed=45), app_env.data_path)  # still queued: left out
    at = _open()
    at.toggle("runs_group_repeats").set_value(True).run()
    assert not at.exception
    grouped = next(df.value for df in at.dataframe if "N" in df.value.columns)
    assert list(grouped["N"]) == [3, 1]
    first = grouped.iloc[0]
    assert first["test acc."] == "92.00% ± 2.00" and first["best val. acc."] == "91.00% ± 2.00"
    assert first["last val. acc."] == "90.00% ± 2.00" and first["seeds"] == "42, 43, 44"
    assert grouped.iloc[1]["test acc."] == "80.00%"  # one run: no spread to show
    assert "2 configs from 4 completed runs (1 runs not completed are left out)" in _text(at)
    assert len(at.expander) == 2 and "N = 3" in at.expander[0].label
    members = next(df.value for df in at.expander[0].dataframe)
    assert sorted(members["id"]) == sorted(ids[:3])
    at.session_state["runs_groups_5"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    link = next(m.value for m in at.markdown if "Compare 2 selected" in m.value)
    assert grouped.iloc[0]["config id"] in link and ids[3] in link  # a single run is linked by its run id
