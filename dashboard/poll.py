"""Shared polling: every visitor watching the same thing reads the store once per tick, together.

A live panel reruns every LIVE_EVERY seconds in each browser session. Without sharing, thirty
people watching one run make thirty identical reads a tick. `shared(key, every, read)` keeps
one value per key for the current tick (wall time cut into `every`-second slices): the first
session of a tick reads, the others (at once or later in the same tick) get that value. A
session that arrives while the read is in flight waits for it instead of reading again.

Values are shared between sessions: treat them as read-only (pandas operations that return
new frames are fine; in-place edits are not). `forget(key)` drops a value after a write (a
cancel) so the writer's next rerun sees it at once.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable, TypeVar

T = TypeVar("T")
MAX_KEYS = 512                       # values kept at most (stale ones are dropped first)

_guard = threading.Lock()
_locks: dict[Hashable, threading.Lock] = {}
_values: dict[Hashable, tuple[int, float, Any]] = {}   # key -> (tick, every, value)
clock: Callable[[], float] = time.time    # tests replace it to hold or advance the tick


def tick(every: float, now: float | None = None) -> int:
    """The number of the `every`-second slice of wall time that `now` falls in."""
    return int((clock() if now is None else now) // every)


def shared(key: Hashable, every: float, read: Callable[[], T]) -> T:
    """`read()`'s value for `key`, read at most once per `every`-second tick by the whole process.

    Errors are not kept: a read that raises is tried again by the next caller.
    """
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        now = tick(every)
        hit = _values.get(key)
        if hit is not None and hit[0] == now and hit[1] == every:
            return hit[2]
        value = read()
        with _guard:
            _values[key] = (now, every, value)
            if len(_values) > MAX_KEYS:
                _prune()
        return value


def forget(*prefix: Hashable) -> None:
    """Drop every value whose key starts with `prefix` (tuple keys), or all values without one."""
    with _guard:
        for key in [k for k in _values if not prefix or (isinstance(k, tuple) and k[:len(prefix)] == prefix)]:
            _values.pop(key, None)


def _prune() -> None:
    """Drop values from past ticks (called with _guard held); then the oldest if still too many."""
    for key, (t, every, _) in list(_values.items()):
        if t < tick(every) - 1:
            _values.pop(key, None)
            _locks.pop(key, None)
    while len(_values) > MAX_KEYS:
        _values.pop(next(iter(_values)))
