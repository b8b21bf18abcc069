"""What each preset costs and what it reaches: full MNIST, the preset's own defaults.

Every preset is trained exactly as the Train page or `python -m core train --arch NAME`
trains it (core.train.run.train: queue, fit with the store callback, evaluate on the test
set, save the model) into a temporary store. Reported per preset: training digits per
second and seconds per epoch (medians over its epochs, validation included), total time
and MNIST test accuracy.

Run: python bench/presets.py            (every preset, full MNIST; about 10 minutes on 2 cores)
"""
from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402


def bench_preset(store, arch: str, data: Path, epochs: int | None, train_limit: int | None) -> dict:
    """Train one preset with its defaults (optionally fewer epochs / digits) and read back its figures."""
    from core.model.architectures import count_params
    from core.config import make_config
    from core.data.dataset import dataset_info
    from core.train.run import train

    n_train = dataset_info(data).n_train
    config = make_config(arch, n_train=n_train, epochs=epochs, train_limit=train_limit)
    t0 = time.perf_counter()
    run = train(store, config, data)
    total = time.perf_counter() - t0
    if run.status != "completed":
        raise RuntimeError(f"{arch}: the run ended {run.status}: {run.error}")
    history = store.metric_history(run.id, "epoch", keys=["epoch_seconds"])
    seconds = history["value"].tolist()
    train_digits = round((train_limit or n_train) * (1 - config.validation_split))
    return {"epochs": config.epochs, "batch_size": config.batch_size, "optimizer": config.optimizer,
            "validation_split": config.validation_split, "params": count_params(config.hidden_layers()),
            "train_digits": train_digits, "epoch_s": common.stats(seconds), "epoch_s_raw": seconds,
            "samples_per_s": common.stats(train_digits / s for s in seconds),
            "total_s": total, "test_accuracy": run.test_accuracy, "best_val_accuracy": run.best_val_accuracy,
            "run_id": run.id}


def main(argv: list[str] | None = None) -> int:
    from core.model.architectures import PRESETS

    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets")
    parser.add_argument("--epochs", type=int, default=None, help="override every preset's epochs (default: its own)")
    parser.add_argument("--train-limit", type=int, default=None, help="train on this many digits (default: all)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.epochs, args.train_limit = 1, args.train_limit or 200
    names = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in names if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset {unknown[0]!r}; choose from {', '.join(PRESETS)}")

    common.quiet_tensorflow()
    from core.store.facade import RunStore

    started, load_before = time.time(), common.loadavg()
    data = common.mnist_h5(args.data)
    folder = Path(tempfile.mkdtemp(prefix="digitlab-presets-"))
    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    figures: dict[str, Any] = {"data": str(data), "epochs_override": args.epochs, "train_limit": args.train_limit,
                               "presets": {}}
    try:
        for arch in names:
            print(f"{arch} …", flush=True)
            fig = bench_preset(store, arch, data, args.epochs, args.train_limit)
            fig["loadavg"] = common.loadavg()
            figures["presets"][arch] = fig
            print(f"  {fig['epochs']} epochs, {fig['samples_per_s']['median']:,.0f} digits/s, "
                  f"{fig['epoch_s']['median']:.1f} s/epoch, test accuracy {fig['test_accuracy']:.4f}", flush=True)
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    rows = [[arch, f"{f['params']:,}", f"{f['epochs']}", f"{f['batch_size']}", f["optimizer"],
             common.span(f["samples_per_s"]), common.span(f["epoch_s"], "{:.1f}"), f"{f['total_s']:.0f}",
             f"{100 * f['test_accuracy']:.2f}"] for arch, f in figures["presets"].items()]
    print()
    print(common.table(["preset", "params", "epochs", "batch", "optimizer", "digits/s median (min–max)",
                        "s/epoch median (min–max)", "total s", "test acc %"], rows))
    path = common.write_results("presets", figures, args.results, started, load_before,
                                notes=["trained with core.train.run.train (store callback, evaluation and model save "
                                       "included in total_s); epoch_s includes validation"])
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
