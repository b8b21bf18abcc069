"""How fast does Digit Lab train each preset, against bare Keras on the same machine?

Every preset at its defaults (batch size, optimizer, validation split), `--epochs-timed` epochs
(2) on `--limit` digits (20,000), three variants interleaved, their order rotated every round:

  digitlab   Digit Lab's own run: core.train.run.train with the store (a temporary SQLite file),
             the streaming callback, the execution plan core.model.execution chooses, evaluation
             and save (only the fit is timed: `keras.Model.fit` is wrapped to time itself)
  bare       model.fit with Keras' defaults (same model, data, batch size and optimizer; no callback)
  best       model.fit with the plan Digit Lab chooses (steps per execution, XLA, precision), no callback

Each epoch of each fit is timed for wall seconds and this process's CPU seconds (all threads);
CPU-s barely move when other processes load the cores, wall seconds do. The first epoch also
builds the model's step functions (tracing; XLA compiling where the plan asks for it), a fixed
cost a run pays once; the later epochs are the speed a run trains at. Both are reported, apart,
each as: median samples/s (wall), median CPU-s per epoch, each variant's speed-up over bare in the
same round, and the fraction of the machine's measured float32 matmul peak (2048×2048,
TensorFlow) the model's training FLOPs reach. `--accuracy PRESET` also trains PRESET with Keras' defaults and with Digit Lab's
plan at `--seeds` seeds for `--epochs` epochs and reports test accuracy (the plan must keep it).

Run: python bench/train_speed.py [--presets mlp-128-64,cnn-small] [--limit 20000] [--rounds 3] [--epochs-timed 2]
     python bench/train_speed.py --presets cnn-small --accuracy cnn-small --seeds 3 --epochs 2
"""
from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common, real_writers  # noqa: E402

VARIANTS = ("digitlab", "bare", "best")
FIT_TIMES: list[dict] = []  # filled by the wrapped keras.Model.fit


def wrap_fit() -> None:
    """Make every `keras.Model.fit` record its wall and CPU seconds in FIT_TIMES, and each epoch's
    (key "epochs": a list of {"wall", "cpu"}, validation included)."""
    import keras

    original = keras.Model.fit

    class EpochTimes(keras.callbacks.Callback):
        def __init__(self, out: list[dict]):
            super().__init__()
            self.out = out

        def on_epoch_begin(self, epoch, logs=None):
            self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.out.append({"wall": time.perf_counter() - self.wall0, "cpu": time.process_time() - self.cpu0})

    def fit(self, *args, **kwargs):
        epochs: list[dict] = []
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), EpochTimes(epochs)]
        with common.timer() as t:
            out = original(self, *args, **kwargs)
        FIT_TIMES.append({**t, "epochs": epochs})
        return out
    keras.Model.fit = fit


def matmul_peak(n: int = 2048, repeats: int = 10) -> tuple[float, float]:
    """The best float32 n×n matmul in TensorFlow here: (GFLOP per wall second, GFLOP per CPU second).

    The second barely moves when other work shares the cores; a training run's FLOPs per CPU
    second against it is the load-robust share of the peak."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
    tf.linalg.matmul(a, b).numpy()
    wall = cpu = float("inf")
    for _ in range(repeats):
        with common.timer() as t:
            tf.linalg.matmul(a, b).numpy()
        wall, cpu = min(wall, t["wall"]), min(cpu, t["cpu"])
    return 2 * n ** 3 / wall / 1e9, 2 * n ** 3 / cpu / 1e9


def train_flops_per_sample(model) -> float:
    """Forward FLOPs of one digit through Dense and Conv2D layers, times 3 for training (fwd + bwd)."""
    total = 0.0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Dense":
            total += 2 * float(layer.kernel.shape[0]) * float(layer.kernel.shape[1])
        elif kind == "Conv2D":
            kh, kw, cin, cout = (float(d) for d in layer.kernel.shape)
            oh, ow = (float(d) for d in layer.output.shape[1:3])
            total += 2 * kh * kw * cin * cout * oh * ow
    return 3 * total


def bare_fit(config, splits, plan) -> tuple[dict, float]:
    """Bare model.fit (config.epochs epochs) under `plan` (None: Keras' defaults); (times, FLOPs per digit)."""
    import keras

    from core.model.architectures import build_model
    from core.model.compile import compile_for_training

    keras.utils.set_random_seed(config.seed)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(plan.precision if plan else "float32")
    try:
        model = build_model(config.hidden_layers(), augment=config.augment, elastic=config.elastic)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    compile_for_training(model, config.optimizer, config.learning_rate, plan)
    val = (splits.x_val, splits.y_val) if splits.x_val is not None else None
    model.fit(splits.x_train, splits.y_train, batch_size=config.batch_size, epochs=config.epochs, validation_data=val,
              shuffle=True, verbose=0)
    return FIT_TIMES[-1], train_flops_per_sample(model)


def digitlab_fit(store, config, data) -> dict:
    from core.train.run import train

    run = train(store, config, data)
    if run.status != "completed":
        raise RuntimeError(f"{config.architecture}: the run ended {run.status}: {run.error}")
    return {**FIT_TIMES[-1], "plan": (run.dataset or {}).get("execution")}


def epoch_times(fit: dict) -> tuple[dict, dict | None]:
    """(the first epoch's times, the later epochs' median times or None with one epoch) of one fit."""
    epochs = fit.get("epochs") or [fit]
    later = epochs[1:]
    if not later:
        return epochs[0], None
    return epochs[0], {k: statistics.median(e[k] for e in later) for k in ("wall", "cpu")}


def summarise(runs: dict[str, list[dict]], n: int, flops: float, peak: tuple[float, float], part: int) -> dict:
    """Per variant: samples/s, CPU-s per epoch, ratios to bare in the same round and the share of the
    matmul peak, for the first epoch (`part` 0) or the later epochs (`part` 1)."""
    parts = {v: [epoch_times(fit)[part] for fit in runs[v]] for v in VARIANTS}
    if any(t is None for times in parts.values() for t in times):  # one epoch a fit: no later epochs
        return {}
    bare, out = parts["bare"], {}
    for v, times in parts.items():
        walls, cpus = [t["wall"] for t in times], [t["cpu"] for t in times]
        rate = statistics.median(n / w for w in walls)
        out[v] = {"samples_per_s": common.stats(n / w for w in walls), "cpu_s_per_epoch": common.stats(cpus),
                  "wall_s": walls, "cpu_s": cpus,
                  "vs_bare_wall": common.stats(b["wall"] / t["wall"] for b, t in zip(bare, times)),
                  "vs_bare_cpu": common.stats(b["cpu"] / t["cpu"] for b, t in zip(bare, times)),
                  "peak_fraction": rate * flops / 1e9 / peak[0],
                  "peak_fraction_cpu": n * flops / 1e9 / statistics.median(cpus) / peak[1]}
    return out


def bench_preset(store, arch: str, data: Path, limit: int, rounds: int, peak: tuple[float, float],
                 epochs: int = 2) -> dict:
    import numpy as np

    from core.config import make_config
    from core.model.execution import choose_plan
    from core.train.run import load_splits

    config = make_config(arch, train_limit=limit, epochs=epochs, seed=1)
    splits = load_splits(config, data)
    n = len(splits.y_train)
    steps = int(np.ceil(n / config.batch_size))
    plan = choose_plan(config.hidden_layers(), config.batch_size, steps, augment=config.augment or config.elastic,
                       epochs=config.epochs)
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    flops = 0.0
    warm_up = make_config(arch, train_limit=limit, epochs=1, seed=1)
    bare_fit(warm_up, splits, None)  # untimed: imports, TensorFlow's own first traces
    for r in range(rounds):
        order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
        for variant in order:
            if variant == "digitlab":
                runs[variant].append(digitlab_fit(store, config, data))
            else:
                t, flops = bare_fit(config, splits, plan if variant == "best" else None)
                runs[variant].append(t)
        line = []
        for v in order:
            first, later = epoch_times(runs[v][-1])
            line.append(f"{v} first epoch {n / first['wall']:,.0f}/s {first['cpu']:.2f} CPU-s"
                        + (f", later {n / later['wall']:,.0f}/s {later['cpu']:.2f} CPU-s" if later else ""))
        print(f"  round {r + 1}: " + "; ".join(line), flush=True)
    first, later = summarise(runs, n, flops, peak, 0), summarise(runs, n, flops, peak, 1)
    return {"batch_size": config.batch_size, "fit_digits": n, "epochs_timed": epochs, "plan": plan.to_dict(),
            "train_gflop_per_digit": flops / 1e9, "variants": later or first, "first_epoch": first,
            "later_epochs": later}


def accuracy(store, arch: str, data: Path, limit: int, seeds: int, epochs: int, writers=None) -> dict:
    """Test accuracy with Keras' defaults and with Digit Lab's plan, at seeds 1..N (interleaved); with
    `writers` (bench.real_writers.load()), each run's accuracy on real handwriting too (overall, worst writer)."""
    from core.config import make_config
    from core.train.run import train

    out: dict[str, Any] = {"limit": limit, "epochs": epochs, "default": [], "auto": [], "plan": None,
                           "seconds": {"default": [], "auto": []},  # each run's duration (fit, evaluation, save)
                           "writers": {"default": [], "auto": []} if writers is not None else None}
    for seed in range(1, seeds + 1):
        for mode in ("default", "auto"):
            os.environ["DIGITLAB_EXEC"] = mode
            try:
                run = train(store, make_config(arch, train_limit=limit, epochs=epochs, seed=seed), data)
            finally:
                os.environ.pop("DIGITLAB_EXEC", None)
            out[mode].append(run.test_accuracy)
            out["seconds"][mode].append(run.duration)
            if mode == "auto":
                out["plan"] = (run.dataset or {}).get("execution")
            line = f"  seed {seed} {mode}: test accuracy {run.test_accuracy:.4f} in {run.duration or 0:.0f} s"
            if writers is not None:
                real = real_writers.score_run(store, run.id, writers)
                out["writers"][mode].append({k: v for k, v in real.items() if k != "per_writer"})
                line += f", real writers {real['accuracy']:.4f} (worst writer {real['worst_accuracy']:.4f})"
            print(line, flush=True)
    out["mean_default"], out["mean_auto"] = statistics.mean(out["default"]), statistics.mean(out["auto"])
    out["difference_points"] = 100 * (out["mean_auto"] - out["mean_default"])
    if writers is not None:
        for mode in ("default", "auto"):
            out[f"writers_mean_{mode}"] = statistics.mean(w["accuracy"] for w in out["writers"][mode])
            out[f"worst_writer_mean_{mode}"] = statistics.mean(w["worst_accuracy"] for w in out["writers"][mode])
    return out


def main(argv: list[str] | None = None) -> int:
    from core.model.architectures import PRESETS

    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets (default: all)")
    parser.add_argument("--limit", type=int, default=20_000, help="digits per epoch before the validation split")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--epochs-timed", type=int, default=2,
                        help="epochs per timed fit (default 2: the first, which builds the step, and one more)")
    parser.add_argument("--accuracy", default="", help="comma-separated presets to check test accuracy for")
    parser.add_argument("--seeds", type=int, default=3, help="seeds for --accuracy (default 3)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for --accuracy (default 2)")
    parser.add_argument("--writers", default=None, metavar="NPZ",
                        help="real handwriting to score --accuracy runs on (default: the 30-writer set in "
                             "../shared/datasets/pendigits-writers, when it is there; 'none' to skip)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.limit, args.rounds, args.seeds, args.epochs = min(args.limit, 300), 1, 1, 1
    names = [p.strip() for p in args.presets.split(",") if p.strip()]
    checks = [p.strip() for p in args.accuracy.split(",") if p.strip()]
    unknown = [p for p in names + checks if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")

    common.quiet_tensorflow()
    from core.store.facade import RunStore

    started, load_before = time.time(), common.loadavg()
    data = common.mnist_h5(args.data)
    wrap_fit()
    peak = matmul_peak(512 if args.smoke else 2048)
    print(f"float32 matmul peak: {peak[0]:.0f} GFLOP/s, {peak[1]:.0f} GFLOP per CPU-s (load {common.loadavg()})",
          flush=True)
    folder = Path(tempfile.mkdtemp(prefix="digitlab-train-speed-"))
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    figures: dict[str, Any] = {"data": str(data), "limit": args.limit, "rounds": args.rounds,
                               "matmul_peak_gflops": peak[0], "matmul_gflop_per_cpu_s": peak[1],
                               "presets": {}, "accuracy": {}}
    try:
        for arch in names:
            print(f"{arch} …", flush=True)
            figures["presets"][arch] = {**bench_preset(store, arch, data, args.limit, args.rounds, peak,
                                                       max(1, args.epochs_timed)),
                                        "loadavg": common.loadavg()}
        writers = None
        if checks and args.writers != "none" and (args.writers or real_writers.WRITERS_NPZ.is_file()):
            writers = real_writers.load(args.writers)
            if args.smoke:
                writers = tuple(a[:300] for a in writers)
        for arch in checks:
            print(f"{arch} accuracy …", flush=True)
            figures["accuracy"][arch] = accuracy(store, arch, data, args.limit, args.seeds, args.epochs, writers)
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for arch, f in figures["presets"].items():
        for part, label in (("first_epoch", "first epoch"), ("later_epochs", "later epochs")):
            for v, st in (f.get(part) or {}).items():
                rows.append([arch if (part, v) == ("first_epoch", VARIANTS[0]) else "",
                             label if v == VARIANTS[0] else "", v,
                             f"{st['samples_per_s']['median']:,.0f}", f"{st['cpu_s_per_epoch']['median']:.2f}",
                             f"{st['vs_bare_wall']['median']:.2f}×", f"{st['vs_bare_cpu']['median']:.2f}×",
                             f"{100 * st['peak_fraction']:.1f}%", f"{100 * st['peak_fraction_cpu']:.1f}%"])
    if rows:
        print()
        print(common.table(["preset", "epoch", "variant", "samples/s", "CPU-s/epoch", "vs bare (wall)", "vs bare (CPU)",
                            "of matmul peak", "per CPU-s"], rows))
    for arch, a in figures["accuracy"].items():
        print(f"{arch}: test accuracy, Keras' defaults {100 * a['mean_default']:.2f} %, Digit Lab's plan "
              f"{100 * a['mean_auto']:.2f} % ({a['difference_points']:+.2f} points; seeds {a['default']} vs {a['auto']})")
        if a.get("writers"):
            print(f"{arch}: real writers, Keras' defaults {100 * a['writers_mean_default']:.2f} % (worst writer "
                  f"{100 * a['worst_writer_mean_default']:.2f} %), Digit Lab's plan {100 * a['writers_mean_auto']:.2f} % "
                  f"(worst writer {100 * a['worst_writer_mean_auto']:.2f} %), means over the seeds")
    path = common.write_results("train_speed", figures, args.results, started, load_before,
                                notes=["one process; variants interleaved; fit only (keras.Model.fit wrapped)",
                                       "first_epoch includes building the step functions (tracing, XLA compiling); "
                                       "later_epochs (the median of epochs 2..) is the speed a run trains at; "
                                       "variants = later_epochs where timed, else first_epoch",
                                       "cores shared with other work: compare CPU-s; rerun on a quiet machine"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
