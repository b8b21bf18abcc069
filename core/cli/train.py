"""`ingest`, `train` and `worker`: get the digits, train a run now or queue it, train the queue.

The train options are not listed here: one option per TrainConfig field, made from the field's
Param in core.config (flag, type, help, choices), so a new hyperparameter is an option as soon as
it is declared. `sweep` takes the same options as its base config.
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from typing import Any

from core import settings
from core.cli.common import emit, model_path, open_store, parse_layers

_TYPES = {"int": int, "float": float}


def add_config_arguments(p: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> list[str]:
    """One option per TrainConfig field except `skip`; returns their dests (the field names).

    Every option defaults to None ("not given": the preset's value stands), except the
    architecture, which defaults to TrainConfig's.
    """
    from core.config import PARAMS, TrainConfig
    defaults = {f.name: f.default for f in fields(TrainConfig)}
    dests = []
    for name, param in PARAMS.items():
        if name in skip:
            continue
        options = [param.flag]
        if f"--{name.replace('_', '-')}" != param.flag:  # "--lr" also answers to "--learning-rate"
            options.append(f"--{name.replace('_', '-')}")
        text = param.help.replace("%", "%%")  # argparse formats help with %
        default = defaults[name] if name == "architecture" else None
        if param.choices:
            text = f"{', '.join(param.choices)}{f' (default {default})' if default else ''}. {text}"
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": text}
        if param.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif param.kind in _TYPES:
            kwargs["type"] = _TYPES[param.kind]
            if param.kind == "int":
                kwargs["metavar"] = "N"
        p.add_argument(*options, **kwargs)
        dests.append(name)
    return dests


def config_from_args(args, names: list[str], **extra: Any):
    """The validated TrainConfig the options `names` ask for (plus `extra` fields)."""
    from core.config import make_config
    overrides = {name: getattr(args, name) for name in names}
    architecture = overrides.pop("architecture")
    if "layers" in overrides:
        overrides["layers"] = parse_layers(overrides["layers"])
    return make_config(architecture, **overrides, **extra)


def add_arguments(cmd: dict[str, argparse.ArgumentParser]) -> None:
    p = cmd["ingest"]
    p.add_argument("--from", dest="src", metavar="PATH",
                   help="folder with the four MNIST IDX files (.gz or raw) or a Keras mnist.npz; "
                        "default: download via Keras, else the offline 5,000-digit sample")
    p.add_argument("--out", help="HDF5 file to write (default: the --data path)")
    p.add_argument("--overwrite", action="store_true", help="rewrite even if the inputs did not change")
    p.add_argument("--offline", action="store_true", help="do not try to download; use the bundled sample")

    p = cmd["train"]
    p.set_defaults(config_options=add_config_arguments(p))
    p.add_argument("--group", help="put the run in a named group (as sweeps do)")
    p.add_argument("--queue", action="store_true", help="only queue the run; a worker trains it")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="train (or with --queue, queue) N runs of this config, 1-10, with seeds s, s+1, ...: "
                        "repeats that share one config id, so `compare` can measure the seed noise")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (last line of stdout); "
                                                       "with --repeat it holds run_ids and config_id")

    p = cmd["worker"]
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--max-runs", type=int, metavar="N", help="exit after N runs")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS", help="exit after this long without work")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between queue checks (default 1)")
    for name in ("train", "worker"):
        cmd[name].add_argument("--exec", dest="exec_mode", choices=("auto", "default"),
                               help="how runs execute: auto (steps per execution, XLA, bfloat16 where they "
                                    "are faster for the model; the default) or default (Keras' defaults); "
                                    "same as DIGITLAB_EXEC")


def cmd_ingest(args) -> int:
    from core.data.ingest import ingest
    out = args.out or settings.data_path(args.data)
    tty = sys.stderr.isatty()

    def progress(stage: str, fraction: float) -> None:
        if tty:
            print(f"\r{stage:<40} {fraction:6.0%}", end="", file=sys.stderr, flush=True)
    result = ingest(args.src, out, overwrite=args.overwrite, allow_download=not args.offline, progress=progress)
    if tty:
        print(file=sys.stderr)
    print(result.message)
    return 0


def _exec_mode(args) -> None:
    """--exec reaches core.model.execution.choose_plan through DIGITLAB_EXEC (this process and its runs)."""
    if getattr(args, "exec_mode", None):
        os.environ["DIGITLAB_EXEC"] = args.exec_mode


def cmd_train(args) -> int:
    _exec_mode(args)
    from core.store.queue import queue_run
    from core.train.run import train
    config = config_from_args(args, args.config_options)
    data = settings.data_path(args.data)
    if args.repeat is not None:
        return _train_repeats(args, config, data)
    store = open_store(args)
    if args.queue:
        run_id = queue_run(store, config, data, group=args.group)
        emit(args.json, {"run_id": run_id, "status": "queued"}, f"queued run {run_id}; "
                                                                  f"`python -m core worker` trains it")
        return 0
    try:
        run = train(store, config, data, progress=None if args.json and not sys.stderr.isatty() else _progress_bar,
                    group=args.group)
    except KeyboardInterrupt:
        print("\ncancelled (Ctrl-C): the run is marked cancelled, its metrics are kept", file=sys.stderr)
        return 130
    summary, text = _summary(store, run)
    emit(args.json, summary, text)
    return 0 if run.status == "completed" else 1


def _summary(store, run) -> tuple[dict, str]:
    """One trained run as `train --json` prints it, and as one line of text."""
    summary = {"run_id": run.id, "name": run.name, "status": run.status, "architecture": run.architecture,
               "test_accuracy": run.test_accuracy, "test_loss": run.test_loss, "params": run.n_params,
               "epochs_run": run.epoch, "best_val_accuracy": run.best_val_accuracy,
               "seconds": round(run.duration or 0.0, 2), "model_path": model_path(store, run.id),
               "error": run.error.splitlines()[0] if run.error else None}
    text = (f"run {run.id} {run.status}: test accuracy {run.test_accuracy:.4f}, {run.epoch} epochs, "
            f"{summary['seconds']:.1f} s" if run.status == "completed" else
            f"run {run.id} {run.status}: {summary['error']}")
    return summary, text


def _train_repeats(args, config, data) -> int:
    """`train --repeat N`: every seed checked first, then queued (--queue) or trained here one after another."""
    from core.search.repeats import queue_repeats, repeat_plan, run_config_id
    from core.search.significance import summarize
    from core.train.run import train
    plan = repeat_plan(config, args.repeat, data)  # N and every config checked before anything is written
    store, cid = open_store(args), run_config_id(config, data)
    if args.queue:
        run_ids = queue_repeats(store, config, args.repeat, data, group=args.group)
        emit(args.json, {"run_ids": run_ids, "config_id": cid, "status": "queued", "seeds": [c.seed for c in plan]},
             f"queued {len(run_ids)} repeats of config {cid} (seeds {plan[0].seed}-{plan[-1].seed}): "
             f"{' '.join(run_ids)}; `python -m core worker` trains them")
        return 0
    runs = []
    for i, one in enumerate(plan, 1):
        print(f"repeat {i}/{len(plan)} (seed {one.seed})", file=sys.stderr, flush=True)
        try:
            runs.append(train(store, one, data, group=args.group,
                              progress=None if args.json and not sys.stderr.isatty() else _progress_bar))
        except KeyboardInterrupt:
            print(f"\ncancelled (Ctrl-C) at repeat {i}: that run is marked cancelled, the {i - 1} before it are kept"
                  f"{'' if i == len(plan) else ', the rest were not started'}", file=sys.stderr)
            return 130
        if not args.json:
            print(_summary(store, runs[-1])[1])
    stats = summarize(r.test_accuracy for r in runs if r.status == "completed")
    ok = all(r.status == "completed" for r in runs)
    result = {"run_ids": [r.id for r in runs], "config_id": cid, "status": "completed" if ok else "incomplete",
              "seeds": [c.seed for c in plan], "n_completed": stats.n, "mean_test_accuracy": stats.to_dict()["mean"],
              "std_test_accuracy": stats.to_dict()["std"], "runs": [_summary(store, r)[0] for r in runs]}
    spread = f" ± {stats.std:.4f} (sample std)" if stats.n > 1 else ""
    emit(args.json, result, f"config {cid}: {stats.n} of {len(runs)} repeats completed, test accuracy "
                            f"{stats.mean:.4f}{spread}; `python -m core compare {cid} OTHER` tests a difference")
    return 0 if ok else 1


def _progress_bar(event: dict) -> None:
    logs = event["logs"]
    width = 30
    filled = int(width * event["batch"] / max(1, event["steps"]))
    line = (f"epoch {event['epoch']}/{event['epochs']} [{'#' * filled}{'.' * (width - filled)}] "
            f"{event['batch']}/{event['steps']} loss {logs.get('loss', float('nan')):.4f} "
            f"acc {logs.get('accuracy', float('nan')):.4f}")
    if event["done"]:
        if "val_accuracy" in logs:
            line += f" val_loss {logs['val_loss']:.4f} val_acc {logs['val_accuracy']:.4f}"
        print(f"\r{line} {event['seconds']:.1f}s", file=sys.stderr, flush=True)
    elif sys.stderr.isatty():
        print(f"\r{line}", end="", file=sys.stderr, flush=True)


def cmd_worker(args) -> int:
    _exec_mode(args)
    from core.worker import StopRequest, configure_logging, run_worker
    configure_logging()  # the worker's warnings and the store's reconnects, on stderr with timestamps
    stop = StopRequest() if args.stop is None else args.stop
    n = run_worker(open_store(args), settings.data_path(args.data), once=args.once, max_runs=args.max_runs,
                   poll=args.poll, idle_exit=args.idle_exit, stop=stop)
    if not stop.early:  # stopped while starting: run_worker's one line says it all
        print(f"worker finished {n} run(s)")
    return 0


COMMANDS = {"ingest": cmd_ingest, "train": cmd_train, "worker": cmd_worker}
