"""Property-based tests (hypothesis): the config validator, the IDX parser and the CLI's answer
to bad values.

The config validator either returns a config that survives a second validation and a round
trip through the store's dict form, or raises ConfigError naming the field; never anything
else. The IDX parser returns an array exactly as big as its header says, or raises DataError.
A bad value on the command line is one line on stderr, exit 2, and no row in the store.
(tests/test_data.py already covers random bytes, valid round trips and truncation of IDX files.)
"""
from __future__ import annotations

import gzip
import math
import sqlite3
from contextlib import closing
from dataclasses import fields

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from core import cli
from core.model.architectures import ACTIVATIONS, ARCHITECTURES, CUSTOM, LAYER_TYPES
from core.config import LR_SCHEDULES, OPTIMIZERS, ConfigError, TrainConfig, make_config
from core.data.dataset import DataError
from core.data.ingest import ingest, parse_idx
from core.settings import sqlite_file
from tests.idx_helpers import idx_bytes, idx_name, write_mnist_dir

N_TRAIN = 200  # the size of conftest's tiny_data
with_fixtures = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELDS = [f.name for f in fields(TrainConfig)]

anything = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                     st.text(max_size=12), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4),
                                                                                                 st.integers(), max_size=2))
layer = st.fixed_dictionaries(
    {"type": st.one_of(st.sampled_from(LAYER_TYPES), st.text(max_size=8))},
    optional={"units": st.one_of(st.integers(-5, 5000), anything), "filters": st.integers(-2, 600),
              "kernel": st.integers(-1, 9), "pool": st.integers(-1, 6), "rate": st.floats(-1, 2),
              "activation": st.one_of(st.sampled_from(ACTIVATIONS), anything)})
layers = st.one_of(st.lists(st.one_of(layer, layer, anything), max_size=6), anything)
# Per field: values around and beyond its limits, plus values of the wrong type.
near = {
    "optimizer": st.one_of(st.sampled_from(OPTIMIZERS), anything),
    "learning_rate": st.one_of(st.floats(-1, 20), anything),
    "batch_size": st.one_of(st.integers(-3, 400), anything),
    "epochs": st.one_of(st.integers(-3, 1200), anything),
    "dropout": st.one_of(st.floats(-0.5, 1.5), anything),
    "activation": st.one_of(st.sampled_from(ACTIVATIONS), anything),
    "validation_split": st.one_of(st.floats(-0.2, 1.2), anything),
    "seed": st.one_of(st.integers(-5, 2**32), anything),
    "early_stopping": st.one_of(st.integers(-3, 1200), anything),
    "lr_schedule": st.one_of(st.sampled_from(LR_SCHEDULES), anything),
    "train_limit": st.one_of(st.integers(-5, 400), anything),
    "augment": anything,
    "name": st.one_of(st.text(max_size=250), anything),
    "layers": layers,
}


@given(architecture=st.one_of(st.sampled_from(ARCHITECTURES), st.text(max_size=10)),
       overrides=st.dictionaries(st.sampled_from(sorted(near)), st.none(), max_size=6).flatmap(
           lambda keys: st.fixed_dictionaries({k: near[k] for k in keys})))
@settings(max_examples=400, deadline=None)
def test_make_config_accepts_a_valid_config_or_names_the_bad_field(architecture, overrides):
    try:
        config = make_config(architecture, n_train=N_TRAIN, **overrides)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and any(name in message for name in [*FIELDS, "architecture", "layers"]), message
        return
    assert config.validate(N_TRAIN) is config
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.optimizer in OPTIMIZERS and config.lr_schedule in LR_SCHEDULES and config.activation in ACTIVATIONS
    assert 0 < config.learning_rate <= 10 and math.isfinite(config.learning_rate)
    assert 1 <= config.epochs <= 1000 and 0 <= config.validation_split <= 0.5
    assert config.dropout is None or 0 <= config.dropout < 1
    assert 1 <= config.batch_size <= N_TRAIN and (config.train_limit is None or 10 <= config.train_limit <= N_TRAIN)
    assert isinstance(config.augment, bool) and isinstance(config.name, str) and len(config.name) <= 200
    for key, value in overrides.items():
        if value is not None and key != "layers":
            assert getattr(config, key) == value


@given(architecture=st.sampled_from([a for a in ARCHITECTURES if a != CUSTOM]),
       values=st.fixed_dictionaries({
           "optimizer": st.sampled_from(OPTIMIZERS), "learning_rate": st.floats(1e-6, 10),
           "batch_size": st.integers(1, 170), "epochs": st.integers(1, 1000), "activation": st.sampled_from(ACTIVATIONS),
           "dropout": st.one_of(st.none(), st.floats(0, 0.99)), "validation_split": st.floats(0, 0.15),
           "seed": st.integers(0, 2**31 - 1), "early_stopping": st.integers(0, 1000),
           "lr_schedule": st.sampled_from(LR_SCHEDULES), "augment": st.booleans(), "name": st.text(max_size=200)}))
@settings(max_examples=150, deadline=None)
def test_every_value_inside_the_documented_limits_is_accepted(architecture, values):
    config = make_config(architecture, n_train=N_TRAIN, **values)
    assert {k: getattr(config, k) for k in values} == values


@given(data=st.dictionaries(st.sampled_from(FIELDS), anything, max_size=5))
@settings(max_examples=200, deadline=None)
def test_a_stored_config_that_was_tampered_with_only_raises_config_error(data):
    try:
        TrainConfig.from_dict(data).validate(N_TRAIN)
    except ConfigError as exc:
        assert "\n" not in str(exc)


# ------------------------------------------------------------------------------ IDX parser


def header(dims: list[int], dtype: int = 0x08) -> bytes:
    return bytes([0, 0, dtype, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


@given(dims=st.lists(st.integers(0, 6), min_size=1, max_size=3), extra=st.integers(-30, 30).filter(bool),
       gz=st.booleans())
@with_fixtures
def test_a_payload_of_the_wrong_size_is_refused(tmp_path, dims, extra, gz):
    size = math.prod(dims) + extra
    assume(size >= 0)
    raw = header(dims) + bytes(size)
    path = tmp_path / "wrong-size"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataError, match="truncated or corrupt"):
        parse_idx(path)


@given(position=st.integers(0, 15), value=st.integers(0, 255), gz=st.booleans())
@with_fixtures
def test_any_header_byte_changed_gives_the_header_shape_or_data_error(tmp_path, position, value, gz):
    raw = bytearray(idx_bytes(np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)))
    raw[position] = value
    path = tmp_path / "mutated"
    path.write_bytes(gzip.compress(bytes(raw)) if gz else bytes(raw))
    try:
        array = parse_idx(path)
    except DataError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    else:  # the change kept the header consistent: the array is exactly what it declares
        ndim = raw[3]
        dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
        assert array.shape == dims and array.dtype == np.uint8 and array.size == len(raw) - 4 - 4 * ndim


@given(which=st.sampled_from([(s, k) for s in ("train", "test") for k in ("images", "labels")]),
       content=st.one_of(st.binary(max_size=300), st.builds(lambda dims, fill: header(dims) + bytes([fill]) * math.prod(dims),
                                                            st.lists(st.integers(0, 30), min_size=1, max_size=3),
                                                            st.integers(0, 255))))
@with_fixtures
def test_ingest_of_a_folder_with_one_bad_file_writes_nothing(tmp_path_factory, which, content):
    folder = tmp_path_factory.mktemp("idx")
    write_mnist_dir(folder, n_train=12, n_test=6, gz=False)
    (folder / idx_name(*which, gz=False)).write_bytes(content)
    out = folder / "out" / "mnist.h5"
    try:
        result = ingest(folder, out, allow_download=False)
    except DataError as exc:
        assert "\n" not in str(exc)
        assert not out.parent.exists() or list(out.parent.iterdir()) == [], "a partial file was left behind"
    else:  # only possible when the replacement is itself a valid, consistent MNIST file
        assert result.n_train == 12 and result.n_test == 6 and out.exists()


# ------------------------------------------------------------------------------ the CLI


NUMERIC_FLAGS = {"--epochs": st.one_of(st.integers(max_value=0), st.integers(min_value=1001)),
                 "--batch-size": st.one_of(st.integers(max_value=0), st.integers(min_value=N_TRAIN)),
                 "--lr": st.one_of(st.floats(max_value=0), st.floats(min_value=10.001), st.just(float("nan"))),
                 "--dropout": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1)),
                 "--validation-split": st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=0.501)),
                 "--seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31)),
                 "--early-stopping": st.integers(max_value=-1),
                 "--train-limit": st.one_of(st.integers(max_value=9), st.integers(min_value=N_TRAIN + 1))}


def counts(url: str) -> tuple[int, int]:
    with closing(sqlite3.connect(sqlite_file(url))) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("runs", "metrics"))


@given(flag=st.sampled_from(sorted(NUMERIC_FLAGS)).flatmap(lambda f: st.tuples(st.just(f), NUMERIC_FLAGS[f])),
       junk=st.booleans(), queue=st.booleans())
@with_fixtures
def test_a_bad_value_on_the_command_line_is_one_line_exit_2_and_no_row(store, tiny_data, capsys, flag, junk, queue):
    name, value = flag
    text = "twelve" if junk else repr(value) if isinstance(value, float) else str(value)
    before = counts(store.url)
    rc = cli.main(["train", "--arch", "mlp-128-64", name, text, "--db", store.url, "--data", str(tiny_data),
                   *(["--queue"] if queue else [])])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert counts(store.url) == before
