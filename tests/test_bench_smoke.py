"""The benchmarks still run: each script at tiny sizes (--smoke) in a subprocess prints a table
and writes its JSON. Data: conftest's shared 300-digit synthetic `populated_data`. The figures
are meaningless at these sizes; the real runs are in bench/README.md, outside the test suite."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def run_bench(script: str, results: Path, *args: str, timeout: int = 120) -> tuple[str, dict]:
    """Run bench/<script> --smoke; return its stdout and the JSON it wrote."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, f"bench/{script}", "--smoke", "--results", str(results), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    name = script.removesuffix(".py")
    doc = json.loads((results / f"{name}.json").read_text())
    assert doc["benchmark"] == name
    assert f"bench/{script}" in doc["command"] and "--smoke" in doc["command"]
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["python"]
    assert re.search(r"^-+(  -+)+$", proc.stdout, re.MULTILINE), proc.stdout  # a table's rule under its header
    return proc.stdout, doc


def test_train_overhead_smoke(tmp_path, populated_data):
    out, doc = run_bench("train_overhead.py", tmp_path, "--data", str(populated_data),
                         "--variants", "bare,digitlab,csvlogger,mlflow")
    variants = doc["figures"]["archs"]["mlp-128-64"]["variants"]
    assert {"bare", "digitlab", "csvlogger"} <= set(variants)
    assert variants["bare"]["vs_bare_wall"]["median"] == pytest.approx(1.0)
    assert variants["digitlab"]["samples_per_s"]["median"] > 0
    if importlib.util.find_spec("mlflow") is None:  # a missing tracker is a skipped column, not a crash
        assert "mlflow" in doc["figures"]["skipped"] and "skipped mlflow" in out
    assert "Digit Lab keeps" in out


def test_store_scale_smoke(tmp_path):
    out, doc = run_bench("store_scale.py", tmp_path)
    sizes = doc["figures"]["sizes"]
    assert set(sizes) == {"20", "60"}
    per_run = 3 * 6 + 10 * 2  # smoke: 3 epochs × 6 epoch keys + 10 batch points × 2 batch keys
    assert sizes["60"]["metric_rows"] == 60 * per_run
    runs_table = sizes["60"]["queries"]["runs table"]
    assert runs_table["ms"]["median"] > 0 and runs_table["plans"], runs_table
    assert "compare epochs (10 runs)" in out


def test_presets_smoke(tmp_path, populated_data):
    out, doc = run_bench("presets.py", tmp_path, "--data", str(populated_data), "--presets", "mlp-128-64,cnn-small")
    presets = doc["figures"]["presets"]
    assert set(presets) == {"mlp-128-64", "cnn-small"}
    for fig in presets.values():
        assert fig["epochs"] == 1 and 0.0 <= fig["test_accuracy"] <= 1.0
        assert fig["samples_per_s"]["median"] > 0


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no Chromium at /usr/bin/chromium")
@pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed")
@pytest.mark.skipif(not (ROOT / "pages" / "runs.py").exists() or not (ROOT / "pages" / "compare.py").exists(),
                    reason="the Runs and Compare pages are not written yet")
def test_dashboard_smoke(tmp_path, populated_data):
    out, doc = run_bench("dashboard.py", tmp_path, "--data", str(populated_data), timeout=180)
    pages = doc["figures"]["pages"]
    assert set(pages) == {"Runs", "Compare", "Run detail"}
    assert all(p["s"]["median"] > 0 and p["warm_s"]["n"] == 1 for p in pages.values())
    assert "returning visitor" in out
    assert set(pages["Compare"]["tabs_s"]) == {"Hyperparameters", "Confusion matrices"}
    assert all(t["median"] > 0 for t in pages["Compare"]["tabs_s"].values())
    assert "Compare → Confusion matrices" in out


def test_search_smoke(tmp_path, populated_data):
    out, doc = run_bench("search.py", tmp_path, "--data", str(populated_data), timeout=300)
    methods = doc["figures"]["methods"]
    assert set(methods) == {"grid", "random", "tpe", "tpe-median", "tpe-hyperband"}
    for name, agg in methods.items():
        assert 0.0 <= agg["best_val_accuracy"] <= 1.0 and 0.0 <= agg["best_test_accuracy"] <= 1.0, name
        assert 0 < agg["fit_s"] <= agg["wall_s"] and agg["epochs_trained"] >= 1, name
    assert methods["grid"]["cpu_vs_grid"] == pytest.approx(1.0) and methods["grid"]["pruned_runs"] == 0
    assert all(s["runs"] == 4 for s in doc["figures"]["studies"])  # the smoke budget, for every method
    assert "fit vs grid" in out


def test_writers_smoke(tmp_path, populated_env):
    runs = list(populated_env.runs["run_id"][:2])
    args = ["--data", str(populated_env.data_path), "--store", populated_env.db_url, "--name", "writers"]
    for run_id in runs:
        args += ["--run", run_id]
    out, doc = run_bench("writers.py", tmp_path, *args, "--ensemble", timeout=300)
    models = doc["figures"]["models"]
    assert set(runs) <= set(models) and len(models) == 3, list(models)  # the two runs and their ensemble
    for fig in models.values():
        assert 0.0 <= fig["proxy_mean"] <= 1.0 and 0.0 <= fig["mnist_test"] <= 1.0
        assert len(fig["per_writer"]) == len(doc["figures"]["writers"])
    assert "drawn-like" in out and "MNIST test" in out


@pytest.mark.skipif(importlib.util.find_spec("websockets") is None, reason="websockets is not installed")
def test_visitors_smoke(tmp_path, populated_data):
    out, doc = run_bench("visitors.py", tmp_path, "--data", str(populated_data), timeout=400)
    figures = doc["figures"]
    for scenario in ("idle", "live", "draw"):
        assert figures[scenario]["2"]["errors"] == [], (scenario, figures[scenario]["2"]["errors"])
    assert figures["live"]["2"]["every_viewer_updated"]  # both viewers saw the batch count move
    draw = figures["draw"]["2"]
    assert draw["latency_s"]["n"] == 2 and draw["server_cpu_per_drawing_s"]["median"] > 0
    assert figures["driver"].startswith("Streamlit websocket protocol")
    assert "draw p95 s" in out


def tiny_writers(path: Path, n: int = 24) -> Path:
    """A stand-in for the real-writers set, in its format: white bars and rings on black, 280×280, 3 writers."""
    import numpy as np

    images = np.zeros((n, 280, 280), dtype=np.uint8)
    labels, writer = np.arange(n) % 10, 1 + np.arange(n) % 3
    yy, xx = np.mgrid[:280, :280]
    for i, label in enumerate(labels):
        if label == 1:
            images[i, 60:220, 130:150] = 255
        else:
            ring = np.abs(np.hypot(yy - 140, (xx - 140) * (1 + label / 10)) - 70) < 10
            images[i][ring] = 255
    np.savez_compressed(path, images=images, labels=labels, writer=writer, line_width=np.full(n, 20))
    return path


def test_real_writers_smoke(tmp_path, populated_env):
    runs = list(populated_env.runs["run_id"][:2])
    args = ["--store", populated_env.db_url, "--writers", str(tiny_writers(tmp_path / "w.npz"))]
    for run_id in runs:
        args += ["--run", run_id]
    out, doc = run_bench("real_writers.py", tmp_path, *args, timeout=300)
    for run_id in runs:
        fig = doc["figures"][run_id]
        assert set(fig["per_writer"]) == {"1", "2", "3"} and 0.0 <= fig["worst_accuracy"] <= fig["accuracy"] <= 1.0
    assert "worst writer" in out


def test_workers_smoke(tmp_path, populated_data):
    out, doc = run_bench("workers.py", tmp_path, "--data", str(populated_data), timeout=300)
    by = doc["figures"]["by_workers"]
    assert set(by) == {"1", "2"} and all(f["rounds"][0]["runs"] == 2 and f["rounds"][0]["failed"] == 0 for f in by.values())
    assert by["1"]["throughput_vs_first"]["median"] == pytest.approx(1.0)
    assert doc["figures"]["verdict"] in ("one", "two") and "the dashboard should start" in out


def test_train_speed_smoke(tmp_path, populated_data):
    out, doc = run_bench("train_speed.py", tmp_path, "--data", str(populated_data), "--presets", "mlp-128-64",
                         "--accuracy", "mlp-128-64", "--writers", str(tiny_writers(tmp_path / "w.npz")), timeout=300)
    fig = doc["figures"]
    variants = fig["presets"]["mlp-128-64"]["variants"]
    assert set(variants) == {"digitlab", "bare", "best"} and fig["matmul_peak_gflops"] > 0
    assert variants["bare"]["vs_bare_cpu"]["median"] == pytest.approx(1.0)
    assert fig["presets"]["mlp-128-64"]["plan"]["steps_per_execution"] >= 1
    assert fig["accuracy"]["mlp-128-64"]["default"] and "test accuracy" in out
    real = fig["accuracy"]["mlp-128-64"]["writers"]
    assert len(real["default"]) == len(real["auto"]) == 1 and "real writers" in out


def test_first_batch_smoke(tmp_path, populated_data):
    out, doc = run_bench("first_batch.py", tmp_path, "--data", str(populated_data), "--presets", "mlp-128-64",
                         timeout=300)
    marks = doc["figures"]["presets"]["mlp-128-64"]
    assert 0 < marks["claimed"]["median"] <= marks["dataset"]["median"] <= marks["first_batch"]["median"]
    assert doc["figures"]["worker_warm_s"] > 0 and "first batch s" in out
