"""The Train page's config form: the architecture picker with its model summary, the layer
builder of a custom stack, and every hyperparameter, turned into a TrainConfig.

The hyperparameter fields come from the registry in core/config.py (`PARAMS`): each field's
label, help, kind and choices are read there, so a field added to TrainConfig with its Param
appears here without another list to edit. Only how a few widgets look is set below.

Widgets always get explicit keys. The form keeps its values in `st.session_state` under
``train_<field>`` so a preset change, a fork or a page switch can set them.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Callable

import pandas as pd
import streamlit as st

from core.config import PARAMS, TrainConfig, preset_defaults
from core.model.architectures import (ACTIVATIONS, ARCHITECTURES, CUSTOM, CUSTOM_HELP, LAYER_TYPES, LIMITS,
                                      PRESETS, ArchitectureError, LayerRow, describe, resolve_layers)

FORM = "train"                 # session-state prefix of the config form
DEFAULT_ARCHITECTURE = "mlp-128-64"  # fast on a laptop CPU: a first run finishes in seconds
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
HIDDEN_ACTIVATIONS = (*ACTIVATIONS, "linear")
# The hyperparameter widgets: every registry field the user sets with a plain input. The
# architecture (with its layer builder) and the run name have widgets of their own.
HYPERPARAMETERS = tuple(name for name, p in PARAMS.items()
                        if p.kind in ("choice", "int", "float", "bool") and name != "architecture")
COLUMNS = 3  # the hyperparameters flow through this many columns, in the registry's order
# Fields whose default is "none" (dropout: keep the architecture's rates; train limit: all digits).
# Their inputs may be emptied, and empty restores that default.
OPTIONAL = tuple(f.name for f in fields(TrainConfig) if f.default is None and f.name in HYPERPARAMETERS)
# How a few number inputs look (step, format, placeholder); every other field gets its kind's default.
NUMBER_LOOKS: dict[str, dict[str, Any]] = {
    "learning_rate": {"step": 1e-4, "format": "%g"},
    "dropout": {"step": 0.05, "format": "%.2f", "placeholder": "empty: keep the architecture's rates"},
    "train_limit": {"step": 1000},
}


# ------------------------------------------------------------------------------ the config form

def _key(field: str) -> str:
    return f"{FORM}_{field}"


def form_defaults(architecture: str) -> dict[str, Any]:
    """TrainConfig's defaults with a preset's tutorial hyperparameters on top (not validated)."""
    return replace(TrainConfig(architecture=architecture), **preset_defaults(architecture)).to_dict()


def _widget_value(field: str, value: Any) -> Any:
    """A config value as its widget holds it: a stored 0 shows as 0.0 where a float is expected."""
    kind = PARAMS[field].kind
    if value is None:
        return None
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return value


def load_form(config: dict[str, Any], hyperparameters_only: bool = False) -> None:
    """Put a config's values into the form's widget state (a preset change, a fork).

    A tracked or imported run leaves what it could not read as None and may name no architecture of
    ours: those take the form's defaults, so forking it keeps what is known and asks for the rest.
    """
    if config.get("architecture") not in ARCHITECTURES:
        config = {**config, "architecture": DEFAULT_ARCHITECTURE}
    config = {**form_defaults(config["architecture"]), **{k: v for k, v in config.items() if v is not None}}
    for field in HYPERPARAMETERS:
        st.session_state[_key(field)] = _widget_value(field, config.get(field))
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


def config_form(n_train: int | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The architecture (with its summary, and the layer builder for 'custom') and every hyperparameter.

    Returns the form's values as TrainConfig fields (name excluded), exactly as the widgets
    show them, and what is wrong with them by field (`field_errors`, computed once per rerun:
    the page reuses it to block launching). Number inputs have no bounds of their own (a
    bounded input keeps its last valid value while it shows a rejected one), so a bad value
    reaches `field_errors`, whose message is shown beside its field.
    """
    init_form()
    st.subheader("Model")
    left, right = st.columns([1, 1], gap="large")
    with left:
        architecture = st.selectbox(
            PARAMS["architecture"].label, ARCHITECTURES, key=_key("architecture"), help=PARAMS["architecture"].help,
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
    return values, errors


def field_errors(values: dict[str, Any], n_train: int | None) -> dict[str, str]:
    """What is wrong with the form's values, by field, in the words of the field's label.

    One pass of `TrainConfig.problems`, which checks every field (so every bad field is named
    at once, not only the first) and what depends on several fields (the batch size against
    the digits left after the train limit and validation split). Empty means the form can be
    launched.
    """
    try:
        config = build_config(values)
    except TypeError as exc:  # a value of a type TrainConfig cannot hold
        return {"": str(exc)}
    return {field: labelled(field, message) for field, message in config.problems(n_train).items()}


def name_error(name: str) -> str | None:
    """What is wrong with a typed run name, in the words of its label; None when it can be launched."""
    message = TrainConfig(name=(name or "").strip()).problems().get("name")
    return labelled("name", message) if message else None


def labelled(field: str, message: str) -> str:
    """A problem's message ("learning_rate must be …, got 0.0") in the words of the field's label
    ("Learning rate must be …"). The value received is left out: the field beside the message shows it.
    """
    label = PARAMS[field].label if field in PARAMS else field
    rest = message[len(field):] if message.startswith((f"{field} ", f"{field}:")) else f" {message}"
    rest = rest.rsplit(", got ", 1)[0] if ", got " in rest else rest
    return f"{label}{rest}".replace("must be a number ", "must be ")


def _input(field: str, n_train: int | None) -> Any:
    """One hyperparameter's widget, made from its Param (label, help, kind, choices)."""
    p, key = PARAMS[field], _key(field)
    if field == "batch_size":  # the usual powers of two, on a slider (plus any other size a preset or fork set)
        options = sorted(set(BATCH_SIZES) | {int(st.session_state.get(key) or 32)})
        return st.select_slider(p.label, options, key=key, help=p.help)
    if field == "validation_split":
        return st.slider(p.label, 0.0, 0.5, step=0.05, key=key, help=p.help)
    if p.kind == "choice":
        return st.selectbox(p.label, p.choices, key=key, help=p.help)
    if p.kind == "bool":
        return st.toggle(p.label, key=key, help=p.help)
    looks = {"step": 1 if p.kind == "int" else 0.01, **NUMBER_LOOKS.get(field, {})}
    if field == "train_limit":
        looks["placeholder"] = f"all {n_train:,} training digits" if n_train else "all training digits"
    if field in OPTIONAL:  # no number as the widget's default: emptying the input gives None, not 0
        looks["value"] = None
    return st.number_input(p.label, key=key, help=p.help, **looks)


def hyperparameter_inputs(n_train: int | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hyperparameter widgets in COLUMNS columns; returns their values and a message slot under
    each, by field name. Number inputs are unbounded on purpose: see `config_form`."""
    per_column = -(-len(HYPERPARAMETERS) // COLUMNS)
    values: dict[str, Any] = {}
    slots: dict[str, Any] = {}
    for i, column in enumerate(st.columns(COLUMNS)):
        with column:
            for field in HYPERPARAMETERS[i * per_column:(i + 1) * per_column]:
                values[field], slots[field] = _input(field, n_train), st.empty()
    return values, slots


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
