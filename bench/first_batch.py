"""How soon after Launch does a run's first batch point reach the store, on a warm worker?

A `python -m core worker` process is started on a temporary SQLite store and left to import
TensorFlow while idle, as the dashboard's worker does from the first visit. Then, for each preset
at its defaults on full MNIST, a run is queued the way the Train page's Launch button queues it
(core.store.queue.queue_run) and the clock runs until its first batch row is in the store (what
the live panel draws first); the run is then cancelled and the next one queued. Reported: seconds
from the queue to the claim, to the dataset record (data loaded, plan chosen), and to the first batch
point, per preset and round (median). Target (issue 25): the first batch within 3 s of Launch.

Run: python bench/first_batch.py [--presets mlp-128-64,cnn-small,cnn-draw] [--rounds 3]
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

TARGET_S = 3.0


def tensorflow_loaded(pid: int) -> bool:
    """True once the process has TensorFlow's native library mapped (its import is under way or done)."""
    try:
        return "_pywrap_tensorflow_internal" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def wait_idle_import(proc: subprocess.Popen, timeout: float = 120.0) -> float:
    """Seconds until the worker has imported TensorFlow and gone quiet (its CPU time stops growing)."""
    t0 = time.perf_counter()
    while not tensorflow_loaded(proc.pid):
        if proc.poll() is not None or time.perf_counter() - t0 > timeout:
            raise RuntimeError("the worker did not start importing TensorFlow")
        time.sleep(0.2)
    last = common.process_cpu_s(proc.pid)
    while time.perf_counter() - t0 < timeout:
        time.sleep(1.0)
        now = common.process_cpu_s(proc.pid)
        if now - last < 0.05:  # idle: the import is over, the worker only polls
            return time.perf_counter() - t0
        last = now
    raise RuntimeError("the worker never went idle")


def first_batch(store, arch: str, data: Path, timeout: float = 120.0) -> dict[str, float]:
    from core.config import make_config
    from core.store.queue import queue_run

    t0 = time.perf_counter()
    run_id = queue_run(store, make_config(arch), data)
    marks: dict[str, float] = {}
    while time.perf_counter() - t0 < timeout:
        run = store.get_run(run_id)
        now = time.perf_counter() - t0
        if "claimed" not in marks and run.status != "queued":
            marks["claimed"] = now
        if "dataset" not in marks and run.dataset:
            marks["dataset"] = now
        if not store.metric_history(run_id, "batch").empty:
            marks["first_batch"] = now
            break
        if run.status in ("failed", "completed", "cancelled", "interrupted"):
            raise RuntimeError(f"{arch}: the run ended {run.status} before its first batch: {run.error}")
        time.sleep(0.05)
    else:
        raise RuntimeError(f"{arch}: no batch point within {timeout:.0f} s")
    store.request_cancel(run_id)
    while store.get_run(run_id).status == "running":
        time.sleep(0.1)
    return marks


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--presets", default="mlp-128-64,cnn-small,cnn-draw", help="comma-separated presets")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the presets (default 3)")
    args = parser.parse_args(argv)
    common.quiet_tensorflow()
    from core.store.facade import RunStore

    started, load_before = time.time(), common.loadavg()
    data = common.mnist_h5(args.data)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    rounds = 1 if args.smoke else args.rounds
    folder = Path(tempfile.mkdtemp(prefix="digitlab-first-batch-"))
    url = f"sqlite:///{folder / 'runs.db'}"
    store = RunStore(url)
    env = {**os.environ, "DIGITLAB_ARTIFACTS": str(folder / "artifacts"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    worker = subprocess.Popen([sys.executable, "-m", "core", "worker", "--db", url, "--data", str(data)],
                              cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results: dict[str, list[dict]] = {p: [] for p in presets}
    try:
        warm_s = wait_idle_import(worker)
        print(f"worker warm (TensorFlow imported) after {warm_s:.1f} s", flush=True)
        for r in range(rounds):
            for arch in presets:
                marks = first_batch(store, arch, data)
                results[arch].append(marks)
                print(f"  round {r + 1} {arch}: " + ", ".join(f"{k} {v:.2f} s" for k, v in marks.items()), flush=True)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    figures: dict[str, Any] = {"target_s": TARGET_S, "worker_warm_s": warm_s, "presets": {}}
    rows = []
    for arch, marks in results.items():
        f = figures["presets"][arch] = {k: common.stats(m[k] for m in marks) for k in ("claimed", "dataset", "first_batch")}
        f["raw"] = marks
        rows.append([arch, common.span(f["claimed"], "{:.2f}"), common.span(f["dataset"], "{:.2f}"),
                     common.span(f["first_batch"], "{:.2f}"), "met" if f["first_batch"]["median"] <= TARGET_S else "MISSED"])
    print()
    print(common.table(["preset", "claimed s", "data loaded s", "first batch s", f"target ≤ {TARGET_S:g} s"], rows))
    print(common.steal_line())
    path = common.write_results("first_batch", figures, args.results, started, load_before,
                                notes=["seconds from queue_run (what Launch does) on a warm worker, full MNIST, "
                                       "each preset's defaults"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
