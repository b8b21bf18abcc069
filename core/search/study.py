"""Studies: a named group of runs whose configs Optuna proposes (random, TPE) or a grid lays out.

Optuna samples and prunes; Digit Lab writes neither a sampler nor a pruner. Our store stays the
one source of truth and the one queue:

- a study is a `studies` row (search, space, objective, pruner, budget, base config, seed) and
  its runs are ordinary queued runs (`group_name` = the study's name, `trial` = Optuna's trial
  number) that any worker on any machine claims;
- whenever a proposal or a pruning decision is needed, an in-memory Optuna study is **rebuilt
  from the store** (`rebuild`): every run becomes a trial (completed → COMPLETE, pruned →
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
- pruning (core.search.pruning): the worker hands each study run a function that the run's
  StoreLogger calls once per epoch end; it rebuilds the study and asks the pruner made here
  (`make_pruner`: it is part of the rebuilt study, since TPE under Hyperband samples per bracket).

The space is read in core.search.space; what the CLI and the Study page show is built in
core.search.report. A grid is the plan itself: `search="grid"` queues every combination at once,
in grid order (`core.search.space.expand_grid`, with its one set of limits), so the whole plan
shows in the queue; Optuna still prunes its runs and weighs its parameters. A run's objective value is its last epoch's `val_accuracy`
(maximised) or `val_loss` (minimised): what the model it keeps scored on validation.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace

from core.config import ConfigError, TrainConfig
from core.data.dataset import check_dataset
from core.search.repeats import MAX_REPEATS, check_count, config_ids, repeat_configs
from core.store import studies as rows
from core.search.space import (MAX_RUNS, apply_params, check_grid, distribution, expand_grid, field_kind,
                               show_value)
from core.store.facade import RunStore
from core.store.queue import queue_run
from core.store.runs import UNCOUNTED_IN_BUDGET
from core.store.schema import Run, StoreError

SEARCHES = ("random", "tpe", "grid")
PRUNERS = ("none", "median", "hyperband")
OBJECTIVES = {"val_accuracy": "maximize", "val_loss": "minimize"}
MAX_BUDGET = MAX_RUNS     # runs in one study (200)
MAX_PROPOSAL_TRIES = 20   # proposals Optuna may make for one slot before the space counts as impossible
# Runs that ended without a result (failed, interrupted) are replaced, but at most this many times
# the budget in all, so a space whose runs always crash cannot queue forever.
NOT_COUNTED = UNCOUNTED_IN_BUDGET  # ("failed", "interrupted"); deleting any other study run lowers the budget


@dataclass(frozen=True)
class Study:
    """One `studies` row."""
    name: str; search: str; objective: str; direction: str; pruner: str; warmup_epochs: int
    budget: int; space: dict; base_config: dict; seed: int | None; stopped: bool; created_at: float


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
    for field in space:
        field_kind(field)  # ConfigError for a field that cannot be varied
    if search == "grid":
        size = check_grid(grid_of(space))  # the one set of grid limits, the Train page's Grid tab's too
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
            label = f"{field}={show_value(value)}"
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
    name = group_name(name)
    n_train = check_dataset(data_path).n_train
    budget = check_study(base_config, space, search, budget, objective, pruner, warmup_epochs, n_train)
    base = replace(base_config, name=base_config.name or name)
    # a grid is laid out and every combination checked against the dataset before anything is written
    grid = expand_grid(base, grid_of(space), n_train)[:budget] if search == "grid" else []
    row = dict(name=name, search=search, objective=objective, direction=OBJECTIVES[objective], pruner=pruner,
               warmup_epochs=warmup_epochs, budget=budget, space=space, base_config=base.to_dict(),
               seed=base.seed if seed is None else int(seed), stopped=False, created_at=time.time())

    def create(c):
        if rows.name_taken(c, name):
            raise ConfigError(f"a group named {name!r} already exists; choose another name")
        rows.insert_study(c, row)
        if search == "grid":
            return [_queue(store, config, name, i, parent_id) for i, config in enumerate(grid)]
        return _top_up(c, store, study_of(row), parent_id)
    return store.transact(create)


def group_name(name: str) -> str:
    """The name of a new study or sweep, stripped: 1 to 200 characters (ConfigError otherwise).

    That no study or group of runs has it yet is checked inside the transaction that records it.
    """
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ConfigError(f"group name must be 1 to 200 characters, got {name!r:.60}")
    return name


def grid_of(space: dict[str, dict]) -> dict[str, list]:
    """A grid's values per field ({field: [values]}) from its space of lists."""
    for field, spec in space.items():
        if spec.get("type") != "categorical":
            raise ConfigError(f"{field}: a grid takes a list of values, not a range")
    return {field: list(spec["choices"]) for field, spec in space.items()}


def get_study(store: RunStore, name: str) -> Study | None:
    row = store.transact(lambda c: rows.study_row(c, name), write=False)
    return study_of(row) if row else None


def list_studies(store: RunStore) -> list[Study]:
    """Every study, newest first."""
    return [study_of(r) for r in store.transact(rows.study_rows, write=False)]


def require_study(store: RunStore, name: str) -> Study:
    study = get_study(store, name)
    if study is None:
        raise StoreError(f"no study named {name!r}: `.venv/bin/python -m core sweep … --name {name}` makes one")
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


# -- confirming the best configs over seeds -----------------------------------------------------
MAX_CONFIRM = 5  # configs one confirmation repeats (each with up to MAX_REPEATS seeds)


def confirm_group(name: str) -> str:
    """The group of a study's confirmation runs: apart from the study's own, so they use no budget
    and Optuna never sees them (a study run's group_name is the study's name, 200 characters at most)."""
    return f"{name[:188]} · confirm"


def confirm_top(store: RunStore, name: str, k: int, seeds: int, data_path=None) -> list[str]:
    """Queue `seeds` more runs of each of the study's `k` best configs; returns the k × seeds run ids.

    The best configs are those of the completed runs with the best objective value, one per config
    id (a config already confirmed is not counted twice). Each gets seeds that none of its runs used
    yet (after the highest one so far). Everything is checked before anything is queued: k (1 to
    MAX_CONFIRM), seeds (1 to MAX_REPEATS), and every config against the dataset at `data_path`.
    Fewer completed configs than k: the ones there are. core.search.report.confirmed ranks them.
    """
    study = require_study(store, name)
    check_count("configs to confirm", k, MAX_CONFIRM), check_count("seeds", seeds, MAX_REPEATS)
    runs = store.list_runs().pipe(lambda f: f.assign(config_id=config_ids(f).to_numpy()))
    done = runs[(runs["group_name"] == name) & (runs["status"] == "completed")]
    values = store.transact(lambda c: rows.objective_values(c, study.objective, [{"id": i} for i in done["run_id"]]),
                            write=False)
    done = done.assign(value=[v[max(v)] if (v := values.get(i)) else None for i in done["run_id"]]).dropna(
        subset=["value"]).sort_values("value", ascending=study.direction == "minimize", kind="stable")
    if done.empty:
        raise ConfigError(f"{name} has no completed run with a {study.objective} yet: nothing to confirm")
    n_train, plans = check_dataset(data_path).n_train if data_path is not None else None, []
    for _, run in done.drop_duplicates("config_id").head(k).iterrows():
        used = [c.get("seed") for c in runs.loc[runs["config_id"] == run["config_id"], "config"]]
        first = max((int(x) for x in used if isinstance(x, int)), default=0) + 1
        base = replace(TrainConfig.from_dict(run["config"]), seed=first, name=f"{str(run['name'])[:150]} · confirm")
        plans += [replace(c, name=f"{c.name} · seed {c.seed}").validate(n_train) for c in repeat_configs(base, seeds)]
    with store.write():  # all of them or none
        return [queue_run(store, c, group=confirm_group(name)) for c in plans]


# -- asking: one locked transaction ------------------------------------------------------------
def _top_up(c, store: RunStore, study: Study | None, parent_id: str | None, name: str | None = None) -> list[str]:
    """Inside a write transaction (connection `c`): lock the study's row, count its runs, ask Optuna for the rest."""
    if study is None:
        row = rows.study_row(c, name, lock=True)
        if row is None:
            return []
        study = study_of(row)
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
    optuna_study = rebuild(study, runs, rows.objective_values(c, study.objective, runs))
    base = TrainConfig.from_dict(study.base_config)
    distributions = {f: distribution(s) for f, s in study.space.items()}
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
        label = " · ".join(f"{f}={show_value(v)}" for f, v in trial.params.items())
        config = apply_params(base, trial.params, f"{study.name} · #{trial.number} · {label}")
        try:
            config.validate()
        except ConfigError:
            optuna_study.tell(trial, state=TrialState.FAIL)
            continue
        return config, trial.number
    raise ConfigError(f"{study.name}: {MAX_PROPOSAL_TRIES} proposals in a row were invalid configs; narrow the space")


def _queue(store: RunStore, config: TrainConfig, group: str, trial: int, parent_id: str | None) -> str:
    """Queue one study run; called inside the study's locked transaction, which the insert joins."""
    return queue_run(store, config, group=group, parent_id=parent_id, trial=trial)


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


def make_pruner(study: Study):
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


def rebuild(study: Study, runs: list[dict], objective: dict[str, dict[int, float]],
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
                            sampler=_sampler(study, n), pruner=make_pruner(study))
    distributions = {f: distribution(s) for f, s in study.space.items()}
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


def study_of(row: dict) -> Study:
    """A Study from its `studies` row (a dict)."""
    return Study(**{k: row[k] for k in Study.__dataclass_fields__})
