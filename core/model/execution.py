"""How a run executes on this machine: steps per execution, XLA, the precision policy and threads.

`choose_plan()` picks, per run, the fastest way to train its model that keeps its results and
its live view, from rules measured on these machines (issue 25; bench/train_speed.py reruns them):

- Dense-only models: Keras spends much of a step in Python and in dispatching small ops, not in the
  matmuls, and several steps per `tf.function` call (`steps_per_execution`) save most of it at no
  cost to the results (the same accuracy to the last digit). Measured on the epochs after the first
  (the first also traces the step, a fixed cost), full MNIST, against bare Keras' defaults
  (bench/train_speed.py --limit 60000 --rounds 5, quiet cores): `mlp-128-64` at batch 32 trains 2.26x
  faster (1.8x less CPU); `mlp-512` and `mlp-512-dropout` at batch 128 (k = 12) 1.32-1.38x faster
  (1.2x less CPU); `mlp-512x2-dropout` (k = 7), the heaviest step, about as fast as bare Keras. (An
  earlier reading that the 512-unit presets gained nothing timed one 141-step epoch including the
  trace, where k was at most 5.) XLA (`jit_compile`) on top saves a little more on light steps
  (`OVERHEAD_BOUND_FLOPS`) but costs 3-4 CPU-s of compiling in the first epoch (and delays the first
  batch), so it is used only for runs of `XLA_MIN_STEPS` steps or more, where it pays back; never
  with Dropout, whose random numbers XLA makes 5-8x slower on this CPU (mlp-512-dropout: 5.3 vs
  0.7 s an epoch).
- Conv nets: XLA makes them 5-7x slower on this CPU and `steps_per_execution` changes nothing, so
  both stay off. What speeds them up is TensorFlow's oneDNN kernels, now left on as TensorFlow ships
  (Digit Lab used to turn them off to keep its output quiet; `core` now keeps the notice out
  instead): `cnn-small` trains an epoch with 1.7x less CPU (7.4 vs 12.4 CPU-s on 18,000 digits), to
  the same results within noise (test accuracy 97.06 % vs 97.09 %, real writers 87.15 % vs 87.02 %,
  worst writer 72.0 % vs 72.1 %, means of 3 seeds). Where the CPU does bfloat16
  natively (AVX512-BF16, AMX) and oneDNN is on, the `mixed_bfloat16` policy needs another 1.5x less
  CPU (4.9 CPU-s), but it stays opt-in (`DIGITLAB_BF16=1`): on `cnn-small` it scored 0.14 points
  lower on the mean of 3 seeds (96.92 % vs 97.06 %, lower at every seed) and its worst real writer
  2 points lower (70.0 % vs 72.0 %, within that figure's noise), at the edge of the 0.15-point budget.
  (The 8-15x slowdown once blamed on Digit Lab's run was bfloat16 emulated with oneDNN off.)
- With `steps_per_execution=k`, Keras calls batch hooks every k batches. k stays small enough that
  an epoch still logs `MIN_POINTS` batch points (k <= the callback's batch interval) and that k
  batches take well under a second (Cancel is read in batch hooks); epoch ends are unchanged, so
  the pruner is still asked at every one.
- Threads: each local worker gets its share of the cores for TensorFlow's intra-op pool, so several
  workers on one machine do not fight over the same cores.

`--exec default` or `DIGITLAB_EXEC=default` gives Keras' defaults instead. The plan is recorded
with the run (its dataset record, key "execution") and shown by `core show` and Run detail.
TensorFlow is imported only inside the functions that need it.
"""
from __future__ import annotations

import logging
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("core.model")

MODES = ("auto", "default")
MIN_POINTS = 25        # batch points an epoch logs (core.train.callbacks.batch_interval's default)
MAX_SPE = 32           # most steps per execution: beyond it the measured gain is flat
XLA_MIN_STEPS = 20_000  # XLA pays back its ~4 CPU-s compile after ~8,000 steps of mlp-128-64: 2.5x margin
HOOK_SECONDS = 0.2     # k batches between two batch hooks take at most about this long
DENSE_FLOPS = 20e9     # float32 FLOP/s a small dense step reaches here (measured peak 376 GFLOP/s): a safe floor
# XLA is worth its compile only where a step is light (Keras' per-step overhead dominates; mlp-128-64 at
# batch 32 is 21 MFLOP a step): on mlp-512 at batch 128 (310 MFLOP) it saved little, within noise, over
# several steps per execution alone, for 2-3 s of compiling (2026-12-05, later epochs).
OVERHEAD_BOUND_FLOPS = 100e6
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs that compute bfloat16 natively


@dataclass(frozen=True)
class ExecutionPlan:
    """How one run trains. Zero threads means TensorFlow's own choice (all cores)."""
    steps_per_execution: int = 1
    jit_compile: bool = False            # Keras' "auto" is False on a CPU
    precision: str = "float32"           # or "mixed_bfloat16"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    reason: str = "Keras' defaults"
    onednn: bool | None = None           # TensorFlow's oneDNN kernels were on (None: not recorded, older runs)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> ExecutionPlan | None:
        if not data:
            return None
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read, e.g. on macOS)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:  # no /proc here: treat the CPU as having no special features (the safe plan)
        pass
    return frozenset()


def has_native_bf16(flags: frozenset[str] | set[str] | None = None) -> bool:
    """True where the CPU computes bfloat16 in hardware (AVX512-BF16 or AMX)."""
    return bool(set(cpu_flags() if flags is None else flags) & set(NATIVE_BF16))


def onednn_enabled(environ: dict | None = None) -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process: TF_ENABLE_ONEDNN_OPTS if set (TensorFlow
    reads it once, when it starts), else TensorFlow's default, which is on for x86-64 CPUs."""
    value = (os.environ if environ is None else environ).get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    if value:
        return value not in ("0", "false", "off", "no")
    return platform.machine().lower() in ("x86_64", "amd64")


def bf16_enabled(value: bool | None = None) -> bool:
    """Whether conv nets may train in mixed_bfloat16: `value` if given, else DIGITLAB_BF16 ("1": yes; default no)."""
    if value is not None:
        return bool(value)
    return os.environ.get("DIGITLAB_BF16", "").strip().lower() in ("1", "true", "yes", "on")


def exec_mode(mode: str | None = None) -> str:
    """The execution mode: `mode` if given, else DIGITLAB_EXEC ("default" gives Keras' defaults), else "auto"."""
    value = (mode or os.environ.get("DIGITLAB_EXEC") or "auto").strip().lower()
    return value if value in MODES else "auto"


def local_workers() -> int:
    """How many workers train on this machine at once: DIGITLAB_LOCAL_WORKERS, else 1."""
    try:
        return max(1, int(os.environ.get("DIGITLAB_LOCAL_WORKERS", "1")))
    except ValueError:  # documented: anything else means one
        return 1


def thread_counts(cores: int | None = None, workers: int | None = None) -> tuple[int, int]:
    """(intra, inter) op threads for one of `workers` local workers sharing `cores` cores."""
    cores = max(1, cores or os.cpu_count() or 1)
    workers = max(1, workers or local_workers())
    intra = max(1, cores // workers)
    return intra, (1 if workers > 1 else min(2, cores))


def dense_flops(layers: list[dict], batch_size: int) -> float:
    """Rough FLOPs of one training step of a dense stack (forward + backward = 6 per weight per digit)."""
    width, weights = 28 * 28, 0
    for layer in layers:
        if layer.get("type") == "Dense":
            weights += width * int(layer["units"])
            width = int(layer["units"])
    weights += width * 10
    return 6.0 * weights * batch_size


def choose_plan(layers: list[dict], batch_size: int, steps_per_epoch: int, cpu_flags: frozenset[str] | set[str] | None = None,
                workers: int | None = None, mode: str | None = None, augment: bool = False,
                cores: int | None = None, epochs: int = 1, bf16: bool | None = None,
                onednn: bool | None = None) -> ExecutionPlan:
    """The plan for a model (its layer stack, as core.model.architectures builds it) at a batch size.

    `cpu_flags`: the CPU's flags (default: read from /proc/cpuinfo; tests fake them).
    `workers`: local workers sharing the cores (default: DIGITLAB_LOCAL_WORKERS, else 1).
    `mode`: "auto" or "default" (default: DIGITLAB_EXEC, else "auto").
    `augment`: the model has augmentation layers (image transforms XLA does not compile on a CPU).
    `epochs`: how long the run is (XLA only pays back on long runs).
    `bf16`: allow mixed_bfloat16 for conv nets on CPUs that do it natively (default: DIGITLAB_BF16).
    `onednn`: TensorFlow's oneDNN kernels are on in this process (default: onednn_enabled()); bfloat16
    is native only through them (without them TensorFlow emulates it, about 10x slower).
    """
    intra, inter = thread_counts(cores, workers)
    dnn = onednn_enabled() if onednn is None else bool(onednn)
    common = dict(intra_op_threads=intra, inter_op_threads=inter, onednn=dnn)
    if exec_mode(mode) == "default":
        return ExecutionPlan(**common, reason="Keras' defaults, as asked (--exec default or DIGITLAB_EXEC=default)")
    conv = any(layer.get("type") == "Conv2D" for layer in layers)
    if conv:
        native = has_native_bf16(cpu_flags)
        if native and dnn and bf16_enabled(bf16):
            return ExecutionPlan(precision="mixed_bfloat16", **common,
                                 reason="conv net on a CPU with native bfloat16 (through oneDNN): mixed_bfloat16, "
                                        "no XLA (slower on conv nets here), one step per execution (no gain)")
        why = ("the CPU has no native bfloat16" if not native else
               "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0), so bfloat16 would be emulated" if not dnn else
               "bfloat16 is opt-in (DIGITLAB_BF16=1)")
        return ExecutionPlan(**common, reason=f"conv net: float32 ({why}), no XLA (slower on conv nets here), "
                                              f"one step per execution (no gain)")
    step_flops = dense_flops(layers, batch_size)
    interval = max(1, steps_per_epoch // MIN_POINTS)  # the callback's batch interval: a point every so many steps
    per_batch = step_flops / DENSE_FLOPS
    k = max(1, min(MAX_SPE, interval, int(HOOK_SECONDS / max(per_batch, 1e-9))))
    dropout = any(layer.get("type") == "Dropout" for layer in layers)
    light = step_flops <= OVERHEAD_BOUND_FLOPS
    jit = not augment and not dropout and light and steps_per_epoch * max(1, epochs) >= XLA_MIN_STEPS
    why = (f"dense-only model: {'XLA and ' if jit else ''}{k} step{'s' if k > 1 else ''} per execution "
           f"(keeps >= {MIN_POINTS} batch points an epoch and a batch hook every < {HOOK_SECONDS:g} s)")
    if augment:
        why += "; no XLA with augmentation layers"
    elif dropout:
        why += "; no XLA with Dropout (its random numbers are slower under XLA here)"
    elif not light:
        why += f"; no XLA: a {step_flops / 1e6:,.0f} MFLOP step gains nothing from it"
    elif not jit:
        why += f"; no XLA: its compile pays back only after {XLA_MIN_STEPS:,} steps"
    return ExecutionPlan(steps_per_execution=k, jit_compile=jit, **common, reason=why)


def describe(plan: ExecutionPlan | dict | None) -> str:
    """One line for people: "XLA · 25 steps per execution · float32 · 2 threads" (or why none is known)."""
    plan = ExecutionPlan.from_dict(plan) if isinstance(plan, dict) else plan
    if plan is None:
        return "not recorded (trained before runs recorded how they executed)"
    parts = ["XLA" if plan.jit_compile else "no XLA",
             f"{plan.steps_per_execution} step{'s' if plan.steps_per_execution > 1 else ''} per execution",
             plan.precision]
    if plan.onednn is not None:
        parts.append("oneDNN" if plan.onednn else "no oneDNN")
    if plan.intra_op_threads:
        parts.append(f"{plan.intra_op_threads} intra-op / {plan.inter_op_threads} inter-op threads")
    return " · ".join(parts)


def thread_environment(workers: int | None = None, cores: int | None = None) -> dict[str, str]:
    """Environment variables that size TensorFlow's thread pools before it starts (a worker process
    sets them first thing); values already set by the user are kept."""
    intra, inter = thread_counts(cores, workers)
    wanted = {"TF_NUM_INTRAOP_THREADS": str(intra), "TF_NUM_INTEROP_THREADS": str(inter)}
    return {k: os.environ.get(k, v) for k, v in wanted.items()}


def float32_copy(model):
    """The same model computing in float32 (weights shared by value); `model` itself when it already does.

    A mixed_bfloat16 model keeps float32 weights and computes in bfloat16. Predictions and
    integrated gradients want float32 throughout, so its layers are rebuilt with the float32
    policy and given the same weights.
    """
    import keras

    if all(_policy_name(layer) in ("float32", None) for layer in model.layers):
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except Exception:  # a model Keras cannot clone (subclassed, imported): it predicts in its own policy
        log.warning("model %s could not be rebuilt in float32; it predicts in its own precision",
                    getattr(model, "name", "?"), exc_info=True)
        return model
    return copy


def _policy_name(layer) -> str | None:
    policy = getattr(layer, "dtype_policy", None)
    return getattr(policy, "name", None)
