"""core/search/space.py: reading a SPEC (ranges, scales, lists) and a space of `--param FIELD=SPEC`,
with errors that name the field and the value. The grid and its limits are tested in test_sweep.py."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from core.config import ConfigError
from core.search.space import describe_spec, distribution, grid_size, parse_space, parse_spec


@pytest.mark.parametrize("field, spec, expected", [
    ("learning_rate", "1e-4:1e-1:log", {"type": "float", "low": 1e-4, "high": 0.1, "log": True}),
    ("dropout", "0.0:0.5", {"type": "float", "low": 0.0, "high": 0.5, "log": False}),
    ("batch_size", "16:256:int", {"type": "int", "low": 16, "high": 256, "log": False}),
    ("batch_size", "16:256:log", {"type": "int", "low": 16, "high": 256, "log": True}),
    ("optimizer", "adam,sgd,rmsprop", {"type": "categorical", "choices": ["adam", "sgd", "rmsprop"]}),
    ("batch_size", "32, 64", {"type": "categorical", "choices": [32, 64]}),
    ("augment", "true,false", {"type": "categorical", "choices": [True, False]}),
])
def test_parse_spec_reads_ranges_scales_and_lists(field, spec, expected):
    assert parse_spec(field, spec) == expected


@pytest.mark.parametrize("field, spec, message", [
    ("learning_rate", "0.1:0.01", "learning_rate: the range '0.1:0.01' needs low < high"),
    ("learning_rate", "0.1:0.1", "needs low < high"),
    ("learning_rate", "0:0.1:log", "learning_rate: the log range '0:0.1:log' needs low > 0"),
    ("learning_rate", "a:1", "learning_rate: 'a:1' has a bound that is not a number"),
    ("learning_rate", "1e-3:1:int", "learning_rate: '1e-3:1:int' asks for whole numbers"),
    ("learning_rate", "1:2:cubic", "learning_rate: '1:2:cubic' is not a range"),
    ("batch_size", "1.5:8", "batch_size: '1.5:8' needs whole-number bounds"),
    ("optimizer", "adam,nag", "optimizer: 'nag' is not one of"),
    ("optimizer", " , ", "optimizer: give at least one value"),
    ("optimizer", "adam,adam", "optimizer: a value is listed twice"),
    ("colour", "1:2", "'colour' cannot be searched"),
])
def test_parse_spec_names_the_field_and_value(field, spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_spec(field, spec)


def test_a_grid_takes_lists_only_and_parse_space_reads_field_equals_spec():
    with pytest.raises(ConfigError, match="a grid takes a comma list"):
        parse_spec("learning_rate", "1e-3:1e-1", search="grid")
    assert parse_space(["learning-rate=1e-3,1e-2", "optimizer=adam"], "grid") == {
        "learning_rate": {"type": "categorical", "choices": [1e-3, 1e-2]},
        "optimizer": {"type": "categorical", "choices": ["adam"]}}
    for bad, message in (["learning_rate"], "write FIELD=SPEC"), (["dropout=0:0.5", "dropout=0:0.2"], "given twice"):
        with pytest.raises(ConfigError, match=message):
            parse_space(bad)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(low=finite, high=finite, log=st.booleans())
def test_any_float_range_parses_exactly_when_it_is_a_valid_range(low, high, log):
    spec = f"{low!r}:{high!r}" + (":log" if log else "")
    valid = low < high and (low > 0 or not log)
    if valid:
        parsed = parse_spec("dropout", spec)
        assert (parsed["low"], parsed["high"], parsed["log"]) == (low, high, log)
    else:
        with pytest.raises(ConfigError, match="dropout: "):
            parse_spec("dropout", spec)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4096), min_size=1, max_size=8, unique=True))
def test_any_list_of_distinct_whole_numbers_is_a_categorical_in_order(values):
    assert parse_spec("batch_size", ",".join(map(str, values))) == {"type": "categorical", "choices": values}


def test_describe_spec_grid_size_and_distribution():
    log_range, int_range = parse_spec("learning_rate", "1e-4:1e-1:log"), parse_spec("batch_size", "16:256:int")
    lists = parse_space(["optimizer=adam,sgd", "batch_size=32,64,128"], "grid")
    assert describe_spec(log_range) == "0.0001 … 0.1 (log)" and describe_spec(int_range) == "16 … 256 (int)"
    assert describe_spec(lists["optimizer"]) == "adam, sgd"
    assert grid_size(lists) == 6 and grid_size({}) == 0
    assert type(distribution(log_range)).__name__ == "FloatDistribution" and distribution(log_range).log
    assert type(distribution(int_range)).__name__ == "IntDistribution"
    assert distribution(lists["batch_size"]).choices == (32, 64, 128)
