"""Many visitors at once: what the dashboard's server process pays for drawers, live viewers and idle visitors.

A temporary store gets one trained run (cnn-small on 2,000 digits, so the Draw page has a real
model) and one run that "trains" live: this script claims it and writes batch and epoch rows
every second, as a worker would, without spending a core on real training. The dashboard is
started on that store (no worker), pinned to the server's core(s); this script, pinned to the
others, plays the visitors by speaking Streamlit's own websocket protocol
(`/_stcore/stream`, protobuf BackMsg/ForwardMsg): each visitor is one session that opens a
page, answers the server's `auto_rerun` messages as the browser does (fragments with
`run_every`), and sets the canvas's value as a widget state, as the browser does after a
mouse-up. No browser runs, so the visitors' own cost stays off the server's core.

Scenarios (each for N in --visitors):
  idle     N visitors on the Train page while nothing trains (the workers panel polls)
  live     N visitors on the Train page watching the live run; each must see its batch count move
  draw     N visitors on the Draw page drawing at the same moment (each its own digit), --rounds times

Server CPU comes from /proc/<pid>/stat (robust to other load); latency is send → end of the script
run as this client sees it (noisy under load: the load average is kept); memory is the server's RSS
growth per session. --stock: Streamlit's defaults that .streamlit/config.toml and
dashboard/script_cleanup.py change (per-run clear_session, post-script gc, source watcher).

Run: python bench/visitors.py [--visitors 10,30] [--stock]; figures in README "Many visitors at once".
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

STOCK = ("import sys; from dashboard import script_cleanup; script_cleanup.install = lambda *a, **k: None; "
         "from streamlit.web.cli import main; sys.argv[0] = 'streamlit'; main()")


# -- the server ------------------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    return next(int(ln.split()[1]) / 1024 for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                if ln.startswith("VmRSS:"))


def start_server(db_url: str, data: Path, folder: Path, stock: bool, cpus: set[int]) -> tuple[subprocess.Popen, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["run", "dashboard/app.py", "--server.headless", "true", "--server.port", str(port),
            "--browser.gatherUsageStats", "false", "--runner.postScriptGC", "true" if stock else "false",
            "--server.fileWatcherType", "auto" if stock else "none",
            "--", "--db", db_url, "--data", str(data)]
    cmd = [sys.executable, "-c", STOCK, *args] if stock else [sys.executable, "-m", "streamlit", *args]
    env = {**os.environ, "DIGITLAB_NO_WORKER": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(common.ROOT)}
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=common.ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return proc, port
        except OSError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError(f"the dashboard did not start: {(folder / 'server.log').read_text()[-2000:]}")


# -- one visitor: a Streamlit session spoken to over its websocket -----------------------------------
class Visitor:
    def __init__(self, port: int, page: str):
        self.port, self.page, self.page_hash = port, page, ""
        self.ws, self.widgets, self.timers = None, [], {}
        self.canvas_id, self.canvas_fragment, self.errors, self.texts = None, "", [], set()
        self.finished: asyncio.Queue = asyncio.Queue()

    async def open(self) -> float:
        import websockets
        started = time.perf_counter()
        self.ws = await websockets.connect(f"ws://127.0.0.1:{self.port}/_stcore/stream", subprotocols=["streamlit"],
                                           max_size=None, ping_interval=None, open_timeout=60)
        self.reader = asyncio.create_task(self._read())
        await self.rerun()
        await self.wait_full()
        return time.perf_counter() - started

    async def rerun(self, fragment: str = "", auto: bool = False) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string, cs.page_script_hash, cs.fragment_id, cs.is_auto_rerun = "", self.page_hash, fragment, auto
        cs.page_name = self.page if not self.page_hash else ""
        cs.widget_states.widgets.extend(self.widgets)
        await self.ws.send(msg.SerializeToString())

    async def draw(self, value: dict) -> float:
        """Set the canvas's value as the browser does after a mouse-up (a rerun of the fragment the canvas
        sits in, if any); seconds until that run ends."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState
        if self.canvas_id is None:
            raise RuntimeError("no canvas on this page")
        self.widgets = [WidgetState(id=self.canvas_id, json_value=json.dumps(value))]
        while not self.finished.empty():
            self.finished.get_nowait()
        started = time.perf_counter()
        await self.rerun(self.canvas_fragment)
        await self.wait_full(fragment=bool(self.canvas_fragment))
        return time.perf_counter() - started

    async def wait_full(self, timeout: float = 120.0, fragment: bool = False) -> None:
        """Until the script run ends (or, with `fragment`, the fragment run that was asked for)."""
        done = {"FINISHED_SUCCESSFULLY", *(["FINISHED_FRAGMENT_RUN_SUCCESSFULLY"] if fragment else [])}
        while True:
            status = await asyncio.wait_for(self.finished.get(), timeout)
            if status in done:
                return
            if status == "FINISHED_WITH_COMPILE_ERROR":
                raise RuntimeError("the page did not compile")

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        async for raw in self.ws:
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.page_hash = msg.new_session.page_script_hash or self.page_hash
            elif kind == "navigation":
                self.page_hash = msg.navigation.page_script_hash or self.page_hash
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._element(msg.delta.new_element, msg.delta.fragment_id)
            elif kind == "auto_rerun":
                fid, every = msg.auto_rerun.fragment_id, msg.auto_rerun.interval
                if fid not in self.timers:
                    self.timers[fid] = asyncio.create_task(self._auto(fid, every))
            elif kind == "stop_auto_rerun":
                for task in [self.timers.pop(f) for f in msg.stop_auto_rerun.fragment_ids if f in self.timers]:
                    task.cancel()
            elif kind == "script_finished":
                self.finished.put_nowait(ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished))

    def _element(self, el, fragment: str) -> None:
        kind = el.WhichOneof("type")
        if kind == "exception":
            self.errors.append(f"{el.exception.type}: {el.exception.message}"[:300])
        elif kind == "bidi_component" and "canvas" in el.bidi_component.component_name.lower():
            self.canvas_id, self.canvas_fragment = el.bidi_component.id, fragment
        elif kind == "progress":
            self.texts.add(el.progress.text)

    async def _auto(self, fragment: str, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.rerun(fragment, auto=True)

    async def close(self) -> None:
        for task in [*self.timers.values(), self.reader]:
            task.cancel()
        await self.ws.close()


def canvas_value(seed: int) -> dict:
    """A 280×280 canvas with a random 2-3 stroke digit-like drawing (each visitor draws its own)."""
    import base64
    import io

    from PIL import Image, ImageDraw
    rnd = random.Random(seed)
    im = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pen = ImageDraw.Draw(im)
    points = [(rnd.randint(60, 220), rnd.randint(40, 240)) for _ in range(rnd.randint(3, 4))]
    pen.line(points, fill=(255, 255, 255, 255), width=20, joint="curve")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return {"drawing": {"raw": {"objects": [{"type": "path"}]}, "data": "data:image/png;base64,"
                        + base64.b64encode(buf.getvalue()).decode()}, "backgroundFit": None}


# -- the store: a trained run to draw on, a run that trains live ---------------------------------
def make_store(folder: Path, data: Path, arch: str, n_train: int):
    from core.config import make_config
    from core.store.facade import RunStore
    from core.train.run import train

    store = RunStore(f"sqlite:///{folder / 'runs.db'}")
    run = train(store, make_config(arch, train_limit=n_train, epochs=1, batch_size=128, name=f"bench {arch}"), data)
    if run.status != "completed":
        raise RuntimeError(f"training the bench model failed: {run.error}")
    return store, run.id


def model_cpu(store, run_id: str, data: Path, n: int) -> dict:
    """CPU-s of the model's own work for one drawing, in this process: preprocess, predict, explain, nearest."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from core.predict.ensemble import model_for_run
    from core.predict.explain import Explainer, nearest, run_index
    from core.predict.inference import predict_probabilities
    from core.predict.preprocess import preprocess
    model = model_for_run(store, run_id)
    explainer = Explainer(model)
    index = run_index(store, run_id, explainer, data)  # built and kept with the run, as the page does once
    cpus = []
    for seed in range(n + 1):
        png = base64.b64decode(canvas_value(10_000 + seed)["drawing"]["data"].split(",", 1)[1])
        image = np.asarray(Image.open(io.BytesIO(png)))
        t = time.process_time()
        pre = preprocess(image)
        predict_probabilities(model, pre.image[None])
        nearest(index, explainer.explain(pre.image).embedding)
        cpus.append(time.process_time() - t)
    return common.stats(cpus[1:])  # the first traces the functions


def feed(store, run_id: str, stop: threading.Event, steps_per_epoch: int = 400) -> None:
    """Write a live run's rows every second, as a worker's callback does."""
    step = 0
    while not stop.is_set():
        step += 20
        epoch = step // steps_per_epoch + 1
        rows = [(run_id, "batch", "loss", step, epoch, 2.0 / (1 + step / 100)),
                (run_id, "batch", "accuracy", step, epoch, 1 - 0.9 / (1 + step / 100))]
        if step % steps_per_epoch == 0:
            rows += [(run_id, "epoch", k, step, epoch - 1, v) for k, v in
                     (("loss", 0.3), ("accuracy", 0.9), ("val_loss", 0.35), ("val_accuracy", 0.88))]
        store.checkpoint(run_id, rows, step=step, steps_per_epoch=steps_per_epoch)
        stop.wait(1.0)


# -- scenarios ------------------------------------------------------------------------------------
async def open_all(port: int, page: str, n: int) -> tuple[list[Visitor], list[float]]:
    visitors = [Visitor(port, page) for _ in range(n)]
    opened = await asyncio.gather(*(v.open() for v in visitors))
    return visitors, list(opened)


async def window(pid: int, seconds: float) -> float:
    """Server CPU-s per second over `seconds`."""
    c0, t0 = common.process_cpu_s(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    return (common.process_cpu_s(pid) - c0) / (time.perf_counter() - t0)


async def scenario_watch(pid: int, port: int, n: int, seconds: float, rate0: float, live: bool) -> dict:
    rss0 = rss_mib(pid)
    visitors, opened = await open_all(port, "", n)
    await asyncio.sleep(3.0)  # first fragment ticks settle
    rss1 = rss_mib(pid)
    [v.texts.clear() for v in visitors]
    rate = await window(pid, seconds)
    batches = [len({t for t in v.texts if t.startswith("Batch")}) for v in visitors]
    errors = [e for v in visitors for e in v.errors]
    await asyncio.gather(*(v.close() for v in visitors))
    out = {"visitors": n, "seconds": seconds, "server_cpu_per_s": rate, "baseline_cpu_per_s": rate0,
           "per_visitor_pct_core": 100 * max(rate - rate0, 0.0) / n, "open_s": common.stats(opened),
           "memory_mib_per_session": (rss1 - rss0) / n, "errors": errors}
    if live:
        out["batch_counts_seen"] = common.stats(batches)
        out["every_viewer_updated"] = min(batches) >= 2
    return out


async def scenario_draw(pid: int, port: int, n: int, rounds: int, rate0: float, model: dict) -> dict:
    rss0 = rss_mib(pid)
    visitors, opened = await open_all(port, "draw", n)
    latencies, cpu_per_drawing = [], []
    for r in range(rounds):
        c0, t0 = common.process_cpu_s(pid), time.perf_counter()
        latencies += await asyncio.gather(*(v.draw(canvas_value(r * 1000 + i)) for i, v in enumerate(visitors)))
        await asyncio.sleep(0.3)
        wall = time.perf_counter() - t0
        cpu_per_drawing.append((common.process_cpu_s(pid) - c0 - rate0 * wall) / n)
        await asyncio.sleep(1.0)
    rss1 = rss_mib(pid)
    errors = [e for v in visitors for e in v.errors]
    await asyncio.gather(*(v.close() for v in visitors))
    per = common.stats(cpu_per_drawing)
    return {"visitors": n, "rounds": rounds, "latency_s": common.stats(latencies), "open_s": common.stats(opened),
            "server_cpu_per_drawing_s": per, "model_cpu_s": model["median"],
            "beyond_model_cpu_s": per["median"] - model["median"],
            "memory_mib_per_session": (rss1 - rss0) / n, "errors": errors}


async def warm(port: int) -> None:
    """Draw once (loads the model, traces it) and wait for the dashboard's warm-up to finish."""
    v = Visitor(port, "draw")
    await v.open()
    await v.draw(canvas_value(1))
    await v.close()
    deadline = time.time() + 120
    while time.time() < deadline:
        v = Visitor(port, "")
        await v.open()
        await v.close()
        if not v.timers:  # no warm-up line ticking: the warm-up is over
            return
        await asyncio.sleep(2.0)


async def run_all(args, store, run_id: str, pid: int, port: int, model: dict, data: Path) -> dict:
    await warm(port)
    rate0 = await window(pid, args.seconds)
    figures = {"baseline_cpu_per_s": rate0, "idle": {}, "live": {}, "draw": {}}
    for n in args.visitors:
        if "idle" in args.scenarios:
            figures["idle"][str(n)] = await scenario_watch(pid, port, n, args.seconds, rate0, live=False)
        if "live" in args.scenarios:
            figures["live"][str(n)] = await watch_live(store, pid, port, n, args.seconds, rate0, data)
        if "draw" in args.scenarios:
            figures["draw"][str(n)] = await scenario_draw(pid, port, n, args.rounds, rate0, model)
        print(report_rows(figures, n), flush=True)
    return figures


async def watch_live(store, pid: int, port: int, n: int, seconds: float, rate0: float, data: Path) -> dict:
    """N viewers on the Train page while a run "trains" (its rows written every second, as a worker does)."""
    from core.config import make_config
    from core.store.queue import queue_run
    live_id = queue_run(store, make_config("cnn-small", epochs=50, name="bench live"), data)
    store.claim_run("bench-feeder", run_id=live_id)
    stop = threading.Event()
    feeder = threading.Thread(target=feed, args=(store, live_id, stop), daemon=True)
    feeder.start()
    try:
        return await scenario_watch(pid, port, n, seconds, rate0, live=True)
    finally:
        stop.set()
        feeder.join()
        store.finish_run(live_id, "cancelled")


def report_rows(figures: dict, n: int) -> str:
    idle, live, draw = (figures[k].get(str(n), {}) for k in ("idle", "live", "draw"))
    latency, per = draw.get("latency_s", {}), draw.get("server_cpu_per_drawing_s", {})
    return common.table(
        ["visitors", "idle %core/visitor", "live %core/viewer", "viewers updated", "drawing CPU-s",
         "beyond model CPU-s", "draw median s", "draw p95 s", "MiB/session", "errors"],
        [[n, idle.get("per_visitor_pct_core", "-"), live.get("per_visitor_pct_core", "-"),
          live.get("every_viewer_updated", "-"), per.get("median", "-"), draw.get("beyond_model_cpu_s", "-"),
          latency.get("median", "-"), latency.get("p95", "-"),
          (idle or live or draw).get("memory_mib_per_session", "-"),
          sum(len(x.get("errors", [])) for x in (idle, live, draw))]])


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--visitors", default="1,10,30", help="comma-separated visitor counts (default 1,10,30)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring window of the idle and live scenarios")
    parser.add_argument("--rounds", type=int, default=3, help="simultaneous drawings per visitor")
    parser.add_argument("--arch", default="cnn-small", help="the model visitors draw on (default cnn-small)")
    parser.add_argument("--stock", action="store_true",
                        help="Streamlit's per-run work as shipped (keras clear_session, post-script gc, source "
                             "watcher): the before")
    parser.add_argument("--scenarios", default="idle,live,draw",
                        help="which scenarios to run, comma-separated (default idle,live,draw)")
    parser.add_argument("--name", default="visitors", help="results file name (default visitors)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.visitors, args.seconds, args.rounds, args.arch = "2", 4.0, 1, "mlp-128-64"
    args.visitors = [int(x) for x in args.visitors.split(",")]
    args.scenarios = {x.strip() for x in args.scenarios.split(",") if x.strip()}
    if not args.scenarios or args.scenarios - {"idle", "live", "draw"}:
        parser.error(f"--scenarios takes idle, live and draw, not {','.join(sorted(args.scenarios)) or 'nothing'}")
    common.quiet_tensorflow()
    started, load_before = time.time(), common.loadavg()
    cores = sorted(os.sched_getaffinity(0))
    server_cpus = set(cores[:1]) if len(cores) > 1 else set()
    if server_cpus:
        os.sched_setaffinity(0, set(cores[1:]))  # the visitors (this process) stay off the server's core
    data = common.mnist_h5(args.data)
    folder = Path(tempfile.mkdtemp(prefix="digitlab-visitors-"))
    try:
        store, run_id = make_store(folder, data, args.arch, 300 if args.smoke else 2000)
        model = model_cpu(store, run_id, data, 3 if args.smoke else 10)
        proc, port = start_server(store.url, data, folder, args.stock, server_cpus)
        try:
            figures = asyncio.run(run_all(args, store, run_id, proc.pid, port, model, data))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # busy: it has had its chance to stop cleanly
                proc.kill()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    figures.update(mode="Streamlit's defaults" if args.stock else "Digit Lab's settings", arch=args.arch,
                   server_cores=sorted(server_cpus), client_cores=sorted(os.sched_getaffinity(0)), model_cpu_s=model,
                   driver="Streamlit websocket protocol (no browser)")
    notes = ["server CPU from /proc/<pid>/stat; latency is wall time under the load recorded"]
    path = common.write_results(args.name, figures, args.results, started, load_before, notes=notes)
    print(f"load average before {load_before}, after {common.loadavg()}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
