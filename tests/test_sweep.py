"""core/search/sweep.py and the grid of core/search/space.py: parsing values, expanding a grid with its one
set of limits, queueing a sweep all-or-nothing, group progress."""
from __future__ import annotations

import pytest

from core.config import ConfigError, TrainConfig, make_config
from core.data.dataset import DataError
from core.search.space import MAX_GRID_FIELDS, MAX_RUNS, expand_grid, parse_values
from core.search.sweep import group_progress, queue_sweep

BASE = TrainConfig(architecture="mlp-128-64", epochs=1, batch_size=32)


@pytest.mark.parametrize("field, text, expected", [
    ("learning_rate", "1e-2, 1e-3,1e-4", [0.01, 0.001, 0.0001]),
    ("batch_size", "64; 128", [64, 128]),
    ("epochs", " 3 ,5.0 ", [3, 5]),
    ("augment", "true, no", [True, False]),
    ("optimizer", "adam, sgd", ["adam", "sgd"]),
])
def test_parse_values_reads_typed_lists(field, text, expected):
    assert parse_values(field, text) == expected


@pytest.mark.parametrize("field, text, message", [
    ("learning_rate", "0.1, fast", "learning_rate: 'fast' is not a number"),
    ("batch_size", "64, 1.5", "batch_size: '1.5' is not a whole number"),
    ("augment", "maybe", "augment: 'maybe' is not true or false"),
    ("batch_size", " , ", "give at least one value"),
    ("name", "a, b", "'name' cannot be swept"),
])
def test_parse_values_names_the_bad_piece(field, text, message):
    with pytest.raises(ConfigError, match=message):
        parse_values(field, text)


def test_expand_grid_makes_every_combination_named_by_its_values():
    configs = expand_grid(BASE, {"learning_rate": [1e-2, 1e-3], "batch_size": [64, 128]})
    assert [(c.learning_rate, c.batch_size) for c in configs] == [(1e-2, 64), (1e-2, 128), (1e-3, 64), (1e-3, 128)]
    assert configs[0].name == "learning_rate=0.01 · batch_size=64"
    assert all(c.architecture == "mlp-128-64" and c.epochs == 1 for c in configs)
    named = expand_grid(TrainConfig(name="lr"), {"learning_rate": [0.1]})
    assert named[0].name == "lr · learning_rate=0.1"


def test_expand_grid_over_presets_drops_the_custom_stack():
    base = TrainConfig(architecture="custom", layers=({"type": "Dense", "units": 8},))
    configs = expand_grid(base, {"architecture": ["custom", "mlp-512"]})
    assert configs[0].layers == base.layers
    assert configs[1].architecture == "mlp-512" and configs[1].layers == ()


@pytest.mark.parametrize("grid, message", [
    ({"learning_rate": [1e-3, 20.0]}, r"learning_rate=20: learning_rate must be a number > 0 and ≤ 10, got 20.0"),
    ({"learning_rate": []}, "give at least one value"),
    ({"batch_size": [64, 64]}, "the value 64 is listed twice"),
    ({}, "at least one hyperparameter"),
    ({"learning_rate": [0.1], "batch_size": [8], "epochs": [1], "seed": [1], "dropout": [0.1], "augment": [True],
      "elastic": [True]}, f"at most {MAX_GRID_FIELDS} hyperparameters, got 7"),
    ({"seed": list(range(MAX_RUNS + 1))}, f"at most {MAX_RUNS} are allowed"),
    ({"colour": ["red"]}, "'colour' cannot be swept"),
])
def test_expand_grid_rejects_bad_grids(grid, message):
    with pytest.raises(ConfigError, match=message):
        expand_grid(BASE, grid)


def test_queue_sweep_queues_every_combination_as_one_group(store, tiny_data):
    ids = queue_sweep(store, BASE, {"learning_rate": [1e-2, 1e-3], "batch_size": [16, 32]}, "lr-bs", tiny_data)
    runs = store.list_runs(group="lr-bs")
    assert len(ids) == 4 and set(runs["run_id"]) == set(ids)
    assert set(runs["status"]) == {"queued"}
    configs = [store.get_run(i).config for i in ids]
    assert [(c["learning_rate"], c["batch_size"]) for c in configs] == [(1e-2, 16), (1e-2, 32), (1e-3, 16), (1e-3, 32)]
    assert store.get_run(ids[0]).name == "lr-bs · learning_rate=0.01 · batch_size=16"


def test_queue_sweep_writes_nothing_when_one_combination_is_invalid(store, tiny_data):
    # 200 training digits with a 10% validation split leave 180: a batch of 512 cannot be formed
    with pytest.raises(ConfigError, match="batch_size must be an integer ≥ 1 and at most the 180 training digits"):
        queue_sweep(store, BASE, {"batch_size": [32, 512]}, "too-big", tiny_data)
    assert store.list_runs().empty


def test_queue_sweep_rejects_a_used_group_name_and_missing_data(store, tiny_data, tmp_path):
    queue_sweep(store, BASE, {"seed": [1]}, "taken", tiny_data)
    with pytest.raises(ConfigError, match="a group named 'taken' already exists"):
        queue_sweep(store, BASE, {"seed": [2]}, "taken", tiny_data)
    with pytest.raises(ConfigError, match="group name must be 1 to 200 characters"):
        queue_sweep(store, BASE, {"seed": [2]}, "  ", tiny_data)
    with pytest.raises(DataError, match="No dataset"):
        queue_sweep(store, BASE, {"seed": [2]}, "nodata", tmp_path / "missing.h5")
    assert len(store.list_runs()) == 1


def test_queue_sweep_records_the_parent(store, tiny_data):
    parent = store.create_run(make_config("mlp-128-64").to_dict())
    ids = queue_sweep(store, BASE, {"seed": [1, 2]}, "forked", tiny_data, parent_id=parent)
    assert {store.get_run(i).parent_id for i in ids} == {parent}


def test_the_grid_tab_and_a_grid_study_share_one_set_of_limits(store, tiny_data):
    from core.search.study import create_study, get_study

    four = {"learning_rate": [1e-2], "batch_size": [16], "epochs": [1], "seed": [1, 2]}  # over the old 3-field limit
    assert len(queue_sweep(store, BASE, four, "four", tiny_data)) == 2
    assert get_study(store, "four").search == "grid"
    too_many = {"seed": list(range(MAX_RUNS + 1))}
    space = {"seed": {"type": "categorical", "choices": too_many["seed"]}}
    for queue in (lambda: queue_sweep(store, BASE, too_many, "big", tiny_data),
                  lambda: create_study(store, BASE, space, "big", tiny_data, search="grid")):
        with pytest.raises(ConfigError, match=f"this grid makes {MAX_RUNS + 1} runs; at most {MAX_RUNS} are allowed"):
            queue()
    assert len(store.list_runs()) == 2


def test_a_grid_study_checks_every_combination_against_the_dataset(store, tiny_data):
    """Each value alone fits, but 50 digits less a 10 % validation split leave 45: no batch of 64."""
    from core.search.study import create_study

    space = {"train_limit": {"type": "categorical", "choices": [50, 200]},
             "batch_size": {"type": "categorical", "choices": [32, 64]}}
    with pytest.raises(ConfigError, match="train_limit=50 · batch_size=64: batch_size must be .* the 45 training"):
        create_study(store, BASE, space, "combo", tiny_data, search="grid")
    assert store.list_runs().empty


def test_group_progress_counts_statuses(store, tiny_data):
    ids = queue_sweep(store, BASE, {"seed": [1, 2, 3]}, "g", tiny_data)
    assert group_progress(store.list_runs(group="g")).queued == 3
    store.claim_run("w", run_id=ids[0])
    store.finish_run(ids[0], "completed", test_accuracy=0.5)
    store.claim_run("w", run_id=ids[1])
    progress = group_progress(store.list_runs(group="g"))
    assert (progress.total, progress.queued, progress.running, progress.completed, progress.ended) == (3, 1, 1, 1, 1)
    assert progress.fraction == pytest.approx(1 / 3) and not progress.finished
    assert progress.run_ids == tuple(ids)
    store.request_cancel(ids[2])
    store.finish_run(ids[1], "failed", error="boom")
    done = group_progress(store.list_runs(group="g"))
    assert done.finished and done.fraction == 1.0 and done.completed == 1
    empty = group_progress(store.list_runs(group="nobody"))
    assert empty.total == 0 and not empty.finished and empty.fraction == 0.0
