"""`sweep` and `study`: queue a study of many runs (core.search.study) and follow or steer it."""
from __future__ import annotations

import argparse
import json
import time

from core import settings
from core.cli.common import UserError, emit, open_store
from core.cli.train import add_config_arguments, config_from_args


def add_arguments(cmd: dict[str, argparse.ArgumentParser]) -> None:
    """`sweep` takes every config option of `train` (from the same registry) as its base config."""
    from core.search.study import MAX_BUDGET, OBJECTIVES, PRUNERS, SEARCHES
    p = cmd["sweep"]
    p.set_defaults(base_options=add_config_arguments(p, skip=("name",)))  # --name names the study
    p.add_argument("--search", default="tpe", help=f"{', '.join(SEARCHES)} (default tpe)")
    p.add_argument("--param", action="append", default=[], metavar="FIELD=SPEC",
                   help="a field and its range: learning_rate=1e-4:1e-1:log, dropout=0.0:0.5, batch_size=16:256:int, "
                        "optimizer=adam,sgd (a grid takes comma lists only); repeat for each field")
    p.add_argument("--trials", type=int, metavar="N", help=f"the budget: runs in all, 1-{MAX_BUDGET} "
                                                           "(a grid: its size unless smaller)")
    p.add_argument("--pruner", default="none", help=f"{', '.join(PRUNERS)} (default none): stop poor runs early")
    p.add_argument("--warmup", type=int, default=1, metavar="EPOCHS",
                   help="epochs every run trains before the pruner may stop it (default 1)")
    p.add_argument("--objective", default="val_accuracy",
                   help=f"{' or '.join(OBJECTIVES)} (maximised / minimised; default val_accuracy)")
    p.add_argument("--name", help="the study's name (its runs' group); default: study-<date>-<time>")
    p.add_argument("--json", action="store_true", help="print one JSON object (last line of stdout)")
    p = cmd["study"]
    p.add_argument("group", metavar="GROUP", help="the study's name")
    p.add_argument("--stop", action="store_true", help="queue no more runs and cancel the queued ones")
    p.add_argument("--extend", type=int, metavar="N", help="add N runs to the budget and queue them")
    p.add_argument("--confirm", type=int, metavar="K",
                   help="queue repeats of the study's K best configs (1-5, by the objective), with --seeds: "
                        "the summary then ranks them by mean test accuracy with 95 %% intervals")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="with --confirm: new seeds per config, 1-10 (K x N runs are queued)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_sweep(args) -> int:
    from core.search.space import parse_space
    from core.search.study import create_study, get_study
    name = (args.name or "").strip() or time.strftime("study-%Y%m%d-%H%M%S")
    base = config_from_args(args, args.base_options, name=name)
    space = parse_space(args.param, args.search)
    store = open_store(args)
    run_ids = create_study(store, base, space, name, settings.data_path(args.data), search=args.search,
                           budget=args.trials, objective=args.objective, pruner=args.pruner,
                           warmup_epochs=args.warmup)
    study = get_study(store, name)
    emit(args.json, {"group": name, "queued": len(run_ids), "run_ids": run_ids, "search": study.search,
                     "budget": study.budget, "pruner": study.pruner, "objective": study.objective},
         f"study {name}: queued {len(run_ids)} of {study.budget} runs ({study.search}, pruner {study.pruner}); "
         f"`python -m core worker` trains them, `python -m core study {name}` shows it")
    return 0


def cmd_study(args) -> int:
    from core.search.report import mixed_datasets_note, summary
    from core.search.study import confirm_top, extend_study, stop_study
    if (args.confirm is None) != (args.seeds is None):
        raise UserError("--confirm K and --seeds N go together: `study GROUP --confirm 3 --seeds 5`")
    store = open_store(args)
    notes = []
    if args.confirm is not None:
        queued = confirm_top(store, args.group, args.confirm, args.seeds, settings.data_path(args.data))
        notes.append(f"confirming: {len(queued)} run(s) queued ({len(queued) // args.seeds} config(s) x "
                     f"{args.seeds} seeds); `python -m core worker` trains them")
    if args.stop:
        notes.append(f"stopped: {stop_study(store, args.group)} queued run(s) cancelled")
    if args.extend is not None:
        notes.append(f"extended: {len(extend_study(store, args.group, args.extend))} run(s) queued")
    data = summary(store, args.group)
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    for note in notes:
        print(note)
    counts = ", ".join(f"{v} {k}" for k, v in data["counts"].items() if v)
    print(f"study {data['group']}: {data['search']}, {data['objective']} ({data['direction']}), pruner "
          f"{data['pruner']}, budget {data['budget']}{' (stopped)' if data['stopped'] else ''}")
    print(f"runs: {counts or 'none yet'}")
    if data["mixed_datasets"]:
        print(f"warning: {mixed_datasets_note(data['datasets'])}")
    if data["best_run_id"]:
        params = ", ".join(f"{k}={v}" for k, v in data["best_params"].items())
        print(f"best: run {data['best_run_id']} {data['objective']} {data['best_value']:.4f} ({params})")
    _print_seed_check(data)
    if data["importance"]:
        print("importance: " + ", ".join(f"{k} {v:.0%}" for k, v in data["importance"].items()))
    else:
        print(f"importance: {data['importance_note']}")
    return 0


def _print_seed_check(data: dict) -> None:
    """The confirmed configs, ranked by mean test accuracy, and whether the best is told apart from the next."""
    if data["confirmed"]:
        print("confirmed over seeds (mean test accuracy ± sample std, 95 % CI of the mean):")
    for c in data["confirmed"]:
        mean = "no completed run yet" if c["mean_test_accuracy"] is None else f"{c['mean_test_accuracy']:.4f}"
        if c["std_test_accuracy"] is not None:
            mean += f" ± {c['std_test_accuracy']:.4f} (CI {c['ci_low_test_accuracy']:.4f} to {c['ci_high_test_accuracy']:.4f})"
        pending = f", {c['pending']} still to train" if c["pending"] else ""
        params = ", ".join(f"{k}={v}" for k, v in c["params"].items())
        print(f"  {c['rank']}. config {c['config_id']} ({params}): {mean}, {c['n']} run(s){pending}")
    versus = data["best_vs_runner_up"]
    if versus is not None:
        warn = "warning: " if data["best_distinguishable"] is False or versus["test"] is None else ""
        print(f"{warn}best vs runner-up: {versus['verdict']}")


COMMANDS = {"sweep": cmd_sweep, "study": cmd_study}
