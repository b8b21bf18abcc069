"""How a built model is set up to train: the one optimizer table, compiling, the learning-rate schedules.

`OPTIMIZERS` and `LR_SCHEDULES` are the names a config may choose (core.config validates against
them, the CLI and the Train form offer them). The learning rate reaches the optimizer through one
function, `make_optimizer`; `compile_for_training` calls it, and `schedule_callbacks` builds the
Keras callbacks that change the rate per epoch or stop early. core.train.script writes the same
optimizer and callbacks into a standalone script from this table. TensorFlow is imported only
inside the functions that build something, so reading the tables stays cheap.
"""
from __future__ import annotations

import math

# The one optimizer table: name -> (class in keras.optimizers, its arguments besides the learning rate).
OPTIMIZER_CLASSES: dict[str, tuple[str, dict]] = {
    "adam": ("Adam", {}),
    "sgd": ("SGD", {}),
    "sgd-momentum": ("SGD", {"momentum": 0.9}),
    "rmsprop": ("RMSprop", {}),
    "adagrad": ("Adagrad", {}),
}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)
LR_SCHEDULES = ("constant", "exponential", "cosine", "plateau")
EXPONENTIAL_DECAY = 0.9  # the exponential schedule multiplies the rate by this every epoch


def make_optimizer(name: str, lr: float):
    """A fresh Keras optimizer `name` (one of OPTIMIZERS) starting at learning rate `lr`."""
    import keras

    class_name, extra = OPTIMIZER_CLASSES[name]
    return getattr(keras.optimizers, class_name)(learning_rate=lr, **extra)


def compile_for_training(model, optimizer: str, lr: float, plan=None) -> None:
    """Compile a built model for `fit`, with its optimizer's slots and its accuracy counters made now.

    Keras 3 on TensorFlow otherwise makes those variables inside the first traced training step, and
    a `tf.function` that creates variables is traced twice (once to make them, once without). Made
    here, the step is traced once: every run's first epoch is about 0.3 CPU-s shorter on `mlp-128-64`
    (more on the CNNs), and the numbers it trains to are the same.

    `plan` (a core.model.execution.ExecutionPlan) sets steps per execution and XLA; None: Keras' defaults.
    (Its precision policy is set before the model is built, by the caller.)
    """
    import keras

    opt = make_optimizer(optimizer, lr)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy",
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  **({} if plan is None else {"steps_per_execution": plan.steps_per_execution,
                                              "jit_compile": plan.jit_compile}))
    opt.build(model.trainable_variables)


def cosine_rate(base: float, epoch: int, epochs: int) -> float:
    """The cosine schedule's rate for a 0-based epoch: the base rate first, then a half cosine towards 0.

    Per epoch (not per step), so the rate each epoch logs is the one it trained with and the
    standalone script can say it in one line; the last epoch trains at a small rate, not at 0.
    """
    return base * 0.5 * (1 + math.cos(math.pi * epoch / max(epochs, 1)))


def schedule_callbacks(lr_schedule: str, learning_rate: float, epochs: int, early_stopping: int,
                       has_val: bool) -> list:
    """The Keras callbacks for a schedule (one of LR_SCHEDULES) and early stopping (patience, 0 = off).

    Plateau and early stopping watch `val_loss`, or `loss` when the run holds out no validation digits.
    """
    import keras

    monitor = "val_loss" if has_val else "loss"
    cbs = []
    if lr_schedule == "exponential":
        cbs.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: learning_rate * EXPONENTIAL_DECAY ** epoch))
    elif lr_schedule == "cosine":
        cbs.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: cosine_rate(learning_rate, epoch, epochs)))
    elif lr_schedule == "plateau":
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5, patience=2, min_lr=1e-6))
    if early_stopping:
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=early_stopping, restore_best_weights=True))
    return cbs
