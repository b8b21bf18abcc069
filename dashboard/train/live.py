"""The live panel of one run on the Train page: a picker of the runs to watch, queue place,
progress, ETA, curves that update while it trains, Cancel, and its result once it ends.

A panel polls the store with `st.fragment(run_every=LIVE_EVERY)`; the reads of a tick are
shared by every visitor watching the same run (dashboard/poll.py), so a room watching one run
costs the store one read a tick. What a running run's panel shows (`RunningView`: texts, numbers,
figures and their JSON) is worked out once a tick too; each viewer only lays out the elements.
Widgets always get explicit keys.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from core.store.schema import TERMINAL, Run
from core.store.facade import RunStore
from dashboard import poll, state
from dashboard.auth import require_editor
from dashboard.background import start_worker
from dashboard.format import duration_text, status_badge
from dashboard.nav import page_link
from dashboard.state import LIVE_EVERY
from dashboard.train.curves import curve_figures, show_curves


# ------------------------------------------------------------------------------ the run picker

def run_label(row: pd.Series | Run) -> str:
    """How a run is named in pickers: name · architecture · id.

    Nothing that changes while a run trains (such as its status) goes in: a selectbox keeps
    its choice by this text, so a changing label would lose the selection.
    """
    get = row.get if isinstance(row, pd.Series) else lambda k: getattr(row, "id" if k == "run_id" else k)
    return f"{get('name')} · {get('architecture')} · {get('run_id')}"


def run_picker(runs_df: pd.DataFrame, key: str, label: str = "Run", default_id: str | None = None) -> pd.Series:
    """A selectbox over `runs_df` (a `store.list_runs()` frame); returns the chosen row.

    `default_id` is preselected the first time (else the first row). Guard an empty frame
    with st.info + st.stop() before calling: there is nothing to pick from.
    """
    if runs_df.empty:
        raise ValueError("run_picker needs at least one run; guard with st.info + st.stop() first")
    ids = list(runs_df["run_id"])
    if st.session_state.get(key) not in ids:  # the remembered run was deleted or filtered out
        st.session_state.pop(key, None)
    labels = {row["run_id"]: run_label(row) for _, row in runs_df.iterrows()}
    index = ids.index(default_id) if default_id in ids and key not in st.session_state else 0
    chosen = st.selectbox(label, ids, index=index, format_func=labels.get, key=key)
    return runs_df.loc[runs_df["run_id"] == chosen].iloc[0]


# ------------------------------------------------------------------------------ live progress

def progress_numbers(run: Run) -> dict[str, float | int | None]:
    """Epoch, batch within the epoch, and the overall fraction done, from the run's counters."""
    epochs, spe, step = run.epochs or 0, run.steps_per_epoch or 0, run.step or 0
    if not spe or not epochs:
        return {"epoch": min(run.epoch + 1, epochs or 1), "batch": 0, "steps": spe, "fraction": 0.0}
    epoch = min(step // spe + 1, epochs) if step < epochs * spe else epochs
    batch = step - (epoch - 1) * spe
    return {"epoch": epoch, "batch": min(batch, spe), "steps": spe, "fraction": min(step / (epochs * spe), 1.0)}


ETA_MIN_SAMPLES = 3      # commits of progress seen before a time left is given ("estimating…" until then)
ETA_WINDOW = 6           # the most recent commits the step rate is measured over


def step_samples(*histories: pd.DataFrame) -> list[tuple[float, int]]:
    """(time, step) of each commit of a run's metric rows, in time order.

    Rows of one commit share their `ts`; the highest step among them is how far training had got.
    """
    frames = [h[["ts", "step"]] for h in histories if len(h)]
    if not frames:
        return []
    latest = pd.concat(frames).dropna().groupby("ts")["step"].max().sort_index()
    return [(float(ts), int(step)) for ts, step in latest.items()]


def eta_from_samples(samples: list[tuple[float, int]], total_steps: int, now: float | None = None,
                     window: int = ETA_WINDOW, min_samples: int = ETA_MIN_SAMPLES) -> float | None:
    """Seconds of training left from recorded (time, step) samples, or None while estimating.

    The rate is measured over the last `window` samples only, never from the start: the first
    commit comes after loading the data, building the model and tracing its graph, which
    would make an early estimate many times too long. Until `min_samples` commits have been
    seen there is no estimate. Time passed since the last sample counts as done (clamped at 0).
    """
    if not total_steps or len(samples) < min_samples:
        return None
    recent = samples[-window:]
    (t0, s0), (t1, s1) = recent[0], recent[-1]
    if s1 <= s0 or t1 <= t0:
        return None
    left = max(total_steps - s1, 0) * (t1 - t0) / (s1 - s0)
    since = max((now if now is not None else t1) - t1, 0.0)
    return max(left - since, 0.0)


def eta_seconds(run: Run, batches: pd.DataFrame, epochs: pd.DataFrame | None = None,
                now: float | None = None) -> float | None:
    """Seconds of training left for a running run from its metric rows (None: still estimating).

    Once an epoch has ended, whole epochs are the measure (`eta_from_epochs`); during the first,
    the step rate of the last few commits."""
    now = time.time() if now is None else now
    by_epochs = eta_from_epochs(run, epochs, now)
    if by_epochs is not None:
        return by_epochs
    total = (run.epochs or 0) * (run.steps_per_epoch or 0)
    histories = (batches,) if epochs is None else (batches, epochs)
    return eta_from_samples(step_samples(*histories), total, now=now)


def eta_from_epochs(run: Run, epochs: pd.DataFrame | None, now: float) -> float | None:
    """Seconds left from the last whole epoch's measured duration (its `epoch_seconds` row: the start
    of the epoch, its batches and its validation pass), or None before an epoch has ended.

    The estimate falls by one second a second, across epoch boundaries too: the pause at an epoch's
    start (shuffling, validation of the one before) is part of what was measured, so "Batch 0" no
    longer freezes it, and a commit that arrives after that pause does not make it jump. If the
    current epoch runs past the measure, its own step rate says how much of it is left.
    """
    if epochs is None or epochs.empty or not run.epochs or "ts" not in epochs:
        return None
    ended = epochs[(epochs["key"] == "epoch_seconds") & epochs["value"].notna()].sort_values("epoch")
    if ended.empty:
        return None
    last = ended.iloc[-1]
    done, per_epoch, at = int(last["epoch"]), float(last["value"]), float(last["ts"])
    if done >= run.epochs:
        return 0.0
    elapsed = max(now - at, 0.0)
    current = per_epoch - elapsed
    spe = run.steps_per_epoch or 0
    into = (run.step or 0) - done * spe
    if current < 0 and spe and into > 0:  # slower than the last epoch: the current epoch's own pace
        current = elapsed * (spe - min(into, spe)) / into
    return max(current, 0.0) + per_epoch * (run.epochs - done - 1)


def evaluating(run: Run) -> bool:
    """A running run that has trained all its epochs: it is being scored on the test set and saved."""
    return bool(run.epochs) and run.epoch >= run.epochs


def format_seconds(seconds: float | None) -> str:
    return duration_text(seconds)


def queue_position(store: RunStore, run: Run) -> tuple[int, int]:
    """(place in the queue, 1-based; runs training now) for a queued run."""
    queued = store.list_runs(status="queued")
    ahead = int((queued["created_at"] <= run.created_at).sum()) if not queued.empty else 1
    return max(ahead, 1), len(store.list_runs(status="running"))


def shared_read(store: RunStore, what: str, run_id: str, read):
    """`read()` once per LIVE_EVERY tick for every session watching `run_id` (see dashboard/poll.py)."""
    return poll.shared((store.url, what, run_id), LIVE_EVERY, read)


def live_run(store: RunStore, run_id: str) -> None:
    """The panel of one run: queue place, progress, ETA, live curves and Cancel; the result when done.

    It refreshes itself every LIVE_EVERY seconds while the run is queued or running (only this
    panel reruns) and reruns the page once when the run ends, which stops the polling.
    """
    first = shared_read(store, "run", run_id, lambda: store.get_run(run_id))
    active = first.status not in TERMINAL

    @st.fragment(run_every=LIVE_EVERY if active else None)
    def panel() -> None:
        run = shared_read(store, "run", run_id, lambda: store.get_run(run_id))
        if active and run.status in TERMINAL:
            st.rerun()  # the whole page: show the result and stop polling
        title, action = st.columns([4, 1], vertical_alignment="center")
        # the badge only once it ended: while queued or running the panel's first line says which, and a
        # badge drawn before that line was replaced stood "running" beside a stale "Queued: place 1"
        badge = f" {status_badge(run.status)}" if run.status in TERMINAL else ""
        title.markdown(f"**{run.name}**{badge} · `{run.id}` · {run.architecture}"
                       + (f" · {run.n_params:,} parameters" if run.n_params else ""))
        if run.status in ("queued", "running"):
            with action:
                _cancel_button(store, run)
        if run.status == "queued":
            _queued_panel(store, run)
        elif run.status == "running":
            _running_panel(store, run)
        else:
            _finished_panel(store, run)

    panel()


def _queued_panel(store: RunStore, run: Run) -> None:
    place, running = shared_read(store, "queue", run.id, lambda: queue_position(store, run))
    workers = shared_read(store, "workers", "", store.live_workers)
    ahead = f"{place - 1} queued run{'s' if place != 2 else ''} ahead" if place > 1 else "next in line"
    st.info(f"Queued: place {place} in the queue ({ahead}; {running} training now). "
            f"{'A worker is alive and will pick it up.' if not workers.empty else ''}", icon=":material/schedule:")
    if workers.empty and state.autostart_worker():  # the page has asked for one: it is importing Keras
        st.caption("A worker is starting on this machine (about 10 s: it imports Keras first); it takes this "
                   "run as soon as it is up.")
    elif workers.empty:
        st.warning("No worker is running, so nothing will train. Start one here, or in a terminal with "
                   "`.venv/bin/python -m core worker`.", icon=":material/warning:")
        if st.button("Start a worker", key=f"start_worker_{run.id}", icon=":material/play_arrow:"):
            start_worker()
            st.rerun()


@dataclass(frozen=True)
class RunningView:
    """What the panel of a running run shows on one tick, worked out once for every viewer of the tick.

    Everything here comes from the tick's shared reads (the run, its metric rows, the time left), so
    it is the same for every session; only the Streamlit elements are made per viewer."""
    overall: tuple[float, str]
    batch: tuple[float, str] | None      # None before the first batch is logged (see _starting_text)
    loss: str
    accuracy: str
    val_accuracy: str
    left: str
    figures: tuple | None


def running_view(run: Run, batches: pd.DataFrame, epochs: pd.DataFrame, left: float | None) -> RunningView:
    """The running panel's texts, numbers and figures of one tick (`left`: seconds of training left)."""
    p = progress_numbers(run)
    return RunningView(
        overall=(p["fraction"], f"Epoch {p['epoch']} of {run.epochs} · {p['fraction']:.0%} of the training done"),
        batch=(p["batch"] / p["steps"], f"Batch {p['batch']:,} of {p['steps']:,}") if p["steps"] else None,
        loss=_fmt(run.last_loss if not len(batches) else _last(batches, "loss")),
        accuracy=_pct(run.last_accuracy if not len(batches) else _last(batches, "accuracy")),
        val_accuracy=_pct(run.last_val_accuracy),
        left="evaluating…" if evaluating(run) else "estimating…" if left is None else format_seconds(left),
        figures=curve_figures(batches, epochs, run.steps_per_epoch))


def _running_panel(store: RunStore, run: Run) -> None:
    # The reads, texts and figures of a tick are made once for every viewer (they were most of a
    # viewer's cost): a viewer only lays out the elements.
    view = shared_read(store, "view", run.id, lambda: _read_view(store, run))
    st.progress(view.overall[0], text=view.overall[1])
    if evaluating(run):  # not "100 % · Time left 0 s" while the test set is scored
        st.info(f"All {run.epochs} epochs trained: evaluating the model on the test set, then saving it "
                "(a few seconds; longer on full MNIST).", icon=":material/fact_check:")
    else:
        value, text = view.batch or (0.0, _starting_text(run))
        st.progress(value, text=text)
    m = st.columns(4)
    m[0].metric("Loss (running mean)", view.loss)
    m[1].metric("Accuracy (running mean)", view.accuracy)
    m[2].metric("Validation accuracy", view.val_accuracy)
    m[3].metric("Time left (about)", view.left,
                help="From the last whole epoch's duration (its start and validation included); during the "
                     "first epoch, from the speed of the last few logging windows.")
    if run.heartbeat_at and time.time() - run.heartbeat_at > 30:
        st.warning(f"No sign of life from the worker for {format_seconds(time.time() - run.heartbeat_at)}; "
                   "it may have stopped. It is marked interrupted after 60 s.", icon=":material/warning:")
    show_curves(view.figures, key=run.id)


def _read_view(store: RunStore, run: Run) -> RunningView:
    batches = shared_read(store, "batches", run.id,
                          lambda: store.metric_history(run.id, scope="batch", keys=["loss", "accuracy"]))
    epochs = shared_read(store, "epochs", run.id, lambda: store.metric_history(run.id, scope="epoch"))
    left = None if evaluating(run) else eta_seconds(run, batches, epochs)
    return running_view(run, batches, epochs, left)


def _starting_text(run: Run) -> str:
    """What a claimed run does before its first batch is logged, and for how long it has done it."""
    since = f" ({format_seconds(time.time() - run.started_at)})" if run.started_at else ""
    return (f"Starting{since}: loading the digits, building the model and compiling its first training step. "
            "A few seconds; a worker that has just started also finishes importing Keras first.")


def _finished_panel(store: RunStore, run: Run) -> None:
    if run.status in ("completed", "pruned"):
        if run.status == "pruned":
            st.info(f"Pruned: its study's pruner stopped it after epoch {run.epoch} (it trailed the other runs); "
                    "it was evaluated and saved like any run.", icon=":material/content_cut:")
        m = st.columns(3)
        m[0].metric("Test accuracy", _pct(run.test_accuracy))
        m[1].metric("Best validation accuracy", _pct(run.best_val_accuracy))
        m[2].metric("Training time", format_seconds(run.duration))
    elif run.status == "failed":
        st.error(f"Training failed: {(run.error or 'unknown error').splitlines()[0]}", icon=":material/error:")
        if run.error and "\n" in run.error:
            with st.expander("Details"):
                st.code(run.error)
    elif run.status == "cancelled":
        st.warning("Cancelled before the end of training. The metrics logged until then are kept.",
                   icon=":material/info:")
    else:
        st.warning(f"Interrupted: {(run.error or 'the process training it stopped').splitlines()[0]}",
                   icon=":material/info:")
    if run.started_at is not None:
        batches = store.metric_history(run.id, scope="batch", keys=["loss", "accuracy"])
        epochs = store.metric_history(run.id, scope="epoch")
        show_curves(curve_figures(batches, epochs, run.steps_per_epoch), key=run.id)
    page_link("run", "Open the run's details: confusion matrix, mistakes, draw test", {"run": run.id},
              icon=":material/query_stats:")


def _cancel_button(store: RunStore, run: Run) -> None:
    if run.cancel_requested:
        st.button("Cancelling…", key=f"cancel_{run.id}", disabled=True, width="stretch",
                  help="Training stops at its next logging window (about a second).")
        return
    if st.button("Cancel run", key=f"cancel_{run.id}", icon=":material/stop_circle:", width="stretch",
                 help="Stop training at the next logging window; the metrics so far are kept."):
        if require_editor("cancel a run"):
            store.request_cancel(run.id)
            poll.forget(store.url, "run", run.id)  # this session sees "Cancelling…" at once
            st.rerun()  # the page again, showing the run cancelled or stopping


def _last(history: pd.DataFrame, key: str) -> float | None:
    rows = history[history["key"] == key]
    return None if rows.empty else rows["value"].iloc[-1]


def _fmt(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "—" if value is None or pd.isna(value) else f"{value:.2%}"
