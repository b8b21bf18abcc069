"""An honest proxy of other writers: digits synthesised from stroke skeletons in per-writer styles.

The drawn-like set of bench/augment.py re-strokes MNIST test digits, so it keeps MNIST's own
writers and over-estimates how well a model reads other people (97.3 % there, 94.3 % on a
held-back set of real pen-written digits by 14 people). This set shares nothing with MNIST:

- every digit is a hand-made **stroke skeleton** (polylines and arcs in a unit box), with the
  variants people really use: open or closed 4s, 7s with or without a bar or a hook, 1s plain,
  with a flag or a serif, 9s with a straight or a curved tail, 2s with or without a loop, 3s
  with a round or a flat top, 0/6/8/9 loops closed or left with a gap;
- a **writer** is a style drawn from one seed: slant, aspect (narrow or wide), jitter (a slow
  wobble along the stroke), speed (fast writers round their corners), pen width, how often
  loops are left open, size and place on the canvas, and one choice per variant above. Each
  digit a writer draws varies a little around its style (seeded too): the set is reproducible;
- **shape habits** (added 2026-12-04, when the clean skeletons proved too easy): where the middle
  of a 2-part digit sits (waist), how much each digit's arcs bend and bulge (warp, a smooth
  random displacement field) and how loosely strokes meet (joins: later strokes shifted, ends
  stopping short or running on), each a per-writer range with per-digit variation;
- the strokes are **rendered as the Draw page's canvas** draws them (bench/augment.render: a
  round brush, white on black, 280×280) and read by `core.predict.preprocess.preprocess`.

Seeds: REPORT_SEEDS are the writers whose figures are reported (README, docs/augment.md);
TUNING_SEEDS are other writers, the only ones used to choose augmentation or preset
defaults. Never train on either.

Run: python bench/writers.py --store URL --run ID [--run ID …] [--ensemble] [--per-digit 20]
     python bench/writers.py --sheet PNG [--seeds tuning]   (a contact sheet, to look at the styles)
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402
from bench.augment import CANVAS, drawn_like, preprocess_all, render  # noqa: E402

REPORT_SEEDS = tuple(range(1000, 1014))    # 14 writers, as many as the real held-back set has
TUNING_SEEDS = tuple(range(2000, 2014))    # for choosing defaults only; never reported as the proxy
UNIT = 28.0                                # skeletons are drawn in a 28-unit box (as MNIST pixels)
STEP = 0.02                                # resampling step along a stroke, in box units


@dataclass(frozen=True)
class Style:
    """One writer's habits; `Style.from_seed` draws them."""
    seed: int
    slant: float          # shear: > 0 leans the top right
    aspect: float         # width / height of the digit box
    jitter: float         # amplitude of the slow wobble, in box units
    speed: float          # 0 careful (sharp corners) … 1 fast (rounded corners)
    brush: float          # pen width on the canvas, px
    gap: float            # share of a loop left open (0 = closed)
    height: float         # ink height on the canvas, px
    four_open: bool
    seven_bar: bool
    seven_hook: bool
    one_flag: bool
    one_serif: bool
    nine_curved: bool
    two_loop: bool
    three_flat: bool
    waist: float = 0.0    # where the middle of 2-part digits sits: > 0 a bigger top part (3, 5, 8, 9, …)
    warp: float = 0.0     # how much each digit's shape bends from the skeleton (uneven arcs, bulging loops)
    joins: float = 0.0    # how loosely strokes meet: later strokes shifted, ends stopping short or overshooting

    @classmethod
    def from_seed(cls, seed: int) -> "Style":
        r = np.random.default_rng(seed)
        return cls(seed=seed, slant=float(r.uniform(-0.35, 0.35)), aspect=float(r.uniform(0.6, 1.1)),
                   jitter=float(r.uniform(0.004, 0.025)), speed=float(r.uniform(0, 1)),
                   brush=float(r.uniform(7, 30)), gap=float(r.choice([0.0, 0.0, r.uniform(0.06, 0.16)])),
                   height=float(r.uniform(120, 230)), four_open=bool(r.random() < 0.5),
                   seven_bar=bool(r.random() < 0.3), seven_hook=bool(r.random() < 0.3),
                   one_flag=bool(r.random() < 0.5), one_serif=bool(r.random() < 0.25),
                   nine_curved=bool(r.random() < 0.5), two_loop=bool(r.random() < 0.3),
                   three_flat=bool(r.random() < 0.25),
                   # drawn after the habits above, so each writer keeps them (2026-12-04: shape habits added)
                   waist=float(r.uniform(-0.12, 0.12)), warp=float(r.uniform(0.0, 0.06)),
                   joins=float(r.uniform(0.0, 0.06)))

    def describe(self) -> str:
        v = [f"slant {self.slant:+.2f}", f"aspect {self.aspect:.2f}", f"pen {self.brush:.0f}px",
             "fast" if self.speed > 0.6 else "careful" if self.speed < 0.3 else "steady",
             f"loops open {self.gap:.0%}" if self.gap else "loops closed",
             "open 4" if self.four_open else "closed 4"]
        v += [s for s, on in (("crossed 7", self.seven_bar), ("hooked 7", self.seven_hook), ("flag 1", self.one_flag),
                              ("serif 1", self.one_serif), ("curved-tail 9", self.nine_curved),
                              ("looped 2", self.two_loop), ("flat-top 3", self.three_flat)) if on]
        v += [f"waist {self.waist:+.2f}", f"warp {self.warp:.2f}", f"joins {self.joins:.2f}"]
        return ", ".join(v)


# -- skeletons ---------------------------------------------------------------------------------------
def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> np.ndarray:
    """Points (x, y) along an ellipse from `start` to `end` degrees (0 = right, 90 = down: y grows down)."""
    n = max(8, int(abs(end - start) / 4))
    t = np.radians(np.linspace(start, end, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)


def line(*points) -> np.ndarray:
    return np.asarray(points, np.float64)


def bezier(p0, p1, p2, n: int = 30) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2


def join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts)


def loop_span(gap: float) -> float:
    """Degrees a loop goes round: a little past closed, or short of it by the writer's gap."""
    return 370.0 if gap == 0 else 360.0 * (1 - gap)


def skeleton(digit: int, s: Style) -> list[np.ndarray]:
    """The strokes of one digit in this writer's variant, in a unit box (x right, y down)."""
    span = loop_span(s.gap)
    if digit == 0:
        return [arc(0.5, 0.5, 0.4, 0.5, -90, -90 - span)]
    if digit == 1:
        strokes = [join(line((0.25, 0.22)) if s.one_flag else np.zeros((0, 2)), line((0.5, 0.0), (0.5, 1.0)))]
        if s.one_serif:
            strokes.append(line((0.25, 1.0), (0.75, 1.0)))
        return strokes
    if digit == 2:
        top = arc(0.5, 0.3, 0.38, 0.3, 200, 390)
        if s.two_loop:
            return [join(top, bezier(top[-1], (0.45, 0.75), (0.15, 0.95)), arc(0.22, 0.88, 0.1, 0.1, 90, -200),
                         line((0.95, 1.0)))]
        return [join(top, line((0.05, 1.0), (0.95, 1.0)))]
    if digit == 3:
        lower = arc(0.45, 0.73, 0.42, 0.27, 270, 500)
        if s.three_flat:
            return [join(line((0.1, 0.0), (0.85, 0.0), (0.4, 0.44)), lower)]
        return [join(arc(0.45, 0.26, 0.36, 0.26, 200, 450), lower)]
    if digit == 4:
        if s.four_open:
            return [line((0.2, 0.0), (0.08, 0.66), (0.98, 0.66)), line((0.7, 0.18), (0.7, 1.0))]
        return [line((0.7, 1.0), (0.7, 0.0), (0.0, 0.68), (1.0, 0.68))]
    if digit == 5:
        return [line((0.88, 0.0), (0.22, 0.0), (0.16, 0.46)), arc(0.5, 0.7, 0.4, 0.3, 225, 495)]
    if digit == 6:
        return [join(bezier((0.78, 0.0), (0.1, 0.15), (0.1, 0.72)), arc(0.5, 0.72, 0.4, 0.28, 180, 180 - span))]
    if digit == 7:
        strokes = [join(line((0.05, 0.16)) if s.seven_hook else np.zeros((0, 2)), line((0.05, 0.0), (0.95, 0.0), (0.38, 1.0)))]
        if s.seven_bar:
            strokes.append(line((0.3, 0.52), (0.88, 0.52)))
        return strokes
    if digit == 8:
        t = np.linspace(0, 2 * np.pi * span / 360, 160)
        x = 0.5 + 0.8 * np.sin(t) * np.cos(t) * np.where(np.cos(t) < 0, 1.15, 0.9)
        return [np.stack([x, 0.5 - 0.5 * np.cos(t)], 1)]
    if digit == 9:
        head = arc(0.5, 0.28, 0.38, 0.27, 0, -span)
        tail = (bezier((0.88, 0.3), (0.92, 0.85), (0.45, 1.0)) if s.nine_curved
                else line((0.88, 0.28), (0.84, 1.0)))
        return [join(head, tail)]
    raise ValueError(f"digit must be 0-9, got {digit!r}")


# -- one writer's hand --------------------------------------------------------------------------------
def resample(points: np.ndarray, step: float = STEP) -> np.ndarray:
    """Points every `step` along a polyline."""
    d = np.r_[0, np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))]
    if d[-1] == 0:
        return points[:1]
    t = np.linspace(0, d[-1], max(2, int(d[-1] / step) + 1))
    return np.stack([np.interp(t, d, points[:, 0]), np.interp(t, d, points[:, 1])], 1)


def hand(stroke: np.ndarray, s: Style, rng: np.random.Generator) -> np.ndarray:
    """A stroke as this writer's hand draws it: rounded by speed, wobbling by jitter."""
    p = resample(stroke)
    window = 1 + int(round(s.speed * 6))
    if window > 1 and len(p) > 2 * window:
        kernel = np.ones(window) / window
        padded = np.pad(p, ((window, window), (0, 0)), mode="edge")
        p = np.stack([np.convolve(padded[:, i], kernel, mode="same")[window:-window] for i in range(2)], 1)
    wobble = np.cumsum(rng.normal(0, 1, (len(p), 2)), axis=0)
    k = max(3, len(p) // 6)
    wobble = np.stack([np.convolve(wobble[:, i], np.ones(k) / k, mode="same") for i in range(2)], 1)
    wobble -= wobble.mean(axis=0)
    scale = np.abs(wobble).max() or 1.0
    return p + wobble / scale * s.jitter * 4


def reshape(strokes: list[np.ndarray], s: Style, rng: np.random.Generator) -> list[np.ndarray]:
    """One digit's own shape, beyond the skeleton: where its middle sits, a smooth bend, loose joins.

    Real writers do not draw the same proportions twice: the top of a 3 or a 9 is bigger or
    smaller than its bottom (waist), arcs bulge and flatten (a smooth random displacement field
    across the digit box, warp), and the strokes of a 4, 5 or 7 meet loosely, their ends
    stopping short or running on (joins). The ranges are set once, by eye on the contact sheet
    of the tuning writers, and not fitted to any accuracy.
    """
    waist = s.waist + rng.normal(0, 0.03)
    freq = rng.uniform(0.5, 1.5, (2, 2, 2))          # axis × component × (x, y) spatial frequency
    phase = rng.uniform(0, 2 * np.pi, (2, 2))
    amp = s.warp * rng.uniform(0.5, 1.0)
    out = []
    for i, p in enumerate(strokes):
        p = p.copy()
        if s.joins and len(p) > 2:
            for end in (0, -1):                      # run on (> 0) or stop short (< 0) along the stroke
                e = rng.normal(0, s.joins)
                q = p if end == -1 else p[::-1]
                step = q[-1] - q[-2]
                if e > 0 and np.linalg.norm(step) > 0:
                    q = np.vstack([q, q[-1] + step / np.linalg.norm(step) * e])
                elif e < 0:
                    d = np.r_[0, np.cumsum(np.linalg.norm(np.diff(q, axis=0), axis=1))]
                    q = q[d <= max(d[-1] + e, 0.5 * d[-1])]
                p = q if end == -1 else q[::-1]
            if i > 0:
                p = p + rng.normal(0, s.joins, 2)
        x, y = p[:, 0], p[:, 1]
        y = y + waist * np.sin(np.pi * np.clip(y, 0, 1))
        dx = sum(np.sin(2 * np.pi * (freq[0, c, 0] * x + freq[0, c, 1] * y) + phase[0, c]) for c in range(2))
        dy = sum(np.sin(2 * np.pi * (freq[1, c, 0] * x + freq[1, c, 1] * y) + phase[1, c]) for c in range(2))
        out.append(np.stack([x + amp * dx / 2, y + amp * dy / 2], 1))
    return out


def to_segments(strokes: list[np.ndarray]) -> np.ndarray:
    """Strokes (x, y) in box units → segments (K, 2, 2) of (y, x) points in 28-unit space, as render() takes."""
    segs = []
    for stroke in strokes:
        yx = stroke[:, ::-1] * UP_TO_UNITS
        segs.append(np.stack([yx[:-1], yx[1:]], 1) if len(yx) > 1 else np.stack([yx, yx], 1))
    return np.concatenate(segs).astype(np.float32)


UP_TO_UNITS = UNIT


def draw(digit: int, style: Style, sample: int) -> np.ndarray:
    """One canvas image (280×280 RGBA) of `digit` written by `style`'s writer, the `sample`-th time."""
    rng = np.random.default_rng([style.seed, digit, sample])
    s = replace(style, slant=style.slant + rng.normal(0, 0.05), aspect=style.aspect * rng.uniform(0.92, 1.08),
                height=float(np.clip(style.height * rng.uniform(0.85, 1.15), 60, 250)),
                brush=float(style.brush * rng.uniform(0.9, 1.1)))
    strokes = []
    turn = np.radians(rng.normal(0, 3))
    shape = np.random.default_rng([style.seed, digit, sample, 1])  # its own stream: the habits above stay as they were
    for p in reshape([hand(stroke, s, rng) for stroke in skeleton(digit, s)], s, shape):
        x = (p[:, 0] - 0.5) * s.aspect
        y = p[:, 1] - 0.5
        x = x + s.slant * -y                                     # shear: the top leans by `slant`
        x, y = x * np.cos(turn) - y * np.sin(turn), x * np.sin(turn) + y * np.cos(turn)
        strokes.append(np.stack([x + 0.5, y + 0.5], 1))
    segments = to_segments(strokes)
    pts = segments.reshape(-1, 2)
    span = np.ptp(pts, axis=0)
    width = (s.height - s.brush) * span[1] / max(span[0], 1.0) + s.brush
    half_w, half_h = min(width, CANVAS - 8) / 2, s.height / 2
    centre = (float(np.clip(CANVAS / 2 + rng.normal(0, 20), half_h + 4, CANVAS - half_h - 4)),
              float(np.clip(CANVAS / 2 + rng.normal(0, 20), half_w + 4, CANVAS - half_w - 4)))
    return render(segments, s.height, s.brush, centre)


def writer_set(seeds: tuple[int, ...], per_digit: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Canvas images, labels and the writer (seed) of each, for every writer × digit × sample."""
    images, labels, writers = [], [], []
    for seed in seeds:
        style = Style.from_seed(seed)
        for digit in range(10):
            for i in range(per_digit):
                images.append(draw(digit, style, i))
                labels.append(digit)
                writers.append(seed)
    return images, np.array(labels, np.int64), np.array(writers, np.int64)


def proxy_inputs(seeds: tuple[int, ...], per_digit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The proxy as model inputs (N, 28, 28), labels and writers, read by the Draw page's preprocess."""
    images, labels, writers = writer_set(seeds, per_digit)
    x, ok = preprocess_all(images)
    return x[ok], labels[ok], writers[ok]


def save_sheet(path: Path, seeds: tuple[int, ...], samples: int = 2) -> None:
    """One row per writer: each digit `samples` times, as the 28×28 image the model sees (×3)."""
    from PIL import Image

    tile = 56
    sheet = Image.new("L", (10 * samples * tile, len(seeds) * tile), 40)
    for r, seed in enumerate(seeds):
        style = Style.from_seed(seed)
        x, _ = preprocess_all([draw(d, style, i) for d in range(10) for i in range(samples)])
        for c, image in enumerate(x):
            sheet.paste(Image.fromarray((image * 255).astype(np.uint8)).resize((tile, tile), Image.NEAREST),
                        (c * tile, r * tile))
    sheet.save(path)


# -- scoring runs ---------------------------------------------------------------------------------------
def score_runs(store, run_ids: list[str], ensemble: bool, seeds: tuple[int, ...], per_digit: int,
               drawn_per_variant: int, data) -> dict:
    """Per run (and their ensemble): accuracy per writer, the proxy's mean, the drawn-like mean, MNIST test."""
    from core.data.dataset import load_dataset
    from core.predict.inference import predict_probabilities
    from core.predict.ensemble import combine, model_for_run

    x, y, writers = proxy_inputs(seeds, per_digit)
    test = load_dataset(data)
    pick = np.random.default_rng(0).choice(len(test.y_test), size=drawn_per_variant, replace=False)
    from bench.augment import VARIANTS
    drawn_x = np.concatenate([preprocess_all(drawn_like(test.x_test[pick], v, 0))[0] for v in VARIANTS])
    drawn_y = np.tile(test.y_test[pick].astype(np.int64), len(VARIANTS))
    mnist_x = test.x_test.astype(np.float32) / 255.0
    probs = {}
    for run_id in run_ids:
        model = model_for_run(store, run_id)
        probs[run_id] = [predict_probabilities(model, a) for a in (x, drawn_x, mnist_x)]
    if ensemble and len(run_ids) > 1:
        probs["ensemble"] = [combine([probs[r][i] for r in run_ids]) for i in range(3)]
    out = {"writers": {str(s): Style.from_seed(s).describe() for s in seeds}, "n_proxy": int(len(y)),
           "n_drawn_like": int(len(drawn_y)), "models": {}}
    for name, (p_proxy, p_drawn, p_mnist) in probs.items():
        right = p_proxy.argmax(axis=1) == y
        out["models"][name] = {
            "proxy_mean": float(right.mean()),
            "per_writer": {str(s): float(right[writers == s].mean()) for s in seeds},
            "worst_writer": float(min(right[writers == s].mean() for s in seeds)),
            "per_digit": {str(d): float(right[y == d].mean()) for d in range(10)},
            "drawn_like_mean": float((p_drawn.argmax(axis=1) == drawn_y).mean()),
            "mnist_test": float((p_mnist.argmax(axis=1) == test.y_test).mean())}
    return out


TUNE_VARIANTS = {"plain": {"augment": False, "elastic": False}, "augment": {"augment": True, "elastic": False},
                 "elastic": {"augment": False, "elastic": True}, "augment+elastic": {"augment": True, "elastic": True}}


def tune(store_url: str, data, arch: str, train_limit: int, epochs: int, per_digit: int) -> dict:
    """Train `arch` with each augmentation choice on a subset and score it on the TUNING writers only."""
    from core.config import make_config
    from core.data.dataset import dataset_info
    from core.store.facade import RunStore
    from core.train.run import train

    store = RunStore(store_url)
    n_train = dataset_info(data).n_train
    ids = {}
    try:
        for name, flags in TUNE_VARIANTS.items():
            config = make_config(arch, n_train=n_train, epochs=epochs, train_limit=train_limit, seed=7,
                                 name=f"tune {arch} {name}", **flags)
            print(f"training {config.name} ({train_limit:,} digits, {epochs} epochs) …", flush=True)
            run = train(store, config, data)
            if run.status != "completed":
                raise RuntimeError(f"run {run.id} {run.status}: {run.error}")
            ids[name] = run.id
        figures = score_runs(store, list(ids.values()), False, TUNING_SEEDS, per_digit, 200, data)
    finally:
        store.close()
    figures["variants"] = ids
    return figures


def main() -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    common.add_data_argument(parser)
    parser.add_argument("--store", metavar="URL", help="the store holding the runs to score")
    parser.add_argument("--run", dest="runs", action="append", default=[], metavar="RUN_ID", help="a run (repeat)")
    parser.add_argument("--ensemble", action="store_true", help="also score the runs' ensemble (averaged probabilities)")
    parser.add_argument("--seeds", choices=("report", "tuning"), default="report",
                        help="report: the writers whose figures are published; tuning: the ones used to choose defaults")
    parser.add_argument("--per-digit", type=int, default=20, help="samples of each digit per writer")
    parser.add_argument("--drawn-per-variant", type=int, default=300, help="MNIST test digits per drawn-like variant")
    parser.add_argument("--sheet", metavar="PNG", help="write a contact sheet of the writers and exit")
    parser.add_argument("--name", default="writers", help="results file name (bench/results/NAME.json)")
    parser.add_argument("--tune", metavar="ARCH", help="choose augmentation for ARCH: train each choice on a subset "
                        "into --store and score on the tuning writers")
    parser.add_argument("--train-limit", type=int, default=12000, help="with --tune: training digits")
    parser.add_argument("--epochs", type=int, default=3, help="with --tune: epochs")
    args = parser.parse_args()
    if args.tune:
        common.quiet_tensorflow()
        started, load_before = time.time(), common.loadavg()
        figures = tune(args.store, common.mnist_h5(args.data), args.tune, args.train_limit, args.epochs, args.per_digit)
        for name, run_id in figures["variants"].items():
            m = figures["models"][run_id]
            print(f"{name:16s} tuning writers {100 * m['proxy_mean']:.2f}%  worst writer {100 * m['worst_writer']:.1f}%  "
                  f"drawn-like {100 * m['drawn_like_mean']:.2f}%  MNIST test {100 * m['mnist_test']:.2f}%")
        path = common.write_results(f"tune_{args.tune}", figures, args.results, started, load_before,
                                    [f"{args.train_limit} digits, {args.epochs} epochs, seed 7; TUNING writers only"])
        print(f"wrote {path}")
        return 0
    seeds = REPORT_SEEDS if args.seeds == "report" else TUNING_SEEDS
    if args.sheet:
        save_sheet(Path(args.sheet), seeds)
        print(f"wrote {args.sheet}")
        return 0
    if not args.store or not args.runs:
        parser.error("give --store URL and at least one --run ID (or --sheet PNG)")
    common.quiet_tensorflow()
    from core.store.facade import RunStore

    started, load_before = time.time(), common.loadavg()
    per_digit = 3 if args.smoke else args.per_digit
    store = RunStore(args.store)
    try:
        figures = score_runs(store, args.runs, args.ensemble, seeds, per_digit,
                             30 if args.smoke else args.drawn_per_variant, common.mnist_h5(args.data))
        figures["runs"] = {r: {"name": store.get_run(r).name, "config": store.get_run(r).config} for r in args.runs}
    finally:
        store.close()
    figures["seeds"] = args.seeds
    names = list(figures["models"])
    rows = [[s, figures["writers"][str(s)][:70], *(100 * figures["models"][m]["per_writer"][str(s)] for m in names)]
            for s in seeds]
    rows.append(["all", f"{figures['n_proxy']} digits", *(100 * figures["models"][m]["proxy_mean"] for m in names)])
    rows.append(["drawn-like", f"{figures['n_drawn_like']} MNIST re-strokes",
                 *(100 * figures["models"][m]["drawn_like_mean"] for m in names)])
    rows.append(["MNIST test", "10,000", *(100 * figures["models"][m]["mnist_test"] for m in names)])
    print(common.table(["writer", "style", *(f"{m} %" for m in names)], rows))
    notes = [f"{len(seeds)} {args.seeds} writers × 10 digits × {per_digit}; never trained on"]
    if args.smoke:
        notes.append("SMOKE: 3 samples per digit; the figures are meaningless")
    path = common.write_results(args.name, figures, args.results, started, load_before, notes)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
