"""Studies: a named group of runs whose configs Optuna proposes (random, TPE) or a grid lays out.

Optuna samples and prunes; Digit Lab writes neither a sampler nor a pruner. Our store stays the
one source of truth and the one queue:

- a study is a `studies` row (search, space, objective, pruner, budget, base config, seed) and
  its runs are ordinary queued runs (`group_name` = the study's name, `trial` = Optuna's trial
  number) that any worker on any machine claims;
- whenever a proposal or a pruning decision is needed, an in-memory Optuna study is **rebuilt
  from the store** (`_rebuild`): every run becomes a trial (completed → COMPLETE, pruned →
  PRUNED, failed / cancelled / interrupted → FAIL, queued / running → RUNNING) with its epoch
  objective values as intermediate values. There is no second database file, nothing for
  Optuna to lock ("database is locked" with 4 workers on SQLite cannot come from Optuna), and
  a study survives restarts of the dashboard and of every worker because nothing lives in memory;
- TPE runs with `constant_liar=True`, so runs in flight (RUNNING trials) push parallel proposals
  apart; each rebuild seeds its sampler with `seed + trials so far`, so two workers topping up
  one after the other never replay the same random stream;
- `top_up()` keeps as many runs in flight as there are live workers (at least one) until the
  budget is reached; it reads and writes inside one write transaction that locks the study's
  row (SQLite: BEGIN IMMEDIATE; PostgreSQL: SELECT … FOR UPDATE), so workers topping up at once
  can never exceed the budget. Workers call `after_run()` when a run ends and `top_up_all()`
  when they find the queue empty;
- pruning: `prune_check(store, run)` gives the run's StoreLogger a function called once per
  epoch end (one read transaction, none per batch) that rebuilds the study and asks its pruner;
  what the pruner notes on the trial (Hyperband's rung values) is kept as "pruner" metric rows
  and handed back to the next rebuild (`core.store.studies.pruner_state`).

A grid is the plan itself: `search="grid"` queues every combination at once, in grid order
(`core.search.sweep.expand_grid`), so the whole plan shows in the queue; Optuna still prunes its runs
and weighs its parameters. A run's objective value is its last epoch's `val_accuracy`
(maximised) or `val_loss` (minimised): what the model it keeps scored on validation.
"""
from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, replace
from typing import Any, Callable

from core.config import ConfigError, TrainConfig
from core.data.dataset import check_dataset
from core.model.architectures import count_params
from core.store import studies as rows
from core.store.schema import FINISHED, Run, StoreError
from core.store.facade import RunStore
from core.search.sweep import CHOICES, SWEEPABLE, parse_values

SEARCHES = ("random", "tpe", "grid")
PRUNERS = ("none", "median", "hyperband")
OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize"}
MAX_BUDGET = 200          # runs in one study
MAX_GRID_FIELDS = 6       # hyperparameters one grid study varies at once
MAX_PROPOSAL_TRIES = 20   # proposals Optuna may make for one slot before the space counts as impossible
# Runs that ended without a result (failed, interrupted) are replaced, but at most this many times
# the budget in all, so a space whose runs always crash cannot queue forever.
NOT_COUNTED = ("failed", "interrupted")


@dataclass(frozen=True)
class Study:
    """One `studies` row."""
    name: str; search: str; objective: str; direction: str; pruner: str; warmup_epochs: int
    budget: int; space: dict; base_config: dict; seed: int | None; stopped: bool; created_at: float


# -- the search space ----------------------------------------------------------------------------
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
        return ", ".join(_show(v) for v in spec["choices"])
    scale = "log" if spec.get("log") else ("int" if spec["type"] == "int" else "linear")
    return f"{_show(spec['low'])} … {_show(spec['high'])} ({scale})"


def grid_size(space: dict[str, dict]) -> int:
    return math.prod(len(s["choices"]) for s in space.values()) if space else 0


def _distribution(spec: dict):
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


def check_study(base: TrainConfig, space: dict[str, dict], search: str, budget: int | None, objective: str,
                pruner: str, warmup_epochs: int, n_train: int | None) -> int:
    """Refuse a study no run of which could train; returns the budget (a grid's defaults to its size).

    Each bound of each range and each listed value is tried on the base config (with the
    dataset's size), so a space that every proposal would violate, such as a batch size above
    the training set, is caught before anything is queued. Raises ConfigError naming the field.
    """
    if search not in SEARCHES:
        raise ConfigError(f"search must be one of {', '.join(SEARCHES)}, got {search!r}")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if pruner not in PRUNERS:
        raise ConfigError(f"pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
    if not space:
        raise ConfigError("a study needs at least one --param FIELD=SPEC to search over")
    if search == "grid":
        if len(space) > MAX_GRID_FIELDS:
            raise ConfigError(f"a grid varies at most {MAX_GRID_FIELDS} fields, got {len(space)}")
        size = grid_size(space)
        if size > MAX_BUDGET:
            raise ConfigError(f"this grid makes {size} runs; at most {MAX_BUDGET} are allowed, so use fewer values")
        budget = size if budget is None else budget
        if isinstance(budget, int) and budget > size:
            raise ConfigError(f"trials: the grid has {size} combinations, got a budget of {budget}")
    if budget is None or isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_BUDGET:
        raise ConfigError(f"trials must be a whole number from 1 to {MAX_BUDGET}, got {budget!r}")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs must be a whole number ≥ 0, got {warmup_epochs!r}")
    base.validate(n_train)
    for field, spec in space.items():
        points = spec["choices"] if spec["type"] == "categorical" else [spec["low"], spec["high"]]
        for value in points:
            label = f"{field}={_show(value)}"
            config = apply_params(base, {field: value}, label)
            try:
                config.validate(n_train)
            except ConfigError as exc:
                raise ConfigError(f"{label}: {exc}") from None
            if config.validation_split == 0 and (pruner != "none" or search == "tpe"):
                what = f"the pruner {pruner!r}" if pruner != "none" else f"the objective {objective}"
                raise ConfigError(f"{label}: {what} needs validation digits, but validation_split is 0")
    return budget


# -- creating, reading, stopping, extending ----------------------------------------------------
def create_study(store: RunStore, base_config: TrainConfig, space: dict[str, dict], name: str,
                 data_path: str | os.PathLike | None, search: str = "tpe", budget: int | None = None,
                 objective: str = "val_accuracy", pruner: str = "none", warmup_epochs: int = 1,
                 seed: int | None = None, parent_id: str | None = None) -> list[str]:
    """Check everything, record the study and queue its first runs; returns their ids.

    Nothing is written for bad input (ConfigError naming the field and value, or DataError for
    a missing dataset). A grid queues all its combinations; random and TPE queue one run per
    live worker (at least one) and workers top up from there.
    """
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ConfigError(f"name must be 1 to 200 characters, got {name!r:.60}")
    n_train = check_dataset(data_path).n_train
    budget = check_study(base_config, space, search, budget, objective, pruner, warmup_epochs, n_train)
    base = replace(base_config, name=base_config.name or name)
    row = dict(name=name, search=search, objective=objective, direction=OBJECTIVES[objective], pruner=pruner,
               warmup_epochs=warmup_epochs, budget=budget, space=space, base_config=base.to_dict(),
               seed=base.seed if seed is None else int(seed), stopped=False, created_at=time.time())

    def create(c):
        if rows.name_taken(c, name):
            raise ConfigError(f"a group named {name!r} already exists; choose another name")
        rows.insert_study(c, row)
        if search == "grid":
            return _queue_grid(store, _study(row), base, parent_id)
        return _top_up(c, store, _study(row), parent_id)
    return store.transact(create)


def get_study(store: RunStore, name: str) -> Study | None:
    row = store.transact(lambda c: rows.study_row(c, name), write=False)
    return _study(row) if row else None


def list_studies(store: RunStore) -> list[Study]:
    """Every study, newest first."""
    return [_study(r) for r in store.transact(rows.study_rows, write=False)]


def require_study(store: RunStore, name: str) -> Study:
    study = get_study(store, name)
    if study is None:
        raise StoreError(f"no study named {name!r}: `python -m core sweep … --name {name}` makes one")
    return study


def stop_study(store: RunStore, name: str) -> int:
    """Queue no more runs and cancel the queued ones (running runs finish); returns how many were cancelled."""
    require_study(store, name)
    store.transact(lambda c: rows.stop(c, name))
    queued = store.list_runs(group=name, status="queued")
    return sum(store.request_cancel(run_id) == "cancelled" for run_id in queued["run_id"])


def extend_study(store: RunStore, name: str, n: int) -> list[str]:
    """Raise the budget by `n` runs (the total stays ≤ MAX_BUDGET), resume a stopped study, top up."""
    study = require_study(store, name)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"extend by a whole number of runs ≥ 1, got {n!r}")
    if study.search == "grid":
        raise ConfigError(f"{name} is a grid: it has no combinations left to add; start a new study instead")
    if study.budget + n > MAX_BUDGET:
        raise ConfigError(f"budget: {study.budget} + {n} is more than {MAX_BUDGET} runs")

    def extend(c):
        rows.extend(c, name, n)
        return _top_up(c, store, None, None, name=name)
    return store.transact(extend)


def top_up(store: RunStore, name: str) -> list[str]:
    """Queue proposals until as many runs are in flight as there are live workers (≥ 1), within budget."""
    return store.transact(lambda c: _top_up(c, store, None, None, name=name))


def top_up_all(store: RunStore) -> list[str]:
    """Top up every study that still has budget left (a worker calls this when the queue is empty)."""
    slots = max(1, len(store.live_workers()))
    queued: list[str] = []
    # one read first: a worker polling an idle queue takes no write lock for finished studies
    for name in store.transact(lambda c: rows.open_searches(c, slots, NOT_COUNTED), write=False):
        queued += top_up(store, name)
    return queued


def after_run(store: RunStore, run: Run) -> list[str]:
    """A worker finished `run`: if it belongs to a study, queue what comes next (the 'tell')."""
    if not run.group_name or run.trial is None:
        return []
    return top_up(store, run.group_name) if get_study(store, run.group_name) else []


# -- asking: one locked transaction ------------------------------------------------------------
def _top_up(c, store: RunStore, study: Study | None, parent_id: str | None, name: str | None = None) -> list[str]:
    """Inside a write transaction (connection `c`): lock the study's row, count its runs, ask Optuna for the rest."""
    if study is None:
        row = rows.study_row(c, name, lock=True)
        if row is None:
            return []
        study = _study(row)
    if study.stopped or study.search == "grid":
        return []
    runs = rows.study_runs(c, study.name)
    counted = sum(r["status"] not in NOT_COUNTED for r in runs)
    lost = len(runs) - counted
    in_flight = sum(r["status"] in ("queued", "running") for r in runs)
    workers = len(store.live_workers())
    want = min(study.budget - counted, max(1, workers) - in_flight)
    if want <= 0 or lost >= study.budget:
        return []
    optuna_study = _rebuild(study, runs, rows.objective_values(c, study.objective, runs))
    base = TrainConfig.from_dict(study.base_config)
    distributions = {f: _distribution(s) for f, s in study.space.items()}
    queued = []
    for _ in range(want):
        config, number = _ask(optuna_study, study, base, distributions)
        queued.append(_queue(store, config, study.name, number, parent_id))
    return queued


def _ask(optuna_study, study: Study, base: TrainConfig, distributions: dict):
    """Ask until a proposal is a valid config (an invalid one is told FAIL, so the sampler moves on)."""
    from optuna.trial import TrialState

    for _ in range(MAX_PROPOSAL_TRIES):
        trial = optuna_study.ask(distributions)
        label = " · ".join(f"{f}={_show(v)}" for f, v in trial.params.items())
        config = apply_params(base, trial.params, f"{study.name} · #{trial.number} · {label}")
        try:
            config.validate()
        except ConfigError:
            optuna_study.tell(trial, state=TrialState.FAIL)
            continue
        return config, trial.number
    raise ConfigError(f"{study.name}: {MAX_PROPOSAL_TRIES} proposals in a row were invalid configs; narrow the space")


def _queue_grid(store: RunStore, study: Study, base: TrainConfig, parent_id: str | None) -> list[str]:
    from core.search.sweep import expand_grid

    grid = {f: s["choices"] for f, s in study.space.items()}
    configs = expand_grid(base, grid, max_fields=MAX_GRID_FIELDS, max_runs=MAX_BUDGET)[:study.budget]
    return [_queue(store, config, study.name, i, parent_id) for i, config in enumerate(configs)]


def _queue(store: RunStore, config: TrainConfig, group: str, trial: int, parent_id: str | None) -> str:
    """Queue one study run; called inside the study's locked transaction, which the insert joins."""
    return store.create_run(config.to_dict(), name=config.name, n_params=count_params(config.hidden_layers()),
                            group=group, parent_id=parent_id, trial=trial)


# -- rebuilding the Optuna study from the store ------------------------------------------------
def _sampler(study: Study, n_trials: int):
    import optuna

    seed = (study.seed or 0) + n_trials  # a fresh, reproducible stream per rebuild
    if study.search == "tpe":
        # Optuna's default of 10 random start-up trials would leave a 12-run study almost all random:
        # a quarter of the budget (2 to 10) explores before TPE models the results.
        startup = max(2, min(10, study.budget // 4))
        # Optuna 5's TPE is multivariate by default for one objective (a joint density over the parameters,
        # so a learning rate is learnt with the optimizer it was good for); passing multivariate=True changes
        # nothing (checked 2026-12-04: bench/search.py gave identical studies).
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup)
    return optuna.samplers.RandomSampler(seed=seed)


def _pruner(study: Study):
    import optuna

    epochs = int(study.base_config.get("epochs") or 1)
    warmup = max(1, study.warmup_epochs)  # every run trains at least this many epochs before a check
    if study.pruner == "median":
        # Compare with the median of completed runs once a few have completed: with only one, every run below
        # it would be stopped (measured: 14 of 16 pruned, and a worse best). Optuna's default of 5 would leave a
        # 16-run study little to prune, so 2 for small budgets, growing to 5 at 40 runs.
        return optuna.pruners.MedianPruner(n_startup_trials=max(2, min(5, study.budget // 8)), n_warmup_steps=warmup)
    if study.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=max(warmup, epochs),
                                              reduction_factor=3)
    return optuna.pruners.NopPruner()


def _rebuild(study: Study, runs: list[dict], objective: dict[str, dict[int, float]],
             current: tuple[str, int, float] | None = None, pruner_state: dict[str, dict[str, float]] | None = None):
    """An in-memory Optuna study holding every run of `study` as a trial numbered like the run.

    `current` = (run id, epoch, value): a value the running run just measured, in case the store
    has not got it yet. Trial numbers missing from the store (a deleted run) become FAIL trials so
    the numbers stay aligned with `runs.trial`. `pruner_state` (from `core.store.studies.pruner_state`)
    goes back onto the trials as the system attributes the pruner wrote there.
    """
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    by_number = {r["trial"]: r for r in runs if r["trial"] is not None}
    n = max(by_number) + 1 if by_number else 0
    o = optuna.create_study(study_name=study.name, direction=study.direction,
                            sampler=_sampler(study, n), pruner=_pruner(study))
    distributions = {f: _distribution(s) for f, s in study.space.items()}
    for number in range(n):
        run = by_number.get(number)
        o.add_trial(_trial_for(run, distributions, objective, current, (pruner_state or {}).get(run["id"]))
                    if run else create_trial(state=TrialState.FAIL))
    return o


def _trial_for(run: dict, distributions: dict, objective: dict[str, dict[int, float]],
               current: tuple[str, int, float] | None, system_attrs: dict[str, float] | None = None):
    from optuna.trial import TrialState, create_trial

    values = dict(objective.get(run["id"], {}))
    if current is not None and current[0] == run["id"]:
        values[current[1]] = current[2]
    last = values[max(values)] if values else None
    params = {f: run["config"].get(f) for f in distributions}
    state = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "queued": TrialState.RUNNING,
             "running": TrialState.RUNNING}.get(run["status"], TrialState.FAIL)
    if state == TrialState.COMPLETE and last is None:  # completed without a validation value: no result
        state = TrialState.FAIL
    try:
        return create_trial(state=state, params=params, distributions=distributions, intermediate_values=values,
                            value=last if state in (TrialState.COMPLETE, TrialState.PRUNED) else None,
                            system_attrs=dict(system_attrs or {}))
    except ValueError:  # a param outside its distribution (a config edited by hand): keep the number only
        return create_trial(state=TrialState.FAIL)


# -- pruning: called by the run's StoreLogger at each epoch end -------------------------------
def prune_check(store: RunStore, run: Run) -> Callable[[int, dict], bool] | None:
    """For a study run under a pruner, `check(epoch, logs) -> bool` (True: stop after this epoch).

    Each call is one read transaction (the study's row, its runs and their objective rows), made
    only at an epoch end; never per batch. None for runs outside a pruned study.
    """
    if not run.group_name or run.trial is None:
        return None
    study = get_study(store, run.group_name)
    if study is None or study.pruner == "none":
        return None
    epochs = int(run.config.get("epochs") or 1)

    def check(epoch: int, logs: dict) -> bool:
        value = (logs or {}).get(study.objective)
        if value is None or epoch >= epochs:  # no measurement, or the run ends anyway
            return False

        def read(c):
            runs = rows.study_runs(c, study.name)
            return runs, rows.objective_values(c, study.objective, runs), rows.pruner_state(c, runs)
        runs, objective, state = store.transact(read, write=False)
        optuna_study = _rebuild(study, runs, objective, current=(run.id, epoch, float(value)), pruner_state=state)
        trial = optuna_study.trials[run.trial]
        prune = bool(optuna_study.pruner.prune(optuna_study, trial))
        written = optuna_study.get_trials(deepcopy=False)[run.trial].system_attrs
        new = [(run.id, rows.PRUNER_SCOPE, key, epoch, epoch, float(v)) for key, v in written.items()
               if key not in trial.system_attrs and isinstance(v, (int, float)) and not isinstance(v, bool)]
        if new:
            try:  # the rung this run passed, for the next decisions (this one stands even if the write fails)
                store.log_metrics(new)
            except Exception:
                logging.getLogger("core.search").warning("run %s: could not keep the pruner's rung values", run.id,
                                                         exc_info=True)
        return prune
    return check


# -- reading a study: what the CLI's `study --json` and the study page show --------------------
def trials_table(store: RunStore, name: str):
    """One row per run of the study: run id, trial, status, objective value, its parameters, test accuracy.

    Also returns the intermediate values ({run id: {epoch: value}}).
    """
    import pandas as pd

    study = require_study(store, name)

    def read(c):
        runs = rows.study_runs(c, name)
        return runs, rows.objective_values(c, study.objective, runs)
    runs, objective = store.transact(read, write=False)
    table = []
    for r in runs:
        values = objective.get(r["id"], {})
        table.append({"run_id": r["id"], "trial": r["trial"], "name": r["name"], "status": r["status"],
                     "value": values[max(values)] if values and r["status"] in FINISHED else None,
                     "epochs_run": r["epoch"], "test_accuracy": r["test_accuracy"], "finished_at": r["finished_at"],
                     **{f"param_{f}": r["config"].get(f) for f in study.space}})
    return study, pd.DataFrame(table), objective


def summary(store: RunStore, name: str) -> dict:
    """The study's picture: counts per status, the best completed run, parameter importance."""
    from core.store.schema import STATUSES

    study, table, objective = trials_table(store, name)
    counts = {s: int((table["status"] == s).sum()) if not table.empty else 0 for s in STATUSES}
    best = best_run(study, table)
    runs = store.transact(lambda c: rows.study_runs(c, name), write=False)
    importance, note = param_importance(study, _rebuild(study, runs, objective))
    counted = sum(v for s, v in counts.items() if s not in NOT_COUNTED)
    return {"group": study.name, "search": study.search, "objective": study.objective,
            "direction": study.direction, "pruner": study.pruner, "warmup_epochs": study.warmup_epochs,
            "budget": study.budget, "stopped": study.stopped, "done": counted >= study.budget and
            counts["queued"] + counts["running"] == 0, "space": study.space, "counts": counts,
            "best_run_id": best["run_id"] if best is not None else None,
            "best_value": float(best["value"]) if best is not None else None,
            "best_params": {f: best[f"param_{f}"] for f in study.space} if best is not None else None,
            "best_test_accuracy": _float(best["test_accuracy"]) if best is not None else None,
            "importance": importance, "importance_note": note}


def best_run(study: Study, table):
    """The completed run with the best objective value (ties: the earliest), or None."""
    done = table[(table["status"] == "completed") & table["value"].notna()] if not table.empty else table
    if done.empty:
        return None
    order = done.sort_values(["value", "trial"], ascending=[study.direction == "minimize", True])
    return order.iloc[0]


MIN_FOR_IMPORTANCE = 2  # completed runs fANOVA needs before it can weigh parameters


def param_importance(study: Study, optuna_study) -> tuple[dict[str, float], str | None]:
    """Each parameter's share of the objective's variance (fANOVA, seeded), summing to 1.

    Returns ({}, why) while it cannot be computed: fewer than MIN_FOR_IMPORTANCE completed runs,
    or completed runs that all share the same values.
    """
    import optuna
    from optuna.trial import TrialState

    n_done = len(optuna_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if n_done < MIN_FOR_IMPORTANCE:
        return {}, (f"needs at least {MIN_FOR_IMPORTANCE} completed runs, has {n_done}")
    if len(study.space) == 1:
        return {next(iter(study.space)): 1.0}, None
    try:
        raw = optuna.importance.get_param_importances(
            optuna_study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True)
    except (RuntimeError, ValueError) as exc:
        return {}, f"cannot be computed yet ({exc})"
    total = sum(raw.values())
    if not raw or not total or not math.isfinite(total):
        return {}, "cannot be computed yet: the completed runs do not differ in their parameters"
    return {k: float(v) / total for k, v in raw.items()}, None


def _study(row: dict) -> Study:
    return Study(**{k: row[k] for k in Study.__dataclass_fields__})


def _float(value) -> float | None:
    return None if value is None or value != value else float(value)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
