"""core/search/repeats.py: the config id (blind to seed and name, changed by every other field and by
the dataset, stable across machines and code that gains fields), grouping the Runs table into repeats
with hand-computed statistics, what an id selects, and a group's curve band."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.config import PARAMS, ConfigError, TrainConfig, make_config
from core.errors import DigitLabError
from core.search.repeats import (config_id, config_ids, group_runs, history_band, repeat_config, repeat_configs,
                                 repeat_sets, select)

DATA = "f" * 64  # a dataset fingerprint (SHA-256 hex)


def other_value(config: TrainConfig, name: str):
    """A value of field `name` that differs from the config's, by the field's registry kind."""
    value, p = getattr(config, name), PARAMS[name]
    if p.kind == "choice":
        return next(c for c in p.choices if c != value)
    if p.kind == "bool":
        return not value
    if p.kind == "int":
        return 1000 if value is None else value + 1
    if p.kind == "float":
        return 0.25 if value is None else value / 2 + 0.01
    if p.kind == "layers":
        return (*value, {"type": "Dense", "units": 32, "activation": "relu"})
    return f"{value}x"


# ------------------------------------------------------------------ the config id
def test_config_id_ignores_seed_and_name():
    one = make_config("mlp-128-64", seed=1, name="first try")
    other = make_config("mlp-128-64", seed=2, name="second try")
    assert config_id(one, DATA) == config_id(other, DATA) == config_id(one.to_dict(), DATA)
    assert len(config_id(one, DATA)) == 12 and int(config_id(one, DATA), 16) >= 0


def test_config_id_changes_with_every_other_field():
    base = make_config("mlp-128-64", dropout=0.2)
    ids = {"base": config_id(base, DATA)}
    for f in fields(TrainConfig):
        if f.name in ("seed", "name"):
            continue
        ids[f.name] = config_id(replace(base, **{f.name: other_value(base, f.name)}), DATA)
    assert len(set(ids.values())) == len(ids), ids  # each field moves the id, and to a place of its own


def test_config_id_changes_with_the_dataset():
    config = make_config("cnn-small")
    assert config_id(config, DATA) != config_id(config, "e" * 64)
    assert config_id(config, None) == config_id(config, "") != config_id(config, DATA)  # unrecorded data


def test_config_id_is_stable_text_that_does_not_depend_on_spelling():
    stored = {"architecture": "mlp-128-64", "epochs": 3, "learning_rate": 0.01, "seed": 9, "name": "n"}
    text = json.dumps({"config": {"architecture": "mlp-128-64", "epochs": 3.0, "learning_rate": 0.01},
                       "dataset": "abc"}, sort_keys=True, separators=(",", ":"))
    assert config_id(stored, "abc") == hashlib.sha256(text.encode()).hexdigest()[:12] == "d301eea37f0f"
    assert config_id(dict(reversed(list(stored.items()))), "abc") == config_id(stored, "abc")  # key order
    assert config_id({**stored, "epochs": 3.0}, "abc") == config_id(stored, "abc")               # 3 or 3.0


def test_a_field_missing_from_an_old_run_counts_as_its_default():
    full = make_config("mlp-512").to_dict()
    old = {k: v for k, v in full.items() if k not in ("elastic", "lr_schedule")}  # stored before they existed
    assert config_id(old, DATA) == config_id(full, DATA)
    assert repeat_config(old) == repeat_config(full) and "seed" not in repeat_config(full)


def test_layer_stacks_hash_by_content_not_key_order():
    one = {"architecture": "custom", "layers": [{"type": "Dense", "units": 64, "activation": "relu"}]}
    two = {"architecture": "custom", "layers": [{"activation": "relu", "units": 64, "type": "Dense"}]}
    assert config_id(one, DATA) == config_id(two, DATA)


def test_repeat_configs_take_the_next_seeds_and_share_one_id():
    config = make_config("mlp-128-64", seed=7)
    repeats = repeat_configs(config, 3)
    assert [c.seed for c in repeats] == [7, 8, 9]
    assert {config_id(c, DATA) for c in repeats} == {config_id(config, DATA)}
    for bad in (0, 11, -1, 2.5, True):
        with pytest.raises(DigitLabError, match="from 1 to 10"):
            repeat_configs(config, bad)
    with pytest.raises(ConfigError) as error:
        repeat_configs(make_config("mlp-128-64", seed=2**31 - 2), 3)
    assert error.value.field == "seed"


# ------------------------------------------------------------------ grouping the Runs table
def run(run_id, seed, test, best=None, last=None, duration=None, status="completed", lr=0.001, data=DATA):
    """One row of the Runs table as list_runs() returns it (the columns grouping reads)."""
    config = make_config("mlp-128-64", learning_rate=lr, seed=seed, name=run_id).to_dict()
    return {"run_id": run_id, "name": run_id, "status": status, "architecture": "mlp-128-64", "config": config,
            "dataset": {"source": "mnist", "sha256": data}, "test_accuracy": test, "best_val_accuracy": best,
            "last_val_accuracy": last, "duration": duration}


@pytest.fixture
def runs() -> pd.DataFrame:
    return pd.DataFrame([
        run("a1", 1, 0.98, best=0.97, last=0.96, duration=10.0),
        run("a2", 2, 0.99, best=0.98, last=0.97, duration=20.0),
        run("a3", 3, 1.00, best=None, last=0.98, duration=30.0),
        run("a4", 4, None, status="failed"),                        # not a repeat: it has no result
        run("b1", 1, 0.995, best=0.99, last=0.99, duration=5.0, lr=0.01),
        run("c1", 1, 0.97, best=0.96, last=0.95, duration=7.0, data="e" * 64),  # a1's config, other digits
    ])


def test_group_runs_matches_hand_computed_statistics(runs):
    groups = group_runs(runs).set_index("name")
    a = groups.loc["a1"]
    assert a["n"] == 3 and a["run_ids"] == ["a1", "a2", "a3"] and a["seeds"] == [1, 2, 3]
    assert a["mean_test_accuracy"] == pytest.approx(0.99)
    assert a["std_test_accuracy"] == pytest.approx(0.01)                # sample std: sqrt(2 · 0.01² / 2)
    assert a["mean_best_val_accuracy"] == pytest.approx(0.975)          # the missing value is skipped
    assert a["std_best_val_accuracy"] == pytest.approx(math.sqrt(2 * 0.005 ** 2))
    assert a["mean_last_val_accuracy"] == pytest.approx(0.97)
    assert a["std_last_val_accuracy"] == pytest.approx(0.01)
    assert a["mean_duration"] == pytest.approx(20.0)
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)
    assert (a["ci_low_test_accuracy"], a["ci_high_test_accuracy"]) == pytest.approx((0.99 - half, 0.99 + half))
    assert a["config_id"] == config_id(runs.loc[0, "config"], DATA) and "seed" not in a["config"]
    single = groups.loc["b1"]
    assert single["n"] == 1 and math.isnan(single["std_test_accuracy"])  # one run has no spread


def test_group_runs_splits_by_dataset_orders_by_mean_and_keeps_only_finished(runs):
    groups = group_runs(runs)
    assert groups["name"].tolist() == ["b1", "a1", "c1"]   # best mean test accuracy first
    assert groups["dataset"].tolist() == [DATA, DATA, "e" * 64]
    assert "a4" not in sum(groups["run_ids"], [])
    everything = group_runs(runs, statuses=None).set_index("name")
    assert everything.loc["a1", "n"] == 4 and everything.loc["a1", "mean_test_accuracy"] == pytest.approx(0.99)


def test_group_runs_prefers_a_stored_config_id_and_handles_no_runs(runs):
    stored = runs.assign(config_id=["x", "x", "y", "y", "x", "x"])
    assert sorted(group_runs(stored)["config_id"]) == ["x", "y"]
    empty = group_runs(runs.iloc[0:0])
    assert empty.empty and {"config_id", "n", "mean_test_accuracy", "std_test_accuracy", "run_ids"} <= set(empty)


def test_repeat_sets_name_the_same_members_as_group_runs_without_the_statistics(runs):
    sets = repeat_sets(runs)
    full = group_runs(runs)
    assert sets == {row.config_id: row.run_ids for row in full.itertuples() if row.n >= 2}
    assert list(sets.values()) == [["a1", "a2", "a3"]]                     # finished repeats only, in frame order
    assert repeat_sets(runs, least=1).keys() == set(full["config_id"])
    assert repeat_sets(runs, statuses=None)[config_id(runs.loc[0, "config"], DATA)] == ["a1", "a2", "a3", "a4"]
    assert repeat_sets(runs.iloc[0:0]) == {}


def test_group_runs_on_a_real_store(store):
    config = make_config("mlp-128-64", seed=1)
    ids = []
    for seed, acc in ((1, 0.91), (2, 0.93)):
        run_id = store.create_run(replace(config, seed=seed).to_dict(), name=f"seed {seed}")
        store.set_dataset(run_id, {"source": "mnist", "n_train": 60000, "n_test": 10000, "sha256": DATA})
        store.set_status(run_id, "running")
        store.finish_run(run_id, "completed", test_accuracy=acc)
        ids.append(run_id)
    groups = group_runs(store.list_runs())
    assert len(groups) == 1 and groups.loc[0, "n"] == 2
    assert groups.loc[0, "config_id"] == config_id(config, DATA)
    assert groups.loc[0, "mean_test_accuracy"] == pytest.approx(0.92)
    assert sorted(groups.loc[0, "run_ids"]) == sorted(ids)


def test_config_ids_need_config_and_dataset_columns(runs):
    with pytest.raises(ValueError, match="dataset"):
        config_ids(runs.drop(columns="dataset"))


# ------------------------------------------------------------------ selecting by id
def test_select_a_run_id_names_one_run_and_a_config_id_its_repeats(runs):
    assert select(runs, "a2")["run_id"].tolist() == ["a2"]
    cid = config_id(runs.loc[0, "config"], DATA)
    assert select(runs, cid)["run_id"].tolist() == ["a1", "a2", "a3", "a4"]
    with pytest.raises(DigitLabError, match="no run and no config has the id 'nope'"):
        select(runs, "nope")


# ------------------------------------------------------------------ a group's band
def test_history_band_per_epoch_with_n_for_the_hover():
    history = pd.DataFrame({
        "run_id": ["r1", "r2", "r3", "r1", "r2", "r1"],
        "key": ["val_accuracy"] * 6,
        "step": [10, 10, 10, 20, 20, 30],
        "epoch": [1, 1, 1, 2, 2, 3],
        "value": [0.90, 0.92, 0.94, 0.95, np.nan, 0.97],   # r2 has a gap at epoch 2, r2 and r3 stopped early
    })
    band = history_band(history).set_index("epoch")
    assert band["n"].tolist() == [3, 1, 1]
    assert band.loc[1, "mean"] == pytest.approx(0.92) and band.loc[1, "std"] == pytest.approx(0.02)
    assert band.loc[1, "sem"] == pytest.approx(0.02 / math.sqrt(3))
    assert (band.loc[1, "min"], band.loc[1, "max"]) == (0.90, 0.94)
    assert math.isnan(band.loc[3, "std"])
    assert history_band(history.iloc[0:0]).empty
