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
