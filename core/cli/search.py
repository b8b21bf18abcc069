"""`sweep` and `study`: queue a study of many runs (core.search.study) and follow or steer it."""
from __future__ import annotations

import argparse
import json
import time

from core import settings
from core.cli.common import emit, open_store
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
    from core.search.study import extend_study, stop_study
    store = open_store(args)
    notes = []
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
    if data["importance"]:
        print("importance: " + ", ".join(f"{k} {v:.0%}" for k, v in data["importance"].items()))
    else:
        print(f"importance: {data['importance_note']}")
    return 0


COMMANDS = {"sweep": cmd_sweep, "study": cmd_study}
