"""core.model.compile: the one optimizer table, compiling for training, the learning-rate schedules."""
import numpy as np
import pytest

from core import config
from core.config import make_config
from core.model.compile import (LR_SCHEDULES, OPTIMIZER_CLASSES, OPTIMIZERS, compile_for_training, cosine_rate,
                                make_optimizer, schedule_callbacks)


def test_the_config_validates_against_the_same_table():
    assert config.OPTIMIZERS is OPTIMIZERS and config.LR_SCHEDULES is LR_SCHEDULES
    assert OPTIMIZERS == tuple(OPTIMIZER_CLASSES) == ("adam", "sgd", "sgd-momentum", "rmsprop", "adagrad")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_make_optimizer_starts_at_the_rate_it_is_given(name):
    opt = make_optimizer(name, 0.0125)
    assert type(opt).__name__ == OPTIMIZER_CLASSES[name][0]
    assert float(opt.learning_rate) == pytest.approx(0.0125)
    assert float(getattr(opt, "momentum", 0.0)) == (0.9 if name == "sgd-momentum" else 0.0)


def test_cosine_rate_is_a_half_cosine_per_epoch():
    assert [cosine_rate(0.01, e, 4) for e in range(4)] == pytest.approx([0.01, 0.0085355, 0.005, 0.0014645], rel=1e-4)


@pytest.mark.parametrize("schedule, early, has_val, expected", [
    ("constant", 0, True, []),
    ("exponential", 0, True, ["LearningRateScheduler"]),
    ("cosine", 2, True, ["LearningRateScheduler", "EarlyStopping"]),
    ("plateau", 3, False, ["ReduceLROnPlateau", "EarlyStopping"]),
])
def test_schedule_callbacks(schedule, early, has_val, expected):
    cbs = schedule_callbacks(schedule, 0.02, 3, early, has_val=has_val)
    assert [type(cb).__name__ for cb in cbs] == expected
    for cb in cbs:
        if hasattr(cb, "monitor"):
            assert cb.monitor == ("val_loss" if has_val else "loss")
        if type(cb).__name__ == "LearningRateScheduler":
            rates = [cb.schedule(epoch, None) for epoch in range(3)]
            assert rates == pytest.approx([0.02, 0.018, 0.0162] if schedule == "exponential" else [0.02, 0.015, 0.005])


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_training_makes_no_variables_inside_the_traced_step(optimizer):
    """A variable made inside the first traced step makes TensorFlow trace that step twice (0.3–0.4
    CPU-s on every run's first epoch); compile_for_training makes them all before fit."""
    import tensorflow as tf

    from core.model.architectures import build_model
    model = build_model(make_config("cnn-small").hidden_layers(), augment=True, elastic=True)
    compile_for_training(model, optimizer, 1e-3)
    made = []

    def creator(next_creator, **kwargs):
        made.append(kwargs.get("name"))
        return next_creator(**kwargs)
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 96)
    with tf.variable_creator_scope(creator):
        history = model.fit(x, y, batch_size=32, epochs=1, validation_data=(x[:32], y[:32]), verbose=0)
    assert made == []
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
