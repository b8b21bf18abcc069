"""core/search/study.py: bad input refused with nothing queued, proposals, budget under concurrent
top-ups, pruning decisions (core/search/pruning.py), the summary (core/search/report.py); and one real
8-run TPE study with median pruning trained by two real `python -m core worker` processes. Reading a
SPEC is tested in test_space.py."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core import cli
from core.config import ConfigError, TrainConfig
from core.store.schema import studies_t
from core.store.facade import RunStore
from core.search.pruning import prune_check
from core.search.report import summary
from core.search.space import parse_space
from core.search.study import create_study, extend_study, get_study, stop_study, top_up, top_up_all
from tests.helpers import EVALUATION, SPACE, finish_trial

ROOT = Path(__file__).resolve().parents[1]
BASE = TrainConfig(architecture="mlp-128-64", epochs=3, batch_size=32)


# -- bad input: one line naming the field and value, exit 2, nothing queued -------------------------
@pytest.mark.parametrize("args, message", [
    (["--param", "learning_rate=0.1:0.01"], "learning_rate: the range '0.1:0.01' needs low < high"),
    (["--param", "learning_rate=-1:0.1:log"], "needs low > 0"),
    (["--param", "colour=red,blue"], "'colour' cannot be searched"),
    (["--param", "optimizer=adam,nag"], "optimizer: 'nag' is not one of"),
    (["--param", "optimizer="], "write FIELD=SPEC"),
    (["--param", "dropout=0:0.5", "--trials", "0"], "trials must be a whole number from 1 to 200, got 0"),
    (["--param", "dropout=0:0.5", "--trials", "201"], "got 201"),
    (["--param", "batch_size=16:5000"], "batch_size=5000: batch_size must be an integer ≥ 1 and at most the 180"),
    (["--param", "dropout=0:0.5", "--pruner", "median", "--validation-split", "0"],
     "the pruner 'median' needs validation digits, but validation_split is 0"),
    (["--param", "dropout=0:0.5", "--search", "bayes"], "search must be one of random, tpe, grid, got 'bayes'"),
    (["--param", "dropout=0:0.5", "--pruner", "asha"], "pruner must be one of none, median, hyperband"),
    (["--param", "learning_rate=1e-3,1e-2", "--search", "grid", "--trials", "3"], "the grid has 2 combinations"),
])
def test_bad_input_is_one_line_exit_2_and_queues_nothing(store, tiny_data, capsys, args, message):
    code = cli.main(["sweep", "--db", store.url, "--data", str(tiny_data), "--arch", "mlp-128-64", "--name", "bad",
                     "--trials", "4", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert store.list_runs().empty and get_study(store, "bad") is None


def test_sweep_json_then_study_json_from_the_cli(store, tiny_data, capsys):
    code = cli.main(["sweep", "--db", store.url, "--data", str(tiny_data), "--arch", "mlp-128-64", "--epochs", "2",
                     "--search", "random", "--param", "learning_rate=1e-4:1e-1:log", "--trials", "3",
                     "--name", "cli-study", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and out["group"] == "cli-study" and out["queued"] == 1
    assert store.list_runs(group="cli-study")["trial"].tolist() == [0]
    assert cli.main(["study", "cli-study", "--db", store.url, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert shown["counts"]["queued"] == 1 and shown["best_run_id"] is None and shown["search"] == "random"
    assert shown["importance"] == {} and "needs at least 2 completed runs" in shown["importance_note"]
    assert cli.main(["study", "nobody", "--db", store.url]) == 2


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_store(request, store, tmp_path, monkeypatch):
    """The same test on a SQLite file and on a real PostgreSQL database (skipped where no server is installed)."""
    if request.param == "sqlite":
        yield store
        return
    monkeypatch.setenv("DIGITLAB_ARTIFACTS", str(tmp_path / "pg-cache"))
    pg = RunStore(request.getfixturevalue("pg_url"))
    yield pg
    pg.close()


# -- asking, topping up, the budget ---------------------------------------------------------------------
def params_of(store: RunStore, group: str) -> list[tuple]:
    runs = store.list_runs(group=group).sort_values("trial")
    return [(c["learning_rate"], c["optimizer"]) for c in runs["config"]]


def test_queues_one_run_per_live_worker_and_parallel_tpe_proposals_differ(store, tiny_data):
    workers = [store.register_worker() for _ in range(3)]
    ids = create_study(store, BASE, SPACE, "tpe", tiny_data, search="tpe", budget=8)
    assert len(ids) == 3 and len(set(params_of(store, "tpe"))) == 3
    for i, run_id in enumerate(ids):  # three results, then TPE models them (start-up: 2 trials for 8)
        finish_trial(store, run_id, [0.3 + 0.2 * i])
    more = top_up(store, "tpe")
    assert len(more) == 3
    proposed = params_of(store, "tpe")
    assert len(set(proposed)) == 6, "the constant liar let two runs in flight get the same proposal"
    assert sorted(store.list_runs(group="tpe")["trial"]) == list(range(6))
    assert top_up(store, "tpe") == []  # three in flight for three workers: nothing more
    for worker in workers:
        store.remove_worker(worker)


def test_concurrent_top_ups_never_exceed_the_budget(any_store, tiny_data):
    store = any_store
    assert len(create_study(store, BASE, SPACE, "race", tiny_data, search="random", budget=10, seed=3)) == 1
    for _ in range(12):  # now 12 live workers want work: 9 slots are left in the budget
        store.register_worker()
    stores = [RunStore(store.url) for _ in range(6)]  # one engine each, as separate processes would have
    barrier = threading.Barrier(len(stores))
    queued: list[list[str]] = []

    def race(s: RunStore):
        barrier.wait()
        queued.append(top_up(s, "race"))
    threads = [threading.Thread(target=race, args=(s,)) for s in stores]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    runs = store.list_runs(group="race")
    assert len(runs) == 10 and sorted(runs["trial"]) == list(range(10))
    assert sum(map(len, queued)) == 9 and len(queued) == 6
    for s in stores:
        s.close()


def test_an_idle_worker_tops_up_only_studies_with_budget_and_free_slots(any_store, tiny_data):
    store = any_store
    create_study(store, BASE, SPACE, "open", tiny_data, search="random", budget=3)
    create_study(store, BASE, SPACE, "full", tiny_data, search="random", budget=1)
    create_study(store, BASE, SPACE, "halted", tiny_data, search="random", budget=3)
    stop_study(store, "halted")
    assert top_up_all(store) == []  # one live worker slot (at least one), one run in flight each
    workers = [store.register_worker() for _ in range(3)]
    queued = top_up_all(store)
    assert len(queued) == 2 and set(store.list_runs(group="open")["run_id"]) >= set(queued)
    assert len(store.list_runs(group="full")) == 1 and len(store.list_runs(group="halted", status="queued")) == 0
    for worker in workers:
        store.remove_worker(worker)


def test_failed_runs_are_replaced_and_stop_and_extend(any_store, tiny_data):
    store = any_store
    first = create_study(store, BASE, SPACE, "life", tiny_data, search="random", budget=2)
    finish_trial(store, first[0], [], status="failed")
    second = top_up(store, "life")
    assert len(second) == 1, "a failed run does not use up the budget"
    assert stop_study(store, "life") == 1
    assert top_up(store, "life") == [] and get_study(store, "life").stopped
    assert len(extend_study(store, "life", 2)) == 1 and get_study(store, "life").budget == 4
    with pytest.raises(ConfigError, match="budget: 4 \\+ 197 is more than 200"):
        extend_study(store, "life", 197)


def test_a_grid_queues_every_combination_and_cannot_be_extended(store, tiny_data):
    space = parse_space(["learning_rate=1e-3,1e-2", "batch_size=16,32"], "grid")
    ids = create_study(store, BASE, space, "grid", tiny_data, search="grid")
    assert len(ids) == 4 and get_study(store, "grid").budget == 4
    assert top_up(store, "grid") == []
    with pytest.raises(ConfigError, match="no combinations left"):
        extend_study(store, "grid", 1)


# -- pruning and the summary ---------------------------------------------------------------------------
def test_median_pruning_stops_a_run_below_the_finished_runs_after_the_warmup(any_store, tiny_data):
    store = any_store
    ids = create_study(store, BASE, SPACE, "prune", tiny_data, search="random", budget=4, pruner="median",
                       warmup_epochs=2)
    finish_trial(store, ids[0], [0.5, 0.8, 0.9])
    second = top_up(store, "prune")[0]
    store.claim_run("w", run_id=second)
    assert prune_check(store, store.get_run(second))(2, {"val_accuracy": 0.1}) is False  # one completed run: too few
    store.log_metrics([(second, "epoch", "val_accuracy", i, i + 1, v) for i, v in enumerate([0.4, 0.8, 0.85])])
    store.complete_run(second, EVALUATION, epoch=3)
    run_id = top_up(store, "prune")[0]
    store.claim_run("w", run_id=run_id)
    check = prune_check(store, store.get_run(run_id))
    assert check(1, {"val_accuracy": 0.1}) is False       # warm-up: every run trains 2 epochs
    store.log_metrics([(run_id, "epoch", "val_accuracy", 1, 1, 0.1)])
    assert check(2, {"val_accuracy": 0.85}) is False      # above the completed runs' median (0.8) at epoch 2
    assert check(2, {"val_accuracy": 0.2}) is True        # below it: stop after this epoch
    assert check(3, {"val_accuracy": 0.2}) is False       # the last epoch ends the run anyway
    no_pruner = create_study(store, BASE, SPACE, "free", tiny_data, search="random", budget=1)
    assert prune_check(store, store.get_run(no_pruner[0])) is None


def test_hyperband_prunes_against_the_rung_values_earlier_runs_passed_with(any_store, tiny_data):
    """Optuna's Hyperband keeps each trial's rung values on the trial; a rebuilt study must get them back,
    or every run is alone at its rung, always promoted, and nothing is ever pruned."""
    store = any_store
    for _ in range(6):
        store.register_worker()
    # 3 epochs, warm-up 2: one bracket (min resource 2, max 3), whose first rung is epoch 2
    ids = create_study(store, BASE, SPACE, "hb", tiny_data, search="random", budget=6, pruner="hyperband",
                       warmup_epochs=2)
    for run_id, value in zip(ids[:3], (0.90, 0.91, 0.92)):
        store.claim_run("w", run_id=run_id)
        check = prune_check(store, store.get_run(run_id))
        assert check(1, {"val_accuracy": value}) is False  # before the first rung
        store.log_metrics([(run_id, "epoch", "val_accuracy", i, i + 1, value) for i in range(2)])
        assert check(2, {"val_accuracy": value}) is False  # the best so far at its rung: promoted
        rung = store.metric_history(run_id, scope="pruner")
        assert list(rung["key"]) == ["completed_rung_0"] and rung["value"].iloc[0] == pytest.approx(value)
        store.log_metrics([(run_id, "epoch", "val_accuracy", 2, 3, value)])
        store.complete_run(run_id, EVALUATION, epoch=3)
    poor = ids[3]
    store.claim_run("w", run_id=poor)
    store.log_metrics([(poor, "epoch", "val_accuracy", i, i + 1, 0.3) for i in range(2)])
    assert prune_check(store, store.get_run(poor))(2, {"val_accuracy": 0.3}) is True  # not in the top third
    store.claim_run("w", run_id=ids[4])
    assert prune_check(store, store.get_run(ids[4]))(2, {"val_accuracy": 0.95}) is False  # the top one goes on
    assert store.histories(list(ids), "epoch", ["completed_rung_0"]).empty  # kept apart from the curves


def test_summary_best_is_the_best_completed_run_and_importance_sums_to_one(any_store, tiny_data):
    store = any_store
    for _ in range(4):
        store.register_worker()
    ids = create_study(store, BASE, SPACE, "sum", tiny_data, search="random", budget=4, seed=7)
    for run_id, values, status in zip(ids, ([0.5, 0.6], [0.4, 0.9], [0.2], [0.7, 0.7]),
                                      ("completed", "completed", "pruned", "completed")):
        finish_trial(store, run_id, values, status)
    data = summary(store, "sum")
    assert data["counts"]["completed"] == 3 and data["counts"]["pruned"] == 1 and data["done"]
    assert data["best_run_id"] == ids[1] and data["best_value"] == pytest.approx(0.9)
    assert data["best_params"]["learning_rate"] == store.get_run(ids[1]).config["learning_rate"]
    assert set(data["importance"]) == {"learning_rate", "optimizer"}
    assert math.isclose(sum(data["importance"].values()), 1.0) and data["importance_note"] is None


# -- the real thing: two real workers, eight runs, median pruning -------------------------------------
REAL_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"


@pytest.fixture(scope="module")
def real_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real MNIST (the study trains 1,000 of its digits): the repo's dataset, else ingested from shared/."""
    from core.data.ingest import ingest
    from core.settings import DEFAULT_DATA
    if DEFAULT_DATA.is_file():
        return DEFAULT_DATA
    if not REAL_MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}: synthetic digits are too easy to tell pruning apart")
    return ingest(REAL_MNIST, tmp_path_factory.mktemp("mnist") / "mnist.h5").path


@pytest.mark.slow
def test_an_8_run_tpe_study_with_median_pruning_on_two_real_workers(store, real_digits):
    """Hopeless learning rates (SGD at 1e-7…) sit in the space: the pruner must stop at least one run.

    Seed 51 makes the two start-up proposals reasonable ones (Adam at 2e-3 and 9e-3), so the median they set is
    one a hopeless run falls below; with two hopeless start-up runs the median itself is hopeless."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    common = ["--db", store.url, "--data", str(real_digits)]
    sweep = subprocess.run([sys.executable, "-m", "core", "sweep", *common, "--arch", "mlp-128-64", "--epochs", "3",
                            "--batch-size", "64", "--train-limit", "1000", "--seed", "51", "--search", "tpe", "--param", "learning_rate=1e-7:1e-1:log",
                            "--param", "optimizer=sgd,adam", "--trials", "8", "--pruner", "median",
                            "--name", "real", "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert sweep.returncode == 0, sweep.stderr
    assert json.loads(sweep.stdout.strip().splitlines()[-1])["group"] == "real"
    started = time.monotonic()
    workers = [subprocess.Popen([sys.executable, "-m", "core", "worker", *common, "--idle-exit", "4", "--poll", "0.3"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(2)]
    logs = [w.communicate(timeout=240)[0] for w in workers]
    seconds = time.monotonic() - started
    runs = store.list_runs(group="real")
    assert len(runs) == 8, logs
    assert set(runs["status"]) <= {"completed", "pruned"}, runs[["status", "error"]]
    assert (runs["status"] == "pruned").sum() >= 1, "no hopeless run was pruned"
    assert all("training run" in log for log in logs), "both workers must have trained"
    pruned = runs[runs["status"] == "pruned"]
    assert (pruned["epoch"] < 3).all() and pruned["test_accuracy"].notna().all()  # stopped early, still evaluated
    assert all(store.artifact(r, "model.keras") is not None or Path(store.run_dir(r) / "model.keras").exists()
               for r in pruned["run_id"])
    shown = subprocess.run([sys.executable, "-m", "core", "study", "real", *common, "--json"], cwd=ROOT, env=env,
                           capture_output=True, text=True)
    data = json.loads(shown.stdout.strip().splitlines()[-1])
    counts = runs["status"].value_counts().to_dict()
    assert {k: v for k, v in data["counts"].items() if v} == counts
    completed = runs[runs["status"] == "completed"]
    best = completed.loc[completed["last_val_accuracy"].idxmax()]
    assert data["best_run_id"] == best["run_id"] and data["best_value"] == pytest.approx(best["last_val_accuracy"])
    assert data["best_params"] == {"learning_rate": best["config"]["learning_rate"],
                                   "optimizer": best["config"]["optimizer"]}
    assert data["importance"] == {} or math.isclose(sum(data["importance"].values()), 1.0)
    print(f"\nstudy: 8 runs on 2 workers in {seconds:.0f} s, {counts}")


def test_study_config_is_the_base_config_plus_the_proposal(store, tiny_data):
    base = replace(BASE, name="")
    create_study(store, base, {"architecture": {"type": "categorical", "choices": ["mlp-512"]}}, "arch", tiny_data,
                 search="random", budget=1)
    config = store.list_runs(group="arch")["config"].iloc[0]
    assert config["architecture"] == "mlp-512" and config["layers"] == [] and config["epochs"] == 3


@pytest.mark.slow
def test_a_worker_killed_mid_study_the_others_finish_it(store, real_digits):
    """kill -9 one of two workers while it trains: its run ends `interrupted` and is replaced; a new worker
    and the survivor finish the budget."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    common = ["--db", store.url, "--data", str(real_digits)]
    base = replace(BASE, epochs=3, batch_size=32, train_limit=1500, seed=5)
    create_study(store, base, {"learning_rate": SPACE["learning_rate"]}, "survive", real_digits, search="random",
                 budget=4)

    def worker():
        return subprocess.Popen([sys.executable, "-m", "core", "worker", *common, "--idle-exit", "4", "--poll", "0.3"],
                                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    doomed, survivor = worker(), worker()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the doomed worker is inside an epoch of a run
        runs = store.list_runs(group="survive", status="running")
        mine = runs[(runs["pid"] == doomed.pid) & (runs["step"] > 0)]
        if not mine.empty:
            break
        time.sleep(0.2)
    assert not mine.empty, "the first worker never started training"
    killed = mine["run_id"].iloc[0]
    doomed.kill()
    doomed.wait(10)
    newcomer = worker()
    for proc in (survivor, newcomer):
        proc.communicate(timeout=300)
    runs = store.list_runs(group="survive")
    status = runs.set_index("run_id")["status"]
    assert status[killed] == "interrupted"
    assert (status == "completed").sum() == 4 and len(runs) == 5, runs[["trial", "status"]]
    assert summary(store, "survive")["done"]
