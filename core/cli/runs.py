"""`runs`, `show`, `compare`, `cancel`, `delete`, `export`, `predict` and `copy-store`: read, compare,
manage, use and move the runs in a store."""
from __future__ import annotations

import argparse
import json
import sys

from core import settings
from core.cli import interop
from core.cli.common import UserError, open_store

SOURCES = ("trained", "tracked", "imported")  # core.store.schema.SOURCES, named here so --help stays light
SUMMARY_COLUMNS = ["run_id", "name", "status", "architecture", "n_params", "epoch", "best_val_accuracy",
                   "best_val_epoch", "last_val_accuracy", "test_accuracy", "test_loss", "duration"]


def add_arguments(cmd: dict[str, argparse.ArgumentParser]) -> None:
    p = cmd["runs"]
    p.add_argument("--status", help="only runs with this status")
    p.add_argument("--source", choices=SOURCES, help="only runs trained here, tracked from a script, or imported")
    p.add_argument("--limit", type=int, default=50, help="show at most N runs (default 50)")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.add_argument("--group", action="store_true",
                   help="one row per config (its repeats: runs that differ only in seed and name): N, mean and "
                        "sample std of the accuracies, run ids; completed runs only unless --status says otherwise")
    p = cmd["compare"]
    for name, what in (("a", "A, the reference"), ("b", "B, compared with A")):
        p.add_argument(name, metavar=name.upper(), help=f"{what}: a run id, a config id (all its repeats; "
                                                        "`runs --group` lists them) or run ids joined by commas")
    p.add_argument("--json", action="store_true", help="print one JSON object: a, b, n_a, n_b, metric, difference "
                                                       "(B - A, points), ci_low, ci_high, p_value, test, verdict")
    for name in ("show", "cancel", "delete"):
        cmd[name].add_argument("run_id", metavar="RUN_ID")
    cmd["show"].add_argument("--json", action="store_true", help="print one JSON object")

    p = cmd["export"]
    p.add_argument("--format", choices=("csv", "json", *interop.FORMATS), default="csv",
                   help="csv (default) or json: the runs table; tensorboard (--out DIR) or mlflow (--to URI): "
                        "the runs with their curves, hyperparameters and models")
    p.add_argument("--out", help="file to write (default: stdout); the folder for --format tensorboard")

    p = cmd["predict"]
    p.add_argument("--run", required=True, dest="run_ids", action="append", metavar="RUN_ID",
                   help="a completed run; repeat (--run A --run B) to combine runs: their probabilities are averaged")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="PNG or JPEG files, any size, either polarity")
    p.add_argument("--json", action="store_true", help="print one JSON array, an object per image")

    p = cmd["copy-store"]
    p.add_argument("--from", dest="src", required=True, metavar="URL",
                   help="the store to copy from: sqlite:///runs.db, a SQLite file, or postgresql+psycopg://USER@HOST/DB")
    p.add_argument("--to", dest="dst", required=True, metavar="URL",
                   help="the store to copy into (made if new; a re-run copies only what is missing)")


def cmd_runs(args) -> int:
    if args.group:
        return _runs_grouped(args)
    df = open_store(args).list_runs(status=args.status, source=args.source).head(args.limit)
    if args.json:
        print(df[SUMMARY_COLUMNS + ["source", "group_name", "created_at"]].to_json(orient="records"))
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


GROUP_COLUMNS = ["config_id", "name", "architecture", "dataset", "n", "mean_test_accuracy", "std_test_accuracy",
                 "ci_low_test_accuracy", "ci_high_test_accuracy", "mean_best_val_accuracy", "std_best_val_accuracy",
                 "mean_last_val_accuracy", "std_last_val_accuracy", "mean_duration", "seeds", "run_ids"]


def _runs_grouped(args) -> int:
    """`runs --group`: one row per config id (core.search.repeats.group_frame), best mean test accuracy first."""
    from core.search.repeats import group_frame
    table = group_frame(open_store(args), statuses=(args.status,) if args.status else ("completed",))
    table = table.head(args.limit)
    if args.json:
        print(table[GROUP_COLUMNS].to_json(orient="records"))
        return 0
    if table.empty:
        print("no completed runs yet: `python -m core train --arch mlp-128-64 --epochs 1 --repeat 3` makes 3 repeats")
        return 0

    def mean_std(means, stds):
        return ["" if m != m else f"{m:.4f}" + (f" ± {s:.4f}" if s == s else "") for m, s in zip(means, stds)]
    view = table.assign(
        test_accuracy=mean_std(table["mean_test_accuracy"], table["std_test_accuracy"]),
        best_val_accuracy=mean_std(table["mean_best_val_accuracy"], table["std_best_val_accuracy"]),
        duration=table["mean_duration"].map(lambda v: "" if v != v else f"{v:.0f}s"),
        runs=table["run_ids"].map(lambda ids: " ".join(ids[:3]) + (" …" if len(ids) > 3 else "")))
    print(view[["config_id", "name", "n", "test_accuracy", "best_val_accuracy", "duration", "runs"]]
          .to_string(index=False))
    return 0


def cmd_compare(args) -> int:
    """`compare A B`: B's test accuracy against A's, with a 95 % interval and a verdict (core.search.repeats)."""
    from core.search.repeats import compare_selections

    def selection(text: str):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise UserError(f"an empty selection {text!r}: give a run id, a config id or run ids joined by commas")
        return parts if "," in text else parts[0]
    result = compare_selections(open_store(args), selection(args.a), selection(args.b))
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"A {result.a}: {result.n_a} finished run(s); B {result.b}: {result.n_b} finished run(s)")
    if result.test is not None:
        print(f"difference B - A: {result.difference:+.2f} points of test accuracy, 95 % CI {result.ci_low:+.2f} to "
              f"{result.ci_high:+.2f} ({'Welch' if result.test == 'welch' else 'exact McNemar'}, "
              f"p = {result.p_value:.3g})")
    print(result.verdict)
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
    if dataset.get("execution"):  # how it trained: core.model.execution's plan
        from core.model.execution import describe as describe_plan
        print(f"execution:\n  {describe_plan(dataset['execution'])}\n  {dataset['execution'].get('reason', '')}")


NONE_MEANS = {"dropout": "the preset's rates", "train_limit": "all training digits"}  # what an empty field trains


def cmd_show(args) -> int:
    from dataclasses import asdict
    store = open_store(args)
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
        text = json.dumps(value) if isinstance(value, (list, dict)) else value
        if value is None:
            text = "— (" + NONE_MEANS.get(key, "not set") + ")"
        print(f"  {key:<18} {text}")
    _print_dataset(run.dataset)
    print("summary:")
    for key in ("epoch", "best_val_accuracy", "best_val_epoch", "last_val_accuracy", "last_val_epoch",
                "test_accuracy", "test_loss", "duration", "error"):
        if data.get(key) is not None:
            print(f"  {key:<18} {data[key]}")
    if ev is not None:
        print("test confusion matrix (rows: true digit, columns: predicted):")
        print("      " + " ".join(f"{c:>5}" for c in range(10)))
        for t, row in enumerate(ev.confusion):
            print(f"  {t:>3} " + " ".join(f"{v:>5}" for v in row))
    return 0


def cmd_cancel(args) -> int:
    status = open_store(args).request_cancel(args.run_id)
    print({"cancelled": f"run {args.run_id} cancelled",
           "running": f"run {args.run_id} will stop at its next logging window"}.get(
        status, f"run {args.run_id} is already {status}"))
    return 0


def cmd_delete(args) -> int:
    open_store(args).delete_run(args.run_id)
    print(f"deleted run {args.run_id}")
    return 0


def cmd_export(args) -> int:
    if args.format in interop.FORMATS:
        return interop.cmd_export_external(args)
    df = open_store(args).list_runs().drop(columns=["config"])
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
    results, failures = predict_files(open_store(args), args.run_ids, args.images)
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


COMMANDS = {"runs": cmd_runs, "show": cmd_show, "compare": cmd_compare, "cancel": cmd_cancel, "delete": cmd_delete, "export": cmd_export,
            "predict": cmd_predict, "copy-store": cmd_copy_store}
