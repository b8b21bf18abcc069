"""The run config: one frozen dataclass, presets as partial overrides, validation with named errors.

`make_config(architecture, **overrides)` starts from the defaults below, applies the preset's
tutorial hyperparameters, then the user's overrides, and validates. The resolved config is
what a run stores as its params, so a run can always be reproduced or forked.

Each field also carries a `Param` (label, help, CLI flag, kind, sweepable, Runs column, run-name
word, script line): the one registry of hyperparameters. The CLI, the Train form, the sweep
fields, the Runs table, automatic run names and the standalone script derive from `PARAMS`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from core.errors import DigitLabError
from core.model.architectures import (ACTIVATIONS, ARCHITECTURES, CUSTOM, PRESETS, ArchitectureError,
                                describe, resolve_layers)
from core.model.compile import LR_SCHEDULES, OPTIMIZERS  # noqa: F401  (the one optimizer table; re-exported)

KINDS = ("choice", "int", "float", "bool", "text", "layers")


class ConfigError(DigitLabError):
    """A config value that is not allowed; the message names the field, the value and what is allowed.

    `field` is the TrainConfig field at fault (None when the error is not about one field), so
    the Train form can show the message beside that field without reading the text.
    """

    def __init__(self, message: str = "", field: str | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.field = field


@dataclass(frozen=True)
class Param:
    """Everything Digit Lab says about one TrainConfig field besides its type and default.

    The CLI flags, the Train form, the sweep fields, the Runs table's columns, automatic run
    names and the standalone script all read it from here, so a field declared with its Param
    appears in each of them without another list to edit.
    """
    label: str                               # the form's label: the field's name as a user reads it
    help: str                                # for --help and the Train page: users come to learn
    kind: str                                # one of KINDS: how the value is typed, parsed and swept
    flag: str                                # the CLI option ("--lr"); "--learning-rate" is added as an alias
    unit: str | None = None                  # what a number counts ("epochs", "digits"); None: a plain number
    choices: tuple[str, ...] | None = None   # the allowed values of a "choice"
    sweepable: bool = False                  # a sweep or study may vary it
    column: str | None = None                # its header in the Runs table; None: not a column
    name_word: str | None = None             # its word in an automatic run name ("" = the value alone); None: never
    script: str | None = None                # the standalone script's constant line, with {value!r} filled in

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.label}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"{self.label}: a choice needs its choices, and only a choice has them")
        if self.sweepable and not self.column:  # a swept value must show in the table where runs are compared
            raise ValueError(f"{self.label}: a sweepable field needs a Runs column")


def _param(**kwargs: Any) -> dict[str, Param]:
    """A dataclass field's metadata: its Param."""
    return {"param": Param(**kwargs)}


@dataclass(frozen=True)
class TrainConfig:
    architecture: str = field(default="cnn-small", metadata=_param(  # a preset name or "custom"
        label="Architecture", kind="choice", choices=ARCHITECTURES, flag="--arch", sweepable=True,
        column="architecture",
        help="Which network to train: a preset from a classic Keras tutorial, or 'custom' for your own layer stack."))
    layers: tuple = field(default=(), metadata=_param(  # the hidden stack, for "custom" only (layer dicts)
        label="Hidden layers", kind="layers", flag="--layers",
        help="The custom architecture's layer stack as JSON, e.g. "
             "'[{\"type\": \"Dense\", \"units\": 64, \"activation\": \"relu\"}]'."))
    optimizer: str = field(default="adam", metadata=_param(  # one of OPTIMIZERS
        label="Optimizer", kind="choice", choices=OPTIMIZERS, flag="--optimizer", sweepable=True,
        column="optimizer", name_word="",
        help="How weights are updated: Adam adapts a step size per weight (a safe default); SGD takes plain gradient "
             "steps (sgd-momentum adds inertia, 0.9); RMSprop and Adagrad scale steps by recent or total gradient "
             "size."))
    learning_rate: float = field(default=1e-3, metadata=_param(  # initial step size
        label="Learning rate", kind="float", flag="--lr", sweepable=True, column="learning rate", name_word="lr",
        script="LEARNING_RATE = {value!r}",
        help="How big each update step is: too high and the loss jumps around or explodes, too low and training "
             "crawls."))
    batch_size: int = field(default=128, metadata=_param(  # digits per update step
        label="Batch size", kind="int", unit="digits", flag="--batch-size", sweepable=True, column="batch size",
        name_word="batch", script="BATCH_SIZE = {value!r}",
        help="How many digits are averaged per update: small batches give noisy but frequent steps, large ones "
             "smooth but fewer."))
    epochs: int = field(default=5, metadata=_param(  # passes over the training set
        label="Epochs", kind="int", unit="epochs", flag="--epochs", sweepable=True, column="epochs",
        name_word="epochs", script="EPOCHS = {value!r}",
        help="How many full passes over the training digits."))
    dropout: float | None = field(default=None, metadata=_param(  # replaces every Dropout rate; None keeps the preset's
        label="Dropout rate", kind="float", flag="--dropout", sweepable=True, column="dropout", name_word="dropout",
        help="Randomly silences this fraction of units while training so the network cannot rely on any one of them "
             "(fights overfitting). Replaces the preset's dropout rates; empty keeps them."))
    activation: str = field(default="relu", metadata=_param(  # hidden-layer activation
        label="Hidden activation", kind="choice", choices=ACTIVATIONS, flag="--activation", sweepable=True,
        column="activation", name_word="",
        help="The non-linearity after each hidden layer: relu is the modern default; tanh and sigmoid saturate and "
             "learn slower in deep stacks; elu and gelu are smooth variants of relu."))
    validation_split: float = field(default=0.1, metadata=_param(  # share of training digits held out for validation
        label="Validation split", kind="float", flag="--validation-split", sweepable=True,
        column="validation split", name_word="val", script="VALIDATION_SPLIT = {value!r}",
        help="Fraction of training digits held out to measure generalisation after each epoch (0 disables "
             "validation)."))
    seed: int = field(default=42, metadata=_param(  # weights, shuffling, split and dropout masks
        label="Random seed", kind="int", flag="--seed", sweepable=True, column="seed", name_word="seed",
        script="SEED = {value!r}",
        help="Fixes the random initial weights, data shuffling and dropout masks so a run can be reproduced."))
    early_stopping: int = field(default=0, metadata=_param(  # patience in epochs on val_loss; 0 = off
        label="Early-stopping patience (epochs, 0 = off)", kind="int", unit="epochs", flag="--early-stopping",
        sweepable=True, column="early stopping", name_word="patience",
        script="EARLY_STOPPING = {value!r}  # patience in epochs; 0 = off",
        help="Stop when validation loss has not improved for this many epochs and keep the best weights (0 = off)."))
    lr_schedule: str = field(default="constant", metadata=_param(  # one of LR_SCHEDULES
        label="Learning-rate schedule", kind="choice", choices=LR_SCHEDULES, flag="--lr-schedule", sweepable=True,
        column="lr schedule", name_word="schedule",
        help="Keep the learning rate constant, multiply it by 0.9 every epoch (exponential), lower it along a "
             "half cosine towards 0 over the run's epochs (cosine), or halve it when the validation loss stalls "
             "for 2 epochs (plateau)."))
    train_limit: int | None = field(default=None, metadata=_param(  # a random subset of this size; None = all
        label="Train on at most (digits)", kind="int", unit="digits", flag="--train-limit", sweepable=True,
        column="train limit", name_word="limit", script="TRAIN_LIMIT = {value!r}  # None = all training digits",
        help="Train on only this many digits (a random subset) for quick experiments; empty uses all of them."))
    augment: bool = field(default=False, metadata=_param(  # random rotation/shift/zoom while training
        label="Augment (rotate, shift, zoom)", kind="bool", flag="--augment", sweepable=True, column="augment",
        name_word="augment",
        help="Randomly rotate (±10°), shift (±3 px) and zoom (±10%) training digits so the model copes with digits "
             "drawn off-centre or slanted."))
    elastic: bool = field(default=False, metadata=_param(  # random elastic distortion while training (any architecture)
        label="Elastic distortion (other writers' strokes)", kind="bool", flag="--elastic", sweepable=True,
        column="elastic", name_word="elastic",
        help="Warp each training digit by a smooth random field (elastic distortion, Simard et al. 2003), as "
             "different writers bend their strokes differently; helps with other people's handwriting."))
    name: str = field(default="", metadata=_param(  # display name; the store fills one in when empty
        label="Run name", kind="text", flag="--name",
        help="A label for the run in tables and charts."))

    def problems(self, n_train: int | None = None) -> dict[str, str]:
        """Every bad field with its message ("epochs must be ..."), found in one pass; empty when all are valid.

        `n_train` (the dataset's training size) lets the batch size be checked against the
        digits actually available for training. The Train form calls this once per rerun.
        """
        found: dict[str, str] = {}

        def check(name: str, message: str | None) -> None:
            if message and name not in found:
                found[name] = message
        check("architecture", _choice("architecture", self.architecture, ARCHITECTURES))
        check("optimizer", _choice("optimizer", self.optimizer, OPTIMIZERS))
        check("activation", _choice("activation", self.activation, ACTIVATIONS))
        check("lr_schedule", _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES))
        check("learning_rate", _number("learning_rate", self.learning_rate, "a number > 0 and ≤ 10",
                                       lambda v: 0 < v <= 10))
        check("epochs", _integer("epochs", self.epochs, 1, 1000))
        check("seed", _integer("seed", self.seed, 0, 2**31 - 1))
        check("early_stopping", _integer("early_stopping", self.early_stopping, 0, 1000))
        if self.dropout is not None:
            check("dropout", _number("dropout", self.dropout, "a number in [0, 1) or empty", lambda v: 0 <= v < 1))
        check("validation_split", _number("validation_split", self.validation_split, "a number in [0, 0.5]",
                                          lambda v: 0 <= v <= 0.5))
        for flag in ("augment", "elastic"):
            if not isinstance(getattr(self, flag), bool):
                check(flag, f"{flag} must be true or false, got {getattr(self, flag)!r}")
        if not isinstance(self.name, str) or len(self.name) > 200:
            got = f"{len(self.name)} characters" if isinstance(self.name, str) else repr(self.name)[:60]
            check("name", f"name must be text of at most 200 characters, got {got}")
        if self.train_limit is not None:
            check("train_limit", _integer("train_limit", self.train_limit, 10, n_train or 10**9))
        if n_train is None or {"train_limit", "validation_split"} & set(found):
            check("batch_size", _integer("batch_size", self.batch_size, 1, 65536))
        else:
            available = max(1, int(min(n_train, self.train_limit or 10**9) * (1 - self.validation_split)))
            check("batch_size", _integer("batch_size", self.batch_size, 1, available,
                                         what=f"the {available:,} training digits"))
        if not {"architecture", "activation", "dropout"} & set(found):  # the stack is resolved from these
            if self.architecture == CUSTOM and not self.layers:
                check("layers", "layers: a custom architecture needs at least one layer, got none")
            try:
                describe(self.hidden_layers())
            except ArchitectureError as exc:
                check("layers", f"layers: {exc}")
        return found

    def validate(self, n_train: int | None = None) -> "TrainConfig":
        """Raise ConfigError for the first bad field (its `.field` names it); return self so calls can chain."""
        for name, message in self.problems(n_train).items():
            raise ConfigError(message, field=name)
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


# -- the registry: every consumer derives its list of hyperparameters from these -----------------------
def params_of(config_class: type = TrainConfig) -> dict[str, Param]:
    """Each field's Param, in field order (a subclass with more fields brings their Params too)."""
    return {f.name: f.metadata["param"] for f in fields(config_class) if "param" in f.metadata}


PARAMS: dict[str, Param] = params_of(TrainConfig)
HELP: dict[str, str] = {name: p.help for name, p in PARAMS.items()}  # the texts alone, for widgets' help=


def param(name: str) -> Param:
    """The Param of field `name`; ConfigError naming the known fields when there is none."""
    try:
        return PARAMS[name]
    except KeyError:
        raise ConfigError(f"unknown config field {name!r}; allowed: {', '.join(PARAMS)}", field=None) from None


def sweepable_fields() -> tuple[str, ...]:
    """The fields a sweep or a study may vary, in field order."""
    return tuple(name for name, p in PARAMS.items() if p.sweepable)


def runs_columns() -> dict[str, str]:
    """The fields shown as Runs table columns, with their headers (every sweepable field is one)."""
    return {name: p.column for name, p in PARAMS.items() if p.column}


def auto_name(config: TrainConfig) -> str:
    """A run name that says what differs from the architecture's defaults ("mlp-128-64 · lr 0.01 · augment").

    Every difference is named (a "+1 more" hid the seed that told two runs apart, and read as "one
    more queued" in page text). The base name only: the store numbers a name that is taken ("mlp-128-64 #2").
    """
    defaults = replace(type(config)(architecture=config.architecture), **preset_defaults(config.architecture))
    parts = []
    for name, p in PARAMS.items():
        value = getattr(config, name, None)
        if p.name_word is None or value == getattr(defaults, name, None):
            continue
        if isinstance(value, bool):
            parts.append(p.name_word if value else f"no {p.name_word}")
        else:
            text = "default" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
            parts.append(" ".join(filter(None, [p.name_word, text])))
    if config.architecture == CUSTOM and config.layers:
        parts.insert(0, f"{len(config.layers)} layers")
    return " · ".join([config.architecture, *parts])[:190]


def preset_defaults(architecture: str) -> dict[str, Any]:
    """The tutorial hyperparameters a preset sets (empty for custom or unknown names)."""
    return dict(PRESETS.get(architecture, {}).get("defaults", {}))


def make_config(architecture: str = "cnn-small", n_train: int | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the preset's hyperparameters, then `overrides` (None means 'not given'); validated."""
    if architecture not in ARCHITECTURES:
        raise ConfigError(_choice("architecture", architecture, ARCHITECTURES), field="architecture")
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
                          f"got {layers!r:.80}", field="layers")
    return tuple(dict(layer) for layer in layers)


def _choice(name: str, value: Any, allowed: tuple[str, ...]) -> str | None:
    if value not in allowed:
        return f"{name} must be one of {', '.join(allowed)}, got {value!r}"
    return None


def _number(name: str, value: Any, allowed: str, ok) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or not ok(value):
        return f"{name} must be {allowed}, got {value!r}"
    return None


def _integer(name: str, value: Any, lo: int, hi: int, what: str | None = None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        limit = f"at most {what}" if what else f"at most {hi:,}"
        return f"{name} must be an integer ≥ {lo} and {limit}, got {value!r}"
    return None
