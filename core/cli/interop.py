"""`import-model`, `import-tensorboard` and `export --format tensorboard|mlflow`: runs in and out of Digit Lab.

The work is in core.interop; bad input (a missing or non-Keras file, wrong shapes, a folder
without logs, an unreachable MLflow URI) is an InteropError: one line, exit 2, nothing written.
"""
from __future__ import annotations

import argparse
import sys

from core import settings
from core.cli.common import emit, open_store

FORMATS = ("tensorboard", "mlflow")  # what `export --format` adds to csv and json


def add_arguments(cmd: dict[str, argparse.ArgumentParser]) -> None:
    p = cmd["import-model"]
    p.add_argument("file", metavar="FILE", help="a .keras model: input 28×28(×1) or 784 values, 10 outputs")
    p.add_argument("--name", help="the run's name (default: the file's name)")
    p.add_argument("--json", action="store_true", help="end with one JSON object holding run_id")

    p = cmd["import-tensorboard"]
    p.add_argument("folder", metavar="DIR", help="a TensorBoard log folder, e.g. what keras.callbacks.TensorBoard wrote")
    p.add_argument("--model", metavar="FILE", help="a .keras model to keep with the run (only when DIR holds one run)")
    p.add_argument("--again", action="store_true",
                   help="import logs the store already holds once more (default: each is imported once)")
    p.add_argument("--json", action="store_true", help="end with one JSON object holding run_ids")

    p = cmd["export"]
    p.add_argument("--to", metavar="URI", help="--format mlflow: the tracking URI (http://host:5000 or sqlite:///mlflow.db)")
    p.add_argument("--run", dest="run_ids", action="append", metavar="RUN_ID",
                   help="--format tensorboard|mlflow: only this run; repeat for more (default: every run)")


def cmd_import_model(args) -> int:
    from core.interop.models import check_model, import_model
    data = settings.data_path(args.data)
    checked = check_model(args.file, data)  # every check before the store is opened
    store = open_store(args)
    run_id = import_model(store, checked, name=args.name)
    run = store.get_run(run_id)
    emit(args.json, {"run_id": run_id, "name": run.name, "test_accuracy": run.test_accuracy},
         f"imported {args.file} as run {run_id} ({run.name}): test accuracy {run.test_accuracy:.4f}")
    return 0


def cmd_import_tensorboard(args) -> int:
    from core.interop.tensorboard import already_imported, import_runs, read_logs
    from core.interop.models import InteropError
    logged = read_logs(args.folder)  # every check before the store is touched
    model = None
    if args.model:
        if len(logged) != 1:
            raise InteropError(f"{args.folder} holds {len(logged)} runs; --model goes with a folder of one run")
        from core.interop.models import check_model
        checked = check_model(args.model, settings.data_path(args.data))
        model = (checked.path, checked.evaluation)
    store = open_store(args)
    earlier = {} if args.again or model is not None else already_imported(store, logged)
    ids = import_runs(store, logged, model, earlier=earlier)
    new = [(r, run_id) for i, (r, run_id) in enumerate(zip(logged, ids)) if i not in earlier]
    lines = []
    if new:
        lines.append(f"imported {len(new)} run{'s' if len(new) != 1 else ''}: "
                     + ", ".join(f"{r.name} ({run_id})" for r, run_id in new))
    if earlier:
        lines.append("already in the store, not imported again: "
                     + ", ".join(f"{logged[i].name} ({run_id})" for i, run_id in earlier.items())
                     + " (--again imports a second copy)")
    emit(args.json, {"run_ids": ids, "imported": [run_id for _, run_id in new], "already": list(earlier.values())},
         "\n".join(lines))
    return 0


def cmd_export_external(args) -> int:
    """`export --format tensorboard --out DIR` or `export --format mlflow --to URI` (runs.cmd_export hands over)."""
    from core.interop.models import InteropError
    if args.format == "tensorboard":
        if not args.out:
            raise InteropError("--format tensorboard needs --out DIR, the folder for the event files")
        from core.interop.tensorboard import export
        folders = export(open_store(args), args.out, args.run_ids)
        print(f"wrote {len(folders)} runs to {args.out}: `tensorboard --logdir {args.out}` shows them")
        return 0
    if not args.to:
        raise InteropError("--format mlflow needs --to URI, the MLflow tracking URI (http://host:5000 or "
                           "sqlite:///mlflow.db)")
    from core.interop.mlflow import export

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\rexporting {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    result = export(open_store(args), args.to, args.run_ids, progress=progress)
    print(f"exported {len(result['exported'])} runs to {args.to}; {len(result['skipped'])} were there already")
    return 0


COMMANDS = {"import-model": cmd_import_model, "import-tensorboard": cmd_import_tensorboard}
