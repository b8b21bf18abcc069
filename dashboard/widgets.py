"""Page pieces shared by the dashboard: run pickers, the training config form with its layer
builder, the live progress panel of a run, a sweep's progress, the data explorer's cached
views, and the small Plotly figures they draw.

Widgets always get explicit keys. The config form keeps its values in `st.session_state`
under ``train_<field>`` so a preset change, a fork or a page switch can set them.
"""
from __future__ import annotations

import math
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.architectures import (ACTIVATIONS, ARCHITECTURES, CUSTOM, CUSTOM_HELP, LAYER_TYPES, LIMITS,
                                PRESETS, ArchitectureError, LayerRow, describe, resolve_layers)
from core.config import HELP, LR_SCHEDULES, OPTIMIZERS, TrainConfig, preset_defaults
from core.store import TERMINAL, Run, RunStore
from core.sweep import CHOICES, MAX_FIELDS, SWEEPABLE, group_progress, parse_values
from dashboard.auth import require_editor
from dashboard.state import ensure_worker
from dashboard.tables import page_link, status_badge

FORM = "train"                 # session-state prefix of the config form
DEFAULT_ARCHITECTURE = "mlp-128-64"  # fast on a laptop CPU: a first run finishes in seconds
LIVE_EVERY = 1.5               # seconds between refreshes of a live panel
# Page file stem -> URL path as dashboard/app.py routes them; Train is the default page, served at "/".
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
HIDDEN_ACTIVATIONS = (*ACTIVATIONS, "linear")
FLOAT_FIELDS = ("learning_rate", "validation_split")
INT_FIELDS = ("batch_size", "epochs", "seed", "early_stopping")
HYPERPARAMETERS = ("optimizer", "learning_rate", "batch_size", "epochs", "dropout", "activation",
                   "validation_split", "seed", "early_stopping", "lr_schedule", "train_limit", "augment")


# ------------------------------------------------------------------------------ links and pickers

def run_label(row: pd.Series | Run) -> str:
    """How a run is named in pickers: name · architecture · id.

    Nothing that changes while a run trains (such as its status) goes in: a selectbox keeps
    its choice by this text, so a changing label would lose the selection.
    """
    get = row.get if isinstance(row, pd.Series) else lambda k: getattr(row, "id" if k == "run_id" else k)
    return f"{get('name')} · {get('architecture')} · {get('run_id')}"


def run_picker(runs_df: pd.DataFrame, key: str, label: str = "Run", default_id: str | None = None) -> pd.Series:
    """A selectbox over `runs_df` (a `store.list_runs()` frame); returns the chosen row.

    `default_id` is preselected the first time (else the first row). Guard an empty frame
    with st.info + st.stop() before calling: there is nothing to pick from.
    """
    if runs_df.empty:
        raise ValueError("run_picker needs at least one run; guard with st.info + st.stop() first")
    ids = list(runs_df["run_id"])
    if st.session_state.get(key) not in ids:  # the remembered run was deleted or filtered out
        st.session_state.pop(key, None)
    labels = {row["run_id"]: run_label(row) for _, row in runs_df.iterrows()}
    index = ids.index(default_id) if default_id in ids and key not in st.session_state else 0
    chosen = st.selectbox(label, ids, index=index, format_func=labels.get, key=key)
    return runs_df.loc[runs_df["run_id"] == chosen].iloc[0]


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

    Returns the form's values as TrainConfig fields (name excluded). Help text on every
    widget comes from core.config.HELP.
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
    st.subheader("Hyperparameters")
    values = hyperparameter_inputs(n_train)
    values.update(architecture=architecture, layers=tuple(layers))
    with summary:
        model_summary(values)
    return values


def hyperparameter_inputs(n_train: int | None) -> dict[str, Any]:
    """Three columns of hyperparameter widgets; returns their values by field name."""
    c1, c2, c3 = st.columns(3)
    v: dict[str, Any] = {}
    batch_options = sorted(set(BATCH_SIZES) | {int(st.session_state.get(_key("batch_size")) or 32)})
    with c1:
        v["optimizer"] = st.selectbox("Optimizer", OPTIMIZERS, key=_key("optimizer"), help=HELP["optimizer"])
        v["learning_rate"] = st.number_input("Learning rate", min_value=0.0, max_value=10.0, step=1e-4,
                                             format="%g", key=_key("learning_rate"), help=HELP["learning_rate"])
        v["lr_schedule"] = st.selectbox("Learning-rate schedule", LR_SCHEDULES, key=_key("lr_schedule"),
                                        help=HELP["lr_schedule"])
        v["batch_size"] = st.select_slider("Batch size", batch_options, key=_key("batch_size"),
                                           help=HELP["batch_size"])
    with c2:
        v["epochs"] = st.number_input("Epochs", min_value=1, max_value=1000, step=1, key=_key("epochs"),
                                      help=HELP["epochs"])
        v["early_stopping"] = st.number_input("Early-stopping patience (epochs, 0 = off)", min_value=0,
                                              max_value=1000, step=1, key=_key("early_stopping"),
                                              help=HELP["early_stopping"])
        v["validation_split"] = st.slider("Validation split", 0.0, 0.5, step=0.05, key=_key("validation_split"),
                                          help=HELP["validation_split"])
        v["train_limit"] = st.number_input(
            "Train on at most (digits)", min_value=10, step=1000, key=_key("train_limit"), help=HELP["train_limit"],
            placeholder=f"all {n_train:,} training digits" if n_train else "all training digits")
    with c3:
        v["activation"] = st.selectbox("Hidden activation", ACTIVATIONS, key=_key("activation"),
                                       help=HELP["activation"])
        v["dropout"] = st.number_input("Dropout rate", min_value=0.0, max_value=0.95, step=0.05, format="%.2f",
                                       key=_key("dropout"), help=HELP["dropout"],
                                       placeholder="empty: keep the architecture's rates")
        v["seed"] = st.number_input("Random seed", min_value=0, max_value=2**31 - 1, step=1, key=_key("seed"),
                                    help=HELP["seed"])
        v["augment"] = st.toggle("Augment (rotate, shift, zoom)", key=_key("augment"), help=HELP["augment"])
    return v


def build_config(values: dict[str, Any], name: str = "") -> TrainConfig:
    """A TrainConfig from the form's values (not yet validated: queue_run/expand_grid do that)."""
    known = {f.name for f in fields(TrainConfig)}
    data = {k: v for k, v in values.items() if k in known}
    data["layers"] = tuple(dict(layer) for layer in data.get("layers") or ())
    return TrainConfig(**data, name=(name or "").strip())


def model_summary(values: dict[str, Any]) -> None:
    """The model.summary()-style table of the stack the form describes, or why it cannot be built."""
    try:
        stack = resolve_layers(values["architecture"], list(values["layers"]), values.get("dropout"),
                               values["activation"] if values.get("activation") != "relu" else None)
        rows = describe(stack)
    except ArchitectureError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    total = sum(r.params for r in rows)
    st.markdown(f"**Summary** · {total:,} parameters")
    st.dataframe(summary_frame(rows), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(rows), 600),
                 column_config={"Params": st.column_config.NumberColumn(format="localized")})


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
    lo, hi = LIMITS[limit]
    return lambda key: st.number_input(label, min_value=lo, max_value=hi, step=1, key=key)


_LAYER_PARAMS: dict[str, tuple[tuple[str, Callable[[str], Any]], ...]] = {
    "Dense": (("units", _int_input("units", "units")),
              ("activation", lambda key: st.selectbox("activation", HIDDEN_ACTIVATIONS, key=key))),
    "Conv2D": (("filters", _int_input("filters", "filters")),
               ("kernel", _int_input("kernel size", "kernel")),
               ("activation", lambda key: st.selectbox("activation", HIDDEN_ACTIVATIONS, key=key)),
               ("padding", lambda key: st.selectbox("padding", ("valid", "same"), key=key,
                                                    help="valid: the image shrinks by kernel − 1; same: it keeps its size"))),
    "MaxPooling2D": (("pool", _int_input("pool size", "pool")),),
    "Dropout": (("rate", lambda key: st.number_input("rate", min_value=0.0, max_value=0.95, step=0.05,
                                                     format="%.2f", key=key)),),
    "Activation": (("activation", lambda key: st.selectbox("activation", ACTIVATIONS, key=key)),),
}


# ------------------------------------------------------------------------------ sweeps

SWEEP_EXAMPLES = {"learning_rate": "1e-2, 1e-3, 1e-4", "batch_size": "64, 128", "epochs": "3, 5",
                  "dropout": "0.2, 0.5", "validation_split": "0.1, 0.2", "seed": "1, 2, 3",
                  "early_stopping": "0, 3", "train_limit": "1000, 5000"}
NO_FIELD = "—"


def sweep_inputs() -> tuple[dict[str, list], list[str]]:
    """Up to three (hyperparameter, values) rows; returns the grid and the input errors."""
    grid: dict[str, list] = {}
    errors: list[str] = []
    for i in range(MAX_FIELDS):
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        field = left.selectbox(f"Hyperparameter {i + 1}", (NO_FIELD, *SWEEPABLE), key=f"sweep_field_{i}",
                               help=HELP.get(st.session_state.get(f"sweep_field_{i}"), "Pick a hyperparameter to vary."))
        if field == NO_FIELD:
            continue
        kind = SWEEPABLE[field]
        with right:
            if kind in ("choice", "bool"):
                options = CHOICES.get(field, (False, True))
                values = st.multiselect(f"Values of {field}", options, key=f"sweep_values_{i}_{field}",
                                        format_func=str)
            else:
                text = st.text_input(f"Values of {field} (comma-separated)", key=f"sweep_values_{i}_{field}",
                                     placeholder=SWEEP_EXAMPLES.get(field, ""))
                try:
                    values = parse_values(field, text) if text.strip() else []
                except Exception as exc:  # ConfigError: one line under the inputs
                    errors.append(str(exc))
                    values = []
        if field in grid:
            errors.append(f"{field} is chosen twice: pick each hyperparameter once")
        elif values:
            grid[field] = list(values)
    return grid, errors


def sweep_preview(grid: dict[str, list]) -> int:
    """Show how many runs the grid makes (and which); returns that number."""
    n = math.prod(len(v) for v in grid.values()) if grid else 0
    if n:
        combos = pd.MultiIndex.from_product(list(grid.values()), names=list(grid)).to_frame(index=False)
        st.caption(f"{n} run{'s' if n != 1 else ''}: every combination below, queued as one group.")
        st.dataframe(combos, hide_index=True, height=min(38 + 35 * n, 300))
    return n


# ------------------------------------------------------------------------------ live progress

def progress_numbers(run: Run) -> dict[str, float | int | None]:
    """Epoch, batch within the epoch, and the overall fraction done, from the run's counters."""
    epochs, spe, step = run.epochs or 0, run.steps_per_epoch or 0, run.step or 0
    if not spe or not epochs:
        return {"epoch": min(run.epoch + 1, epochs or 1), "batch": 0, "steps": spe, "fraction": 0.0}
    epoch = min(step // spe + 1, epochs) if step < epochs * spe else epochs
    batch = step - (epoch - 1) * spe
    return {"epoch": epoch, "batch": min(batch, spe), "steps": spe, "fraction": min(step / (epochs * spe), 1.0)}


def eta_seconds(run: Run, batches: pd.DataFrame) -> float | None:
    """Seconds of training left, from the batch rate seen in the metric rows (else since start)."""
    total = (run.epochs or 0) * (run.steps_per_epoch or 0)
    if not total or not run.step:
        return None
    if len(batches) and batches["ts"].nunique() >= 2:
        first, last = batches.loc[batches["ts"].idxmin()], batches.loc[batches["ts"].idxmax()]
        rate = (last["step"] - first["step"]) / max(last["ts"] - first["ts"], 1e-6)
    else:
        rate = run.step / max(time.time() - (run.started_at or time.time()), 1e-6)
    return max(total - run.step, 0) / rate if rate > 0 else None


def format_seconds(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def window_means(batches: pd.DataFrame, steps_per_epoch: int | None) -> pd.DataFrame:
    """Turn Keras' running means (reset every epoch) into the mean over each logging window.

    Keras logs, after in-epoch batch s, the mean m(s) of batches 1..s; the batches between two
    samples s1 < s2 averaged (m2·s2 − m1·s1) / (s2 − s1). Unlike the running mean, this curve
    does not jump when an epoch starts. Without steps per epoch the rows are returned as they are.
    """
    if batches.empty or not steps_per_epoch:
        return batches
    out = []
    for _, rows in batches.sort_values("step").groupby(["key", "epoch"], sort=False):
        s = (rows["step"] - (rows["epoch"] - 1) * steps_per_epoch).to_numpy(dtype=float)
        m = rows["value"].to_numpy(dtype=float)
        prev_s, prev_m = np.concatenate([[0.0], s[:-1]]), np.concatenate([[0.0], m[:-1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            window = np.where(s > prev_s, (m * s - prev_m * prev_s) / (s - prev_s), m)
        out.append(rows.assign(value=window))
    return pd.concat(out).sort_values(["key", "step"]).reset_index(drop=True)


def curves_figure(batches: pd.DataFrame, epochs: pd.DataFrame, metric: str, steps_per_epoch: int | None,
                  title: str) -> go.Figure:
    """One metric over training: the mean per logging window as a thin line, epoch train/val as points.

    The x axis is in epochs (batch step / steps per epoch), so both scopes share it: epoch 1
    spans 0 to 1, its training mean is drawn at 0.5 and its validation value at 1.
    """
    spe = steps_per_epoch or 1
    fig = go.Figure()
    b = window_means(batches[batches["key"] == metric], steps_per_epoch)
    if len(b):
        fig.add_scatter(x=b["step"] / spe, y=b["value"], mode="lines", name=f"{metric} (batches)",
                        line={"width": 1.5, "color": "#9ab8d8"})
    # A training value is the mean over its epoch, so it sits mid-epoch; validation is measured at the end.
    for key, colour, shift, what in ((metric, "#1f77b4", 0.5, "epoch mean"),
                                     (f"val_{metric}", "#ff7f0e", 0.0, "end of epoch")):
        e = epochs[epochs["key"] == key]
        if len(e):
            fig.add_scatter(x=e["epoch"] - shift, y=e["value"], mode="lines+markers", name=f"{key} ({what})",
                            line={"color": colour})
    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title="epoch", legend={"orientation": "h", "y": -0.25}, hovermode="x unified")
    if metric == "accuracy":
        fig.update_yaxes(tickformat=".0%")
    return fig


def queue_position(store: RunStore, run: Run) -> tuple[int, int]:
    """(place in the queue, 1-based; runs training now) for a queued run."""
    queued = store.list_runs(status="queued")
    ahead = int((queued["created_at"] <= run.created_at).sum()) if not queued.empty else 1
    return max(ahead, 1), len(store.list_runs(status="running"))


def live_run(store: RunStore, run_id: str) -> None:
    """The panel of one run: queue place, progress, ETA, live curves and Cancel; the result when done.

    It refreshes itself every LIVE_EVERY seconds while the run is queued or running (only this
    panel reruns) and reruns the page once when the run ends, which stops the polling.
    """
    first = store.get_run(run_id)
    active = first.status not in TERMINAL

    @st.fragment(run_every=LIVE_EVERY if active else None)
    def panel() -> None:
        run = store.get_run(run_id)
        if active and run.status in TERMINAL:
            st.rerun()  # the whole page: show the result and stop polling
        title, action = st.columns([4, 1], vertical_alignment="center")
        title.markdown(f"**{run.name}** {status_badge(run.status)} · `{run.id}` · {run.architecture}"
                       + (f" · {run.n_params:,} parameters" if run.n_params else ""))
        if run.status in ("queued", "running"):
            with action:
                _cancel_button(store, run)
        if run.status == "queued":
            _queued_panel(store, run)
        elif run.status == "running":
            _running_panel(store, run)
        else:
            _finished_panel(store, run)

    panel()


def _queued_panel(store: RunStore, run: Run) -> None:
    place, running = queue_position(store, run)
    workers = store.live_workers()
    ahead = f"{place - 1} queued run{'s' if place != 2 else ''} ahead" if place > 1 else "next in line"
    st.info(f"Queued: place {place} in the queue ({ahead}; {running} training now). "
            f"{'A worker is alive and will pick it up.' if not workers.empty else ''}", icon=":material/schedule:")
    if workers.empty:
        st.warning("No worker is running, so nothing will train. Start one here, or in a terminal with "
                   "`python -m core worker`.", icon=":material/warning:")
        if st.button("Start a worker", key=f"start_worker_{run.id}", icon=":material/play_arrow:"):
            ensure_worker()
            st.rerun()


def _running_panel(store: RunStore, run: Run) -> None:
    batches = store.metric_history(run.id, scope="batch", keys=["loss", "accuracy"])
    epochs = store.metric_history(run.id, scope="epoch")
    p = progress_numbers(run)
    st.progress(p["fraction"], text=f"Epoch {p['epoch']} of {run.epochs} · {p['fraction']:.0%} of the training done")
    st.progress(p["batch"] / p["steps"] if p["steps"] else 0.0,
                text=f"Batch {p['batch']:,} of {p['steps']:,}" if p["steps"] else "Loading data and building the model…")
    m = st.columns(4)
    m[0].metric("Loss (running mean)", _fmt(run.last_loss if not len(batches) else _last(batches, "loss")))
    m[1].metric("Accuracy (running mean)", _pct(run.last_accuracy if not len(batches) else _last(batches, "accuracy")))
    m[2].metric("Validation accuracy", _pct(run.last_val_accuracy))
    m[3].metric("Time left (about)", format_seconds(eta_seconds(run, batches)))
    if run.heartbeat_at and time.time() - run.heartbeat_at > 30:
        st.warning(f"No sign of life from the worker for {format_seconds(time.time() - run.heartbeat_at)}; "
                   "it may have stopped. It is marked interrupted after 60 s.", icon=":material/warning:")
    _curves(batches, epochs, run.steps_per_epoch, key=run.id)


def _finished_panel(store: RunStore, run: Run) -> None:
    if run.status == "completed":
        m = st.columns(3)
        m[0].metric("Test accuracy", _pct(run.test_accuracy))
        m[1].metric("Best validation accuracy", _pct(run.best_val_accuracy))
        m[2].metric("Training time", format_seconds(run.duration))
    elif run.status == "failed":
        st.error(f"Training failed: {(run.error or 'unknown error').splitlines()[0]}", icon=":material/error:")
        if run.error and "\n" in run.error:
            with st.expander("Details"):
                st.code(run.error)
    elif run.status == "cancelled":
        st.warning("Cancelled before the end of training. The metrics logged until then are kept.",
                   icon=":material/info:")
    else:
        st.warning(f"Interrupted: {(run.error or 'the process training it stopped').splitlines()[0]}",
                   icon=":material/info:")
    if run.started_at is not None:
        batches = store.metric_history(run.id, scope="batch", keys=["loss", "accuracy"])
        epochs = store.metric_history(run.id, scope="epoch")
        _curves(batches, epochs, run.steps_per_epoch, key=run.id)
    page_link("run", "Open the run's details: confusion matrix, mistakes, draw test", {"run": run.id},
              icon=":material/query_stats:")


def _cancel_button(store: RunStore, run: Run) -> None:
    if run.cancel_requested:
        st.button("Cancelling…", key=f"cancel_{run.id}", disabled=True, width="stretch",
                  help="Training stops at its next logging window (about a second).")
        return
    if st.button("Cancel run", key=f"cancel_{run.id}", icon=":material/stop_circle:", width="stretch",
                 help="Stop training at the next logging window; the metrics so far are kept."):
        if require_editor("cancel a run"):
            store.request_cancel(run.id)
            st.rerun()  # the page again, showing the run cancelled or stopping


def _curves(batches: pd.DataFrame, epochs: pd.DataFrame, steps_per_epoch: int | None, key: str) -> None:
    if not len(batches) and not len(epochs):
        st.caption("Curves appear after the first logging window (about a second of training).")
        return
    left, right = st.columns(2)
    left.plotly_chart(curves_figure(batches, epochs, "loss", steps_per_epoch, "Loss"), key=f"loss_{key}")
    right.plotly_chart(curves_figure(batches, epochs, "accuracy", steps_per_epoch, "Accuracy"), key=f"acc_{key}")


def _last(history: pd.DataFrame, key: str) -> float | None:
    rows = history[history["key"] == key]
    return None if rows.empty else rows["value"].iloc[-1]


def _fmt(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.2%}"


def sweep_panel(store: RunStore, group: str) -> None:
    """A group's progress (queued / running / ended) and, once all ended, a link to Compare."""
    first = group_progress(store.list_runs(group=group))

    @st.fragment(run_every=LIVE_EVERY if not first.finished else None)
    def panel() -> None:
        runs = store.list_runs(group=group)
        prog = group_progress(runs)
        if prog.finished and not first.finished:
            st.rerun()
        st.progress(prog.fraction, text=f"**{group}**: {prog.ended} of {prog.total} ended · {prog.running} running · "
                                         f"{prog.queued} queued · {prog.completed} completed")
        table = runs.sort_values("created_at")[["name", "status", "test_accuracy", "best_val_accuracy", "run_id"]]
        table = table.assign(test_accuracy=table["test_accuracy"] * 100, best_val_accuracy=table["best_val_accuracy"] * 100)
        percent = {"format": "%.2f%%"}
        st.dataframe(table, hide_index=True, width="stretch",
                     column_config={"test_accuracy": st.column_config.NumberColumn("test accuracy", **percent),
                                    "best_val_accuracy": st.column_config.NumberColumn("best val accuracy", **percent),
                                    "run_id": "run id"})
        if prog.finished:
            page_link("compare", f"Compare the {prog.total} runs of {group}",
                      {"runs": ",".join(prog.run_ids), "group": group}, icon=":material/compare_arrows:")

    panel()


# ------------------------------------------------------------------------------ the data explorer

@st.cache_data(max_entries=2, show_spinner="Loading the dataset…")
def dataset_arrays(path: str, mtime: float) -> dict[str, np.ndarray]:
    """The four arrays of the HDF5 dataset, cached per file version (path + mtime)."""
    from core.data import load_dataset
    data = load_dataset(path)
    return {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}


def file_mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(max_entries=4, show_spinner=False)
def dataset_overview(path: str, mtime: float) -> dict[str, Any]:
    """Label counts per split and the mean image of each class (train split), cached like the arrays."""
    arrays = dataset_arrays(path, mtime)
    counts = pd.DataFrame({split: np.bincount(arrays[f"y_{split}"], minlength=10) for split in ("train", "test")})
    counts.index.name = "label"
    x, y = arrays["x_train"], arrays["y_train"]
    means = [x[y == c].mean(axis=0) / 255.0 if np.any(y == c) else np.zeros((28, 28)) for c in range(10)]
    return {"counts": counts, "means": means}


def sample_digits(path: str, mtime: float, split: str, label: int | None, n: int,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to `n` random digits of `split` (optionally one label): (images, labels, indices)."""
    arrays = dataset_arrays(path, mtime)
    x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
    pool = np.flatnonzero(y == label) if label is not None else np.arange(len(y))
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(pool, size=min(n, len(pool)), replace=False)) if len(pool) else pool
    return x[idx], y[idx], idx


def label_bars(counts: pd.DataFrame) -> go.Figure:
    """Grouped bars: each label's share of each split (so splits of any size compare), counts in the hover."""
    fig = go.Figure()
    for split, colour in (("train", "#1f77b4"), ("test", "#ff7f0e")):
        share = counts[split] / max(counts[split].sum(), 1)
        fig.add_bar(x=[str(i) for i in counts.index], y=share, name=f"{split} ({counts[split].sum():,} digits)",
                    marker_color=colour, customdata=counts[split],
                    hovertemplate=f"{split}, label %{{x}}: %{{customdata:,}} digits (%{{y:.1%}})<extra></extra>")
    fig.update_layout(barmode="group", height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "y": 1.12})
    fig.update_xaxes(type="category", title="label")
    fig.update_yaxes(tickformat=".0%", title="share of the split")
    return fig
