"""Repeats and significance end to end: `train --repeat`, `compare`, `runs --group`, `study --confirm`,
the per-digit correctness every finished run keeps, and bad input that exits 2 having queued nothing.

Real runs on a tiny dataset (1 epoch, 200 digits) through the CLI in this process; the study's runs
are played by a fake worker, so a confirmation is checked without training a study.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest
from scipy import stats

from core import cli
from core.config import make_config
from core.data.dataset import dataset_identity
from core.search import significance
from core.search.repeats import compare_selections, config_ids, group_frame
from core.search.report import best_vs_runner_up, confirmed, summary
from core.search.study import confirm_group, confirm_top, create_study
from core.store import results
from core.store.facade import RunStore
from tests.helpers import one_line_error
from tests.idx_helpers import write_mnist_dir

TINY = ["--arch", "mlp-128-64", "--epochs", "1", "--train-limit", "200", "--batch-size", "32"]


def run_cli(capsys, argv: list[str]) -> tuple[int, str]:
    rc = cli.main(argv)
    return rc, capsys.readouterr().out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 300 / 60 dataset and a store with config A ×3 and config B ×2, trained by `train --repeat`."""
    from core.data.ingest import ingest
    base = tmp_path_factory.mktemp("repeats")
    write_mnist_dir(base / "idx", n_train=300, n_test=60)
    data = ingest(base / "idx", base / "mnist.h5", allow_download=False).path
    flags = ["--db", f"sqlite:///{base / 'runs.db'}", "--data", str(data)]
    for extra, n in (([], "3"), (["--lr", "0.01"], "2")):
        assert cli.main(["train", *TINY, *extra, "--repeat", n, "--json", *flags]) == 0
    return base, data, flags


def store_of(world) -> RunStore:
    return RunStore(f"sqlite:///{world[0] / 'runs.db'}")


def copy_store(world, tmp_path):
    """A private copy of the module's store (SQLite's backup, so the write-ahead log comes along)."""
    copy = tmp_path / "runs.db"
    with closing(sqlite3.connect(world[0] / "runs.db")) as src, closing(sqlite3.connect(copy)) as dst:
        src.backup(dst)
    return copy, RunStore(f"sqlite:///{copy}")


def count_runs(path) -> int:
    with closing(sqlite3.connect(path)) as con:
        return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def groups(world):
    table = group_frame(store_of(world))
    big, small = table[table["n"] == 3].iloc[0], table[table["n"] == 2].iloc[0]
    return table, big, small


# ------------------------------------------------------------------ train --repeat
def test_repeat_3_makes_3_runs_sharing_one_config_id(world, capsys):
    table, big, small = groups(world)
    runs = store_of(world).list_runs()
    assert len(runs) == 5 and set(runs["status"]) == {"completed"}
    mine = runs[runs["run_id"].isin(big["run_ids"])]
    assert len(set(config_ids(mine))) == 1 and sorted(c["seed"] for c in mine["config"]) == [42, 43, 44]
    assert big["config_id"] != small["config_id"]


def test_repeat_json_last_line_names_the_runs_and_the_config(world, capsys):
    base, data, flags = world
    rc, out = run_cli(capsys, ["train", *TINY, "--repeat", "2", "--queue", "--json", *flags])
    result = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and result["status"] == "queued" and len(result["run_ids"]) == 2 and result["seeds"] == [42, 43]
    _, big, _ = groups(world)
    assert result["config_id"] == big["config_id"]  # the id a queued repeat will have once it has trained
    store = store_of(world)
    for run_id in result["run_ids"]:
        store.delete_run(run_id)


@pytest.mark.parametrize("extra", [["--repeat", "0"], ["--repeat", "11"], ["--repeat", "11", "--queue"],
                                   ["--repeat", "-1", "--queue"], ["--repeat", "3", "--queue", "--seed", "-5"]])
def test_bad_repeats_exit_2_and_queue_nothing(world, capsys, extra):
    base, _, flags = world
    before = count_runs(base / "runs.db")
    one_line_error(capsys, ["train", *TINY, *extra, *flags])
    assert count_runs(base / "runs.db") == before


# ------------------------------------------------------------------ runs --group
def test_runs_group_json_matches_hand_computed_statistics(world, capsys):
    rc, out = run_cli(capsys, ["runs", "--group", "--json", *world[2]])
    rows = {r["config_id"]: r for r in json.loads(out)}
    runs = store_of(world).list_runs().set_index("run_id")
    assert rc == 0 and len(rows) == 2
    for row in rows.values():
        acc = runs.loc[row["run_ids"], "test_accuracy"].to_numpy(dtype=float)
        assert row["n"] == len(acc) == len(row["run_ids"])
        assert row["mean_test_accuracy"] == pytest.approx(acc.mean())
        assert row["std_test_accuracy"] == pytest.approx(acc.std(ddof=1))
    rc, text = run_cli(capsys, ["runs", "--group", *world[2]])
    assert rc == 0 and all(cid in text for cid in rows)


# ------------------------------------------------------------------ compare
KEYS = {"a", "b", "n_a", "n_b", "metric", "difference", "ci_low", "ci_high", "p_value", "test", "verdict"}


def test_compare_config_ids_is_welch_on_the_repeats(world, capsys):
    _, big, small = groups(world)
    rc, out = run_cli(capsys, ["compare", big["config_id"], small["config_id"], "--json", *world[2]])
    result = json.loads(out)
    assert rc == 0 and KEYS <= set(result) and result["test"] == "welch"
    assert (result["a"], result["b"], result["n_a"], result["n_b"]) == (big["config_id"], small["config_id"], 3, 2)
    runs = store_of(world).list_runs().set_index("run_id")
    a = runs.loc[big["run_ids"], "test_accuracy"].to_numpy(dtype=float) * 100
    b = runs.loc[small["run_ids"], "test_accuracy"].to_numpy(dtype=float) * 100
    if np.ptp(a) or np.ptp(b):
        ref = stats.ttest_ind(b, a, equal_var=False)
        assert result["p_value"] == pytest.approx(ref.pvalue)
        assert result["ci_low"] == pytest.approx(ref.confidence_interval(0.95).low)
    assert result["difference"] == pytest.approx(b.mean() - a.mean())
    assert big["config_id"] in result["verdict"] and small["config_id"] in result["verdict"]
    rc, text = run_cli(capsys, ["compare", big["config_id"], small["config_id"], *world[2]])
    assert rc == 0 and result["verdict"] in text
    # a comma list of run ids is the same selection as their config id
    rc, out = run_cli(capsys, ["compare", ",".join(big["run_ids"]), small["config_id"], "--json", *world[2]])
    assert json.loads(out)["p_value"] == result["p_value"]


def test_two_single_runs_are_compared_digit_by_digit_from_the_stored_correctness(world, capsys):
    _, big, small = groups(world)
    store, (a, b) = store_of(world), (big["run_ids"][0], small["run_ids"][0])
    assert store.artifact(a, results.MISTAKES_FILE) is not None
    correct_a, correct_b = results.test_correctness(store, a), results.test_correctness(store, b)
    assert correct_a.shape == (60,) and correct_a.dtype == bool
    runs = store.list_runs().set_index("run_id")
    assert correct_a.mean() == pytest.approx(runs.loc[a, "test_accuracy"])
    assert set(np.flatnonzero(~correct_a)) == set(store.misclassified(a, limit=100)["idx"])
    rc, out = run_cli(capsys, ["compare", a, b, "--json", *world[2]])
    result = json.loads(out)
    assert rc == 0 and result["test"] == "mcnemar" and (result["n_a"], result["n_b"]) == (1, 1)
    assert "on this test set" in result["verdict"]
    assert result["p_value"] == pytest.approx(significance.mcnemar(correct_a, correct_b).p_value)


def test_runs_from_before_correctness_was_kept(world, tmp_path):
    """Without the file, the misclassified table stands in while it holds every mistake; else no McNemar."""
    copy, store = copy_store(world, tmp_path)
    _, big, small = groups(world)
    a, b = big["run_ids"][0], small["run_ids"][0]
    kept = results.test_correctness(store, a)
    store.delete_artifact(a, results.MISTAKES_FILE)
    assert np.array_equal(results.test_correctness(store, a), kept)  # all its mistakes are in the table
    with closing(sqlite3.connect(copy)) as con, con:
        con.execute("DELETE FROM misclassified WHERE run_id = ? AND idx = (SELECT MIN(idx) FROM misclassified "
                    "WHERE run_id = ?)", (a, a))
    assert results.test_correctness(store, a) is None  # only some of its mistakes: unknown
    result = compare_selections(store, a, b)
    assert result.test is None and "before per-digit results were stored" in result.verdict


def test_compare_bad_ids_and_different_datasets_exit_2(world, capsys, tmp_path):
    _, big, small = groups(world)
    line = one_line_error(capsys, ["compare", "nope", small["config_id"], *world[2]])
    assert "'nope'" in line
    one_line_error(capsys, ["compare", f"{big['run_ids'][0]},nope", small["config_id"], *world[2]])
    copy, store = copy_store(world, tmp_path)
    for run_id in small["run_ids"]:
        store.set_dataset(run_id, {"source": "other.npz", "sha256": "e" * 64})
    line = one_line_error(capsys, ["compare", big["run_ids"][0], small["run_ids"][0], "--db", f"sqlite:///{copy}",
                                   "--data", str(world[1])])
    assert "other.npz" in line and "different datasets" in line


# ------------------------------------------------------------------ a study confirms its best configs
def finish(store: RunStore, run_id: str, data, val: float, test: float, wrong: tuple[int, ...] = (0, 1)) -> None:
    """Play a worker through one run: its dataset, a val_accuracy, a test accuracy, `wrong` of 10 test digits."""
    store.claim_run("test-worker", run_id=run_id)
    store.set_dataset(run_id, dataset_identity(data))
    store.log_metrics([(run_id, "epoch", "val_accuracy", 0, 1, val)])
    confusion = [[0] * 10 for _ in range(10)]
    confusion[0][0], confusion[0][1] = 10 - len(wrong), len(wrong)  # its trace says how many were wrong
    evaluation = {"accuracy": test, "loss": 1.0, "n": 10, "confusion": confusion, "report": {},
                  "misclassified": [], "wrong": list(wrong)}
    store.complete_run(run_id, evaluation, epoch=1, test_accuracy=test)


def test_confirm_top_queues_k_by_n_new_seeds_and_ranks_the_configs(store, tiny_data, capsys):
    base = make_config("mlp-128-64", epochs=1, train_limit=100)
    grid = {"learning_rate": {"type": "categorical", "choices": [0.1, 0.01, 0.001]}}
    first = create_study(store, base, grid, "s", tiny_data, search="grid")
    for run_id, (val, test) in zip(first, [(0.5, 0.50), (0.9, 0.90), (0.7, 0.70)]):
        finish(store, run_id, tiny_data, val, test)
    before = len(store.list_runs())
    for k, n in ((6, 2), (0, 2), (2, 11), (2, 0)):
        with pytest.raises(Exception, match="whole number"):
            confirm_top(store, "s", k, n, tiny_data)
    assert len(store.list_runs()) == before

    queued = confirm_top(store, "s", 2, 3, tiny_data)
    runs = store.list_runs().set_index("run_id")
    assert len(queued) == 6 and set(runs.loc[queued, "group_name"]) == {confirm_group("s")}
    lrs = [runs.loc[r, "config"]["learning_rate"] for r in queued]
    assert lrs == [0.01] * 3 + [0.001] * 3  # the best config first, by the objective
    assert [runs.loc[r, "config"]["seed"] for r in queued[:3]] == [43, 44, 45]  # the study's run had seed 42
    # the confirmation has the study's config ids once each has trained on the same data
    for i, run_id in enumerate(queued):
        finish(store, run_id, tiny_data, 0.8, [0.91, 0.92, 0.93, 0.60, 0.62, 0.64][i])
    ids = config_ids(store.list_runs()).set_axis(store.list_runs()["run_id"])
    assert len(set(ids[[first[1], *queued[:3]]])) == 1 and ids[first[1]] != ids[queued[3]]
    ranked = confirmed(store, "s")
    assert [r["rank"] for r in ranked] == [1, 2] and [r["n"] for r in ranked] == [4, 4]
    top = np.array([0.90, 0.91, 0.92, 0.93])
    ci = stats.ttest_1samp(top, 0).confidence_interval(0.95)
    assert ranked[0]["mean_test_accuracy"] == pytest.approx(top.mean())
    assert ranked[0]["std_test_accuracy"] == pytest.approx(top.std(ddof=1))
    assert (ranked[0]["ci_low_test_accuracy"], ranked[0]["ci_high_test_accuracy"]) == pytest.approx((ci.low, ci.high))
    assert ranked[0]["params"] == {"learning_rate": 0.01}
    versus = best_vs_runner_up(store, "s")
    assert versus.test == "welch" and versus.distinguishable and versus.difference > 0
    data = summary(store, "s")
    assert data["confirmed"] == ranked and data["best_distinguishable"] is True

    # the CLI: --confirm with --seeds queues K × N; out of range exits 2 and queues nothing
    flags = ["--db", store.url, "--data", str(tiny_data)]
    before = len(store.list_runs())
    for bad in (["--confirm", "6", "--seeds", "2"], ["--confirm", "1", "--seeds", "11"], ["--confirm", "1"]):
        one_line_error(capsys, ["study", "s", *bad, *flags])
    assert len(store.list_runs()) == before
    rc, out = run_cli(capsys, ["study", "s", "--confirm", "1", "--seeds", "2", *flags])
    assert rc == 0 and "2 run(s) queued" in out and "confirmed over seeds" in out and "best vs runner-up" in out
    assert len(store.list_runs()) == before + 2
    rc, out = run_cli(capsys, ["study", "s", "--json", *flags])
    assert rc == 0 and json.loads(out)["confirmed"][0]["pending"] == 2


def test_best_run_against_the_runner_up_before_a_confirmation(store, tiny_data):
    base = make_config("mlp-128-64", epochs=1, train_limit=100)
    grid = {"learning_rate": {"type": "categorical", "choices": [0.1, 0.01]}}
    ids = create_study(store, base, grid, "t", tiny_data, search="grid")
    assert best_vs_runner_up(store, "t") is None  # nothing finished yet
    for run_id, (val, test) in zip(ids, [(0.6, 0.6), (0.9, 0.6)]):
        finish(store, run_id, tiny_data, val, test)
    versus = best_vs_runner_up(store, "t")
    assert versus.test == "mcnemar" and not versus.distinguishable  # both got digits 0 and 1 wrong
    assert (versus.a, versus.b) == (f"runner-up {ids[0]}", f"best run {ids[1]}") and "agree on every" in versus.verdict
    assert summary(store, "t")["best_distinguishable"] is False
