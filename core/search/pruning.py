"""Pruning: whether a study run should stop after an epoch, decided by the study's Optuna pruner.

The worker (core.worker) asks `prune_check(store, run)` for each run it claims and hands the answer
to the run (core.train.run.execute), so training never imports the search. For a study run under
a pruner it is a function the run's StoreLogger calls once per epoch end (one read transaction,
none per batch): it rebuilds the study from the store (core.search.study.rebuild, with the pruner
`make_pruner` gives it) and asks the pruner about this trial.

Optuna's successive-halving (and so Hyperband) pruner writes on the trial itself the value with
which it passed each rung ("completed_rung_0" …). A rebuilt study would hold none of them, so every
run would be alone at its rung and always promoted: they are kept as metric rows of scope "pruner"
(`core.store.studies.PRUNER_SCOPE`), written here with the decision, and handed back to the next
rebuild (`core.store.studies.pruner_state`).
"""
from __future__ import annotations

import logging
from typing import Callable

from core.search.study import get_study, rebuild
from core.store import studies as rows
from core.store.facade import RunStore
from core.store.schema import Run

log = logging.getLogger("core.search")


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
        optuna_study = rebuild(study, runs, objective, current=(run.id, epoch, float(value)), pruner_state=state)
        trial = optuna_study.trials[run.trial]
        prune = bool(optuna_study.pruner.prune(optuna_study, trial))
        written = optuna_study.get_trials(deepcopy=False)[run.trial].system_attrs
        new = [(run.id, rows.PRUNER_SCOPE, key, epoch, epoch, float(v)) for key, v in written.items()
               if key not in trial.system_attrs and isinstance(v, (int, float)) and not isinstance(v, bool)]
        if new:
            try:  # the rung this run passed, for the next decisions (this one stands even if the write fails)
                store.log_metrics(new)
            except Exception:
                log.warning("run %s: could not keep the pruner's rung values", run.id, exc_info=True)
        return prune
    return check
