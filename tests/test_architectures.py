"""Presets reproduce the tutorials' parameter counts; custom stacks are validated before building."""
import pytest

from core.model.architectures import PRESETS, ArchitectureError, build_model, count_params, describe, resolve_layers

EXPECTED_PARAMS = {"mlp-128-64": 109_386, "mlp-512-dropout": 407_050, "mlp-512": 407_050,
                   "mlp-512x2-dropout": 669_706, "cnn-small": 70_378, "cnn-draw": 198_250}


@pytest.mark.parametrize("preset", sorted(EXPECTED_PARAMS))
def test_preset_parameter_count_matches_keras(preset):
    layers = resolve_layers(preset)
    assert count_params(layers) == EXPECTED_PARAMS[preset]
    assert build_model(layers).count_params() == EXPECTED_PARAMS[preset]


def test_every_preset_is_tested_and_has_help():
    assert set(PRESETS) == set(EXPECTED_PARAMS)
    assert all(PRESETS[p]["help"] for p in PRESETS)


def test_describe_gives_output_shapes_like_model_summary():
    rows = describe(resolve_layers("cnn-small"))
    model = build_model(resolve_layers("cnn-small"))
    keras_shapes = [tuple(layer.output.shape[1:]) for layer in model.layers]
    assert [r.output_shape for r in rows[1:]] == keras_shapes
    assert rows[-1].output_shape == (10,) and rows[-1].note == "output layer"


def test_custom_stack_with_batchnorm_counts_all_params():
    layers = [{"type": "Conv2D", "filters": 8, "kernel": 5, "activation": "relu"}, {"type": "BatchNormalization"},
              {"type": "MaxPooling2D", "pool": 2}, {"type": "Flatten"}, {"type": "Dense", "units": 16, "activation": "elu"}]
    assert count_params(layers) == build_model(layers).count_params()


def test_dense_on_an_image_gets_an_automatic_flatten():
    rows = describe([{"type": "Dense", "units": 10, "activation": "relu"}])
    assert rows[1].name == "Flatten" and "automatically" in rows[1].note
    assert count_params([{"type": "Dense", "units": 10}]) == build_model([{"type": "Dense", "units": 10}]).count_params()


@pytest.mark.parametrize("layers, words", [
    ([{"type": "Flatten"}, {"type": "Conv2D", "filters": 8, "kernel": 3}], ["layer 2", "Conv2D", "Flatten"]),
    ([{"type": "Conv2D", "filters": 8, "kernel": 9}], ["layer 1", "kernel", "9"]),
    ([{"type": "Dense", "units": 0}], ["layer 1", "units", "0"]),
    ([{"type": "Dropout", "rate": 1.0}], ["layer 1", "rate", "1.0"]),
    ([{"type": "LSTM"}], ["layer 1", "LSTM"]),
    ([{"type": "Dense", "units": 8, "activation": "swish"}], ["activation", "swish"]),
    ([{"type": "MaxPooling2D", "pool": 4}] * 3, ["layer 3", "pool"]),
])
def test_bad_stacks_name_the_layer_and_value(layers, words):
    with pytest.raises(ArchitectureError) as err:
        describe(layers)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_overrides_replace_dropout_and_activation():
    layers = resolve_layers("mlp-512x2-dropout", dropout=0.3, activation="tanh")
    assert [l["rate"] for l in layers if l["type"] == "Dropout"] == [0.3, 0.3]
    assert {l["activation"] for l in layers if l["type"] == "Activation"} == {"tanh"}
    assert resolve_layers("mlp-512", dropout=0.25)[-1] == {"type": "Dropout", "rate": 0.25}


def test_augmentation_layers_add_no_parameters_and_leave_prediction_unchanged():
    import numpy as np

    layers = resolve_layers("cnn-draw")
    model = build_model(layers, augment=True, elastic=True)
    assert model.count_params() == EXPECTED_PARAMS["cnn-draw"]
    assert [layer.name for layer in model.layers[:4]] == ["aug_elastic", "aug_rotate", "aug_shift", "aug_zoom"]
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    elastic = model.get_layer("aug_elastic")
    assert np.array_equal(np.asarray(elastic(x, training=False)), x)  # identity outside training


def test_elastic_distortion_warps_each_digit_smoothly_and_keeps_its_ink(tmp_path):
    """Training-time warp: every digit moves differently, ink stays in [0, 1] and roughly the same amount;
    a model holding the layer saves and loads again (safe_mode) and predicts the same."""
    import numpy as np

    from core.model.architectures import elastic_layer_class
    from core.predict.inference import load_model

    model = build_model([{"type": "Dense", "units": 8}], elastic=True)
    # One warp of a single digit can stretch its ink by 2x or squeeze it to half (bilinear resampling of
    # a stretched or compressed field), so the ink check is on 64 digits at once, from a seeded layer.
    layer = elastic_layer_class().from_config({**model.get_layer("aug_elastic").get_config(), "seed": 3})
    x = np.zeros((64, 28, 28, 1), np.float32)
    x[:, 6:22, 12:16] = 1.0  # a "1"
    warped = np.asarray(layer(x, training=True))
    assert warped.shape == x.shape and warped.min() >= 0 and warped.max() <= 1 + 1e-6
    assert not np.allclose(warped[0], warped[1])                      # each digit its own field
    assert 0.2 < np.abs(warped - x).mean() / x.mean() < 1.5           # moved, not erased or blurred away
    assert abs(warped.sum() / x.sum() - 1) < 0.25                     # about as much ink as before, on average
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert np.allclose(again.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
