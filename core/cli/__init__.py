"""`python -m core COMMAND`: every action of Digit Lab from the shell.

The CLI calls the same core functions the dashboard pages call. A user error (bad argument,
bad value, missing file, unknown run) is a `DigitLabError`: it prints one line on stderr and
exits with 2; nothing is written. `--db` and `--data` are accepted by every command.

The commands live by job: train.py (ingest, train, worker), runs.py (runs, show, compare, cancel,
delete, export, predict, copy-store), search.py (sweep, study), interop.py (import-model, import-tensorboard,
export to TensorBoard and MLflow); common.py holds what they share.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
from typing import Sequence

from core.cli import interop, runs, search, train
from core.cli.common import Parser, UserError
from core.errors import DigitLabError

__all__ = ["COMMAND_HELP", "COMMANDS", "UserError", "build_parser", "main"]

COMMAND_HELP = {
    "ingest": "Convert MNIST (IDX folder, mnist.npz, Keras download, or the offline sample) into the HDF5 dataset.",
    "train": "Train one run now, in this process, streaming its metrics into the store (or --queue it for a worker).",
    "worker": "Claim queued runs from the store and train them, one at a time.",
    "runs": "List runs with their status and summary metrics.",
    "show": "Show one run: config, summary and test confusion matrix.",
    "compare": "Is B's test accuracy really different from A's? The difference, its confidence interval and a verdict.",
    "cancel": "Cancel a queued run, or ask a running one to stop at its next logging window.",
    "delete": "Delete a run with its metrics, evaluations and model file.",
    "export": "Export the runs table as CSV or JSON, or the runs with their curves to TensorBoard (--out DIR) or MLflow (--to URI).",
    "predict": "Predict the digit in PNG/JPEG images with a completed run's model.",
    "sweep": "Queue a study: Optuna proposes configs (random, tpe) or a grid lays them out; workers train them.",
    "study": "Show a study: runs per status, the best run and its parameters, parameter importance.",
    "copy-store": "Copy every run, metric, evaluation, drawing, study and model from one store to another.",
    "import-model": "Import a .keras model trained elsewhere as a run, scored on the test set, ready to draw on and compare.",
    "import-tensorboard": "Import the runs in a TensorBoard log folder (as Keras' TensorBoard callback writes it).",
}
COMMANDS = {**train.COMMANDS, **runs.COMMANDS, **search.COMMANDS, **interop.COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="SQLAlchemy URL or SQLite file of the run store "
                                     "(default: $DIGITLAB_DB or sqlite:///runs.db at the repo root)")
    common.add_argument("--data", help="HDF5 dataset path (default: $DIGITLAB_DATA or data/mnist.h5)")
    parser = Parser(prog="python -m core", description="Digit Lab: explore neural networks on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    cmd = {name: sub.add_parser(name, parents=[common], help=text, description=text)
           for name, text in COMMAND_HELP.items()}
    for module in (train, runs, search, interop):
        module.add_arguments(cmd)
    return parser


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
    try:
        args = build_parser().parse_args(argv)
        args.stop = stop  # the worker's StopRequest; None for every other command
        return COMMANDS[args.command](args) or 0
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except DigitLabError as exc:  # every user-facing error: its message and hint, on one line
        print(f"error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
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
