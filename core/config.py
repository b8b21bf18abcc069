"""The run config: one frozen dataclass, presets as partial overrides, validation with named errors.

`make_config(architecture, **overrides)` starts from the defaults below, applies the preset's
tutorial hyperparameters, then the user's overrides, and validates. The resolved config is
what a run stores as its params, so a run can always be reproduced or forked.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from core.errors import DigitLabError
from core.model.architectures import (ACTIVATIONS, ARCHITECTURES, CUSTOM, PRESETS, ArchitectureError,
                                describe, resolve_layers)

OPTIMIZERS = ("adam", "sgd", "sgd-momentum", "rmsprop", "adagrad")
LR_SCHEDULES = ("constant", "exponential", "cosine", "plateau")

# One sentence each, for --help and the Train page: users come to learn.
HELP = {
    "architecture": "Which network to train: a preset from a classic Keras tutorial, or 'custom' for your own layer stack.",
    "optimizer": "How weights are updated: Adam adapts a step size per weight (a safe default); SGD takes plain gradient "
                 "steps (sgd-momentum adds inertia, 0.9); RMSprop and Adagrad scale steps by recent or total gradient size.",
    "learning_rate": "How big each update step is: too high and the loss jumps around or explodes, too low and training crawls.",
    "batch_size": "How many digits are averaged per update: small batches give noisy but frequent steps, large ones smooth but fewer.",
    "epochs": "How many full passes over the training digits.",
    "dropout": "Randomly silences this fraction of units while training so the network cannot rely on any one of them "
               "(fights overfitting). Replaces the preset's dropout rates; empty keeps them.",
    "activation": "The non-linearity after each hidden layer: relu is the modern default; tanh and sigmoid saturate and "
                  "learn slower in deep stacks; elu and gelu are smooth variants of relu.",
    "validation_split": "Fraction of training digits held out to measure generalisation after each epoch (0 disables validation).",
    "seed": "Fixes the random initial weights, data shuffling and dropout masks so a run can be reproduced.",
    "early_stopping": "Stop when validation loss has not improved for this many epochs and keep the best weights (0 = off).",
    "lr_schedule": "Keep the learning rate constant, multiply it by 0.9 every epoch (exponential), lower it along a "
                   "half cosine towards 0 over the run's epochs (cosine), or halve it when the validation loss stalls "
                   "for 2 epochs (plateau).",
    "train_limit": "Train on only this many digits (a random subset) for quick experiments; empty uses all of them.",
    "augment": "Randomly rotate (±10°), shift (±3 px) and zoom (±10%) training digits so the model copes with digits "
               "drawn off-centre or slanted.",
    "elastic": "Warp each training digit by a smooth random field (elastic distortion, Simard et al. 2003), as "
               "different writers bend their strokes differently; helps with other people's handwriting.",
    "name": "A label for the run in tables and charts.",
}


class ConfigError(DigitLabError):
    """A config value that is not allowed; the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = "cnn-small"       # a preset name or "custom"
    layers: tuple = ()                    # the hidden stack, for "custom" only (layer dicts)
    optimizer: str = "adam"               # one of OPTIMIZERS
    learning_rate: float = 1e-3           # initial step size
    batch_size: int = 128                 # digits per update step
    epochs: int = 5                       # passes over the training set
    dropout: float | None = None          # replaces every Dropout rate; None keeps the preset's
    activation: str = "relu"              # hidden-layer activation
    validation_split: float = 0.1         # share of training digits held out for validation
    seed: int = 42                        # weights, shuffling, split and dropout masks
    early_stopping: int = 0               # patience in epochs on val_loss; 0 = off
    lr_schedule: str = "constant"         # one of LR_SCHEDULES
    train_limit: int | None = None        # train on a random subset of this size; None = all
    augment: bool = False                 # random rotation/shift/zoom while training
    elastic: bool = False                 # random elastic distortion while training (any architecture)
    name: str = ""                        # display name; the store fills one in when empty

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Raise ConfigError for the first bad field; return self so calls can chain.

        `n_train` (the dataset's training size) lets the batch size be checked against the
        digits actually available for training.
        """
        _choice("architecture", self.architecture, ARCHITECTURES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _number("learning_rate", self.learning_rate, "a number > 0 and ≤ 10", lambda v: 0 < v <= 10)
        _integer("epochs", self.epochs, 1, 1000)
        _integer("seed", self.seed, 0, 2**31 - 1)
        _integer("early_stopping", self.early_stopping, 0, 1000)
        if self.dropout is not None:
            _number("dropout", self.dropout, "a number in [0, 1) or empty", lambda v: 0 <= v < 1)
        _number("validation_split", self.validation_split, "a number in [0, 0.5]", lambda v: 0 <= v <= 0.5)
        for flag in ("augment", "elastic"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if not isinstance(self.name, str) or len(self.name) > 200:
            raise ConfigError(f"name must be text of at most 200 characters, got {self.name!r:.60}")
        if self.train_limit is not None:
            _integer("train_limit", self.train_limit, 10, n_train or 10**9)
        available = min(n_train or 10**9, self.train_limit or 10**9)
        available = max(1, int(available * (1 - self.validation_split)))
        if n_train is None:
            _integer("batch_size", self.batch_size, 1, 65536)
        else:
            _integer("batch_size", self.batch_size, 1, available, what=f"the {available:,} training digits")
        if self.architecture == CUSTOM and not self.layers:
            raise ConfigError("layers: a custom architecture needs at least one layer, got none")
        try:
            describe(self.hidden_layers())
        except ArchitectureError as exc:
            raise ConfigError(f"layers: {exc}") from None
        return self

    def hidden_layers(self) -> list[dict]:
        """The stack this config trains: preset or custom, with dropout/activation overrides applied."""
        return resolve_layers(self.architecture, list(self.layers), self.dropout,
                              self.activation if self.activation != "relu" else None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [dict(layer) for layer in self.layers]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Rebuild from stored params; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config field {unknown[0]!r}; allowed: {', '.join(sorted(known))}")
        data = dict(data)
        if "layers" in data:
            data["layers"] = _layers_tuple(data["layers"] or ())
        return cls(**data)


def preset_defaults(architecture: str) -> dict[str, Any]:
    """The tutorial hyperparameters a preset sets (empty for custom or unknown names)."""
    return dict(PRESETS.get(architecture, {}).get("defaults", {}))


def make_config(architecture: str = "cnn-small", n_train: int | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the preset's hyperparameters, then `overrides` (None means 'not given'); validated."""
    if architecture not in ARCHITECTURES:
        _choice("architecture", architecture, ARCHITECTURES)
    known = {f.name for f in fields(TrainConfig)}
    for key in overrides:
        if key not in known:
            raise ConfigError(f"unknown config field {key!r}; allowed: {', '.join(sorted(known))}")
    values = {**preset_defaults(architecture),
              **{k: v for k, v in overrides.items() if v is not None}}
    if "layers" in values:
        values["layers"] = _layers_tuple(values["layers"])
    return replace(TrainConfig(architecture=architecture), **values).validate(n_train)


def _layers_tuple(layers: Any) -> tuple:
    """A stack as a tuple of layer dicts, or a ConfigError saying what a stack looks like."""
    if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, dict) for layer in layers):
        raise ConfigError(f'layers must be a list of layer objects like [{{"type": "Dense", "units": 64}}], '
                          f"got {layers!r:.80}")
    return tuple(dict(layer) for layer in layers)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _number(name: str, value: Any, allowed: str, ok) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not ok(value):
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")


def _integer(name: str, value: Any, lo: int, hi: int, what: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        limit = f"at most {what}" if what else f"at most {hi:,}"
        raise ConfigError(f"{name} must be an integer ≥ {lo} and {limit}, got {value!r}")
