"""TrainConfig: presets as overrides, every invalid value rejected with a named error."""
import pytest

from core.config import HELP, ConfigError, TrainConfig, make_config


def test_preset_defaults_override_config_defaults():
    cfg = make_config("mlp-128-64")
    assert (cfg.optimizer, cfg.learning_rate, cfg.batch_size, cfg.epochs) == ("adam", 1e-3, 32, 5)
    assert make_config("mlp-512").optimizer == "rmsprop"
    assert make_config("cnn-small", epochs=3, batch_size=64).epochs == 3


def test_config_round_trips_through_dict():
    cfg = make_config("custom", layers=[{"type": "Dense", "units": 32, "activation": "relu"}], name="x")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_every_field_has_help():
    from dataclasses import fields
    assert {f.name for f in fields(TrainConfig)} - {"layers"} <= set(HELP)


@pytest.mark.parametrize("overrides, field, value", [
    ({"learning_rate": -1.0}, "learning_rate", "-1.0"),
    ({"learning_rate": 0.0}, "learning_rate", "0.0"),
    ({"learning_rate": 11.0}, "learning_rate", "11.0"),
    ({"batch_size": 0}, "batch_size", "0"),
    ({"epochs": 0}, "epochs", "0"),
    ({"epochs": 1001}, "epochs", "1001"),
    ({"dropout": 1.5}, "dropout", "1.5"),
    ({"dropout": 1.0}, "dropout", "1.0"),
    ({"dropout": -0.1}, "dropout", "-0.1"),
    ({"validation_split": 0.9}, "validation_split", "0.9"),
    ({"optimizer": "adamw"}, "optimizer", "adamw"),
    ({"activation": "swish"}, "activation", "swish"),
    ({"lr_schedule": "cyclic"}, "lr_schedule", "cyclic"),
    ({"train_limit": 5}, "train_limit", "5"),
])
def test_invalid_values_name_field_value_and_allowed(overrides, field, value):
    with pytest.raises(ConfigError) as err:
        make_config("mlp-128-64", **overrides)
    message = str(err.value)
    assert message.startswith(field) and value in message and ("must be" in message)


def test_unknown_architecture_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match="architecture must be one of .*cnn-small.*got 'resnet'"):
        make_config("resnet")


def test_batch_size_larger_than_training_set_is_rejected():
    with pytest.raises(ConfigError, match="batch_size .*900 training digits.*got 1000"):
        make_config("mlp-128-64", batch_size=1000, train_limit=1000, n_train=60000)
    make_config("mlp-128-64", batch_size=900, train_limit=1000, n_train=60000)


def test_custom_without_layers_or_with_bad_layers():
    with pytest.raises(ConfigError, match="layers"):
        make_config("custom")
    with pytest.raises(ConfigError, match="layer 2 .*Conv2D"):
        make_config("custom", layers=[{"type": "Flatten"}, {"type": "Conv2D", "filters": 4}])


def test_a_wave_1_config_without_elastic_still_loads_and_elastic_is_validated():
    wave1 = {"architecture": "cnn-small", "layers": [], "optimizer": "adam", "learning_rate": 0.001,
             "batch_size": 128, "epochs": 10, "dropout": None, "activation": "relu", "validation_split": 0.1,
             "seed": 42, "early_stopping": 0, "lr_schedule": "constant", "train_limit": None, "augment": False,
             "name": "old run"}
    config = TrainConfig.from_dict(wave1).validate()
    assert config.elastic is False and config.name == "old run"
    assert make_config("cnn-small", elastic=True).elastic is True
    with pytest.raises(ConfigError, match="elastic must be true or false, got 'yes'"):
        make_config("cnn-small", elastic="yes")


def test_cnn_draw_defaults_turn_augmentation_on_and_elastic_can_be_added():
    config = make_config("cnn-draw")
    assert config.augment and not config.elastic and config.epochs == 8
    assert make_config("cnn-draw", elastic=True).elastic and not make_config("cnn-draw", augment=False).augment


# -- the registry ---------------------------------------------------------------------------------
def test_configerror_names_its_field_and_is_a_digitlab_error():
    from core.errors import DigitLabError
    for overrides, field in [({"learning_rate": -1.0}, "learning_rate"), ({"batch_size": 0}, "batch_size"),
                             ({"optimizer": "adamw"}, "optimizer"), ({"train_limit": 5}, "train_limit"),
                             ({"elastic": "yes"}, "elastic"), ({"layers": "x"}, "layers")]:
        with pytest.raises(ConfigError) as err:
            make_config("mlp-128-64", **overrides)
        assert err.value.field == field and isinstance(err.value, DigitLabError)
    with pytest.raises(ConfigError) as err:
        make_config("resnet")
    assert err.value.field == "architecture"
    with pytest.raises(ConfigError) as err:
        make_config("custom")
    assert err.value.field == "layers"
    error = ConfigError("epochs must be ...", field="epochs", hint="try 5")
    assert (error.field, error.hint, str(error)) == ("epochs", "try 5", "epochs must be ...; try 5")
    assert ConfigError("no field").field is None


def test_problems_lists_every_bad_field_in_one_pass_and_validate_raises_the_first():
    from dataclasses import replace
    good = make_config("mlp-128-64")
    assert good.problems() == {} and good.problems(n_train=60000) == {}
    bad = replace(good, learning_rate=-1.0, epochs=0, optimizer="adamw", batch_size="many", dropout=2.0)
    found = bad.problems()
    assert set(found) == {"learning_rate", "epochs", "optimizer", "batch_size", "dropout"}
    assert found["learning_rate"] == "learning_rate must be a number > 0 and ≤ 10, got -1.0"
    assert all(message.startswith(field) for field, message in found.items())
    with pytest.raises(ConfigError) as err:
        bad.validate()
    assert (err.value.field, str(err.value)) == (next(iter(found)), found[next(iter(found))])
    # the batch size is checked against the digits left for training
    assert set(replace(good, batch_size=1000, train_limit=1000).problems(n_train=60000)) == {"batch_size"}
    # a bad architecture is one problem, not a second one about its layers
    assert set(replace(good, architecture="resnet").problems()) == {"architecture"}


def test_registry_lists_every_field_in_order_with_its_help():
    from dataclasses import fields
    from core.config import PARAMS, param, runs_columns, sweepable_fields
    assert list(PARAMS) == [f.name for f in fields(TrainConfig)]
    assert all(PARAMS[name].help == HELP[name] for name in PARAMS) and param("seed").flag == "--seed"
    assert set(sweepable_fields()) <= set(runs_columns())  # every sweepable field has a Runs column
    assert "early_stopping" in runs_columns()  # swept but missing from the Runs table before the registry
    with pytest.raises(ConfigError, match="unknown config field 'momentum'"):
        param("momentum")


def test_auto_name_says_what_differs_from_the_presets_defaults():
    from core.config import auto_name
    assert auto_name(make_config("mlp-128-64")) == "mlp-128-64"
    assert auto_name(make_config("mlp-128-64", learning_rate=0.01, batch_size=64, augment=True)) == \
        "mlp-128-64 · lr 0.01 · batch 64 · augment"
    assert auto_name(make_config("cnn-draw", augment=False)) == "cnn-draw · no augment"
    many = make_config("mlp-128-64", learning_rate=0.01, batch_size=64, epochs=2, seed=1, name="ignored")
    assert auto_name(many) == "mlp-128-64 · lr 0.01 · batch 64 · epochs 2 · seed 1"  # issue 27: no "+1 more"


# A field as a contributor would add it: one declaration with its Param, nothing else.
_NEW_FIELD = '''    momentum: float = field(default=0.5, metadata=_param(  # added by the test
        label="Momentum", kind="float", flag="--momentum", sweepable=True, column="momentum (test)",
        name_word="momentum", script="MOMENTUM = {value!r}", help="How much of the last step carries over."))

'''
_WITH_NEW_FIELD = r'''
import importlib.util, json, sys
import core
path = sys.argv[1]
source = open(path, encoding="utf-8").read()
assert "    def problems(" in source
source = source.replace("    def problems(", sys.argv[2] + "    def problems(", 1)
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("core.config", loader=None))
module.__file__ = path
sys.modules["core.config"] = core.config = module
exec(compile(source, path, "exec"), module.__dict__)

from core.cli import build_parser
from core.cli.train import config_from_args
from core.search.space import SWEEPABLE, expand_grid
from core.store.schema import runs_frame
from core.train.script import keras_script

parser = build_parser()
args = parser.parse_args(["train", "--arch", "mlp-128-64", "--momentum", "0.9"])
config = config_from_args(args, args.config_options)
sweep = parser.parse_args(["sweep", "--momentum", "0.8"])
grid = expand_grid(config, {"momentum": [0.1, 0.2]})
frame = runs_frame(["id", "tags", "config", "started_at", "finished_at"],
                   [("r1", "[]", json.dumps(config.to_dict()), None, None)])
train_help = next(p for a in parser._actions if a.dest == "command" for n, p in a.choices.items() if n == "train")
print(json.dumps({
    "cli_value": config.momentum, "cli_help": train_help.format_help(), "sweep_option": sweep.momentum,
    "sweep_kind": SWEEPABLE.get("momentum"), "grid": [c.momentum for c in grid],
    "column": module.runs_columns().get("momentum"), "frame": frame["momentum"].tolist(),
    "name": module.auto_name(config), "script": keras_script(config),
}))
'''


def test_a_field_declared_with_its_param_appears_everywhere_without_another_edit():
    """Add a field to TrainConfig's source (as a contributor would) in a fresh interpreter: the CLI,
    the sweep fields, the Runs columns, automatic names and the standalone script all have it."""
    import json
    import subprocess
    import sys
    from pathlib import Path
    from core.config import PARAMS
    import core.config
    assert "momentum" not in PARAMS  # so what follows is the registry's doing, not a field we already had
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", _WITH_NEW_FIELD, core.config.__file__, _NEW_FIELD], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["cli_value"] == 0.9 and "--momentum" in seen["cli_help"]
    assert "How much of the last step carries over." in seen["cli_help"]
    assert seen["sweep_option"] == 0.8 and seen["sweep_kind"] == "float" and seen["grid"] == [0.1, 0.2]
    assert seen["column"] == "momentum (test)" and seen["frame"] == [0.9]
    assert seen["name"] == "mlp-128-64 · momentum 0.9"
    assert "MOMENTUM = 0.9\n" in seen["script"]
