"""Write tiny synthetic MNIST-format files for tests (IDX folders and Keras-style .npz)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

FILE_STEMS = {  # (split, kind) -> (prefix, kind, idx tag)
    ("train", "images"): ("train", "images", "idx3"),
    ("train", "labels"): ("train", "labels", "idx1"),
    ("test", "images"): ("t10k", "images", "idx3"),
    ("test", "labels"): ("t10k", "labels", "idx1"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8 array: 0x0000, dtype 0x08, ndim, big-endian dims, payload."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


def write_idx(path: str | Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write `array` as an IDX file (gzipped when `gz`) and return its path."""
    path = Path(path)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def idx_name(split: str, kind: str, gz: bool = True, style: str = "dash") -> str:
    """MNIST file name: style "dash" -> train-images-idx3-ubyte, "dot" -> train-images.idx3-ubyte."""
    prefix, kind_, tag = FILE_STEMS[(split, kind)]
    sep = {"dash": "-", "dot": "."}[style]
    return f"{prefix}-{kind_}{sep}{tag}-ubyte" + (".gz" if gz else "")


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` random digit-like 28x28 uint8 images (a bright stroke on black) and labels 0-9."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i, label in enumerate(labels):
        row, col = rng.integers(4, 20, size=2)
        images[i, row: row + 6, col: col + 2 + label // 2] = rng.integers(128, 256, dtype=np.uint8)
    return images, labels


def write_mnist_dir(directory: str | Path, n_train: int = 32, n_test: int = 8, gz: bool = True,
                    style: str = "dash", seed: int = 0) -> dict[str, np.ndarray]:
    """Write the four MNIST IDX files into `directory`; return x_train, y_train, x_test, y_test."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    x_train, y_train = digits(n_train, seed)
    x_test, y_test = digits(n_test, seed + 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for split in ("train", "test"):
        write_idx(directory / idx_name(split, "images", gz, style), arrays[f"x_{split}"], gz)
        write_idx(directory / idx_name(split, "labels", gz, style), arrays[f"y_{split}"], gz)
    return arrays


def write_mnist_npz(path: str | Path, n_train: int = 32, n_test: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a Keras-style mnist.npz (x_train, y_train, x_test, y_test); return the arrays."""
    x_train, y_train = digits(n_train, seed)
    x_test, y_test = digits(n_test, seed + 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    np.savez_compressed(path, **arrays)
    return arrays
