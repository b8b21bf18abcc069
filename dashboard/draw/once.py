"""Once per drawing: the Draw page's work for one drawing and one run is done once, not on every rerun.

A drawing is named by a hash of its pixels (`digest`). What is computed from it (the
preprocessed image, each run's probabilities, the explanation, the nearest digits, the PNG
bytes of every image shown) is kept in one small process-wide LRU keyed by (what, store,
drawing, run, model version), so a rerun that changes nothing else (a widget, another tab, a
fragment) and other visitors drawing the same thing reuse it. Errors are never kept.
"""
from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable, TypeVar

import numpy as np
from PIL import Image


T = TypeVar("T")
MAX_ENTRIES = 512          # about 64 drawings × a few runs; each entry is a few hundred kB at most

_lock = threading.Lock()
# TURNS: drawings take turns instead of sharing the core. When N visitors draw at the same moment,
# each script thread gets a slice of the one interpreter in turn, so with shared slices every answer
# comes near the end of all N drawings' work; one drawing at a time (the Draw tab holds `turn()`
# while it works out and shows a drawing's answers; once() holds it while it computes), the first
# comes after one drawing's work and the median after half of them, for the same total (10 and 30
# drawings at once in bench/visitors.py). The same drawing asked for twice at once is computed
# once. Re-entrant, so a computation may use once() itself.
_turn = threading.RLock()
_entries: OrderedDict[Hashable, Any] = OrderedDict()
counts = {"hits": 0, "misses": 0}   # read by tests and the benchmark


def digest(image: np.ndarray) -> str:
    """A short name for an image's pixels (shape and dtype included)."""
    a = np.ascontiguousarray(image)
    h = hashlib.blake2b(a.tobytes(), digest_size=12)
    h.update(f"{a.shape}{a.dtype}".encode())
    return h.hexdigest()


def once(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()` the first time `key` is asked for; the kept value after that (LRU)."""
    with _lock:
        if key in _entries:
            _entries.move_to_end(key)
            counts["hits"] += 1
            return _entries[key]
    with _turn:  # one computation at a time, process-wide: see TURNS
        with _lock:
            if key in _entries:  # computed by whoever had the turn before
                counts["hits"] += 1
                return _entries[key]
        value = compute()
    with _lock:
        counts["misses"] += 1
        _entries[key] = value
        while len(_entries) > MAX_ENTRIES:
            _entries.popitem(last=False)
    return value


def turn() -> threading.RLock:
    """The turn (a context manager) a drawing holds while its answers are worked out and shown, so
    that simultaneous drawings are served one after another (see TURNS)."""
    return _turn


def clear() -> None:
    with _lock:
        _entries.clear()


def png(image: np.ndarray) -> bytes:
    """An RGB or grey uint8 array as PNG bytes (st.image shows bytes without encoding them again)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
