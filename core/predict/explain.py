"""Explanations of one prediction: what each layer computed, which pixels pushed the model to
its answer, and the training digits it finds most alike.

- **Activations.** `Explainer` builds, once per model, one Keras model that returns every conv
  block's feature maps and every hidden Dense layer's units beside the prediction. A conv
  block is a Conv2D with the BatchNormalization / Activation layers right after it, so a
  BatchNorm stack (cnn-draw) shows its maps after the non-linearity, as cnn-small does.
  Augmentation layers (named ``aug_*``) act only while training and are skipped.
- **Attribution: integrated gradients** (Sundararajan et al., 2017), chosen over Grad-CAM
  because (1) Grad-CAM's map has the resolution of the last conv layer, 5×5 for cnn-small and
  4×4 for cnn-draw, too coarse to say which stroke of a 28×28 digit mattered, while IG gives
  one value per input pixel; (2) IG works for every run, MLPs included, where Grad-CAM needs
  a conv layer; (3) IG is complete: a class's attributions sum to f(x) − f(baseline), which a
  test checks. The baseline is the blank canvas (all zeros), what a drawing starts from. f is
  the class's logit (the output layer's input to its softmax): attributions then add up to
  log-odds, and "why 7 and not 1" is exactly IG(7) − IG(1). All steps of both classes go
  through the model as one batch under one GradientTape inside a `tf.function`.
- **Nearest training digits.** The penultimate layer (the output layer's input) is the run's
  embedding. `build_index` embeds a fixed subset of the training digits once per run, kept as
  its ``embedding.npz`` artifact (float16 unit vectors, labels, the 28×28 images themselves,
  so another machine needs no dataset to show them); `nearest` ranks by cosine similarity.

TensorFlow is imported only when an `Explainer` is built: importing this module is cheap.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from core.predict.preprocess import SIZE, InferenceError

IG_STEPS = 32              # integration steps (midpoint rule) per class
INDEX_SIZE = 10_000        # training digits in a run's nearest-neighbour index
INDEX_SEED = 0             # which ones: a fixed random subset, the same for every run
INDEX_ARTIFACT = "embedding.npz"
NEIGHBOURS = 8
BLOCK_FOLLOWERS = ("BatchNormalization", "Activation", "ReLU", "LeakyReLU")


@dataclass(frozen=True)
class LayerView:
    """What one layer (or conv block) computed for the drawing."""
    name: str                  # e.g. "Conv2D 32 3×3 → BatchNormalization → Activation"
    kind: str                  # "conv" (maps: (H, W, C)) or "dense" (units: (N,))
    values: np.ndarray


@dataclass(frozen=True)
class Attribution:
    label: int
    pixels: np.ndarray         # (28, 28): each pixel's share of f(x) − f(baseline)
    f_input: float             # the class's score on the drawing
    f_baseline: float          # ... on the blank canvas


@dataclass
class Explanation:
    probabilities: np.ndarray               # (10,)
    layers: list[LayerView]
    attributions: list[Attribution]         # predicted digit first, then the runner-up
    embedding: np.ndarray                   # the penultimate layer's output (D,)
    target: str                             # what IG attributes: "logit" or "probability"
    kernels: np.ndarray | None = None       # the first Conv2D's kernels (filters, k, k)
    seconds: dict[str, float] = field(default_factory=dict)


def _is_augmentation(layer) -> bool:
    return layer.name.startswith("aug_") or type(layer).__name__.startswith("Random")


def _describe(layer) -> str:
    kind = type(layer).__name__
    cfg = layer.get_config()
    if kind == "Conv2D":
        k = cfg["kernel_size"][0]
        act = cfg.get("activation")
        return f"Conv2D {cfg['filters']} {k}×{k}" + (f" {act}" if act and act != "linear" else "")
    if kind == "Dense":
        act = cfg.get("activation")
        return f"Dense {cfg['units']}" + (f" {act}" if act and act != "linear" else "")
    if kind == "Activation":
        return str(cfg.get("activation"))
    return kind


def plan_layers(model) -> list[tuple[str, str, Any]]:
    """(name, kind, layer whose output is shown) for each conv block and hidden Dense layer, in order."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer" and not _is_augmentation(layer)]
    out = []
    for i, layer in enumerate(layers):
        kind = type(layer).__name__
        if kind == "Conv2D":
            shown, names = layer, [_describe(layer)]
            for nxt in layers[i + 1:]:
                if type(nxt).__name__ not in BLOCK_FOLLOWERS:
                    break
                shown = nxt
                names.append(_describe(nxt))
            out.append((" → ".join(names), "conv", shown))
        elif kind == "Dense" and layer is not layers[-1]:
            shown = layer
            if i + 1 < len(layers) and type(layers[i + 1]).__name__ in ("Activation", "ReLU"):
                shown = layers[i + 1]
            out.append((_describe(layer), "dense", shown))
    return out


class Explainer:
    """Everything the "Inside the model" panel computes for one model, traced once and reused.

    Build it once per model (the dashboard caches one per run); `explain(image28)` then costs
    one forward pass for the activations and one batched forward + backward pass for IG.
    """

    def __init__(self, model, steps: int = IG_STEPS):
        import keras
        import tensorflow as tf

        from core.model.execution import float32_copy

        model = float32_copy(model)  # a mixed_bfloat16 run is explained in float32 (IG's sums must hold)
        self.model, self.steps = model, int(steps)
        try:
            self.input_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
        except (AttributeError, IndexError, TypeError) as exc:
            raise InferenceError(f"cannot explain this model: it has no known input ({exc})") from None
        if int(np.prod(self.input_shape)) != SIZE * SIZE:
            raise InferenceError(f"model input shape {self.input_shape} does not hold a 28×28 image")
        self.plan = plan_layers(model)
        last = model.layers[-1]
        if len(model.layers) < 2:
            raise InferenceError("cannot explain a model with a single layer")
        # The penultimate output is the output layer's input: its embedding, and the logits' source.
        penultimate = last.input
        self.logit_weights = None
        if type(last).__name__ == "Dense" and last.get_config().get("activation") == "softmax":
            self.logit_weights = (last.kernel, last.bias)
        self.target = "logit" if self.logit_weights is not None else "probability"
        outputs = [shown.output for _, _, shown in self.plan] + [penultimate, model.outputs[0]]
        self._probe = keras.Model(model.inputs, outputs)
        self._penult = keras.Model(model.inputs, penultimate)
        self.kernels = None
        conv = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
        if conv:
            kernel = np.asarray(conv[0].kernel)  # (k, k, in, filters)
            self.kernels = kernel.mean(axis=2).transpose(2, 0, 1)
        shape = self.input_shape
        spec = tf.TensorSpec((None, SIZE, SIZE), tf.float32)

        def scores(x):  # (N, 28, 28) → the score IG attributes, (N, 10)
            x = tf.reshape(x, (-1, *shape))
            if self.logit_weights is not None:
                kernel, bias = self.logit_weights
                return tf.matmul(self._penult(x, training=False), kernel) + bias
            out = model(x, training=False)
            return out[0] if isinstance(out, (list, tuple)) else out

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def probe(x):
            return self._probe(tf.reshape(x, (-1, *shape)), training=False)

        @tf.function(input_signature=[tf.TensorSpec((SIZE, SIZE), tf.float32), tf.TensorSpec((None,), tf.int32)],
                     reduce_retracing=True)
        def integrated(x, classes):
            steps = self.steps
            alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps        # midpoints of [0, 1]
            path = alphas[:, None, None] * x[None]                           # baseline 0 → x
            n = tf.shape(classes)[0]
            batch = tf.tile(path, (n, 1, 1))                                 # every class's steps: one batch
            which = tf.repeat(classes, steps)
            with tf.GradientTape() as tape:
                tape.watch(batch)
                picked = tf.gather(scores(batch), which, axis=1, batch_dims=1)
                total = tf.reduce_sum(picked)
            grads = tf.reshape(tape.gradient(total, batch), (n, steps, SIZE, SIZE))
            ends = tf.gather(scores(tf.stack([x, tf.zeros_like(x)])), classes, axis=1)  # (2, n): f(x), f(0)
            return tf.reduce_mean(grads, axis=1) * x[None], ends

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def embed(x):
            return self._penult(tf.reshape(x, (-1, *shape)), training=False)

        self._probe_fn, self._ig_fn, self._embed_fn = probe, integrated, embed

    def attributions(self, image28: np.ndarray, labels: list[int]) -> list[Attribution]:
        """Integrated gradients of each label's score, baseline the blank canvas."""
        x = np.asarray(image28, np.float32).reshape(SIZE, SIZE)
        pixels, ends = self._ig_fn(x, np.asarray(labels, np.int32))
        pixels, ends = np.asarray(pixels, np.float64), np.asarray(ends, np.float64)
        return [Attribution(int(c), pixels[i], float(ends[0, i]), float(ends[1, i])) for i, c in enumerate(labels)]

    def embed(self, images: np.ndarray, batch: int = 1024) -> np.ndarray:
        """Penultimate-layer embeddings (N, D) of images (N, 28, 28) in [0, 1]."""
        x = np.asarray(images, np.float32).reshape((-1, SIZE, SIZE))
        out = [np.asarray(self._embed_fn(x[i:i + batch])) for i in range(0, len(x), batch)]
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def explain(self, image28: np.ndarray, top: int = 2) -> Explanation:
        """Activations, top-`top` attributions and the embedding of one 28×28 image in [0, 1]."""
        x = np.asarray(image28, np.float32).reshape(1, SIZE, SIZE)
        t0 = time.perf_counter()
        outs = [np.asarray(o) for o in self._probe_fn(x)]
        t1 = time.perf_counter()
        probs = outs[-1][0].astype(np.float64)
        probs = probs / max(probs.sum(), 1e-12)
        order = [int(c) for c in np.argsort(-probs)[:top]]
        attributions = self.attributions(x[0], order)
        t2 = time.perf_counter()
        layers = [LayerView(name, kind, out[0]) for (name, kind, _), out in zip(self.plan, outs[:-2])]
        return Explanation(probs, layers, attributions, outs[-2][0].reshape(-1), self.target, self.kernels,
                           {"activations": t1 - t0, "attribution": t2 - t1})


# ------------------------------------------------------------------------------ nearest training digits

@dataclass(frozen=True)
class EmbeddingIndex:
    vectors: np.ndarray        # (N, D) float16 unit vectors
    labels: np.ndarray         # (N,) uint8
    images: np.ndarray         # (N, 28, 28) uint8
    ids: np.ndarray            # (N,) positions in the training split they came from

    @cached_property
    def vectors32(self) -> np.ndarray:
        """The vectors as float32, made once per index (not on every search: 10,000 × D values)."""
        return np.asarray(self.vectors, np.float32)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, vectors=self.vectors, labels=self.labels, images=self.images, ids=self.ids)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "EmbeddingIndex":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return cls(z["vectors"], z["labels"], z["images"], z["ids"])
        except (ValueError, KeyError, OSError) as exc:
            raise InferenceError(f"the embedding index is unreadable ({type(exc).__name__}); it is rebuilt "
                                 f"when deleted") from None


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def build_index(explainer: Explainer, images: np.ndarray, labels: np.ndarray, size: int = INDEX_SIZE,
                seed: int = INDEX_SEED) -> EmbeddingIndex:
    """Embed a fixed random subset of `size` training digits (uint8 (N, 28, 28), ink 255)."""
    n = len(images)
    ids = np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))
    subset = np.asarray(images[ids])
    x = subset.astype(np.float32) / (255.0 if subset.dtype == np.uint8 else 1.0)
    stored = subset if subset.dtype == np.uint8 else np.round(np.clip(subset, 0, 1) * 255).astype(np.uint8)
    return EmbeddingIndex(_unit(explainer.embed(x)).astype(np.float16), np.asarray(labels[ids], np.uint8),
                          stored, ids.astype(np.int64))


def nearest(index: EmbeddingIndex, embedding: np.ndarray, k: int = NEIGHBOURS) -> list[tuple[int, int, float]]:
    """The k most similar digits as (position in the index, label, cosine similarity), best first."""
    if index.vectors.shape[1] != np.asarray(embedding).reshape(-1).shape[0]:
        raise InferenceError(f"the embedding index has {index.vectors.shape[1]} dimensions, the model "
                             f"{np.asarray(embedding).size}: it was built for another model")
    sims = index.vectors32 @ _unit(np.asarray(embedding).reshape(-1))
    k = min(k, len(sims))
    top = np.argpartition(-sims, k - 1)[:k] if k else np.zeros(0, int)
    top = top[np.argsort(-sims[top], kind="stable")]
    return [(int(i), int(index.labels[i]), float(sims[i])) for i in top]


def run_index(store, run_id: str, explainer: Explainer, data_path) -> EmbeddingIndex:
    """The run's index: its ``embedding.npz`` artifact, or built now from the dataset and stored.

    Computed once per run (not per drawing); the artifact travels with the run through the store.
    Raises core.data.dataset.DataError when it must be built and there is no dataset.
    """
    if store.artifact(run_id, INDEX_ARTIFACT) is not None:
        return EmbeddingIndex.from_bytes(store.artifact_file(run_id, INDEX_ARTIFACT).read_bytes())
    from core.data.dataset import load_dataset

    data = load_dataset(data_path)
    index = build_index(explainer, data.x_train, data.y_train)
    store.put_artifact(run_id, INDEX_ARTIFACT, index.to_bytes())
    return index
