"""The Train page's config form: the architecture picker with its model summary, the layer
builder of a custom stack, and every hyperparameter, turned into a TrainConfig.

Widgets always get explicit keys. The form keeps its values in `st.session_state` under
``train_<field>`` so a preset change, a fork or a page switch can set them.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Callable

import pandas as pd
import streamlit as st

from core.model.architectures import (ACTIVATIONS, ARCHITECTURES, CUSTOM, CUSTOM_HELP, LAYER_TYPES, LIMITS,
                                PRESETS, ArchitectureError, LayerRow, describe, resolve_layers)
from core.config import HELP, LR_SCHEDULES, OPTIMIZERS, ConfigError, TrainConfig, preset_defaults

FORM = "train"                 # session-state prefix of the config form
DEFAULT_ARCHITECTURE = "mlp-128-64"  # fast on a laptop CPU: a first run finishes in seconds
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
HIDDEN_ACTIVATIONS = (*ACTIVATIONS, "linear")
FLOAT_FIELDS = ("learning_rate", "validation_split")
INT_FIELDS = ("batch_size", "epochs", "seed", "early_stopping")
HYPERPARAMETERS = ("optimizer", "learning_rate", "batch_size", "epochs", "dropout", "activation",
                   "validation_split", "seed", "early_stopping", "lr_schedule", "train_limit", "augment", "elastic")
# Each field's widget label: the form's messages name a field as the user sees it.
LABELS = {"optimizer": "Optimizer", "learning_rate": "Learning rate", "lr_schedule": "Learning-rate schedule",
          "batch_size": "Batch size", "epochs": "Epochs",
          "early_stopping": "Early-stopping patience (epochs, 0 = off)", "validation_split": "Validation split",
          "train_limit": "Train on at most (digits)", "activation": "Hidden activation", "dropout": "Dropout rate",
          "seed": "Random seed", "augment": "Augment (rotate, shift, zoom)",
          "elastic": "Elastic distortion (other writers' strokes)", "architecture": "Architecture",
          "layers": "Hidden layers", "name": "Run name"}


# ------------------------------------------------------------------------------ the config form

def _key(field: str) -> str:
    return f"{FORM}_{field}"


def form_defaults(architecture: str) -> dict[str, Any]:
    """TrainConfig's defaults with a preset's tutorial hyperparameters on top (not validated)."""
    return replace(TrainConfig(architecture=architecture), **preset_defaults(architecture)).to_dict()


def load_form(config: dict[str, Any], hyperparameters_only: bool = False) -> None:
    """Put a config's values into the form's widget state (a preset change, a fork).

    Values are coerced to the types the widgets hold, so a stored 0 shows as 0.0 where a
    float is expected.
    """
    for field in HYPERPARAMETERS:
        value = config.get(field)
        if field in FLOAT_FIELDS and value is not None:
            value = float(value)
        elif field in INT_FIELDS and value is not None:
            value = int(value)
        elif field == "dropout" and value is not None:
            value = float(value)
        elif field == "train_limit" and value is not None:
            value = int(value)
        st.session_state[_key(field)] = value
    if hyperparameters_only:
        return
    st.session_state[_key("architecture")] = config.get("architecture", DEFAULT_ARCHITECTURE)
    st.session_state[_key("prev_architecture")] = st.session_state[_key("architecture")]
    if config.get("architecture") == CUSTOM:
        set_layers(list(config.get("layers") or []))
    st.session_state[_key("name")] = config.get("name") or ""


def init_form(architecture: str = DEFAULT_ARCHITECTURE) -> None:
    """Fill the form with a preset's defaults unless it already holds values."""
    if _key("architecture") not in st.session_state or any(_key(f) not in st.session_state for f in HYPERPARAMETERS):
        current = st.session_state.get(_key("architecture"), architecture)
        config = form_defaults(current)
        if current == CUSTOM:
            config["layers"] = layers_value()
        load_form(config)


def _on_architecture_change() -> None:
    """Reset hyperparameters to the new preset's defaults; 'custom' starts from the previous stack."""
    new = st.session_state[_key("architecture")]
    previous = st.session_state.get(_key("prev_architecture"))
    st.session_state[_key("prev_architecture")] = new
    if new == CUSTOM:
        if not layers_value() and previous in PRESETS:
            set_layers(PRESETS[previous]["layers"])
        return  # keep the hyperparameters the user had: they are editing that network
    load_form(form_defaults(new), hyperparameters_only=True)


def config_form(n_train: int | None) -> dict[str, Any]:
    """The architecture (with its summary, and the layer builder for 'custom') and every hyperparameter.

    Returns the form's values as TrainConfig fields (name excluded), exactly as the widgets
    show them: number inputs have no bounds of their own (a bounded input keeps its last
    valid value while it shows a rejected one), so a bad value reaches `field_errors`, whose
    message is shown beside its field. Help text on every widget comes from core.config.HELP.
    """
    init_form()
    st.subheader("Model")
    left, right = st.columns([1, 1], gap="large")
    with left:
        architecture = st.selectbox(
            "Architecture", ARCHITECTURES, key=_key("architecture"), help=HELP["architecture"],
            on_change=_on_architecture_change, format_func=lambda a: "custom (build your own)" if a == CUSTOM else a)
        st.caption(PRESETS[architecture]["help"] if architecture in PRESETS else CUSTOM_HELP)
    summary = right.container()
    layers = layer_builder() if architecture == CUSTOM else []
    layers_slot = st.empty()
    st.subheader("Hyperparameters")
    values, slots = hyperparameter_inputs(n_train)
    values.update(architecture=architecture, layers=tuple(layers))
    errors = field_errors(values, n_train)
    with summary:  # a bad dropout or activation is named beside its field, not again in the summary
        built = model_summary({**values, **{f: None for f in ("dropout", "activation") if f in errors}})
    for field, message in errors.items():
        if field in slots:
            slots[field].error(message, icon=":material/error:")
        elif field != "layers" or built:  # a stack that cannot be built is already explained in the summary
            layers_slot.error(message, icon=":material/error:")
    return values


def field_errors(values: dict[str, Any], n_train: int | None) -> dict[str, str]:
    """What is wrong with the form's values, by field, in the words of the field's label.

    Each field is checked on its own against the architecture's defaults (so every bad field
    is named at once, not only the first), then the whole config for what depends on several
    fields (the batch size against the digits left after the train limit and validation split).
    Empty means the form can be launched.
    """
    try:
        config = build_config(values)
    except TypeError as exc:  # a value of a type TrainConfig cannot hold
        return {"": str(exc)}
    base = replace(TrainConfig(architecture=config.architecture, layers=config.layers),
                   **preset_defaults(config.architecture))
    errors: dict[str, str] = {}
    for field in HYPERPARAMETERS:
        problem = _problem(replace(base, **{field: getattr(config, field)}), n_train)
        if problem and problem[0] == field:
            errors[field] = problem[1]
    if not errors and (problem := _problem(config, n_train)):
        errors[problem[0]] = problem[1]
    return errors


def _problem(config: TrainConfig, n_train: int | None) -> tuple[str, str] | None:
    """(field, message with the field's label) of the first thing `validate` refuses, else None."""
    try:
        config.validate(n_train)
    except ConfigError as exc:
        return field_message(str(exc))
    return None


def field_message(message: str) -> tuple[str, str]:
    """A ConfigError's message ("learning_rate must be …, got 0.0") as (field, "Learning rate must be …").

    The value received is left out: the field beside the message shows it.
    """
    field, _, rest = message.partition(" ")
    field = field.rstrip(":")
    if field not in LABELS:
        return "", message
    rest = rest.rsplit(", got ", 1)[0] if ", got " in rest else rest
    return field, f"{LABELS[field]}{':' if message.startswith(field + ':') else ''} {rest}".replace(
        "must be a number ", "must be ")


def hyperparameter_inputs(n_train: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Three columns of hyperparameter widgets; returns their values and a message slot under
    each, by field name. Number inputs are unbounded on purpose: see `config_form`."""
    c1, c2, c3 = st.columns(3)
    v: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    batch_options = sorted(set(BATCH_SIZES) | {int(st.session_state.get(_key("batch_size")) or 32)})
    label = LABELS.get

    def add(field: str, value: Any) -> None:
        v[field], slots[field] = value, st.empty()

    with c1:
        add("optimizer", st.selectbox(label("optimizer"), OPTIMIZERS, key=_key("optimizer"), help=HELP["optimizer"]))
        add("learning_rate", st.number_input(label("learning_rate"), step=1e-4, format="%g", key=_key("learning_rate"),
                                             help=HELP["learning_rate"]))
        add("lr_schedule", st.selectbox(label("lr_schedule"), LR_SCHEDULES, key=_key("lr_schedule"),
                                        help=HELP["lr_schedule"]))
        add("batch_size", st.select_slider(label("batch_size"), batch_options, key=_key("batch_size"),
                                           help=HELP["batch_size"]))
    with c2:
        add("epochs", st.number_input(label("epochs"), step=1, key=_key("epochs"), help=HELP["epochs"]))
        add("early_stopping", st.number_input(label("early_stopping"), step=1, key=_key("early_stopping"),
                                              help=HELP["early_stopping"]))
        add("validation_split", st.slider(label("validation_split"), 0.0, 0.5, step=0.05,
                                          key=_key("validation_split"), help=HELP["validation_split"]))
        add("train_limit", st.number_input(
            label("train_limit"), step=1000, key=_key("train_limit"), help=HELP["train_limit"],
            placeholder=f"all {n_train:,} training digits" if n_train else "all training digits"))
    with c3:
        add("activation", st.selectbox(label("activation"), ACTIVATIONS, key=_key("activation"),
                                       help=HELP["activation"]))
        add("dropout", st.number_input(label("dropout"), step=0.05, format="%.2f", key=_key("dropout"),
                                       help=HELP["dropout"], placeholder="empty: keep the architecture's rates"))
        add("seed", st.number_input(label("seed"), step=1, key=_key("seed"), help=HELP["seed"]))
        add("augment", st.toggle(label("augment"), key=_key("augment"), help=HELP["augment"]))
        add("elastic", st.toggle(label("elastic"), key=_key("elastic"), help=HELP["elastic"]))
    return v, slots


def build_config(values: dict[str, Any], name: str = "") -> TrainConfig:
    """A TrainConfig from the form's values (not yet validated: queue_run/expand_grid do that)."""
    known = {f.name for f in fields(TrainConfig)}
    data = {k: v for k, v in values.items() if k in known}
    data["layers"] = tuple(dict(layer) for layer in data.get("layers") or ())
    return TrainConfig(**data, name=(name or "").strip())


def model_summary(values: dict[str, Any]) -> bool:
    """The model.summary()-style table of the stack the form describes, or why it cannot be built
    (then False)."""
    try:
        stack = resolve_layers(values["architecture"], list(values["layers"]), values.get("dropout"),
                               values["activation"] if values.get("activation") != "relu" else None)
        rows = describe(stack)
    except ArchitectureError as exc:
        st.error(str(exc), icon=":material/error:")
        return False
    total = sum(r.params for r in rows)
    st.markdown(f"**Summary** · {total:,} parameters")
    st.dataframe(summary_frame(rows), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(rows), 600),
                 column_config={"Params": st.column_config.NumberColumn(format="localized")})
    return True


def summary_frame(rows: list[LayerRow]) -> pd.DataFrame:
    """describe() rows as a three-column table: layer (with its note), output shape, parameters."""
    return pd.DataFrame({"Layer": [f"{r.name} ({r.note})" if r.note else r.name for r in rows],
                         "Output shape": [_shape(r.output_shape) for r in rows],
                         "Params": [r.params for r in rows]})


def _shape(shape: tuple[int, ...]) -> str:
    return " × ".join(f"{d:,}" for d in shape)


# ------------------------------------------------------------------------------ the layer builder

NEW_LAYER = {"Dense": {"units": 64, "activation": "relu"},
             "Conv2D": {"filters": 32, "kernel": 3, "activation": "relu", "padding": "valid"},
             "MaxPooling2D": {"pool": 2}, "Dropout": {"rate": 0.25}, "BatchNormalization": {},
             "Flatten": {}, "Activation": {"activation": "relu"}}


def layers_value() -> list[dict]:
    """The custom stack as plain layer dicts (without the builder's row ids)."""
    return [{k: v for k, v in layer.items() if k != "_id"} for layer in st.session_state.get(_key("layers"), [])]


def set_layers(layers: list[dict]) -> None:
    """Replace the builder's stack; each row gets a fresh id so its widgets start from its values."""
    rows = []
    for layer in layers:
        row = {"type": layer["type"], **NEW_LAYER.get(layer["type"], {}), **layer}
        row["_id"] = _next_layer_id()
        rows.append(row)
    st.session_state[_key("layers")] = rows


def _next_layer_id() -> int:
    st.session_state[_key("layer_seq")] = st.session_state.get(_key("layer_seq"), 0) + 1
    return st.session_state[_key("layer_seq")]


def _add_layer() -> None:
    kind = st.session_state[_key("new_layer_type")]
    st.session_state.setdefault(_key("layers"), []).append({"type": kind, **NEW_LAYER[kind], "_id": _next_layer_id()})


def _move_layer(index: int, offset: int) -> None:
    rows = st.session_state[_key("layers")]
    j = index + offset
    if 0 <= j < len(rows):
        rows[index], rows[j] = rows[j], rows[index]


def _remove_layer(index: int) -> None:
    del st.session_state[_key("layers")][index]


def layer_builder() -> list[dict]:
    """Add, edit, reorder and remove hidden layers; returns the stack as layer dicts.

    Each row shows its output shape and parameter count as soon as the stack is valid.
    """
    rows = st.session_state.setdefault(_key("layers"), [])
    st.markdown("**Hidden layers** (the output layer, Dense 10 softmax, is added for you)")
    if not rows:
        st.caption("No layers yet: add one below.")
    outputs = [_layer_row(i, row, len(rows)) for i, row in enumerate(rows)]
    stack = layers_value()
    try:
        described = describe(stack)
    except ArchitectureError:
        described = []  # the summary beside the architecture says what is wrong
    by_position = {r.index: r for r in described if r.note != "output layer"}
    for position, slot in enumerate(outputs, start=1):
        if position in by_position:
            r = by_position[position]
            slot.markdown(f"→ {_shape(r.output_shape)} · {r.params:,} params")
    add_type, add_button, _ = st.columns([2, 1, 3], vertical_alignment="bottom")
    add_type.selectbox("New layer", LAYER_TYPES, key=_key("new_layer_type"),
                       help="Dense: fully connected. Conv2D: learns local filters on the image. MaxPooling2D: "
                            "shrinks the image by keeping the strongest pixel of each block. Dropout: randomly "
                            "silences units while training. BatchNormalization: rescales activations. "
                            "Flatten: image → vector. Activation: a non-linearity on its own.")
    add_button.button("Add layer", key=_key("add_layer"), on_click=_add_layer, icon=":material/add:")
    return stack


def _layer_row(i: int, row: dict, n: int):
    """One layer: its type, its parameters, a slot for its output, and move/remove buttons."""
    uid = row["_id"]
    cols = st.columns([1.5, 1.1, 1.1, 1.1, 1.1, 1.9, 0.4, 0.4, 0.4], vertical_alignment="bottom")
    cols[0].markdown(f"**{i + 1}. {row['type']}**")
    for col, (param, make) in zip(cols[1:5], _LAYER_PARAMS.get(row["type"], ())):
        key = f"{FORM}_layer{uid}_{param}"
        if key not in st.session_state:
            st.session_state[key] = row.get(param, NEW_LAYER[row["type"]].get(param))
        with col:
            row[param] = make(key)
    output = cols[5].empty()
    cols[6].button("", key=f"{FORM}_up{uid}", icon=":material/arrow_upward:", help="Move up",
                   on_click=_move_layer, args=(i, -1), disabled=i == 0)
    cols[7].button("", key=f"{FORM}_down{uid}", icon=":material/arrow_downward:", help="Move down",
                   on_click=_move_layer, args=(i, 1), disabled=i == n - 1)
    cols[8].button("", key=f"{FORM}_remove{uid}", icon=":material/delete:", help="Remove this layer",
                   on_click=_remove_layer, args=(i,))
    return output


def _int_input(label: str, limit: str) -> Callable[[str], int]:
    """An integer input without bounds (see `config_form`); the summary names a value outside LIMITS."""
    lo, hi = LIMITS[limit]
    return lambda key: st.number_input(label, step=1, key=key, help=f"{lo} to {hi}")


_LAYER_PARAMS: dict[str, tuple[tuple[str, Callable[[str], Any]], ...]] = {
    "Dense": (("units", _int_input("units", "units")),
              ("activation", lambda key: st.selectbox("activation", HIDDEN_ACTIVATIONS, key=key))),
    "Conv2D": (("filters", _int_input("filters", "filters")),
               ("kernel", _int_input("kernel size", "kernel")),
               ("activation", lambda key: st.selectbox("activation", HIDDEN_ACTIVATIONS, key=key)),
               ("padding", lambda key: st.selectbox("padding", ("valid", "same"), key=key,
                                                    help="valid: the image shrinks by kernel − 1; same: it keeps its size"))),
    "MaxPooling2D": (("pool", _int_input("pool size", "pool")),),
    "Dropout": (("rate", lambda key: st.number_input("rate", step=0.05, format="%.2f", key=key,
                                                     help="0 to less than 1")),),
    "Activation": (("activation", lambda key: st.selectbox("activation", ACTIVATIONS, key=key)),),
}
