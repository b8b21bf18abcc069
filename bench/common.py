"""Shared helpers for the benchmarks: timing, summary statistics, tables, results JSON, data.

Every benchmark prints a plain-text table and writes its figures to
bench/results/NAME.json together with the machine it ran on, the load average and the
exact command, so a figure in the README can always be traced to the run that made it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
MNIST_IDX_DIR = ROOT.parent / "shared" / "datasets" / "mnist"   # the four IDX files on these machines
CACHE_DIR = Path(tempfile.gettempdir()) / "digitlab-bench"       # ingested MNIST is kept here between runs
PACKAGES = ("tensorflow-cpu", "keras", "numpy", "pandas", "SQLAlchemy", "streamlit", "plotly",
            "playwright", "mlflow", "tensorboard")

if str(ROOT) not in sys.path:  # so `import core` works when a script is run as `python bench/x.py`
    sys.path.insert(0, str(ROOT))


# -- timing and statistics ------------------------------------------------------------------------
@contextmanager
def timer() -> Iterator[dict]:
    """Measure wall time and this process's CPU time (all threads) of a `with` block.

    Yields a dict that holds `wall` and `cpu` seconds once the block has finished.
    """
    out: dict[str, float] = {}
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        out["wall"] = time.perf_counter() - wall0
        out["cpu"] = time.process_time() - cpu0


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `repeats` calls of `fn` after `warmup` untimed calls.

    CPU time (this process, all threads) barely moves when other processes compete for the
    cores, so it shows a call's own cost on a busy machine where wall time cannot.
    """
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        with timer() as t:
            fn()
        walls.append(t["wall"])
        cpus.append(t["cpu"])
    return walls, cpus


def stats(values: Iterable[float]) -> dict[str, float | int]:
    """Median, min, max, p95 (nearest rank) and count of a sample."""
    xs = sorted(float(v) for v in values)
    if not xs:
        raise ValueError("stats() needs at least one value")
    p95 = xs[min(len(xs) - 1, max(0, int(round(0.95 * len(xs))) - 1))]
    return {"median": statistics.median(xs), "min": xs[0], "max": xs[-1], "p95": p95, "n": len(xs)}


# -- output ----------------------------------------------------------------------------------------
def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_numeric(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()
    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]])


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}" if abs(value) >= 1000 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _is_numeric(text: str) -> bool:
    try:
        float(text.replace(",", "").replace("×", "").replace("%", ""))
    except ValueError:
        return text == "–"
    return True


def span(s: dict, fmt: str = "{:,.0f}", unit: str = "") -> str:
    """'median (min–max)' of a stats() dict, for table cells."""
    return f"{fmt.format(s['median'])}{unit} ({fmt.format(s['min'])}–{fmt.format(s['max'])})"


def machine_info() -> dict[str, Any]:
    """What a figure depends on: CPU, cores, memory, OS, Python and package versions, git commit."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem_gib, "os": platform.platform(),
            "python": platform.python_version(), "packages": versions, "git_commit": _git_commit()}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+uncommitted" if dirty else "") if out.returncode == 0 else None


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (other processes share these cores)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_times() -> list[int] | None:
    """The machine's CPU time counters (/proc/stat's "cpu" line: user nice system idle iowait irq softirq steal …)."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


_CPU_AT_START = cpu_times()


def steal_share(start: list[int] | None = None) -> float | None:
    """The share of CPU time the hypervisor gave to other machines ("steal") since `start` (default:
    since this module was imported). On a shared virtual machine it slows every wall-clock figure
    without showing in the load average: a run with a high share is not comparable to a quiet one."""
    start, now = start or _CPU_AT_START, cpu_times()
    if not start or not now or len(now) < 8:
        return None
    delta = [b - a for a, b in zip(start, now)]
    total = sum(delta[:8])
    return round(delta[7] / total, 3) if total > 0 else None


def steal_line() -> str:
    """The steal share since the start, as the benchmarks print it under their tables."""
    share = steal_share()
    return ("CPU steal by other machines during the run: " + (f"{share:.1%}" if share is not None else
            "unknown (no /proc/stat)"))


def process_cpu_s(pid: int, missing: float | None = None) -> float:
    """CPU seconds (user + system, all threads) process `pid` has used so far, from /proc/<pid>/stat:
    robust to other load on the machine. Where /proc cannot tell: `missing`, or OSError when None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        if missing is None:
            raise
        return missing


def command_line() -> str:
    """The command that produced this run, as typed from the repository root."""
    exe = Path(sys.executable)
    try:
        exe_text = str(exe.relative_to(ROOT))
    except ValueError:
        exe_text = str(exe)
    script = Path(sys.argv[0]).resolve()
    try:
        script_text = str(script.relative_to(ROOT))
    except ValueError:
        script_text = sys.argv[0]
    return shlex.join([exe_text, script_text, *sys.argv[1:]])


def write_results(name: str, figures: dict[str, Any], results_dir: str | Path | None = None,
                  started: float | None = None, load_before: list[float] | None = None,
                  notes: list[str] | None = None) -> Path:
    """Write figures with machine info, load and the command to RESULTS_DIR/NAME.json (atomically)."""
    folder = Path(results_dir) if results_dir else RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name,
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": command_line(),
           "seconds": None if started is None else round(time.time() - started, 1),
           "machine": machine_info(),
           "load_before": load_before, "load_after": loadavg(), "steal_share": steal_share(), "nice": os.nice(0),
           "notes": notes or [],
           "figures": figures}
    path = folder / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


# -- arguments and data -----------------------------------------------------------------------------
def base_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the options every benchmark has: --smoke and --results."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, to check the script works (seconds, not minutes); figures are meaningless")
    parser.add_argument("--results", metavar="DIR", default=None,
                        help=f"folder for NAME.json (default {RESULTS_DIR.relative_to(ROOT)})")
    return parser


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", metavar="H5", default=None,
                        help="a Digit Lab HDF5 dataset (default: full MNIST ingested from "
                             f"{MNIST_IDX_DIR} into {CACHE_DIR})")


def mnist_h5(path: str | Path | None = None) -> Path:
    """The dataset to benchmark on: `path`, else full MNIST ingested once into CACHE_DIR."""
    from core.data.dataset import DataError, dataset_info
    from core.data.ingest import ingest

    if path is not None:
        dataset_info(path)  # DataError with a clear line if it is not a dataset
        return Path(path)
    out = CACHE_DIR / "mnist.h5"
    if not MNIST_IDX_DIR.is_dir():
        raise DataError(f"no MNIST IDX files at {MNIST_IDX_DIR}: pass --data PATH.h5 "
                        "(made by `python -m core ingest`)")
    ingest(MNIST_IDX_DIR, out)  # skips the work when `out` already holds these files
    return out


def quiet_tensorflow() -> None:
    """Silence TensorFlow's import-time info lines (set before TensorFlow is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
