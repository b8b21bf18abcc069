"""The Draw page's "Inside the model" panel: for one run and the 28×28 image it read, every conv
block's feature maps (the first layer's kernels beside its maps), the most active units of each
hidden Dense layer, integrated-gradients attribution for the predicted digit and the runner-up
("why 7 and not 1"), and the 8 nearest training digits in the run's embedding.

The compute lives in `core.predict.explain`; this module caches one `Explainer` per run and model
version and one embedding index per run (built once, kept as the run's ``embedding.npz``
artifact), and turns arrays into small images, once per drawing and run (dashboard/draw/once.py). The image helpers at the top are pure NumPy /
Pillow, so they are testable without Streamlit running.
"""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.data.dataset import DataError
from core.predict.explain import INDEX_ARTIFACT, EmbeddingIndex, Explainer, Explanation, nearest, run_index
from core.predict.preprocess import InferenceError
from core.store.schema import StoreError
from core.store.facade import RunStore
from dashboard.draw import once, pictures
from dashboard.model_cache import cached_model, model_version
from dashboard.state import data_path

MAX_MAPS = 64            # feature maps shown per conv block (the most active ones when there are more)
MAX_KERNELS = 64
TOP_UNITS = 16           # units shown per Dense layer
MAP_TILE = 56            # each feature map is scaled up to about this many pixels
GAP = 2
BACKGROUND = (38, 39, 48)
# A perceptually even dark-to-bright ramp (viridis' anchors) for activations.
RAMP = np.array([(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)], np.float64)
POSITIVE, NEGATIVE = np.array((255, 80, 40.0)), np.array((40, 150, 255.0))


# ------------------------------------------------------------------------------ images (pure)

def ramp(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] → RGB uint8 through RAMP."""
    v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0, 1) * (len(RAMP) - 1)
    lo = np.floor(v).astype(int).clip(0, len(RAMP) - 2)
    t = (v - lo)[..., None]
    return np.round(RAMP[lo] * (1 - t) + RAMP[lo + 1] * t).astype(np.uint8)


def tile_grid(tiles: np.ndarray, columns: int, scale: int, colour, gap: int = GAP) -> np.ndarray:
    """Tiles (N, h, w) already scaled to [0, 1] (or [-1, 1] for `diverging`) as one RGB grid image."""
    n, h, w = tiles.shape
    rows = max(1, -(-n // columns))
    th, tw = h * scale, w * scale
    # All tiles coloured and scaled at once, framed by `gap` background pixels, then laid out row by row.
    big = colour(tiles).repeat(scale, axis=1).repeat(scale, axis=2)                     # (n, th, tw, 3)
    cells = np.empty((rows * columns, th + gap, tw + gap, 3), np.uint8)
    cells[:] = BACKGROUND
    cells[:n, gap:, gap:] = big
    grid = cells.reshape(rows, columns, th + gap, tw + gap, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * (th + gap), columns * (tw + gap), 3)
    out = np.empty((grid.shape[0] + gap, grid.shape[1] + gap, 3), np.uint8)
    out[:] = BACKGROUND
    out[:-gap or None, :-gap or None] = grid
    return out


def diverging(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] → RGB: red for positive, blue for negative, dark for zero."""
    v = np.clip(np.asarray(values, np.float64), -1, 1)[..., None]
    base = np.array(BACKGROUND, np.float64)
    out = np.where(v >= 0, base + (POSITIVE - base) * v, base + (NEGATIVE - base) * -v)
    return np.round(out).astype(np.uint8)


def map_scale(side: int) -> int:
    """How much a feature map of this side is enlarged to be about MAP_TILE pixels."""
    return max(1, MAP_TILE // side)


def feature_map_grid(maps: np.ndarray, limit: int = MAX_MAPS, factor: int = 1) -> tuple[np.ndarray, list[int]]:
    """Maps (H, W, C) as a grid image (each scaled by the block's strongest value, so maps compare);
    with more than `limit` channels, the most active ones. Returns (image, channels shown).
    `factor` (a divisor of the map's scale): that much of the enlargement is left to the browser,
    so the image is `factor` times smaller, its gaps one pixel."""
    maps = np.asarray(maps, np.float64)
    channels = list(range(maps.shape[-1]))
    if len(channels) > limit:
        channels = sorted(np.argsort(-maps.mean(axis=(0, 1)))[:limit].tolist())
    tiles = maps[..., channels].transpose(2, 0, 1)
    top = max(float(tiles.max()), 1e-9)
    lo = min(float(tiles.min()), 0.0)
    columns = 8 if len(channels) > 16 else max(1, min(8, len(channels)))
    scale = map_scale(maps.shape[0])
    return tile_grid((tiles - lo) / (top - lo), columns, scale // factor, ramp,
                     gap=max(1, GAP // factor)), channels


def kernel_scale(side: int) -> int:
    return max(1, 36 // side)


KERNEL_GAP = 6


def kernel_grid(kernels: np.ndarray, limit: int = MAX_KERNELS, factor: int = 1) -> np.ndarray:
    """First-layer kernels (F, k, k) as a grid: red weights excite, blue ones inhibit (`factor` as
    for feature_map_grid)."""
    k = np.asarray(kernels, np.float64)[:limit]
    scale = kernel_scale(k.shape[1])
    return tile_grid(k / max(float(np.abs(k).max()), 1e-9), 8 if len(k) > 16 else max(1, len(k)), scale // factor,
                     diverging, gap=max(1, KERNEL_GAP // factor))


def unit_strip(values: np.ndarray, top: int = TOP_UNITS, cell: int = 34) -> tuple[str, list[int]]:
    """The `top` most active units of a Dense layer as a strip of coloured cells, each labelled with
    its number, in HTML (no image to draw text into and encode). Returns (html, units shown)."""
    v = np.asarray(values, np.float64).reshape(-1)
    order = np.argsort(-v, kind="stable")[:top].tolist()
    peak = max(float(v.max()), 1e-9)
    colours = ramp(np.maximum(v[order], 0) / peak)
    cells = "".join(f'<div style="width:{cell}px"><div style="height:{cell}px;background:rgb({r},{g},{b})"></div>'
                    f'<div style="font-size:10px;line-height:14px;color:#dcdcdc;text-align:center">#{unit}</div></div>'
                    for unit, (r, g, b) in zip(order, colours.tolist()))
    background = "rgb({}, {}, {})".format(*BACKGROUND)
    return (f'<div style="display:flex;gap:{GAP}px;padding:{GAP}px;background:{background};width:max-content">'
            f'{cells}</div>'), order


def attribution_overlay(image28: np.ndarray, pixels: np.ndarray, scale: float | None = None,
                        side: int = 168) -> np.ndarray:
    """The 28×28 input as a faint grey stroke with attribution on top: red pushed toward the digit, blue away."""
    grey = np.asarray(image28, np.float64).reshape(28, 28)[..., None] * np.array([90.0, 90.0, 90.0])
    a = np.asarray(pixels, np.float64).reshape(28, 28)
    scale = scale or max(float(np.abs(a).max()), 1e-12)
    strength = np.clip(np.abs(a) / scale, 0, 1)[..., None] ** 0.7
    colour = np.where(a[..., None] >= 0, POSITIVE, NEGATIVE)
    out = np.round(grey * (1 - strength) + colour * strength).clip(0, 255).astype(np.uint8)
    k = max(1, side // 28)
    return np.kron(out, np.ones((k, k, 1), np.uint8))


# ------------------------------------------------------------------------------ cached compute

@st.cache_resource(max_entries=8, show_spinner="Preparing the explanation for this run (once)…")
def _explainer(_store: RunStore, url: str, run_id: str, version: str) -> Explainer:
    return Explainer(cached_model(_store, run_id))


def explainer_for(store: RunStore, run_id: str, version: str | None = None) -> Explainer:
    return _explainer(store, store.url, run_id, version or model_version(store, run_id))


@st.cache_resource(max_entries=8, show_spinner=False)
def _index(_store: RunStore, url: str, run_id: str, version: str) -> EmbeddingIndex:
    return run_index(_store, run_id, explainer_for(_store, run_id, version), data_path())


_indexed: set[tuple[str, str, str]] = set()   # (store, run, model version) whose index is loaded


def index_for(store: RunStore, run_id: str, version: str | None = None) -> EmbeddingIndex:
    """The run's nearest-neighbour index, built (and stored) on first use only."""
    version = version or model_version(store, run_id)
    key = (store.url, run_id, version)
    if key not in _indexed and store.artifact(run_id, INDEX_ARTIFACT) is None:
        with st.spinner("Embedding 10,000 training digits for this run (once; kept with the run)…"):
            index = _index(store, store.url, run_id, version)
    else:
        index = _index(store, store.url, run_id, version)
    _indexed.add(key)
    return index


# ------------------------------------------------------------------------------ rendering

def explain_panel(store: RunStore, run_id: str, name: str, image28: np.ndarray, key: str = "draw_explain") -> None:
    """Activations, attribution for the top two digits, and nearest training digits for one run.

    Computed once per drawing and run (dashboard/draw/once.py): a rerun that did not change the
    drawing shows the kept pictures without running the model or encoding a PNG again."""
    try:
        version = model_version(store, run_id)
        drawing = once.digest(image28)
        ex = once.once(("explain", store.url, drawing, run_id, version),
                       lambda: explainer_for(store, run_id, version).explain(image28))
    except (InferenceError, StoreError) as exc:
        st.warning(f"Cannot look inside {name}: {exc}", icon=":material/warning:")
        return
    rows = once.once(("explain_html", store.url, drawing, run_id, version),
                     lambda: {part: pictures.row(shown) for part, shown in rendered(image28, ex).items()})
    first, second = ex.attributions[0], ex.attributions[1]
    st.markdown(f"**Why {first.label} and not {second.label}?** Integrated gradients: each pixel's share of the "
                f"{ex.target} (red pushed toward the digit, blue away; 32 steps from a blank canvas)")
    st.html(rows["attribution"])
    st.markdown("**Activations** for this drawing, layer by layer (bright = strongly active)")
    st.html(rows["activations"])
    neighbours_section(store, run_id, ex, (drawing, version))


ATTRIBUTION_SIDE = 168   # each attribution map is shown this many pixels wide (6 per input pixel)


def rendered(image28: np.ndarray, ex: Explanation) -> dict[str, list[pictures.Picture | pictures.Markup]]:
    """The panel's pictures (each PNG at its natural size, enlarged by the browser): "attribution"
    (the top two digits and their difference) and "activations" (the first layer's kernels, each
    conv block's maps, each Dense layer's most active units). Made once per drawing and run."""
    first, second = ex.attributions[0], ex.attributions[1]
    scale = max(float(np.abs(first.pixels).max()), float(np.abs(second.pixels).max()), 1e-12)
    diff = first.pixels - second.pixels
    attribution = [(f"toward {first.label} ({ex.probabilities[first.label]:.0%}): sums to "
                    f"{first.pixels.sum():+.2f}", first.pixels),
                   (f"toward {second.label} ({ex.probabilities[second.label]:.0%}): sums to "
                    f"{second.pixels.sum():+.2f}", second.pixels),
                   (f"{first.label} against {second.label}: red favours {first.label}, blue {second.label} "
                    f"(sums to {diff.sum():+.2f})", diff)]
    activations = []
    conv = [layer for layer in ex.layers if layer.kind == "conv"]
    if conv and ex.kernels is not None:  # the first layer's kernels beside its maps
        f = pictures.display_factor(kernel_scale(ex.kernels.shape[1]))
        activations.append(pictures.picture(kernel_grid(ex.kernels, factor=f), f"its {len(ex.kernels)} kernels "
                                            "(red excites, blue inhibits)", scale=f))
    for layer in conv:
        h, w, c = layer.values.shape
        f = pictures.display_factor(map_scale(h))
        grid, channels = feature_map_grid(layer.values, factor=f)
        activations.append(pictures.picture(grid, f"{layer.name}: {c} maps of {h}×{w}" + (
            f" (the {len(channels)} most active)" if len(channels) < c else ""), scale=f))
    for layer in (layer for layer in ex.layers if layer.kind == "dense"):
        strip, order = unit_strip(layer.values)
        activations.append(pictures.Markup(strip, f"{layer.name}: its {len(order)} most active of "
                                           f"{layer.values.size} units"))
    return {"attribution": [pictures.picture(attribution_overlay(image28, pixels, scale, side=28), caption,
                                             scale=ATTRIBUTION_SIDE // 28) for caption, pixels in attribution],
            "activations": activations}


def neighbours_section(store: RunStore, run_id: str, ex: Explanation, key: tuple[str, str]) -> None:
    st.markdown("**Nearest training digits** in this run's penultimate layer (cosine similarity)")

    def found() -> str:
        index = index_for(store, run_id, key[1])
        return pictures.row([pictures.picture(index.images[i], f"{label} · {sim:.2f}", scale=2)
                             for i, label, sim in nearest(index, ex.embedding)], gap=8)
    try:
        tiles = once.once(("nearest", store.url, *key, run_id), found)
    except (DataError, InferenceError, StoreError) as exc:
        st.info(f"No nearest digits: {exc}", icon=":material/info:")
        return
    st.html(tiles)
