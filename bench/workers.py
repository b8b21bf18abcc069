"""One local worker or two? A 16-run study's wall time and CPU with 1 and with 2 worker processes.

The study is bench/search.py's: TPE over its "box" space (learning rate, batch size, dropout,
optimizer) on `mlp-128-64`, 10,000 MNIST digits, up to 4 epochs, 16 runs, no pruning, one seed.
Each round creates it in a fresh SQLite store and starts N `python -m core worker` processes
(DIGITLAB_LOCAL_WORKERS=N, so each sizes TensorFlow's threads to its share of the cores, as the
dashboard's own workers do); the round ends when every run is finished. The worker counts are
interleaved, their order rotated each round. Reported: wall seconds of the study, CPU seconds of
the worker processes, runs per minute, and 2 workers' throughput over 1 worker's in the same round.

The dashboard starts DIGITLAB_LOCAL_WORKERS workers (default 1): two pay only if they give 1.3x
one worker's study throughput on these 2 cores (issue 25's rule).

Run: python bench/workers.py [--workers 1,2] [--rounds 2]
"""
from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

SPACE = ["learning_rate=1e-3:1e-2:log", "batch_size=32:128:log", "dropout=0.0:0.3", "optimizer=adam,sgd"]
TARGET = 1.3


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_study(n_workers: int, data: Path, budget: int, epochs: int, limit: int, seed: int) -> dict[str, Any]:
    from core.config import make_config
    from core.search.space import parse_space
    from core.search.study import create_study
    from core.store.facade import RunStore

    folder = Path(tempfile.mkdtemp(prefix="digitlab-workers-"))
    url = f"sqlite:///{folder / 'runs.db'}"
    store = RunStore(url)
    procs: list[subprocess.Popen] = []
    try:
        base = make_config("mlp-128-64", epochs=epochs, train_limit=limit, validation_split=0.1, seed=seed)
        env = {**os.environ, "DIGITLAB_LOCAL_WORKERS": str(n_workers), "DIGITLAB_ARTIFACTS": str(folder / "artifacts"),
               "TF_CPP_MIN_LOG_LEVEL": "3"}
        cpu0, t0 = children_cpu(), time.perf_counter()
        create_study(store, replace(base, name="study"), parse_space(SPACE), "study", data, search="tpe",
                     budget=budget, seed=seed)
        procs = [subprocess.Popen([sys.executable, "-m", "core", "worker", "--db", url, "--data", str(data)],
                                  cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(n_workers)]
        while True:
            runs = store.list_runs(group="study")
            finished = runs["status"].isin(["completed", "failed", "pruned", "cancelled", "interrupted"]).sum()
            if len(runs) >= budget and finished >= budget:
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited before the study finished")
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(60)
        failed = int((runs["status"] == "failed").sum())
        return {"workers": n_workers, "wall_s": wall, "cpu_s": children_cpu() - cpu0, "runs": int(len(runs)),
                "failed": failed, "runs_per_min": 60 * len(runs) / wall,
                "best_val_accuracy": float(runs["best_val_accuracy"].max())}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default 1,2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--budget", type=int, default=16, help="runs per study (default 16)")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    budget, epochs, limit = (args.budget, 4, 10_000) if not args.smoke else (2, 1, 300)
    rounds = 1 if args.smoke else args.rounds
    common.quiet_tensorflow()
    started, load_before = time.time(), common.loadavg()
    data = common.mnist_h5(args.data)
    results: dict[int, list[dict]] = {n: [] for n in counts}
    for r in range(rounds):
        order = counts[r % len(counts):] + counts[:r % len(counts)]
        for n in order:
            res = one_study(n, data, budget, epochs, limit, seed=1 + r)
            results[n].append(res)
            print(f"  round {r + 1}: {n} worker(s): {res['wall_s']:.1f} s wall, {res['cpu_s']:.1f} CPU-s, "
                  f"{res['runs_per_min']:.1f} runs/min, {res['failed']} failed (load {common.loadavg()})", flush=True)
    base = counts[0]
    figures: dict[str, Any] = {"budget": budget, "epochs": epochs, "limit": limit, "space": SPACE, "target": TARGET,
                               "cores": os.cpu_count(), "by_workers": {}}
    rows = []
    for n in counts:
        f = figures["by_workers"][str(n)] = {
            "wall_s": common.stats(r["wall_s"] for r in results[n]),
            "cpu_s": common.stats(r["cpu_s"] for r in results[n]),
            "runs_per_min": common.stats(r["runs_per_min"] for r in results[n]),
            "throughput_vs_first": common.stats(b["wall_s"] / r["wall_s"] for b, r in zip(results[base], results[n])),
            "rounds": results[n]}
        rows.append([n, common.span(f["wall_s"], "{:.1f}"), common.span(f["cpu_s"], "{:.1f}"),
                     common.span(f["runs_per_min"], "{:.1f}"), f"{f['throughput_vs_first']['median']:.2f}×"])
    print()
    print(common.table(["local workers", "study wall s", "CPU-s", "runs/min", f"throughput vs {base}"], rows))
    if len(counts) > 1:
        gain = figures["by_workers"][str(counts[-1])]["throughput_vs_first"]["median"]
        figures["verdict"] = verdict = "two" if gain >= TARGET else "one"
        print(f"{counts[-1]} workers give {gain:.2f}× the study throughput of {base} (two pay from {TARGET}×): "
              f"the dashboard should start {verdict}")
    print(common.steal_line())
    path = common.write_results("workers", figures, args.results, started, load_before,
                                notes=["N `python -m core worker` processes on one study; wall until every run finished"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
