"""Inference latency: cold model load, and preprocess + predict for one 280×280 canvas drawing.

    python bench/inference.py [--runs 300] [--warmup 30] [--presets cnn-small,mlp-128-64]

Builds each preset from core.model.architectures (untrained weights time the same as trained
ones), or a local cnn-small and MLP 784-128-64-10 if that module is missing; saves each to
a temporary .keras file; times a cold load in a fresh process and, with the model cached,
`preprocess`, the model call (`predict_on_batch`, with eager `model(x)` and `model.predict`
for comparison) and `predict_image` on a drawable-canvas RGBA image.
It also times the Draw page's "Inside the model" compute per drawing with the model's
`core.predict.explain.Explainer` built and warmed up: activations of every layer, integrated gradients
(32 steps) for the top two digits in one batch, and the 8 nearest of 10,000 indexed training
digits. Prints a table and writes bench/results/inference.json. Targets: predict median
≤ 15 ms; explain ≤ 150 ms for cnn-small, on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from core.predict.inference import load_model, predict_image, predict_probabilities  # noqa: E402
from core.predict.preprocess import preprocess  # noqa: E402

COLD_LOAD = """
import json, sys, time
t0 = time.perf_counter()
from core.predict.inference import load_model
t1 = time.perf_counter()
import keras
t2 = time.perf_counter()
load_model(sys.argv[1])
t3 = time.perf_counter()
load_model(sys.argv[1])
t4 = time.perf_counter()
print(json.dumps({"import_inference_s": t1 - t0, "import_keras_s": t2 - t1, "first_load_s": t3 - t2,
                  "cached_load_ms": (t4 - t3) * 1e3}))
"""


# The first drawing read after a server start, in a fresh process: without a warm-up it waits for
# Keras, the model load and the first (tracing) predict; the dashboard's warm-up does those three
# in the background at start-up, so a drawing made after it waits only for a warm predict.
FIRST_PREDICTION = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from core.predict.inference import load_model, predict_image
import keras
t1 = time.perf_counter()
model = load_model(sys.argv[1])
t2 = time.perf_counter()
drawing = np.load(sys.argv[2])
predict_image(model, drawing)
t3 = time.perf_counter()
predict_image(model, drawing)
t4 = time.perf_counter()
print(json.dumps({"imports_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2,
                  "cold_first_prediction_s": t3 - t0, "warm_prediction_ms": (t4 - t3) * 1e3}))
"""


def first_prediction_after_startup(presets: list[str], rounds: int, out: Path) -> None:
    """`--first-prediction`: the first drawing read after a start, without and with the warm-up
    (medians of `rounds` fresh processes per preset); writes `out`."""
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg()}, "rounds": rounds,
               "presets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "drawing.npy", canvas_drawing())
        for name, model in models().items():
            if presets and name not in presets:
                continue
            model.save(Path(tmp) / f"{name}.keras")
            samples = [json.loads(subprocess.run(
                [sys.executable, "-c", FIRST_PREDICTION, str(Path(tmp) / f"{name}.keras"), str(Path(tmp) / "drawing.npy")],
                cwd=REPO, capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip().splitlines()[-1]) for _ in range(rounds)]
            row = {k: float(np.median([s[k] for s in samples])) for k in samples[0]}
            results["presets"][name] = row
            print(f"{name:18s} first drawing after a start: {row['cold_first_prediction_s']:.1f} s without a warm-up "
                  f"(imports {row['imports_s']:.1f} s, load {row['load_s']:.2f} s, first predict "
                  f"{row['first_predict_s']:.2f} s); after the warm-up {row['warm_prediction_ms']:.0f} ms", flush=True)
    results["load_avg_at_end"] = os.getloadavg()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(REPO) if out.is_relative_to(REPO) else out}")


def canvas_drawing() -> np.ndarray:
    """A '4' drawn with a 20-px white brush on a transparent 280×280 canvas (RGBA uint8)."""
    im = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    pen = ImageDraw.Draw(im)
    for stroke in ([(150, 40), (60, 180), (210, 180)], [(160, 100), (160, 260)]):
        pen.line(stroke, fill=(255, 255, 255, 255), width=20, joint="curve")
    return np.asarray(im)


def models() -> dict[str, object]:
    """name → uncompiled keras.Model: the project's presets if available, else two local ones."""
    import keras

    try:
        from core.model.architectures import PRESETS, build_model
    except ImportError:
        PRESETS, build_model = {}, None
    built = {}
    for name, preset in PRESETS.items():
        built[name] = build_model(preset["layers"], augment=preset["defaults"].get("augment", False),
                                  elastic=preset["defaults"].get("elastic", False))
    if built:
        return built
    L = keras.layers
    return {
        "cnn-small": keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
                                       L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                                       L.Dropout(0.5), L.Dense(32, activation="relu"), L.Dense(10, activation="softmax")]),
        "mlp-128-64": keras.Sequential([keras.Input((784,)), L.Dense(128, activation="relu"),
                                        L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")]),
    }


def timings(fn, runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return {"median_ms": float(np.median(samples)), "p95_ms": float(np.percentile(samples, 95)),
            "min_ms": float(np.min(samples))}


def explain_timings(model, image28: np.ndarray, runs: int, warmup: int) -> dict:
    """The Draw page's explain work for one drawing: Explainer.explain (activations + IG of the top
    two digits) and nearest() over a 10,000-digit index of this model's embedding size."""
    from core.predict.explain import INDEX_SIZE, EmbeddingIndex, Explainer, nearest

    t0 = time.perf_counter()
    explainer = Explainer(model)
    explainer.explain(image28)  # traces the tf.functions once (the page caches the Explainer per run)
    first = time.perf_counter() - t0
    dim = explainer.explain(image28).embedding.size
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(INDEX_SIZE, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float16)
    index = EmbeddingIndex(vectors, rng.integers(0, 10, INDEX_SIZE).astype(np.uint8),
                           np.zeros((INDEX_SIZE, 28, 28), np.uint8), np.arange(INDEX_SIZE))

    def once():
        ex = explainer.explain(image28)
        nearest(index, ex.embedding)

    return {"build_and_first_s": first, "explain_and_nearest": timings(once, runs, warmup),
            "explain_only": timings(lambda: explainer.explain(image28), runs, warmup),
            "nearest_only": timings(lambda: nearest(index, vectors[0].astype(np.float32)), runs, warmup)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed calls per measurement (default 300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls first (default 30)")
    parser.add_argument("--presets", default="", help="comma-separated preset names (default: all)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "inference.json")
    parser.add_argument("--first-prediction", type=int, metavar="ROUNDS", default=0,
                        help="only time the first drawing read after a start, in ROUNDS fresh processes per preset "
                             "(writes bench/results/first_prediction.json)")
    args = parser.parse_args()
    if args.first_prediction:
        return first_prediction_after_startup([p for p in args.presets.split(",") if p], args.first_prediction,
                                              REPO / "bench" / "results" / "first_prediction.json")

    drawing = canvas_drawing()
    pre = preprocess(drawing)
    results = {"machine": {"cpus": os.cpu_count(), "load_avg_at_start": os.getloadavg(),
                           "python": platform.python_version()},
               "runs": args.runs, "warmup": args.warmup, "presets": {}}
    wanted = [p for p in args.presets.split(",") if p]
    results["preprocess_only"] = timings(lambda: preprocess(drawing), args.runs, args.warmup)
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models().items():
            if wanted and name not in wanted:
                continue
            path = Path(tmp) / f"{name}.keras"
            model.save(path)
            cold = subprocess.run([sys.executable, "-c", COLD_LOAD, str(path)], cwd=REPO, capture_output=True,
                                  text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            loaded = load_model(path)
            row = {"params": int(loaded.count_params()), **json.loads(cold.stdout.strip().splitlines()[-1]),
                   "model_call": timings(lambda: predict_probabilities(loaded, pre.image[None]), args.runs, args.warmup),
                   "predict_image": timings(lambda: predict_image(loaded, drawing), args.runs, args.warmup)}
            x = pre.image.reshape((1, *loaded.inputs[0].shape[1:]))  # why predict_on_batch:
            row["other_calls_for_comparison"] = {
                "model(x, training=False)": timings(lambda: loaded(x, training=False), args.runs // 2, 10),
                "model.predict(x)": timings(lambda: loaded.predict(x, verbose=0), 30, 3)}
            row["explain"] = explain_timings(loaded, pre.image, args.runs // 3, 10)
            results["presets"][name] = row
            print(f"{name:18s} {row['params']:>8,} params | load {row['first_load_s']:.2f} s "
                  f"(+{row['import_keras_s']:.1f} s importing Keras), cached {row['cached_load_ms']:.2f} ms | "
                  f"predict_image median {row['predict_image']['median_ms']:.1f} ms, "
                  f"p95 {row['predict_image']['p95_ms']:.1f} ms (model {row['model_call']['median_ms']:.1f} ms)",
                  flush=True)
    p = results["preprocess_only"]
    print(f"{'preprocess only':18s} median {p['median_ms']:.2f} ms, p95 {p['p95_ms']:.2f} ms")
    for name, row in results["presets"].items():
        e = row["explain"]
        print(f"{name:18s} explain + nearest median {e['explain_and_nearest']['median_ms']:.1f} ms, "
              f"p95 {e['explain_and_nearest']['p95_ms']:.1f} ms (first call with tracing {e['build_and_first_s']:.2f} s)")
    for name, row in results["presets"].items():
        other = ", ".join(f"{call} {t['median_ms']:.1f} ms" for call, t in row["other_calls_for_comparison"].items())
        print(f"{name:18s} one image through {other} (predict_on_batch {row['model_call']['median_ms']:.1f} ms)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")


if __name__ == "__main__":
    main()
