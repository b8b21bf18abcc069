"""The search space: which fields can be varied, how their values and ranges are read, and the grid.

A space is ``{field: spec}``: a spec is a list of values (``{"type": "categorical", "choices": […]}``)
or a range (``{"type": "float" | "int", "low": …, "high": …, "log": bool}``). `parse_space` reads
the CLI's `--param FIELD=SPEC` texts, `parse_values` a typed comma list from the dashboard.

A grid is every combination of lists of values: `expand_grid` is the one function that lays one out,
with one set of limits (at most MAX_GRID_FIELDS fields and MAX_RUNS combinations, a study's largest
budget), for the Train page's Grid tab and `core sweep --search grid` alike.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Any

from core.config import ConfigError, TrainConfig, param, sweepable_fields

MAX_RUNS = 200         # runs in one study, so also combinations in one grid (each is a full training run)
MAX_GRID_FIELDS = 6    # hyperparameters one grid varies at once

# Fields a sweep may vary, with the kind of value each takes, and the values of the choices:
# from the registry (core.config.PARAMS), so a field declared sweepable there is sweepable here.
SWEEPABLE: dict[str, str] = {name: param(name).kind for name in sweepable_fields()}
CHOICES: dict[str, tuple[str, ...]] = {name: param(name).choices for name in SWEEPABLE if param(name).choices}


def parse_values(field: str, text: str) -> list[Any]:
    """Read a comma-separated list of values for `field` ("1e-2, 1e-3" → [0.01, 0.001]).

    Raises ConfigError naming the field and the piece that is not a value of the right kind.
    """
    kind = field_kind(field)
    pieces = [p.strip() for p in str(text).replace(";", ",").split(",") if p.strip()]
    if not pieces:
        raise ConfigError(f"{field}: give at least one value, separated by commas")
    values = []
    for piece in pieces:
        try:
            if kind == "float":
                value: Any = float(piece)
            elif kind == "int":
                number = float(piece)
                if not number.is_integer():
                    raise ValueError
                value = int(number)
            elif kind == "bool":
                value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}[piece.lower()]
            else:
                value = piece
        except (ValueError, KeyError):
            allowed = {"float": "a number", "int": "a whole number", "bool": "true or false"}[kind]
            raise ConfigError(f"{field}: {piece!r} is not {allowed}") from None
        values.append(value)
    return values


def parse_spec(field: str, spec: str, search: str = "tpe") -> dict:
    """One field's distribution from its SPEC text.

    `1e-4:1e-1:log` (float, log scale), `0.0:0.5` (float, linear), `16:256:int` (int range; an
    int field's range is whole numbers anyway, `16:256:log` is an int log range), or a comma list
    `adam,sgd,rmsprop` (categorical; the only form a grid takes). Raises ConfigError naming the
    field and the value.
    """
    if field not in SWEEPABLE:
        raise ConfigError(f"{field!r} cannot be searched; choose from {', '.join(SWEEPABLE)}")
    kind, text = SWEEPABLE[field], str(spec).strip()
    if ":" not in text or kind in ("choice", "bool"):
        values = parse_values(field, text)
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"{field}: a value is listed twice in {text!r}")
        allowed = CHOICES.get(field)
        for value in values:
            if allowed is not None and value not in allowed:
                raise ConfigError(f"{field}: {value!r} is not one of {', '.join(allowed)}")
        return {"type": "categorical", "choices": values}
    if search == "grid":
        raise ConfigError(f"{field}: a grid takes a comma list of values, not the range {text!r}")
    pieces = text.split(":")
    scale = pieces[2].strip().lower() if len(pieces) == 3 else "linear"
    if len(pieces) not in (2, 3) or scale not in ("log", "int", "linear"):
        raise ConfigError(f"{field}: {text!r} is not a range; write LOW:HIGH, LOW:HIGH:log or LOW:HIGH:int")
    if scale == "int" and kind != "int":
        raise ConfigError(f"{field}: {text!r} asks for whole numbers but {field} takes any number; drop ':int'")
    try:
        low, high = float(pieces[0]), float(pieces[1])
    except ValueError:
        raise ConfigError(f"{field}: {text!r} has a bound that is not a number") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{field}: {text!r} has a bound that is not finite")
    if low >= high:
        raise ConfigError(f"{field}: the range {text!r} needs low < high, got {low:g} ≥ {high:g}")
    if scale == "log" and low <= 0:
        raise ConfigError(f"{field}: the log range {text!r} needs low > 0, got {low:g}")
    if kind == "int":
        if not (low.is_integer() and high.is_integer()):
            raise ConfigError(f"{field}: {text!r} needs whole-number bounds")
        return {"type": "int", "low": int(low), "high": int(high), "log": scale == "log"}
    return {"type": "float", "low": low, "high": high, "log": scale == "log"}


def parse_space(params: list[str], search: str = "tpe") -> dict[str, dict]:
    """`["learning_rate=1e-4:1e-1:log", "optimizer=adam,sgd"]` → {field: distribution spec}."""
    space: dict[str, dict] = {}
    for item in params:
        field, sep, spec = str(item).partition("=")
        field = field.strip().replace("-", "_")
        if not sep or not spec.strip():
            raise ConfigError(f"--param {item!r}: write FIELD=SPEC, e.g. learning_rate=1e-4:1e-1:log")
        if field in space:
            raise ConfigError(f"{field}: given twice; give each field one --param")
        space[field] = parse_spec(field, spec, search)
    return space


def describe_spec(spec: dict) -> str:
    """A spec as people read it: "1e-04 … 0.1 (log)", "16 … 256 (int)", "adam, sgd"."""
    if spec["type"] == "categorical":
        return ", ".join(show_value(v) for v in spec["choices"])
    scale = "log" if spec.get("log") else ("int" if spec["type"] == "int" else "linear")
    return f"{show_value(spec['low'])} … {show_value(spec['high'])} ({scale})"


def grid_size(space: dict[str, dict]) -> int:
    return math.prod(len(s["choices"]) for s in space.values()) if space else 0


def distribution(spec: dict):
    """The Optuna distribution of a spec (categorical, int or float)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec["type"] == "categorical":
        return CategoricalDistribution(list(spec["choices"]))
    if spec["type"] == "int":
        return IntDistribution(int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")))
    return FloatDistribution(float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))


def apply_params(base: TrainConfig, params: dict[str, Any], name: str) -> TrainConfig:
    """The base config with a proposal's values (a swept preset drops the custom stack)."""
    values = dict(params)
    if values.get("architecture", "custom") != "custom":
        values["layers"] = ()
    return replace(base, **values, name=name[:200])


def expand_grid(base_config: TrainConfig, grid: dict[str, list], n_train: int | None = None) -> list[TrainConfig]:
    """Every combination of `grid`'s values applied to `base_config`, in grid order, each validated
    (against a training set of `n_train` digits when given).

    Runs are named after the base name and the values they vary, e.g.
    "lr-sweep · learning_rate=0.01 · batch_size=64". Raises ConfigError for a field that
    cannot be swept, an empty or repeated value, too many fields or combinations (`check_grid`),
    or the first combination that is not a valid config.
    """
    check_grid(grid)
    fields = list(grid)
    configs = []
    for combo in itertools.product(*(grid[f] for f in fields)):
        values = dict(zip(fields, combo))
        label = " · ".join(f"{f}={show_value(values[f])}" for f in fields)
        config = apply_params(base_config, values, f"{base_config.name} · {label}" if base_config.name else label)
        try:
            config.validate(n_train)
        except ConfigError as exc:
            raise ConfigError(f"{label}: {exc}") from None
        configs.append(config)
    return configs


def check_grid(grid: dict[str, list]) -> int:
    """The one set of grid limits: sweepable fields, at least one value each and none twice, at most
    MAX_GRID_FIELDS fields and MAX_RUNS combinations. Returns the number of combinations."""
    if not grid:
        raise ConfigError("a grid needs at least one hyperparameter with values")
    if len(grid) > MAX_GRID_FIELDS:
        raise ConfigError(f"a grid varies at most {MAX_GRID_FIELDS} hyperparameters, got {len(grid)}: "
                          f"{', '.join(grid)}")
    total = 1
    for field, values in grid.items():
        field_kind(field)
        values = list(values)
        if not values:
            raise ConfigError(f"{field}: give at least one value")
        seen = set()
        for value in values:
            if value in seen:
                raise ConfigError(f"{field}: the value {show_value(value)} is listed twice")
            seen.add(value)
        total *= len(values)
    if total > MAX_RUNS:
        raise ConfigError(f"this grid makes {total} runs; at most {MAX_RUNS} are allowed, so use fewer values")
    return total


def field_kind(field: str) -> str:
    """How a sweepable field's values are typed (ConfigError for a field that cannot be swept)."""
    if field not in SWEEPABLE:
        raise ConfigError(f"{field!r} cannot be swept; choose from {', '.join(SWEEPABLE)}")
    return SWEEPABLE[field]


def show_value(value: Any) -> str:
    """A value as a run name or a message shows it: floats in their shortest form ("0.001", "1e-04")."""
    return f"{value:g}" if isinstance(value, float) else str(value)
