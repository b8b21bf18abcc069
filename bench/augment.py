"""Does training-time augmentation help cnn-small read digits drawn in the browser?

Trains cnn-small with its preset defaults twice, augment off and on (same seed, same data,
`core.train.run.train`, the code path of `python -m core train --arch cnn-small [--augment]`),
then measures each model on:

  MNIST test      the 10,000 test digits (the run's own test evaluation)
  drawn-like      MNIST test digits re-drawn as a person draws on the 280×280 canvas: each
                  digit's centre line (thinned at 4× resolution) is stroked with a round brush
                  of constant width, white on black, anti-aliased; placed at a size and
                  position set by the variant below; then read by `core.predict.preprocess.preprocess`
                  exactly as the Draw page reads the canvas
  real drawings   labelled drawings saved on the Draw page (`--drawings-db`), if any, read again
                  from their original PNG by the current `preprocess`

Drawn-like variants (the same test digits in each; sizes are the ink's height on the canvas):

  typical     150-210 px tall, 14-22 px brush, centre within ±25 px of the middle
  small       50-80 px tall, 8-16 px brush, anywhere on the canvas
  off-centre  100-140 px tall, 14-22 px brush, pushed into a corner (5-20 px from two edges)
  thin        140-210 px tall, 3-6 px brush
  thick       140-210 px tall, 28-40 px brush
  large       230-270 px tall, 16-24 px brush, centred
  tilted      as typical, turned 8-15° either way (beyond MNIST's own slant)

Trained runs are kept in a store under the bench cache and reused by `--reuse` when a run
with the same settings completed there, so the evaluation can be repeated without retraining.

Run: python bench/augment.py [--epochs 10] [--per-variant 500] [--drawings-db sqlite:///runs.db]
     python bench/augment.py --smoke   (1 epoch on 1,000 digits: checks the script, figures meaningless)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

CANVAS = 280        # the Draw page's canvas side, in pixels
UP = 4              # thinning works on the MNIST digit enlarged this many times
VARIANTS: dict[str, dict[str, Any]] = {
    "typical": {"height": (150, 210), "brush": (14, 22), "place": "centre", "jitter": 25},
    "small": {"height": (50, 80), "brush": (8, 16), "place": "anywhere"},
    "off-centre": {"height": (100, 140), "brush": (14, 22), "place": "corner"},
    "thin": {"height": (140, 210), "brush": (3, 6), "place": "centre", "jitter": 20},
    "thick": {"height": (140, 210), "brush": (28, 40), "place": "centre", "jitter": 20},
    "large": {"height": (230, 270), "brush": (16, 24), "place": "centre", "jitter": 4},
    "tilted": {"height": (150, 210), "brush": (14, 22), "place": "centre", "jitter": 20, "tilt": (8, 15)},
}


# -- drawn-like digits -------------------------------------------------------------------------------
def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a batch of binary images (N, H, W) to one-pixel centre lines."""
    m = mask.copy()
    while True:
        changed = False
        for first in (True, False):
            p = np.pad(m, ((0, 0), (1, 1), (1, 1)))
            p2, p3, p4, p5 = p[:, :-2, 1:-1], p[:, :-2, 2:], p[:, 1:-1, 2:], p[:, 2:, 2:]
            p6, p7, p8, p9 = p[:, 2:, 1:-1], p[:, 2:, :-2], p[:, 1:-1, :-2], p[:, :-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(n.astype(np.uint8) for n in ring[:8])
            crossings = sum((~ring[i] & ring[i + 1]).astype(np.uint8) for i in range(8))
            if first:
                keep = (p2 & p4 & p6) | (p4 & p6 & p8)
            else:
                keep = (p2 & p4 & p8) | (p2 & p6 & p8)
            drop = m & (neighbours >= 2) & (neighbours <= 6) & (crossings == 1) & ~keep
            if drop.any():
                m &= ~drop
                changed = True
        if not changed:
            return m


def centre_lines(digits: np.ndarray) -> list[np.ndarray]:
    """Each MNIST digit's centre line as segments (K, 2, 2) of (y, x) points in 28-px units."""
    from scipy import ndimage as ndi

    big = ndi.zoom(digits.astype(np.float32) / 255.0, (1, UP, UP), order=1) > 0.4
    skeletons = thin(big)
    out = []
    for skel in skeletons:
        ys, xs = np.nonzero(skel)
        segs = [np.stack([np.stack([ys, xs], 1)] * 2, 1)]  # every pixel, as a zero-length segment
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            a = skel[max(0, -dy):skel.shape[0] - max(0, dy), max(0, -dx):skel.shape[1] - max(0, dx)]
            b = skel[max(0, dy):, max(0, dx):][:a.shape[0], :a.shape[1]]
            yy, xx = np.nonzero(a & b)
            yy, xx = yy + max(0, -dy), xx + max(0, -dx)
            segs.append(np.stack([np.stack([yy, xx], 1), np.stack([yy + dy, xx + dx], 1)], 1))
        out.append(np.concatenate(segs).astype(np.float32) / UP)
    return out


def render(segments: np.ndarray, height: float, brush: float, centre: tuple[float, float]) -> np.ndarray:
    """Stroke a centre line with a round brush on a black canvas: (CANVAS, CANVAS, 4) uint8 RGBA, opaque."""
    from scipy import ndimage as ndi

    pts = segments.reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scale = max(height - brush, 4.0) / max(hi[0] - lo[0], 1.0)
    mid = (lo + hi) / 2
    n = int(np.ceil(scale * 1.5 / 0.5)) + 1  # a point every half pixel along each segment
    t = np.linspace(0, 1, n)[None, :, None]
    dense = segments[:, :1] + (segments[:, 1:] - segments[:, :1]) * t
    dense = ((dense.reshape(-1, 2) - mid) * scale + np.asarray(centre)).round().astype(int)
    inside = ((dense >= 0) & (dense < CANVAS)).all(axis=1)
    mask = np.zeros((CANVAS, CANVAS), bool)
    mask[dense[inside, 0], dense[inside, 1]] = True
    ink = np.clip(brush / 2 + 0.5 - ndi.distance_transform_edt(~mask), 0, 1)
    rgba = np.zeros((CANVAS, CANVAS, 4), np.uint8)
    rgba[..., :3] = np.round(ink * 255).astype(np.uint8)[..., None]
    rgba[..., 3] = 255
    return rgba


def rotate(segments: np.ndarray, degrees: float) -> np.ndarray:
    """Turn (y, x) segments about their centre; positive degrees turn clockwise on screen."""
    a = np.radians(degrees)
    pts = segments.reshape(-1, 2)
    mid = (pts.min(axis=0) + pts.max(axis=0)) / 2
    turn = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]], np.float32)  # (y, x) rows
    return ((segments - mid) @ turn.T + mid).astype(np.float32)


def placement(kind: str, rng: np.random.Generator, height: float, brush: float, width: float,
              jitter: float = 0) -> tuple[float, float]:
    """The centre of the digit's ink on the canvas for a placement kind."""
    half_h, half_w = height / 2, width / 2
    if kind == "centre":
        return tuple(CANVAS / 2 + rng.uniform(-jitter, jitter, 2))
    if kind == "anywhere":
        return (rng.uniform(half_h + 2, CANVAS - half_h - 2), rng.uniform(half_w + 2, CANVAS - half_w - 2))
    margin = rng.uniform(5, 20, 2)  # "corner": close to two edges
    y = margin[0] + half_h if rng.random() < 0.5 else CANVAS - margin[0] - half_h
    x = margin[1] + half_w if rng.random() < 0.5 else CANVAS - margin[1] - half_w
    return y, x


def drawn_like(digits: np.ndarray, variant: str, seed: int) -> list[np.ndarray]:
    """The digits redrawn as canvas images in one variant's style."""
    spec = VARIANTS[variant]
    rng = np.random.default_rng([seed, list(VARIANTS).index(variant)])
    images = []
    for segments in centre_lines(digits):
        if "tilt" in spec:
            segments = rotate(segments, rng.choice([-1, 1]) * rng.uniform(*spec["tilt"]))
        height = rng.uniform(*spec["height"])
        brush = rng.uniform(*spec["brush"])
        pts = segments.reshape(-1, 2)
        span = np.ptp(pts, axis=0)
        width = (height - brush) * span[1] / max(span[0], 1.0) + brush
        centre = placement(spec["place"], rng, height, brush, min(width, CANVAS - 4), spec.get("jitter", 0))
        images.append(render(segments, height, brush, centre))
    return images


def preprocess_all(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """28×28 model inputs as the Draw page makes them; and which images could be read at all."""
    from core.predict.preprocess import EmptyDrawing, preprocess

    out, ok = np.zeros((len(images), 28, 28), np.float32), np.ones(len(images), bool)
    for i, image in enumerate(images):
        try:
            out[i] = preprocess(image).image
        except EmptyDrawing:
            ok[i] = False
    return out, ok


# -- training and evaluation --------------------------------------------------------------------------
def train_or_reuse(store, data: Path, augment: bool, epochs: int, seed: int, train_limit: int | None,
                   reuse: bool):
    """A completed cnn-small run with these settings: reused from the store if asked, else trained now."""
    from core.config import make_config
    from core.data.dataset import dataset_info
    from core.train.run import train

    n_train = dataset_info(data).n_train
    config = make_config("cnn-small", n_train=n_train, epochs=epochs, seed=seed, augment=augment,
                         train_limit=None if train_limit is None else min(train_limit, n_train),
                         name=f"cnn-small augment={'on' if augment else 'off'} ({epochs} epochs)")
    if reuse:
        for _, row in store.list_runs(status="completed", architecture="cnn-small").iterrows():
            if row["config"] == config.to_dict():
                print(f"reusing run {row['run_id']} ({row['name']})", flush=True)
                return store.get_run(row["run_id"])
    print(f"training {config.name} …", flush=True)
    run = train(store, config, data)
    if run.status != "completed":
        raise RuntimeError(f"run {run.id} {run.status}: {run.error}")
    return run


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    from core.predict.inference import predict_probabilities
    return float((predict_probabilities(model, x).argmax(axis=1) == y).mean())


def paired(models: dict, inputs: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, int]:
    """Over every drawn-like image: how many only the augment-off model reads right, and only the -on one."""
    from core.predict.inference import predict_probabilities
    right = {flag: np.concatenate([predict_probabilities(m, inputs[v]).argmax(axis=1) == labels for v in inputs])
             for flag, m in models.items()}
    return {"images": int(right["off"].size), "only_off_right": int((right["off"] & ~right["on"]).sum()),
            "only_on_right": int((right["on"] & ~right["off"]).sum())}


def real_drawings(url: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The drawn set of another store (e.g. the dashboard's runs.db), or nothing.

    A drawing with its original PNG is read again from it by today's `preprocess` (so the
    figure measures the current pipeline); one without keeps its stored 28×28 image.
    """
    if not url:
        return np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64)
    from core.store.drawings import drawing_original, list_drawings
    from core.predict.preprocess import load_image_file, preprocess
    from core.store.facade import RunStore
    store = RunStore(url)
    try:
        df = list_drawings(store).sort_values("id")
        images = []
        for drawing_id, stored in zip(df["id"], df["image"]):
            original = drawing_original(store, int(drawing_id))
            images.append(preprocess(load_image_file(original)).image if original else stored / 255.0)
        x = np.stack(images).astype(np.float32) if images else np.zeros((0, 28, 28), np.float32)
        return x, df["label"].to_numpy(dtype=np.int64)
    finally:
        store.close()


def save_sheet(path: Path, sets: dict[str, list[np.ndarray]], inputs: dict[str, np.ndarray], n: int = 8) -> None:
    """A contact sheet: per variant, n canvases (shrunk to 84 px) over the 28×28 images the model saw."""
    from PIL import Image

    tile = 84
    sheet = Image.new("L", (n * tile, len(sets) * (tile + 28 * 3)), 60)
    for r, name in enumerate(sets):
        for c in range(min(n, len(sets[name]))):
            canvas = Image.fromarray(sets[name][c][..., 0]).resize((tile, tile), Image.BOX)
            seen = Image.fromarray((inputs[name][c] * 255).astype(np.uint8)).resize((84, 84), Image.NEAREST)
            y = r * (tile + 84)
            sheet.paste(canvas, (c * tile, y))
            sheet.paste(seen, (c * tile, y + tile))
    sheet.save(path)


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    common.add_data_argument(parser)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (cnn-small's default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of both runs and of the drawn-like set")
    parser.add_argument("--per-variant", type=int, default=500, help="MNIST test digits redrawn per variant")
    parser.add_argument("--drawings-db", metavar="URL", help="also score the drawn set of this store")
    parser.add_argument("--store", metavar="URL", default=f"sqlite:///{common.CACHE_DIR / 'augment' / 'runs.db'}",
                        help="store for the trained runs (default: under the bench cache)")
    parser.add_argument("--reuse", action="store_true", help="reuse completed runs with the same settings")
    parser.add_argument("--sheet", metavar="PNG", help="write a contact sheet of drawn-like examples")
    args = parser.parse_args()
    common.quiet_tensorflow()
    started, load_before = time.time(), common.loadavg()

    from core.data.dataset import load_dataset
    from core.predict.inference import load_model
    from core.store.facade import RunStore

    data = common.mnist_h5(args.data)
    epochs, per_variant, limit = (1, 30, 1000) if args.smoke else (args.epochs, args.per_variant, None)
    test = load_dataset(data)
    per_variant = min(per_variant, len(test.y_test))
    pick = np.random.default_rng(args.seed).choice(len(test.y_test), size=per_variant, replace=False)
    digits, labels = test.x_test[pick], test.y_test[pick].astype(np.int64)

    t0 = time.time()
    sets = {v: drawn_like(digits, v, args.seed) for v in VARIANTS}
    inputs, readable = {}, {}
    for v, images in sets.items():
        inputs[v], readable[v] = preprocess_all(images)
    print(f"drawn-like set: {len(VARIANTS)} variants × {per_variant} digits in {time.time() - t0:.0f} s", flush=True)
    if args.sheet:
        save_sheet(Path(args.sheet), sets, inputs)
    real_x, real_y = real_drawings(args.drawings_db)

    store = RunStore(args.store)
    runs = {flag: train_or_reuse(store, data, flag == "on", epochs, args.seed, limit, args.reuse or args.smoke)
            for flag in ("off", "on")}
    models = {flag: load_model(store.run_dir(run.id) / "model.keras") for flag, run in runs.items()}
    rows, figures = [], {"epochs": epochs, "per_variant": per_variant, "seed": args.seed,
                         "real_drawings": int(len(real_y)), "runs": {}}
    for flag, run in runs.items():
        model = models[flag]
        scores = {"mnist_test": run.test_accuracy}
        for v in VARIANTS:
            scores[v] = accuracy(model, inputs[v], labels)
        scores["drawn_like_mean"] = float(np.mean([scores[v] for v in VARIANTS]))
        scores["real_drawings"] = accuracy(model, real_x, real_y) if len(real_y) else None
        figures["runs"][flag] = {"run_id": run.id, "seconds": round(run.duration or 0, 1), **scores}
        rows.append([f"augment {flag}", *(None if s is None else 100 * s for s in scores.values())])
    figures["paired_drawn_like"] = paired(models, inputs, labels)
    figures["unreadable"] = {v: int((~readable[v]).sum()) for v in VARIANTS}
    figures["delta_pt"] = {k: None if figures["runs"]["on"][k] is None else
                           round(100 * (figures["runs"]["on"][k] - figures["runs"]["off"][k]), 2)
                           for k in ["mnist_test", *VARIANTS, "drawn_like_mean", "real_drawings"]}
    headers = ["model", "MNIST test %", *(f"{v} %" for v in VARIANTS), "drawn-like mean %",
               f"real ({len(real_y)}) %"]
    print(common.table(headers, rows))
    pairs = figures["paired_drawn_like"]
    print(f"drawn-like, paired: {pairs['only_off_right']} images only augment-off reads right, "
          f"{pairs['only_on_right']} only augment-on (of {pairs['images']})")
    notes = [f"{epochs} epochs per run, seed {args.seed}; drawn-like set: {per_variant} MNIST test digits per variant"]
    if args.smoke:
        notes.append("SMOKE: 1 epoch on 1,000 digits; the figures are meaningless")
    path = common.write_results("augment", figures, args.results, started, load_before, notes)
    print(f"wrote {path}")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
