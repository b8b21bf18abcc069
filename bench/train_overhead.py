"""How much does tracking slow training? Digit Lab's store callback against bare fit and other trackers.

The same compiled model (re-initialised to the same weights and a fresh optimizer state
before every fit), the same data subset, seed and epochs are fitted with:

  bare          model.fit with no callback
  bare-again    bare once more: the A/A control; its spread is this machine's noise
  digitlab      Digit Lab's StoreLogger at its defaults (as core/train/run.py uses it) plus the run's
                heartbeat thread, writing to a real SQLite file; the run is created, claimed,
                flushed and finished inside the timed region
  tensorboard   keras.callbacks.TensorBoard(update_freq=<Digit Lab's batch interval>)
  csvlogger     keras.callbacks.CSVLogger (one row per epoch)
  mlflow        mlflow.tensorflow.autolog(log_every_n_steps=<same interval>) to a SQLite store
  mlflow-step   the same, logging every step

(MLflow model logging, checkpoints and dataset logging are off: only metric logging is
compared; a column whose package is not installed is skipped and says so.)

Variants are interleaved, their order rotated every round (a b c …, b c … a, …), after one
untimed warm-up round. Reported: median samples/s with min–max, and each variant's
throughput relative to bare in the same round (bare time / variant time), for wall time and
for this process's CPU time (all threads). On a machine shared with other work, wall time
swings far more than any tracker's cost (the bare-again row shows by how much), so the
training thread's CPU time inside Keras' callback hooks is measured too: the direct cost
of each tracker's callbacks, as a share of bare fit's CPU time, barely moved by other load.

Run: python bench/train_overhead.py            (mlp-128-64 and cnn-small, 12,000 digits, 9 rounds)
"""
from __future__ import annotations

import functools
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

ALL_VARIANTS = ("bare", "bare-again", "digitlab", "tensorboard", "csvlogger", "mlflow", "mlflow-step")
TARGET = 0.97  # Digit Lab must keep at least this share of bare throughput


class HookClock:
    """Thread CPU seconds the training thread spends in Keras' callback hooks (CallbackList.on_*).

    Thread CPU time is not counted while the thread waits for a core, so this holds steady
    when other processes load the machine; it covers Keras converting logs for the hooks,
    every callback's own work and any synchronous writes they make.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def install(self) -> None:
        import keras

        cls = keras.callbacks.CallbackList
        for name in [n for n in vars(cls) if n.startswith("on_") and callable(vars(cls)[n])]:
            setattr(cls, name, self._timed(vars(cls)[name]))

    def _timed(self, fn):
        clock = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                clock.seconds += time.thread_time() - t0
        return timed


HOOKS = HookClock()


@dataclass
class Setup:
    """One architecture ready to fit: config, data, compiled model and its initial weights."""
    arch: str
    config: Any
    splits: Any
    model: Any
    weights: list
    steps: int
    every: int

    @property
    def n_samples(self) -> int:
        return len(self.splits.y_train) * self.config.epochs


def prepare(arch: str, data: Path, n_train: int, epochs: int, seed: int) -> Setup:
    """Build and compile the preset's model once, exactly as core/train/run.py does."""
    import keras
    import numpy as np

    from core.model.architectures import build_model
    from core.train.callbacks import batch_interval
    from core.config import make_config
    from core.train.run import compile_for_training, load_splits

    config = make_config(arch, train_limit=n_train, epochs=epochs, seed=seed)
    splits = load_splits(config, data)
    keras.utils.set_random_seed(seed)
    model = build_model(config.hidden_layers(), augment=config.augment)
    compile_for_training(model, config.optimizer, config.learning_rate)
    steps = int(np.ceil(len(splits.y_train) / config.batch_size))
    return Setup(arch, config, splits, model, model.get_weights(), steps, batch_interval(steps))


def reset(setup: Setup) -> None:
    """Same starting point for every fit: initial weights, zeroed optimizer state, same seed."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(setup.config.seed)
    setup.model.set_weights(setup.weights)
    for var in setup.model.optimizer.variables:
        var.assign(np.zeros(var.shape, dtype=var.dtype))


def fit(setup: Setup, callbacks: list) -> None:
    s = setup.splits
    val = (s.x_val, s.y_val) if s.x_val is not None else None
    setup.model.fit(s.x_train, s.y_train, batch_size=setup.config.batch_size, epochs=setup.config.epochs,
                    validation_data=val, callbacks=callbacks, shuffle=True, verbose=0)


# -- variants: each is a context manager yielding the callbacks for one fit (entered inside the timer) --
@dataclass
class Variant:
    name: str
    run: Callable[[Setup, int], Any]            # (setup, repeat) -> context manager yielding callbacks
    close: Callable[[], None] = lambda: None
    detail: str = ""


@contextmanager
def _bare(setup: Setup, i: int) -> Iterator[list]:
    yield []


def digitlab_variant(tmp: Path) -> Variant:
    """StoreLogger as core/train/run.py builds it, with the heartbeat thread, on a real SQLite file."""
    from core.train.callbacks import StoreLogger
    from core.store.facade import RunStore
    from core.train.run import _Heartbeat

    store = RunStore(f"sqlite:///{tmp / 'digitlab' / 'runs.db'}")

    @contextmanager
    def run(setup: Setup, i: int) -> Iterator[list]:
        run_id = store.create_run(setup.config.to_dict(), n_params=setup.model.count_params())
        store.claim_run(worker_id="bench", run_id=run_id)
        heart = _Heartbeat(store, run_id)
        heart.start()
        logger = StoreLogger(store, run_id, steps_per_epoch=setup.steps)
        try:
            yield [logger]
            logger.flush()
        finally:
            heart.stopped.set()
        store.finish_run(run_id, "completed")
    return Variant("digitlab", run, store.close, "StoreLogger defaults + heartbeat, SQLite file")


def tensorboard_variant(tmp: Path) -> Variant:
    import keras

    @contextmanager
    def run(setup: Setup, i: int) -> Iterator[list]:
        yield [keras.callbacks.TensorBoard(log_dir=str(tmp / "tensorboard" / f"{setup.arch}-{i}"),
                                           update_freq=setup.every)]
    return Variant("tensorboard", run, detail="update_freq = Digit Lab's batch interval")


def csvlogger_variant(tmp: Path) -> Variant:
    import keras

    @contextmanager
    def run(setup: Setup, i: int) -> Iterator[list]:
        yield [keras.callbacks.CSVLogger(str(tmp / f"csv-{setup.arch}-{i}.csv"))]
    return Variant("csvlogger", run, detail="one row per epoch")


def mlflow_variant(tmp: Path, every_step: bool) -> Variant:
    """mlflow.tensorflow.autolog to a SQLite tracking store; enabled only around its own fits."""
    import mlflow
    import mlflow.tensorflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp / 'mlflow.db'}")
    if mlflow.get_experiment_by_name("bench") is None:  # creates the schema now, outside the timed region
        mlflow.create_experiment("bench", artifact_location=(tmp / "mlflow-artifacts").as_uri())
    mlflow.set_experiment("bench")  # its artifacts (model summary, TensorBoard logs) stay in `tmp`, not ./mlruns

    @contextmanager
    def run(setup: Setup, i: int) -> Iterator[list]:
        yield []  # autolog patches model.fit itself; it was enabled before the timer started

    def enable(setup: Setup) -> None:
        mlflow.tensorflow.autolog(log_every_n_steps=1 if every_step else setup.every, log_models=False,
                                  log_datasets=False, checkpoint=False, silent=True)

    def disable() -> None:
        mlflow.tensorflow.autolog(disable=True)
    name = "mlflow-step" if every_step else "mlflow"
    variant = Variant(name, run, disable, "autolog, every step" if every_step else "autolog, same interval")
    variant.enable, variant.disable = enable, disable  # type: ignore[attr-defined]
    return variant


def make_variants(names: list[str], tmp: Path) -> tuple[list[Variant], dict[str, str]]:
    """The variants that can run here, and why any others were skipped."""
    variants, skipped = [], {}
    for name in names:
        try:
            if name == "bare":
                variants.append(Variant("bare", _bare, detail="model.fit, no callback"))
            elif name == "bare-again":
                variants.append(Variant("bare-again", _bare, detail="A/A control: bare fitted twice per round"))
            elif name == "digitlab":
                variants.append(digitlab_variant(tmp))
            elif name == "tensorboard":
                import tensorboard  # noqa: F401  keras.callbacks.TensorBoard needs the package
                variants.append(tensorboard_variant(tmp))
            elif name == "csvlogger":
                variants.append(csvlogger_variant(tmp))
            elif name in ("mlflow", "mlflow-step"):
                variants.append(mlflow_variant(tmp, every_step=name == "mlflow-step"))
            else:
                raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(ALL_VARIANTS)}")
        except ImportError as exc:
            skipped[name] = f"{exc.name or exc} is not installed (see bench/README.md)"
    return variants, skipped


# -- the measurement --------------------------------------------------------------------------------
@dataclass
class Samples:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    hooks: list[float] = field(default_factory=list)


def measure_once(setup: Setup, variant: Variant, i: int) -> dict:
    """Wall, process CPU and callback-hook CPU seconds of one timed fit."""
    reset(setup)
    enable = getattr(variant, "enable", None)
    if enable:
        enable(setup)
    try:
        hooks0 = HOOKS.seconds
        with common.timer() as t:
            with variant.run(setup, i) as callbacks:
                fit(setup, callbacks)
        t["hooks"] = HOOKS.seconds - hooks0
    finally:
        disable = getattr(variant, "disable", None)
        if disable:
            disable()
    return t


def bench_arch(setup: Setup, variants: list[Variant], rounds: int) -> tuple[dict, list]:
    """Warm up each variant once, then `rounds` interleaved rounds with a rotating order."""
    for v in variants:
        measure_once(setup, v, -1)
    samples = {v.name: Samples() for v in variants}
    loads = []
    for r in range(rounds):
        loads.append(common.loadavg())
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            t = measure_once(setup, v, r)
            samples[v.name].wall.append(t["wall"])
            samples[v.name].cpu.append(t["cpu"])
            samples[v.name].hooks.append(t["hooks"])
    return samples, loads


def summarise(setup: Setup, samples: dict[str, Samples], variants: list[Variant]) -> dict:
    bare = samples["bare"]
    out = {}
    for v in variants:
        s = samples[v.name]
        wall_ratio = [b / x for b, x in zip(bare.wall, s.wall)]   # share of bare throughput, same round
        cpu_ratio = [b / x for b, x in zip(bare.cpu, s.cpu)]
        extra_hooks = [(h - bh) / bc for h, bh, bc in zip(s.hooks, bare.hooks, bare.cpu)]  # share of bare CPU
        out[v.name] = {"detail": v.detail,
                       "samples_per_s": common.stats(setup.n_samples / w for w in s.wall),
                       "wall_s": common.stats(s.wall), "cpu_s": common.stats(s.cpu),
                       "vs_bare_wall": common.stats(wall_ratio), "vs_bare_cpu": common.stats(cpu_ratio),
                       "slowdown_wall": common.stats(1 / r for r in wall_ratio),
                       "hook_cpu_ms_per_epoch": common.stats(1000 * h / setup.config.epochs for h in s.hooks),
                       "hook_cpu_extra_share": common.stats(extra_hooks),
                       "raw_wall_s": s.wall, "raw_cpu_s": s.cpu, "raw_hook_cpu_s": s.hooks}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--archs", default="mlp-128-64,cnn-small", help="comma-separated presets")
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS), help="comma-separated, must include bare")
    parser.add_argument("--n-train", type=int, default=12000, help="digits drawn from MNIST train (10%% validate)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit")
    parser.add_argument("--rounds", type=int, default=9, help="timed rounds (each fits every variant once)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    if args.smoke:
        args.archs, args.n_train, args.rounds = "mlp-128-64", 300, 1
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if "bare" not in names:
        parser.error("--variants must include bare: every ratio is relative to it")
    names = ["bare"] + [n for n in names if n != "bare"]

    common.quiet_tensorflow()
    started, load_before = time.time(), common.loadavg()
    data = common.mnist_h5(args.data)
    HOOKS.install()
    tmp = Path(tempfile.mkdtemp(prefix="digitlab-overhead-"))
    variants, skipped = make_variants(names, tmp)
    figures: dict[str, Any] = {"n_train": args.n_train, "epochs": args.epochs, "rounds": args.rounds,
                               "seed": args.seed, "skipped": skipped, "archs": {}}
    rows = []
    try:
        for arch in [a.strip() for a in args.archs.split(",") if a.strip()]:
            setup = prepare(arch, data, args.n_train, args.epochs, args.seed)
            print(f"{arch}: {len(setup.splits.y_train):,} train digits × {args.epochs} epoch(s), batch "
                  f"{setup.config.batch_size}, {setup.steps} steps/epoch, batch point every {setup.every} steps; "
                  f"{args.rounds} rounds …", flush=True)
            samples, loads = bench_arch(setup, variants, args.rounds)
            summary = summarise(setup, samples, variants)
            figures["archs"][arch] = {"steps_per_epoch": setup.steps, "every": setup.every,
                                      "batch_size": setup.config.batch_size,
                                      "train_digits": len(setup.splits.y_train), "loadavg_per_round": loads,
                                      "variants": summary}
            for name, s in summary.items():
                rows.append([arch, name, common.span(s["samples_per_s"]),
                             common.span(s["vs_bare_wall"], "{:.3f}"), common.span(s["vs_bare_cpu"], "{:.3f}"),
                             f"{s['slowdown_wall']['median']:.2f}×",
                             f"{s['hook_cpu_ms_per_epoch']['median']:,.0f}",
                             f"{100 * s['hook_cpu_extra_share']['median']:+.1f}%"])
    finally:
        for v in variants:
            v.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(common.table(["arch", "variant", "samples/s median (min–max)", "× bare wall (min–max)",
                        "× bare CPU (min–max)", "slowdown", "hook CPU ms/epoch", "hooks vs bare"], rows))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    for arch, fig in figures["archs"].items():
        if "digitlab" in fig["variants"]:
            dl = fig["variants"]["digitlab"]
            ratio, cpu_ratio = dl["vs_bare_wall"]["median"], dl["vs_bare_cpu"]["median"]
            hooks = 1 / (1 + dl["hook_cpu_extra_share"]["median"])
            fig["digitlab_meets_target"] = {"wall": ratio >= TARGET, "cpu": cpu_ratio >= TARGET,
                                            "hooks": hooks >= TARGET}
            print(f"{arch}: Digit Lab keeps {ratio:.3f} of bare throughput by wall time, {cpu_ratio:.3f} by CPU time, "
                  f"{hooks:.3f} counting its hooks' CPU time alone (target ≥ {TARGET})")
    path = common.write_results("train_overhead", figures, args.results, started, load_before,
                                notes=["ratios are per round: bare time / variant time (1.0 = no overhead)",
                                       "hook_cpu_extra_share: (variant hook CPU − bare hook CPU) / bare fit CPU, "
                                       "same round; the training thread's CPU time in CallbackList.on_* hooks"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
