"""Grid, random, TPE and TPE with median or Hyperband pruning at an equal budget: best accuracy reached and compute spent.

One space (learning rate on a log range, batch size, dropout, optimizer) on `mlp-128-64`,
10,000 MNIST digits (9,000 to train, 1,000 to validate), up to 4 epochs, 16 runs per study:

  grid        the 2×2×2×2 grid lr {1e-3, 1e-2} × batch {32, 128} × dropout {0, 0.3} × {adam, sgd}
  random      Optuna's RandomSampler over the space the grid spans (--space box, the default): lr 1e-3…1e-2
              (log), batch 32…128 (int, log), dropout 0…0.3, {adam, sgd}; the grid's points are its corners.
              With --space wide: lr 1e-4…1e-1, batch 16…256, dropout 0…0.5, a 1,000× wider learning-rate
              range than the grid covers (results: search_wide*.json)
  tpe         TPESampler (constant liar) over the same space
  tpe-median  the same, with the median pruner after 1 warm-up epoch
  tpe-hyperband  the same, with the Hyperband pruner (min 1 epoch, max 4, reduction factor 3)
  tpe-median-x2, tpe-hyperband-x2  (only when named in --methods) the same with 32 runs: what
                TPE reaches when pruning's saving is spent on more runs (results: search_x2.json)

Each study is created with core.search.study.create_study in a fresh SQLite store and trained by one
in-process `core.worker.run_worker` (the loop `python -m core worker` runs: it claims, trains,
tells the study and tops it up), so the figures include everything a user's study costs.
Repeated for each seed (the sampler's and the training's). Reported per method: the best
validation accuracy (the objective), the test accuracy of that best run, epochs trained, and
the seconds spent in training itself (the epochs' own durations), and the CPU and wall
seconds of the whole study (which add each run's fixed cost: building and tracing the model,
loading the digits, the test evaluation and the model save, under 1 CPU-s per run here).

Run: python bench/search.py                (6 seeds, 5 methods; about 15 minutes on 2 quiet cores)
"""
from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

GRID = {"learning_rate": [1e-3, 1e-2], "batch_size": [32, 128], "dropout": [0.0, 0.3], "optimizer": ["adam", "sgd"]}
# One space for every method (the comparison): the box the grid's points are the corners of.
# "wide" searches far beyond the grid: what a user who does not know good values yet would give.
SPACES = {"box": ["learning_rate=1e-3:1e-2:log", "batch_size=32:128:log", "dropout=0.0:0.3", "optimizer=adam,sgd"],
          "wide": ["learning_rate=1e-4:1e-1:log", "batch_size=16:256:log", "dropout=0.0:0.5", "optimizer=adam,sgd"]}
METHODS = {"grid": ("grid", "none"), "random": ("random", "none"), "tpe": ("tpe", "none"),
           "tpe-median": ("tpe", "median"), "tpe-hyperband": ("tpe", "hyperband")}
# Not in the default set: twice the runs (what the samplers reach when pruning's saving is spent on more runs)
EXTRA = {"tpe-median-x2": ("tpe", "median", 2), "tpe-hyperband-x2": ("tpe", "hyperband", 2)}


def run_study(method: str, seed: int, data: Path, budget: int, epochs: int, train_limit: int,
              space_name: str = "box") -> dict[str, Any]:
    from core.config import make_config
    from core.store.facade import RunStore
    from core.search.report import summary
    from core.search.space import parse_space
    from core.search.study import create_study
    from core.worker import run_worker

    search, pruner, factor = (*METHODS[method], 1) if method in METHODS else EXTRA[method]
    budget *= factor
    space = ({f: {"type": "categorical", "choices": v} for f, v in GRID.items()} if search == "grid"
             else parse_space(SPACES[space_name]))
    if search == "grid" and budget < 16:  # --smoke: the first `budget` grid points
        space = {f: {"type": "categorical", "choices": v[:1] if i >= 2 else v} for i, (f, v) in enumerate(GRID.items())}
    folder = Path(tempfile.mkdtemp(prefix="digitlab-search-"))
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    try:
        base = make_config("mlp-128-64", epochs=epochs, train_limit=train_limit, validation_split=0.1, seed=seed)
        with common.timer() as t:
            create_study(store, replace(base, name=method), space, method, data, search=search,
                         budget=None if search == "grid" else budget, pruner=pruner, warmup_epochs=1, seed=seed)
            run_worker(store, data, once=True, log=lambda line: None)
        data_ = summary(store, method)
        runs = store.list_runs(group=method)
        best = runs[runs["run_id"] == data_["best_run_id"]].iloc[0]
        fit_s = float(store.histories(list(runs["run_id"]), keys=["epoch_seconds"])["value"].sum())
        return {"method": method, "seed": seed, "runs": len(runs), "counts": {k: v for k, v in data_["counts"].items() if v},
                "best_val_accuracy": data_["best_value"], "best_test_accuracy": float(best["test_accuracy"]),
                "best_params": data_["best_params"], "epochs_trained": int(runs["epoch"].sum()),
                "fit_s": fit_s, "cpu_s": t["cpu"], "wall_s": t["wall"], "importance": data_["importance"]}
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--seeds", default="1,2,3,4,5,6", help="comma-separated seeds (default 1,2,3,4,5,6)")
    parser.add_argument("--space", choices=tuple(SPACES), default="box",
                        help="the samplers' space: the box the grid spans (default) or a wide one")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, from {', '.join([*METHODS, *EXTRA])} (default: all but the x2 ones, "
                             "which have twice the budget)")
    args = parser.parse_args(argv)
    budget, epochs, train_limit = (4, 2, 300) if args.smoke else (16, 4, 10_000)
    seeds = [int(s) for s in args.seeds.split(",")][:1 if args.smoke else None]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS and m not in EXTRA]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join([*METHODS, *EXTRA])}")

    common.quiet_tensorflow()
    started, load_before = time.time(), common.loadavg()
    data = common.mnist_h5(args.data)
    results = []
    for seed in seeds:  # methods interleaved within each seed, so machine load drifts evenly across them
        for method in methods:
            r = run_study(method, seed, data, budget, epochs, train_limit, args.space)
            results.append(r)
            print(f"seed {seed} {method:<10} best val {r['best_val_accuracy']:.4f} test {r['best_test_accuracy']:.4f} "
                  f"{r['epochs_trained']} epochs {r['cpu_s']:.0f} CPU-s {r['wall_s']:.0f} s {r['counts']}", flush=True)
    summary_rows, figures = [], {"budget": budget, "epochs": epochs, "train_limit": train_limit, "seeds": seeds,
                                 "space": SPACES[args.space], "space_name": args.space, "grid": GRID, "studies": results, "methods": {}}
    grid_cpu = statistics.mean(r["cpu_s"] for r in results if r["method"] == "grid") if "grid" in methods else None
    grid_fit = statistics.mean(r["fit_s"] for r in results if r["method"] == "grid") if "grid" in methods else None
    for method in methods:
        rs = [r for r in results if r["method"] == method]
        agg = {key: statistics.mean(r[key] for r in rs)
               for key in ("best_val_accuracy", "best_test_accuracy", "epochs_trained", "fit_s", "cpu_s", "wall_s")}
        agg["best_val_min"] = min(r["best_val_accuracy"] for r in rs)
        agg["pruned_runs"] = sum(r["counts"].get("pruned", 0) for r in rs)
        agg["cpu_vs_grid"] = agg["cpu_s"] / grid_cpu if grid_cpu else None
        agg["fit_vs_grid"] = agg["fit_s"] / grid_fit if grid_fit else None
        figures["methods"][method] = agg
        summary_rows.append([method, rs[0]["runs"], f"{100 * agg['best_val_accuracy']:.2f}", f"{100 * agg['best_val_min']:.2f}",
                             f"{100 * agg['best_test_accuracy']:.2f}", f"{agg['epochs_trained']:.0f}",
                             agg["pruned_runs"], f"{agg['fit_s']:.0f}",
                             "–" if agg["fit_vs_grid"] is None else f"{100 * agg['fit_vs_grid']:.0f}%",
                             f"{agg['cpu_s']:.0f}", f"{agg['wall_s']:.0f}",
                             "–" if agg["cpu_vs_grid"] is None else f"{100 * agg['cpu_vs_grid']:.0f}%"])
    print()
    print(common.table(["method", "runs", "best val % (mean)", "best val % (worst seed)", "its test %", "epochs",
                        "pruned", "fit s", "fit vs grid", "CPU-s", "wall s", "CPU vs grid"], summary_rows))
    name = ("search" + ("_wide" if args.space == "wide" else "")
            + ("_x2" if any(m in EXTRA for m in methods) else ""))  # keep the main figures apart
    path = common.write_results(name, figures, args.results, started, load_before,
                                notes=["means over seeds; CPU-s is this process (all threads) for the whole study: "
                                       "proposals, training, pruning checks, test evaluation and model saves; fit s is the "
                                       "training alone: the epochs' own seconds (Keras fit, validation included)"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
