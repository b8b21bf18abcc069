"""Reading a study: its trials as a table, its summary, its best run and the weight of each parameter.

What `python -m core study NAME [--json]` prints and the Study page shows. Reads only: the study's
row, its runs and their objective rows, and an Optuna study rebuilt from them for fANOVA.
"""
from __future__ import annotations

import logging
import math

from core.errors import DigitLabError
from core.search.repeats import compare_selections, config_ids, group_runs
from core.search.significance import Comparison
from core.search.study import NOT_COUNTED, Study, confirm_group, rebuild, require_study
from core.store import studies as rows
from core.store.facade import RunStore
from core.store.schema import FINISHED, STATUSES

log = logging.getLogger("core.search")


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
    study, table, objective = trials_table(store, name)
    counts = {s: int((table["status"] == s).sum()) if not table.empty else 0 for s in STATUSES}
    best = best_run(study, table)
    runs = store.transact(lambda c: rows.study_runs(c, name), write=False)
    importance, note = param_importance(study, rebuild(study, runs, objective))
    datasets = datasets_of(runs)
    counted = sum(v for s, v in counts.items() if s not in NOT_COUNTED)
    return {"group": study.name, "search": study.search, "objective": study.objective,
            "direction": study.direction, "pruner": study.pruner, "warmup_epochs": study.warmup_epochs,
            "budget": study.budget, "stopped": study.stopped, "done": counted >= study.budget and
            counts["queued"] + counts["running"] == 0, "space": study.space, "counts": counts,
            "best_run_id": best["run_id"] if best is not None else None,
            "best_value": float(best["value"]) if best is not None else None,
            "best_params": {f: _plain(best[f"param_{f}"]) for f in study.space} if best is not None else None,
            "best_test_accuracy": _float(best["test_accuracy"]) if best is not None else None,
            "importance": importance, "importance_note": note,
            "datasets": datasets, "mixed_datasets": len(datasets) > 1, **_seed_check(store, study, table)}


def _seed_check(store: RunStore, study: Study, table) -> dict:
    """The summary's confirmed configs, and whether its best run is told apart from the runner-up."""
    ranked = confirmed(store, study.name)
    versus = best_vs_runner_up(store, study, table, ranked)
    return {"confirmed": ranked, "best_vs_runner_up": versus.to_dict() if versus else None,
            "best_distinguishable": versus.distinguishable if versus and versus.test else None}


def confirmed(store: RunStore, name: str) -> list[dict]:
    """The configs a confirmation (core.search.study.confirm_top) repeated, best mean test accuracy first.

    One dict per config: rank, config_id, name, n (completed runs of it, wherever they are: the
    study's run and its repeats), pending (its confirmation runs still queued or running), the
    mean, sample std and 95 % t interval of its test accuracy (fractions; NaN → None while N < 2),
    the mean last val accuracy, run_ids and params (the study's searched fields). [] before any
    confirmation.
    """
    study = require_study(store, name)
    runs = store.list_runs()
    mine = runs[runs["group_name"] == confirm_group(name)]
    if mine.empty:
        return []
    # a run records its dataset when it starts: one still queued is counted under the study's dataset
    known = next((d for d in runs.loc[runs["group_name"].isin((name, confirm_group(name))), "dataset"]
                  if isinstance(d, dict) and d.get("sha256")), None)
    mine = mine.assign(dataset=[d if isinstance(d, dict) and d.get("sha256") else known for d in mine["dataset"]])
    mine = mine.assign(config_id=config_ids(mine).to_numpy())
    wanted = list(dict.fromkeys(mine["config_id"]))
    groups = group_runs(runs[config_ids(runs).isin(wanted)]).set_index("config_id")
    out = []
    for cid in wanted:  # a config whose runs have all failed so far is still listed, with n = 0
        g = groups.loc[cid] if cid in groups.index else {}
        first = mine[mine["config_id"] == cid].iloc[0]
        out.append({"config_id": cid, "name": g.get("name", first["name"]), "n": int(g.get("n", 0)),
                    "pending": int(mine[mine["config_id"] == cid]["status"].isin(("queued", "running")).sum()),
                    **{k: _float(g.get(k)) for k in ("mean_test_accuracy", "std_test_accuracy",
                                                     "ci_low_test_accuracy", "ci_high_test_accuracy",
                                                     "mean_last_val_accuracy")},
                    "run_ids": list(g.get("run_ids", [])),
                    "params": {f: _plain(first["config"].get(f)) for f in study.space}})
    out.sort(key=lambda r: -r["mean_test_accuracy"] if r["mean_test_accuracy"] is not None else math.inf)
    return [{"rank": i + 1, **r} for i, r in enumerate(out)]


def best_vs_runner_up(store: RunStore, study: Study | str, table=None, ranked: list[dict] | None = None
                      ) -> Comparison | None:
    """Is the study's best told apart from the runner-up? The Comparison of runner-up (A) and best (B).

    After a confirmation with two or more configs: its top two configs over their seeds (Welch).
    Before: the best and second-best completed runs by the objective, digit by digit on the test
    set (McNemar, which does not cover seed noise). None with fewer than two to compare, or when
    they cannot be compared (different datasets: the summary's mixed-datasets warning says so).
    """
    study = require_study(store, study) if isinstance(study, str) else study
    ranked = confirmed(store, study.name) if ranked is None else ranked
    try:
        if len([r for r in ranked if r["n"]]) >= 2:
            best, second = ranked[0], ranked[1]
            return compare_selections(store, second["config_id"], best["config_id"],
                                      labels=(f"runner-up {second['config_id']}", f"best {best['config_id']}"))
        table = trials_table(store, study.name)[1] if table is None else table
        order = ranked_runs(study, table)
        if len(order) < 2:
            return None
        best, second = order.iloc[0]["run_id"], order.iloc[1]["run_id"]
        return compare_selections(store, second, best, labels=(f"runner-up {second}", f"best run {best}"))
    except DigitLabError as exc:
        log.warning("study %s: best and runner-up cannot be compared (%s)", study.name, exc)
        return None


def datasets_of(runs: list[dict]) -> list[dict]:
    """The datasets the study's runs trained on, one entry per fingerprint, most used first:
    {sha256, source, n_train, n_test, runs}. More than one means their scores are not comparable."""
    found: dict[str, dict] = {}
    for r in runs:
        data = r.get("dataset") or {}
        sha = data.get("sha256") if isinstance(data, dict) else None
        if sha:
            entry = found.setdefault(sha, {"sha256": sha, "source": data.get("source"), "n_train": data.get("n_train"),
                                           "n_test": data.get("n_test"), "runs": 0})
            entry["runs"] += 1
    return sorted(found.values(), key=lambda d: -d["runs"])


def best_run(study: Study, table):
    """The completed run with the best objective value (ties: the earliest), or None."""
    order = ranked_runs(study, table)
    return None if order.empty else order.iloc[0]


def ranked_runs(study: Study, table):
    """The completed runs with an objective value, best first (ties: the earliest trial)."""
    done = table[(table["status"] == "completed") & table["value"].notna()] if not table.empty else table
    if done.empty:
        return done
    return done.sort_values(["value", "trial"], ascending=[study.direction == "minimize", True])


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


def mixed_datasets_note(datasets: list[dict]) -> str:
    """One line saying which datasets a study's runs trained on (for a study with more than one)."""
    def one(d: dict) -> str:
        size = f"{d['n_train']:,} training digits" if isinstance(d.get("n_train"), int) else "size unknown"
        return f"{d['runs']} run{'s' if d['runs'] != 1 else ''} on {d.get('source') or 'an unnamed source'} ({size})"
    return ("its runs trained on different datasets, so their scores are not comparable: "
            + "; ".join(one(d) for d in datasets))


def _plain(value):
    """A table cell as plain JSON-able Python (numpy's 32 → 32, not "32"; NaN → None)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def _float(value) -> float | None:
    return None if value is None or value != value else float(value)
