"""How well do runs read real people's handwriting? Overall and per writer, through the Draw page's path.

The set is 7,494 digits by 30 writers, pen trajectories rendered as canvas drawings (white strokes on
black, 280×280), kept outside the project (`../shared/datasets/pendigits-writers`, see its README).
It is for validation only: nothing is trained or tuned on it. Each drawing goes through
core.predict.preprocess.preprocess, exactly as a drawing on the Draw page does; the run's model then
reads the 28×28 results in one batch. Reported per run: accuracy overall, the mean over writers, the
worst writer (the one a demo meets), and the spread.

Used by bench/train_speed.py --writers (a precision or execution change must keep these) and on its own:

Run: python bench/real_writers.py --store URL --run ID [--run ID …]
"""
from __future__ import annotations

import hashlib
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

WRITERS_NPZ = common.ROOT.parent / "shared" / "datasets" / "pendigits-writers" / "pendigits_writers.npz"


def load(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images28 float32 (N, 28, 28), labels, writer) with every drawing preprocessed as the Draw page does.

    The preprocessed arrays are cached beside the bench data, keyed by the set's and the
    preprocessing code's contents, so a change to preprocessing is always re-run."""
    from core.predict import preprocess as pre

    src = Path(path) if path else WRITERS_NPZ
    if not src.is_file():
        raise SystemExit(f"no real-writers set at {src}: pass --writers PATH.npz")
    key = hashlib.sha256(src.read_bytes() + Path(pre.__file__).read_bytes()).hexdigest()[:16]
    cache = common.CACHE_DIR / f"pendigits28-{key}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return z["images"], z["labels"], z["writer"]
    with np.load(src) as z:
        drawings, labels, writer = z["images"], z["labels"].astype(int), z["writer"].astype(int)
    images = np.stack([pre.preprocess(d).image for d in drawings]).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cache, images=images, labels=labels, writer=writer)
    return images, labels, writer


def score_model(model, images: np.ndarray, labels: np.ndarray, writer: np.ndarray) -> dict[str, Any]:
    """Accuracy overall and per writer of one model on the preprocessed set."""
    from core.predict.inference import predict_probabilities

    right = predict_probabilities(model, images).argmax(axis=1) == labels
    per = {int(w): float(right[writer == w].mean()) for w in np.unique(writer)}
    worst = min(per, key=per.get)
    return {"accuracy": float(right.mean()), "writer_mean": statistics.mean(per.values()),
            "worst_writer": worst, "worst_accuracy": per[worst], "writer_std": statistics.pstdev(per.values()),
            "per_writer": per}


def score_run(store, run_id: str, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, Any]:
    """score_model for a stored run, loaded as the Draw page loads it (float32, safe mode)."""
    from core.predict.inference import load_model

    return score_model(load_model(store.model_file(run_id), run_id=run_id), *data)


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    parser.add_argument("--store", required=True, help="the runs' store (SQLAlchemy URL)")
    parser.add_argument("--run", action="append", default=[], help="a run id (repeat for several)")
    parser.add_argument("--writers", default=None, help=f"the set (default {WRITERS_NPZ})")
    args = parser.parse_args(argv)
    if not args.run:
        parser.error("name at least one --run ID")
    common.quiet_tensorflow()
    from core.store.facade import RunStore

    store = RunStore(args.store)
    data = load(args.writers)
    if args.smoke:
        data = tuple(a[:300] for a in data)
    rows, figures = [], {}
    for run_id in args.run:
        s = figures[run_id] = score_run(store, run_id, data)
        rows.append([run_id, f"{100 * s['accuracy']:.2f}", f"{100 * s['writer_mean']:.2f}",
                     f"{100 * s['worst_accuracy']:.2f} (writer {s['worst_writer']})", f"{100 * s['writer_std']:.2f}"])
    print(common.table(["run", "overall %", "mean of writers %", "worst writer %", "std over writers"], rows))
    print(f"wrote {common.write_results('real_writers', figures, args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
