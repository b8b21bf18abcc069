"""core.predict.explain: activations per layer, integrated gradients, nearest training digits and the index artifact."""
from __future__ import annotations

import numpy as np
import pytest

from core.model.architectures import PRESETS, build_model, describe, resolve_layers
from core.predict.explain import INDEX_ARTIFACT, EmbeddingIndex, Explainer, build_index, nearest, run_index

CUSTOM = [{"type": "Conv2D", "filters": 6, "kernel": 5, "padding": "same", "activation": "tanh"},
          {"type": "BatchNormalization"}, {"type": "MaxPooling2D", "pool": 2},
          {"type": "Conv2D", "filters": 4, "kernel": 3}, {"type": "Activation", "activation": "elu"},
          {"type": "Flatten"}, {"type": "Dense", "units": 12, "activation": "gelu"}, {"type": "Dropout", "rate": 0.1},
          {"type": "Dense", "units": 7}]


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n crude synthetic digits (uint8 28×28, ink 255): a bar at a label-dependent angle and place."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = np.zeros((n, 28, 28), np.uint8)
    for i, label in enumerate(y):
        t = np.linspace(0, 1, 40)
        angle = label * np.pi / 10
        r0, c0 = 14 + rng.normal(0, 1), 14 + rng.normal(0, 1)
        rows = np.clip(np.round(r0 + (t - 0.5) * 18 * np.sin(angle)), 0, 27).astype(int)
        cols = np.clip(np.round(c0 + (t - 0.5) * 18 * np.cos(angle) + (label % 3 - 1) * 4), 0, 27).astype(int)
        x[i, rows, cols] = 255
        x[i, np.clip(rows + 1, 0, 27), cols] = 200
    return x, y


def expected_shapes(layers: list[dict]) -> list[tuple]:
    """What the panel shows per layer: each Conv2D block's maps and each hidden Dense layer's units."""
    rows = describe(layers)
    return [r.output_shape for r in rows[1:-1] if r.name.startswith(("Conv2D", "Dense"))]


@pytest.fixture(scope="module")
def trained():
    """A cnn-small and an MLP trained 1 epoch on 300 synthetic digits (enough to have opinions)."""
    import keras

    keras.utils.set_random_seed(1)
    x, y = digits(300)
    models = {}
    for name in ("cnn-small", "mlp-128-64", "cnn-draw"):
        model = build_model(resolve_layers(name))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x[..., None] / 255.0, y, epochs=1, batch_size=32, verbose=0)
        models[name] = model
    return models


@pytest.mark.parametrize("name", [*PRESETS, "custom"])
def test_activation_shapes_per_layer_for_every_preset_and_a_custom_stack(name):
    layers = CUSTOM if name == "custom" else resolve_layers(name)
    model = build_model(layers, augment=name == "cnn-draw", elastic=name == "cnn-draw")
    ex = Explainer(model, steps=4).explain(digits(1)[0][0] / 255.0)
    assert [layer.values.shape for layer in ex.layers] == expected_shapes(layers)
    assert [layer.kind for layer in ex.layers] == ["conv" if len(s) == 3 else "dense" for s in expected_shapes(layers)]
    assert ex.probabilities.shape == (10,) and abs(ex.probabilities.sum() - 1) < 1e-5
    assert np.allclose(ex.probabilities, model.predict_on_batch(digits(1)[0][:1, ..., None] / 255.0)[0], atol=1e-5)
    assert [a.pixels.shape for a in ex.attributions] == [(28, 28)] * 2
    first_conv = next((layer for layer in layers if layer["type"] == "Conv2D"), None)
    if first_conv is None:
        assert ex.kernels is None
    else:
        k = first_conv.get("kernel", 3)
        assert ex.kernels.shape == (first_conv["filters"], k, k)
    if name == "cnn-draw":  # a conv block is shown after its BatchNorm and relu, so no value is negative
        assert ex.layers[0].name == "Conv2D 32 3×3 → BatchNormalization → relu" and ex.layers[0].values.min() >= 0


@pytest.mark.parametrize("name", ["cnn-small", "mlp-128-64", "cnn-draw"])
def test_integrated_gradients_are_complete(trained, name):
    """Each class's attributions sum to f(x) − f(blank canvas) within 5 % (over every drawing whose
    logit moved by at least 0.05 from the blank canvas's: a relative error of a near-zero change means little)."""
    explainer = Explainer(trained[name])
    assert explainer.target == "logit"
    x, _ = digits(12, seed=3)
    checked = 0
    for image in x / 255.0:
        for a in explainer.explain(image).attributions:
            assert not a.pixels[image == 0].any()  # blank-canvas baseline: an empty pixel gets nothing
            delta = a.f_input - a.f_baseline
            if abs(delta) >= 0.05:
                checked += 1
                assert abs(a.pixels.sum() - delta) <= 0.05 * abs(delta), (a.label, a.pixels.sum(), delta)
    assert checked >= 6


def test_the_top_two_digits_are_explained_in_order(trained):
    ex = Explainer(trained["cnn-small"]).explain(digits(1, seed=5)[0][0] / 255.0)
    order = np.argsort(-ex.probabilities)[:2].tolist()
    assert [a.label for a in ex.attributions] == order


def test_a_training_digits_nearest_neighbours_include_itself(trained):
    x, y = digits(300)
    explainer = Explainer(trained["cnn-small"])
    index = build_index(explainer, x, y, size=200)
    assert index.vectors.dtype == np.float16 and index.vectors.shape[0] == 200
    assert np.array_equal(index.images, x[index.ids]) and np.array_equal(index.labels, y[index.ids])
    for pos in (0, 17, 199):
        found = nearest(index, explainer.embed(x[index.ids[pos]][None] / 255.0)[0])
        assert len(found) == 8 and pos in [i for i, _, _ in found[:2]]
        assert found[0][2] >= found[-1][2] and found[0][2] > 0.99
    again = EmbeddingIndex.from_bytes(index.to_bytes())
    assert np.array_equal(again.vectors, index.vectors) and np.array_equal(again.ids, index.ids)


def test_the_index_is_built_once_per_run_and_kept_as_its_artifact(populated_env, monkeypatch):
    from core.predict import explain
    from core.predict.ensemble import model_for_run

    store = populated_env.store
    run_id = populated_env.runs["run_id"].iloc[0]
    explainer = Explainer(model_for_run(store, run_id))
    first = run_index(store, run_id, explainer, populated_env.data_path)
    assert store.artifact(run_id, INDEX_ARTIFACT) is not None
    monkeypatch.setattr(explain, "build_index", lambda *a, **k: pytest.fail("rebuilt the index"))
    second = run_index(store, run_id, explainer, populated_env.data_path)
    assert np.array_equal(first.vectors, second.vectors)


def test_an_index_from_another_model_is_refused_in_one_line(trained):
    x, y = digits(50)
    index = build_index(Explainer(trained["cnn-small"]), x, y, size=20)
    from core.predict.preprocess import InferenceError
    with pytest.raises(InferenceError, match="built for another model"):
        nearest(index, np.ones(128))
