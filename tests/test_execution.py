"""core.model.execution: the plan each run trains under (chosen on faked CPU flags and model kinds),
and a run under each plan end to end on tiny data: it trains, streams >= 20 batch points an epoch,
cancels, prunes, saves, records its plan, and reloads in float32 for predict and explain."""
from __future__ import annotations

import numpy as np
import pytest

from core.config import make_config
from core.model.architectures import PRESETS, resolve_layers
from core.model.execution import (HOOK_SECONDS, MAX_SPE, DENSE_FLOPS, ExecutionPlan, choose_plan, cpu_flags,
                                  dense_flops, describe, exec_mode, has_native_bf16, onednn_enabled, thread_counts)
from core.train.callbacks import batch_interval

AMX = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
PLAIN = frozenset({"avx2", "fma"})
NATIVE = has_native_bf16()
NO_BF16 = "this CPU computes bfloat16 only by emulation (no avx512_bf16 or amx_bf16 flag): bf16 runs are not chosen here"


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch):
    monkeypatch.delenv("DIGITLAB_EXEC", raising=False)
    monkeypatch.delenv("DIGITLAB_LOCAL_WORKERS", raising=False)
    monkeypatch.delenv("DIGITLAB_BF16", raising=False)


# -- the chooser ------------------------------------------------------------------------------------
def test_dense_nets_get_several_steps_per_execution_and_xla_on_long_runs():
    plan = choose_plan(resolve_layers("mlp-128-64"), 32, 625, cpu_flags=AMX)
    assert not plan.jit_compile and plan.steps_per_execution == 25 and plan.precision == "float32"
    assert "dense" in plan.reason and "pays back" in plan.reason
    long = choose_plan(resolve_layers("mlp-128-64"), 32, 1875, cpu_flags=AMX, epochs=20)
    assert long.jit_compile and long.steps_per_execution == 32


@pytest.mark.parametrize("flags", [AMX, PLAIN])
@pytest.mark.parametrize("bf16", [None, True])
def test_conv_nets_never_get_xla_nor_several_steps_and_bf16_only_when_asked_on_native_cpus(flags, bf16):
    plan = choose_plan(resolve_layers("cnn-small"), 128, 141, cpu_flags=flags, bf16=bf16, onednn=True)
    assert not plan.jit_compile and plan.steps_per_execution == 1
    assert plan.precision == ("mixed_bfloat16" if flags == AMX and bf16 else "float32")


def test_bf16_is_asked_for_through_the_environment(monkeypatch):
    monkeypatch.setenv("DIGITLAB_BF16", "1")
    assert choose_plan(resolve_layers("cnn-draw"), 128, 400, cpu_flags=AMX, onednn=True).precision == "mixed_bfloat16"
    assert choose_plan(resolve_layers("cnn-draw"), 128, 400, cpu_flags=PLAIN, onednn=True).precision == "float32"


def test_bf16_needs_onednn_and_the_plan_records_it():
    on = choose_plan(resolve_layers("cnn-small"), 128, 141, cpu_flags=AMX, bf16=True, onednn=True)
    off = choose_plan(resolve_layers("cnn-small"), 128, 141, cpu_flags=AMX, bf16=True, onednn=False)
    assert on.precision == "mixed_bfloat16" and on.onednn is True
    assert off.precision == "float32" and off.onednn is False and "emulated" in off.reason
    assert choose_plan(resolve_layers("mlp-128-64"), 32, 625, cpu_flags=AMX, onednn=False).onednn is False


def test_onednn_follows_tensorflows_own_switch():
    assert onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "0"}) is False
    assert onednn_enabled({"TF_ENABLE_ONEDNN_OPTS": "1"}) is True
    import platform
    assert onednn_enabled({}) is (platform.machine().lower() in ("x86_64", "amd64"))  # TensorFlow's default


def test_tensorflows_import_notice_is_kept_out_of_stderr_and_other_lines_are_kept():
    """With oneDNN on, TensorFlow prints a notice on import that TF_CPP_MIN_LOG_LEVEL does not silence;
    importing through `core` drops exactly that notice and passes on everything else written meanwhile."""
    import os
    import subprocess
    import sys

    code = ("import sys, core, threading; threading.Thread(target=lambda: print('from a thread', file=sys.stderr)).start(); "
            "import keras, tensorflow as tf; print('loaded', tf.__version__); print('after', file=sys.stderr)")
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loaded ")
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr
    assert "from a thread" in done.stderr and "after" in done.stderr


def test_default_mode_gives_keras_defaults_from_the_argument_or_the_environment(monkeypatch):
    keras_defaults = dict(steps_per_execution=1, jit_compile=False, precision="float32")
    for arch in ("mlp-128-64", "cnn-small"):
        plan = choose_plan(resolve_layers(arch), 32, 1000, cpu_flags=AMX, mode="default")
        assert {k: getattr(plan, k) for k in keras_defaults} == keras_defaults
    monkeypatch.setenv("DIGITLAB_EXEC", "default")
    assert exec_mode() == "default" and not choose_plan(resolve_layers("mlp-128-64"), 32, 1000).jit_compile
    monkeypatch.setenv("DIGITLAB_EXEC", "nonsense")
    assert exec_mode() == "auto"


def test_augmentation_layers_keep_a_dense_net_off_xla():
    plan = choose_plan(resolve_layers("mlp-128-64"), 32, 1688, cpu_flags=AMX, augment=True, epochs=100)
    assert not plan.jit_compile and plan.steps_per_execution > 1


@pytest.mark.parametrize("arch", ["mlp-512", "mlp-512-dropout", "mlp-512x2-dropout"])
def test_dense_nets_with_heavy_steps_get_several_steps_but_no_xla(arch):
    """Measured on later epochs of full-MNIST runs: k = 7-12 trains the 512-unit presets at batch 128
    1.3-1.8x faster than Keras' defaults; XLA gains nothing on steps this heavy."""
    heavy = choose_plan(resolve_layers(arch), 128, 422, cpu_flags=AMX, epochs=100)
    assert heavy.steps_per_execution > 1 and not heavy.jit_compile and "no XLA" in heavy.reason
    assert choose_plan(resolve_layers(arch), 16, 3375, cpu_flags=AMX).steps_per_execution > 1


def test_dropout_keeps_a_light_dense_net_off_xla():
    """XLA made mlp-512-dropout's epochs 5-8x slower here (its random numbers), so Dropout rules it out."""
    layers = [{"type": "Dense", "units": 128}, {"type": "Dropout", "rate": 0.2}, {"type": "Dense", "units": 64}]
    plan = choose_plan(layers, 32, 1875, cpu_flags=AMX, epochs=20)
    assert plan.steps_per_execution == 32 and not plan.jit_compile and "Dropout" in plan.reason
    without = choose_plan([layer for layer in layers if layer["type"] != "Dropout"], 32, 1875, cpu_flags=AMX, epochs=20)
    assert without.jit_compile


@pytest.mark.parametrize("arch", [a for a in PRESETS if not a.startswith("cnn")] + ["wide"])
@pytest.mark.parametrize("n_digits", [100, 1_000, 20_000, 60_000])
def test_steps_per_execution_keeps_the_live_view(arch, n_digits):
    """k <= the callback's batch interval (so an epoch still logs >= 20 points, one per interval) and
    k batches stay well under a second (Cancel is read in batch hooks)."""
    layers = [{"type": "Dense", "units": 4096}] * 3 if arch == "wide" else resolve_layers(arch)
    for batch in (1, 32, 128, 1024):
        steps = -(-n_digits // batch)
        k = choose_plan(layers, batch, steps, cpu_flags=AMX).steps_per_execution
        assert 1 <= k <= MAX_SPE and k <= batch_interval(steps)
        assert k == 1 or k * dense_flops(layers, batch) / DENSE_FLOPS <= HOOK_SECONDS
        if steps >= 25:
            assert steps // batch_interval(steps) >= 20


def test_threads_are_shared_between_local_workers(monkeypatch):
    assert thread_counts(cores=2, workers=1) == (2, 2)
    assert thread_counts(cores=2, workers=2) == (1, 1)
    assert thread_counts(cores=16, workers=3) == (5, 1)
    monkeypatch.setenv("DIGITLAB_LOCAL_WORKERS", "2")
    plan = choose_plan(resolve_layers("cnn-small"), 128, 100, cpu_flags=PLAIN, cores=8)
    assert (plan.intra_op_threads, plan.inter_op_threads) == (4, 1)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f amx_bf16 amx_tile\n\nprocessor\t: 1\n")
    assert cpu_flags(info) >= {"amx_bf16", "avx512f"} and has_native_bf16(cpu_flags(info))
    assert cpu_flags(tmp_path / "missing") == frozenset() and not has_native_bf16(frozenset())


def test_a_plan_round_trips_and_reads_in_one_line():
    plan = ExecutionPlan(25, True, "float32", 2, 2, "why", onednn=True)
    assert ExecutionPlan.from_dict(plan.to_dict()) == plan and ExecutionPlan.from_dict(None) is None
    assert describe(plan.to_dict()) == ("XLA · 25 steps per execution · float32 · oneDNN · "
                                        "2 intra-op / 2 inter-op threads")
    older = {k: v for k, v in plan.to_dict().items() if k != "onednn"}  # recorded before oneDNN was
    assert ExecutionPlan.from_dict(older).onednn is None and "oneDNN" not in describe(older)
    assert describe(None).startswith("not recorded")


def test_the_logger_counts_steps_when_keras_calls_it_every_k_batches(store):
    from core.train.callbacks import StoreLogger

    class Rows:  # keeps what each write would store
        written: list = []

        def checkpoint(self, run_id, rows, **progress):
            self.written += rows
            return False

    logger = StoreLogger(Rows(), "r1", steps_per_epoch=100, flush_seconds=1e9)  # writes: the first batch only
    for epoch in range(2):
        logger.on_epoch_begin(epoch)
        for end in range(3, 100, 4):  # Keras passes the last batch of each 4-batch execution
            logger.on_train_batch_end(end, {"loss": 1.0})
    points = [row[3] for row in logger.store.written + logger.rows if row[2] == "loss"]
    assert logger.step == 200 and len(points) == 50 == 200 // logger.every
    assert [row[3] for row in logger.store.written] == [4]  # the first execution's point, written at once


# -- a run under each plan, end to end (tiny data) ----------------------------------------------------
PLANS = {
    "keras-default": ("mlp-128-64", ExecutionPlan()),
    "dense-xla-spe": ("mlp-128-64", ExecutionPlan(steps_per_execution=4, jit_compile=True, reason="test")),
    "conv-float32": ("cnn-small", ExecutionPlan(reason="test")),
    "conv-bf16": ("cnn-small", ExecutionPlan(precision="mixed_bfloat16", reason="test")),
}


def _needs_bf16(name):
    return pytest.mark.skipif(not NATIVE, reason=NO_BF16) if "bf16" in name else []


def _run(store, data, monkeypatch, name, epochs=1, **kwargs):
    from core.store.queue import queue_run
    from core.train import run as run_module

    arch, plan = PLANS[name]
    monkeypatch.setattr(run_module, "choose_plan", lambda *a, **k: plan)
    config = make_config(arch, epochs=epochs, batch_size=2, validation_split=0.0)  # 150 steps: a point every 6
    assert plan.steps_per_execution <= batch_interval(150)  # as choose_plan keeps it
    run_id = queue_run(store, config, data)
    return run_module.execute(store, store.claim_run("test", run_id), data, **kwargs), plan


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from core.data.ingest import ingest
    from tests.idx_helpers import write_mnist_dir

    folder = tmp_path_factory.mktemp("idx")
    write_mnist_dir(folder, n_train=300, n_test=60)
    return ingest(folder, folder / "mnist.h5").path


@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs_bf16(n)) for n in PLANS])
def test_a_run_under_each_plan_trains_streams_saves_and_reloads_in_float32(store, data, monkeypatch, name):
    import keras

    from core.predict.explain import Explainer
    from core.predict.inference import load_model, predict_probabilities
    from core.data.dataset import load_dataset

    run, plan = _run(store, data, monkeypatch, name, epochs=2)
    assert run.status == "completed", run.error
    assert keras.mixed_precision.global_policy().name == "float32"  # the worker's next run starts clean
    assert run.dataset["execution"] == plan.to_dict()
    batch = store.metric_history(run.id, "batch", keys=["loss"])
    assert batch.groupby("epoch").size().min() >= 20 and len(batch) == len(set(batch["step"]))
    model = load_model(store.model_file(run.id), run_id=run.id)
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    test = load_dataset(data)
    probs = predict_probabilities(model, test.x_test / 255.0)
    assert probs.dtype == np.float64 and np.allclose(probs.sum(axis=1), 1)
    assert (probs.argmax(axis=1) == test.y_test).mean() == pytest.approx(run.test_accuracy)
    explainer = Explainer(model)
    checked = 0
    for image in test.x_test[:8] / 255.0:
        for a in explainer.explain(image).attributions:  # integrated gradients stay complete
            delta = a.f_input - a.f_baseline
            if abs(delta) >= 0.05:
                checked += 1
                assert abs(a.pixels.sum() - delta) <= 0.05 * abs(delta), (a.label, a.pixels.sum(), delta)
    assert checked >= 4


@pytest.mark.parametrize("name", [pytest.param(n, marks=_needs_bf16(n)) for n in ("dense-xla-spe", "conv-bf16")])
def test_a_run_under_each_plan_cancels_and_prunes(store, data, monkeypatch, name):
    monkeypatch.setenv("DIGITLAB_FLUSH_SECONDS", "0")
    stopped, _ = _run(store, data, monkeypatch, name, epochs=3, should_stop=lambda: True)
    assert stopped.status == "cancelled" and (stopped.epoch or 0) <= 1
    asked = []
    pruned, _ = _run(store, data, monkeypatch, name, epochs=3, prune=lambda epoch, logs: asked.append(epoch) or epoch == 2)
    assert pruned.status == "pruned" and asked == [1, 2] and pruned.epoch == 2


def test_explaining_a_bf16_model_directly_is_float32_and_complete():
    if not NATIVE:
        pytest.skip(NO_BF16)
    import keras

    from core.model.architectures import build_model
    from core.predict.explain import Explainer

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(resolve_layers("cnn-small"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(0)
    image = (rng.random((28, 28)) > 0.8).astype("float32")
    for a in Explainer(model).explain(image).attributions:
        delta = a.f_input - a.f_baseline
        assert abs(a.pixels.sum() - delta) <= 0.05 * abs(delta) + 1e-3


def test_core_show_and_run_detail_display_the_plan(store, data, capsys):
    from core.cli import main
    from core.store.queue import queue_run
    from dashboard.run_detail.views import execution_caption

    plan = choose_plan(resolve_layers("mlp-128-64"), 32, 625, cpu_flags=AMX)
    run_id = queue_run(store, make_config("mlp-128-64"), data)
    store.set_dataset(run_id, {"source": "test", "execution": plan.to_dict()})
    assert main(["show", run_id, "--db", store.url]) == 0
    out = capsys.readouterr().out
    assert f"execution:\n  {describe(plan)}\n  {plan.reason}" in out and "25 steps per execution" in out
    assert execution_caption(store.get_run(run_id)) == f"Execution: {describe(plan)} ({plan.reason})"
