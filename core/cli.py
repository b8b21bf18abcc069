"""`python -m core COMMAND`: every action of Digit Lab from the shell.

The CLI calls the same core functions the dashboard pages call. A user error (bad argument,
bad value, missing file, unknown run) prints one line on stderr and exits with 2; nothing is
written. `--db` and `--data` are accepted by every command.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any, Sequence

from core.errors import DigitLabError
from core import settings

COMMAND_HELP = {
    "ingest": "Convert MNIST (IDX folder, mnist.npz, Keras download, or the offline sample) into the HDF5 dataset.",
    "train": "Train one run now, in this process, streaming its metrics into the store (or --queue it for a worker).",
    "worker": "Claim queued runs from the store and train them, one at a time.",
    "runs": "List runs with their status and summary metrics.",
    "show": "Show one run: config, summary and test confusion matrix.",
    "cancel": "Cancel a queued run, or ask a running one to stop at its next logging window.",
    "delete": "Delete a run with its metrics, evaluations and model file.",
    "export": "Export the runs table as CSV or JSON.",
    "predict": "Predict the digit in PNG/JPEG images with a completed run's model.",
    "sweep": "Queue a study: Optuna proposes configs (random, tpe) or a grid lays them out; workers train them.",
    "study": "Show a study: runs per status, the best run and its parameters, parameter importance.",
    "copy-store": "Copy every run, metric, evaluation, drawing, study and model from one store to another.",
}


class UserError(DigitLabError):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UserError(f"{message} (see `{self.prog} --help`)")  # prog: "python -m core" or "python -m core train"


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="SQLAlchemy URL or SQLite file of the run store "
                                     "(default: $DIGITLAB_DB or sqlite:///runs.db at the repo root)")
    common.add_argument("--data", help="HDF5 dataset path (default: $DIGITLAB_DATA or data/mnist.h5)")
    parser = _Parser(prog="python -m core", description="Digit Lab: explore neural networks on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    cmd = {name: sub.add_parser(name, parents=[common], help=text, description=text)
           for name, text in COMMAND_HELP.items()}

    p = cmd["ingest"]
    p.add_argument("--from", dest="src", metavar="PATH",
                   help="folder with the four MNIST IDX files (.gz or raw) or a Keras mnist.npz; "
                        "default: download via Keras, else the offline 5,000-digit sample")
    p.add_argument("--out", help="HDF5 file to write (default: the --data path)")
    p.add_argument("--overwrite", action="store_true", help="rewrite even if the inputs did not change")
    p.add_argument("--offline", action="store_true", help="do not try to download; use the bundled sample")

    from core.model.architectures import ARCHITECTURES
    from core.model.architectures import ACTIVATIONS
    from core.config import HELP as RAW_HELP, LR_SCHEDULES, OPTIMIZERS
    HELP = {k: v.replace("%", "%%") for k, v in RAW_HELP.items()}  # argparse formats help with %
    p = cmd["train"]
    p.add_argument("--arch", "--architecture", dest="architecture", default="cnn-small",
                   help=f"{', '.join(ARCHITECTURES)} (default cnn-small). {HELP['architecture']}")
    p.add_argument("--layers", help="custom layer stack as JSON, e.g. "
                                    "'[{\"type\": \"Dense\", \"units\": 64, \"activation\": \"relu\"}]'")
    p.add_argument("--epochs", type=int, help=HELP["epochs"])
    p.add_argument("--batch-size", type=int, help=HELP["batch_size"])
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, help=HELP["learning_rate"])
    p.add_argument("--optimizer", help=f"{', '.join(OPTIMIZERS)}. {HELP['optimizer']}")
    p.add_argument("--activation", help=f"{', '.join(ACTIVATIONS)}. {HELP['activation']}")
    p.add_argument("--dropout", type=float, help=HELP["dropout"])
    p.add_argument("--validation-split", type=float, help=HELP["validation_split"])
    p.add_argument("--seed", type=int, help=HELP["seed"])
    p.add_argument("--early-stopping", type=int, metavar="PATIENCE", help=HELP["early_stopping"])
    p.add_argument("--lr-schedule", help=f"{', '.join(LR_SCHEDULES)}. {HELP['lr_schedule']}")
    p.add_argument("--train-limit", type=int, metavar="N", help=HELP["train_limit"])
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help=HELP["augment"])
    p.add_argument("--elastic", action=argparse.BooleanOptionalAction, default=None, help=HELP["elastic"])
    p.add_argument("--name", help=HELP["name"])
    p.add_argument("--group", help="put the run in a named group (as sweeps do)")
    p.add_argument("--queue", action="store_true", help="only queue the run; a worker trains it")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object (last line of stdout)")

    p = cmd["worker"]
    p.add_argument("--once", action="store_true", help="exit when the queue is empty")
    p.add_argument("--max-runs", type=int, metavar="N", help="exit after N runs")
    p.add_argument("--idle-exit", type=float, metavar="SECONDS", help="exit after this long without work")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between queue checks (default 1)")

    p = cmd["runs"]
    p.add_argument("--status", help="only runs with this status")
    p.add_argument("--limit", type=int, default=50, help="show at most N runs (default 50)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    for name in ("show", "cancel", "delete"):
        cmd[name].add_argument("run_id", metavar="RUN_ID")
    cmd["show"].add_argument("--json", action="store_true", help="print one JSON object")

    p = cmd["export"]
    p.add_argument("--format", choices=("csv", "json"), default="csv", help="csv (default) or json")
    p.add_argument("--out", help="file to write (default: stdout)")

    p = cmd["predict"]
    p.add_argument("--run", required=True, dest="run_ids", action="append", metavar="RUN_ID",
                   help="a completed run; repeat (--run A --run B) to combine runs: their probabilities are averaged")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files, any size, either polarity")
    p.add_argument("--json", action="store_true", help="print one JSON array, an object per image")
    _study_arguments(cmd)
    _copy_store_arguments(cmd["copy-store"])
    return parser


def _copy_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="src", required=True, metavar="URL",
                   help="the store to copy from: sqlite:///runs.db, a SQLite file, or postgresql+psycopg://USER@HOST/DB")
    p.add_argument("--to", dest="dst", required=True, metavar="URL",
                   help="the store to copy into (made if new; a re-run copies only what is missing)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stop = _catch_worker_stop(argv)  # before the slow imports below
    try:
        return _run(argv, stop)
    finally:
        if stop is not None:
            stop.uninstall()


def _catch_worker_stop(argv: list[str]):
    """For `worker` in the main thread, catch SIGTERM/SIGINT now: the imports that follow take a second
    or more, and a supervisor's stop that arrives during them must still end the worker cleanly."""
    if argv[:1] != ["worker"] or threading.current_thread() is not threading.main_thread():
        return None
    from core.worker import StopRequest  # light: the store and TensorFlow are imported later
    return StopRequest().install()


def _run(argv: list[str], stop) -> int:
    from core.model.architectures import ArchitectureError
    from core.config import ConfigError
    from core.data.dataset import DataError
    from core.predict.preprocess import InferenceError
    from core.store.schema import StoreError
    errors = (UserError, ConfigError, DataError, StoreError, ArchitectureError, InferenceError)
    try:
        args = build_parser().parse_args(argv)
        args.stop = stop  # the worker's StopRequest; None for every other command
        return COMMANDS[args.command](args) or 0
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: still one line unless asked for the traceback
        if os.environ.get("DIGITLAB_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set DIGITLAB_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


def _store(args):
    from core.store.facade import RunStore
    return RunStore(settings.db_url(args.db))


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


def cmd_train(args) -> int:
    from core.config import make_config
    from core.train.run import queue_run, train
    layers = None
    if args.layers:
        try:
            layers = json.loads(args.layers)
        except json.JSONDecodeError as exc:
            raise UserError(f"--layers is not valid JSON ({exc.msg} at character {exc.pos})") from None
    fields = ("epochs", "batch_size", "learning_rate", "optimizer", "activation", "dropout", "validation_split",
              "seed", "early_stopping", "lr_schedule", "train_limit", "augment", "elastic", "name")
    overrides: dict[str, Any] = {f: getattr(args, f) for f in fields}
    if layers is not None:
        overrides["layers"] = layers
    config = make_config(args.architecture, **overrides)
    data = settings.data_path(args.data)
    store = _store(args)
    if args.queue:
        run_id = queue_run(store, config, data, group=args.group)
        _emit(args.json, {"run_id": run_id, "status": "queued"}, f"queued run {run_id}; "
                                                                   f"`python -m core worker` trains it")
        return 0
    try:
        run = train(store, config, data, progress=None if args.json and not sys.stderr.isatty() else _progress_bar,
                    group=args.group)
    except KeyboardInterrupt:
        print("\ncancelled (Ctrl-C): the run is marked cancelled, its metrics are kept", file=sys.stderr)
        return 130
    summary = {"run_id": run.id, "name": run.name, "status": run.status, "architecture": run.architecture,
               "test_accuracy": run.test_accuracy, "test_loss": run.test_loss, "params": run.n_params,
               "epochs_run": run.epoch, "best_val_accuracy": run.best_val_accuracy,
               "seconds": round(run.duration or 0.0, 2), "model_path": run.model_path,
               "error": run.error.splitlines()[0] if run.error else None}
    text = (f"run {run.id} {run.status}: test accuracy {run.test_accuracy:.4f}, {run.epoch} epochs, "
            f"{summary['seconds']:.1f} s" if run.status == "completed" else
            f"run {run.id} {run.status}: {summary['error']}")
    _emit(args.json, summary, text)
    return 0 if run.status == "completed" else 1


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
    from core.worker import StopRequest, run_worker
    stop = StopRequest() if args.stop is None else args.stop
    n = run_worker(_store(args), settings.data_path(args.data), once=args.once, max_runs=args.max_runs,
                   poll=args.poll, idle_exit=args.idle_exit, stop=stop)
    if not stop.early:  # stopped while starting: run_worker's one line says it all
        print(f"worker finished {n} run(s)")
    return 0


SUMMARY_COLUMNS = ["run_id", "name", "status", "architecture", "n_params", "epoch", "best_val_accuracy",
                   "best_val_epoch", "last_val_accuracy", "test_accuracy", "test_loss", "duration"]


def cmd_runs(args) -> int:
    df = _store(args).list_runs(status=args.status).head(args.limit)
    if args.json:
        print(df[SUMMARY_COLUMNS + ["group_name", "created_at"]].to_json(orient="records"))
        return 0
    if df.empty:
        print("no runs yet: `python -m core train --arch mlp-128-64 --epochs 1` makes one")
        return 0
    view = df[SUMMARY_COLUMNS].copy()
    for col in ("best_val_accuracy", "last_val_accuracy", "test_accuracy", "test_loss"):
        view[col] = view[col].map(lambda v: "" if v is None or v != v else f"{v:.4f}")
    view["duration"] = view["duration"].map(lambda v: "" if v is None or v != v else f"{v:.0f}s")
    print(view.fillna("").to_string(index=False))
    return 0


def _print_dataset(dataset: dict | None) -> None:
    """`show`'s dataset lines: which data trained the run (source, split sizes, fingerprint)."""
    print("dataset:")
    if not dataset:
        print("  not recorded (trained before runs recorded their dataset, or not started yet)")
        return
    for key in ("source", "source_kind", "offline_sample", "n_train", "n_test", "n_fit", "n_val", "sha256"):
        if dataset.get(key) is not None:
            print(f"  {key:<18} {dataset[key]}")


def cmd_show(args) -> int:
    from dataclasses import asdict
    store = _store(args)
    run = store.get_run(args.run_id)
    ev = store.evaluation(run.id)
    data = {**asdict(run), "duration": run.duration,
            "evaluation": None if ev is None else {"accuracy": ev.accuracy, "loss": ev.loss, "n": ev.n,
                                                   "confusion": ev.confusion, "report": ev.report}}
    if args.json:
        print(json.dumps(data, default=str))
        return 0
    print(f"run {run.id}  {run.name}  [{run.status}]  {run.architecture}, {run.n_params or 0:,} params")
    print("config:")
    for key, value in run.config.items():
        if key == "layers" and not value:  # a preset: its layers come with its name
            continue
        print(f"  {key:<18} {json.dumps(value) if isinstance(value, (list, dict)) else value}")
    _print_dataset(run.dataset)
    print("summary:")
    for key in ("epoch", "best_val_accuracy", "best_val_epoch", "last_val_accuracy", "last_val_epoch",
                "test_accuracy", "test_loss", "duration", "model_path", "error"):
        if data.get(key) is not None:
            print(f"  {key:<18} {data[key]}")
    if ev is not None:
        print("test confusion matrix (rows: true digit, columns: predicted):")
        print("      " + " ".join(f"{c:>5}" for c in range(10)))
        for t, row in enumerate(ev.confusion):
            print(f"  {t:>3} " + " ".join(f"{v:>5}" for v in row))
    return 0


def cmd_cancel(args) -> int:
    status = _store(args).request_cancel(args.run_id)
    print({"cancelled": f"run {args.run_id} cancelled",
           "running": f"run {args.run_id} will stop at its next logging window"}.get(
        status, f"run {args.run_id} is already {status}"))
    return 0


def cmd_delete(args) -> int:
    _store(args).delete_run(args.run_id)
    print(f"deleted run {args.run_id}")
    return 0


def cmd_export(args) -> int:
    df = _store(args).list_runs().drop(columns=["config"])
    text = df.to_csv(index=False) if args.format == "csv" else df.to_json(orient="records")
    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror}") from None
        print(f"wrote {len(df)} runs to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_predict(args) -> int:
    from core.predict.ensemble import predict_files
    results, failures = predict_files(_store(args), args.run_ids, args.images)
    if args.json:
        print(json.dumps(results))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['file']}: error: {r['error']}", file=sys.stderr)
            elif "per_run" in r:
                each = ", ".join(f"{p['run_id']} {p['label']}" for p in r["per_run"])
                print(f"{r['file']}: {r['label']} ({r['confidence']:.1%}, ensemble of {len(r['runs'])} runs: {each})")
            else:
                print(f"{r['file']}: {r['label']} ({r['confidence']:.1%})")
    return 1 if failures else 0


def _emit(as_json: bool, data: dict, text: str) -> None:
    print(json.dumps(data) if as_json else text)


# -- studies (core/search/study.py) -------------------------------------------------------------------
NOT_BASE_OPTIONS = ("help", "db", "data", "name", "group", "queue", "json")  # train options that are not config


def _study_arguments(cmd: dict[str, argparse.ArgumentParser]) -> None:
    """`sweep` takes every config option of `train` (the same argparse actions) as its base config."""
    from core.search.study import MAX_BUDGET, OBJECTIVES, PRUNERS, SEARCHES
    p = cmd["sweep"]
    shared = [a for a in cmd["train"]._actions if a.option_strings and a.dest not in NOT_BASE_OPTIONS]
    for action in shared:  # shared, not copied: a new train option is a sweep option too
        p._add_action(action)
    p.set_defaults(base_options=[a.dest for a in shared])
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
    import time

    from core.config import make_config
    from core.search.study import create_study, parse_space
    overrides = {dest: getattr(args, dest) for dest in args.base_options}
    arch = overrides.pop("architecture")
    if overrides.get("layers"):
        try:
            overrides["layers"] = json.loads(overrides["layers"])
        except json.JSONDecodeError as exc:
            raise UserError(f"--layers is not valid JSON ({exc.msg} at character {exc.pos})") from None
    space = parse_space(args.param, args.search)
    name = (args.name or "").strip() or time.strftime("study-%Y%m%d-%H%M%S")
    base = make_config(arch, **overrides, name=name)
    store = _store(args)
    run_ids = create_study(store, base, space, name, settings.data_path(args.data), search=args.search,
                           budget=args.trials, objective=args.objective, pruner=args.pruner,
                           warmup_epochs=args.warmup)
    from core.search.study import get_study
    study = get_study(store, name)
    _emit(args.json, {"group": name, "queued": len(run_ids), "run_ids": run_ids, "search": study.search,
                      "budget": study.budget, "pruner": study.pruner, "objective": study.objective},
          f"study {name}: queued {len(run_ids)} of {study.budget} runs ({study.search}, pruner {study.pruner}); "
          f"`python -m core worker` trains them, `python -m core study {name}` shows it")
    return 0


def cmd_study(args) -> int:
    from core.search.study import extend_study, stop_study, summary
    store = _store(args)
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
    if data["best_run_id"]:
        params = ", ".join(f"{k}={v}" for k, v in data["best_params"].items())
        print(f"best: run {data['best_run_id']} {data['objective']} {data['best_value']:.4f} ({params})")
    if data["importance"]:
        print("importance: " + ", ".join(f"{k} {v:.0%}" for k, v in data["importance"].items()))
    else:
        print(f"importance: {data['importance_note']}")
    return 0


COMMANDS = {"sweep": cmd_sweep, "study": cmd_study, "ingest": cmd_ingest, "train": cmd_train, "worker": cmd_worker, "runs": cmd_runs, "show": cmd_show,
            "cancel": cmd_cancel, "delete": cmd_delete, "export": cmd_export, "predict": cmd_predict}


def cmd_copy_store(args) -> int:
    """Copy one store into another, with a progress bar on stderr; one line saying what was copied."""
    from core.store.facade import RunStore
    from core.store.transfer import copy_store
    source = settings.sqlite_file(settings.db_url(args.src))
    if source is not None and not source.is_file():  # opening it would make an empty store
        raise UserError(f"there is no store at {source} to copy from: check --from")
    src, dst = RunStore(settings.db_url(args.src)), RunStore(settings.db_url(args.dst))
    tty = sys.stderr.isatty()

    def progress(done: int, total: int, what: str) -> None:
        if tty or done == total:
            filled = int(30 * done / max(1, total))
            print(f"\rcopying [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} {what:<24}",
                  end="\n" if done == total else "", file=sys.stderr, flush=True)
    report = copy_store(src, dst, progress=progress)
    print(f"{report.line()}: {src.where} -> {dst.where}")
    return 0


COMMANDS["copy-store"] = cmd_copy_store
