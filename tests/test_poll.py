"""dashboard/poll.py: every visitor watching the same live run, workers panel or study shares one
store read per tick, and each still sees the new rows on the next tick."""
from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import make_config
from core.store.facade import RunStore
from core.store.queue import queue_run
from dashboard import poll
from dashboard.state import LIVE_EVERY
from tests.helpers import running_run

TRAIN = str(Path(__file__).resolve().parents[1] / "pages" / "train.py")


def test_one_read_per_key_and_tick_even_from_many_threads(frozen):
    reads = Counter()

    def read():
        reads["r"] += 1
        return reads["r"]

    threads = [threading.Thread(target=poll.shared, args=(("t", "a"), 2.0, read)) for _ in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert reads["r"] == 1 and poll.shared(("t", "a"), 2.0, read) == 1
    frozen.now += 2.0
    assert poll.shared(("t", "a"), 2.0, read) == 2  # the next tick reads again
    poll.forget("t")
    assert poll.shared(("t", "a"), 2.0, read) == 3  # after a write, at once


def test_a_failed_read_is_not_kept(frozen):
    def boom():
        raise RuntimeError("store down")
    with pytest.raises(RuntimeError):
        poll.shared(("t", "b"), 2.0, boom)
    assert poll.shared(("t", "b"), 2.0, lambda: "ok") == "ok"


def progress_texts(at: AppTest) -> list[str]:
    return [p.proto.text for p in at.get("progress")]


def test_two_sessions_watching_one_live_run_make_one_store_read_per_tick(app_env, monkeypatch, frozen):
    store = app_env.store
    run_id = running_run(store, app_env.data_path)

    calls = Counter()
    for name in ("get_run", "metric_history", "workers_overview", "live_workers"):
        original = getattr(RunStore, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            if not args or args[0] == run_id or _name in ("workers_overview", "live_workers"):
                calls[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(RunStore, name, counted)

    first, second = (AppTest.from_file(TRAIN, default_timeout=60) for _ in range(2))
    for at in (first, second):
        at.run()
        assert not at.exception and "Batch 3 of 6" in progress_texts(at)
    # one tick, two viewers: the run once, its batch and epoch curves once each, the workers table once
    assert calls == Counter(get_run=1, metric_history=2, workers_overview=1)

    more = [(run_id, "batch", key, step, 1, value) for step in (4, 5) for key, value in
            (("loss", 2.0 / step), ("accuracy", 0.1 * step))]
    store.checkpoint(run_id, more, step=5, steps_per_epoch=6)
    frozen.now += LIVE_EVERY * 4  # past the workers panel's tick too
    for at in (first, second):
        at.run()
        assert "Batch 5 of 6" in progress_texts(at)  # every viewer sees the new rows
    assert calls == Counter(get_run=2, metric_history=4, workers_overview=2)
