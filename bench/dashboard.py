"""Cold page loads in headless Chromium: Runs with 1,000 runs, Compare with 10 runs, Run detail.

A temporary store is filled with 1,000 finished synthetic runs (as bench/store_scale.py
builds them) and the dashboard is started on it. Each measurement opens a NEW browser
context (no cache, no cookies, a new Streamlit session) and times from navigation until
the page's data is drawn and Streamlit has finished the script run:

  Runs     every table drawn (its canvas shows the first row's text) with the runs table
           (st.dataframe grid) holding every run (it scrolls; it is not paged), no spinner, no
           running-script indicator
  Compare  ?runs=<10 ids>: every table and the open tab's Plotly chart (Histories; the page's
           tabs are lazy: only the open one runs and is drawn) drawn, no spinner, no
           running-script indicator. Then, in the same page, each other tab is opened and
           timed from the click until its chart is drawn and the script run is over.
  Run detail  ?run=<the newest run>: the tables in the window and the page's four charts (loss,
           accuracy, learning rate, confusion matrix) drawn, no spinner, no running-script
           indicator (no target in the issues: timed to show what a page of charts costs).

A table counts as drawn when the grid's canvas shows ink in its first row: what the user sees.
The grid's row count is read from its accessibility table, which the grid builds 200 ms after
it draws (a deliberate debounce); so the count is checked after the timed load, not timed.
"Drawn" must still hold 0.5 s later (otherwise the wait goes on), so a page that renders
its table and then keeps running is timed to its real end. The first load after the server
starts (its caches empty) is reported apart from the median of the following loads.
A returning visitor's load is timed too: the same measurement in a context that loaded the
page once before, so the app's scripts come from the browser cache (a new Streamlit session).

Run: python bench/dashboard.py            (1,000 runs, 10 compared, 7 loads per page)
Needs Chromium at /usr/bin/chromium (or --chromium) and the Playwright Python package.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import common  # noqa: E402

TARGET_S = {"Runs": 1.5, "Compare": 2.0}  # issue 25's cold-load targets (Run detail has none)
COMPARE_CHARTS = 1  # the open tab's chart: the histories
DETAIL_CHARTS = 4   # loss, accuracy, learning rate, confusion matrix
COMPARE_TABS = {"Hyperparameters": "compare_parcoords", "Confusion matrices": "compare_confusion"}
# True once the chart with this key is drawn and the script run is over.
TAB_DRAWN_JS = """(key) => !document.querySelector('[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSpinner"]')
  && !!document.querySelector(`.st-key-${key} .js-plotly-plot .main-svg`)"""
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 900}

# True once the page's data is drawn and the script run is over: every table's canvas shows its
# first row and, on Compare, `want` Plotly charts are drawn.
DRAWN_JS = """([kind, want]) => {
  if (document.querySelector('[data-testid="stSpinner"], [data-testid="stStatusWidgetRunningIcon"]')) return false;
  if (document.querySelector('[data-testid="stException"]')) return 'exception';
  const inked = g => {  // the grid's canvas has text in its first data row (below the 35 px header)
    const c = g.querySelector('canvas[data-testid="data-grid-canvas"]');
    if (!c || c.height < 72 * devicePixelRatio) return false;
    const r = devicePixelRatio, px = c.getContext('2d').getImageData(0, 36 * r, Math.min(c.width, 600 * r), 34 * r).data;
    let dark = 0;
    for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 0 && px[i] < 160) dark++;
    return dark > 20;
  };
  let grids = [...document.querySelectorAll('[data-testid="stDataFrame"]')];
  // Run detail is taller than the window: its tables below it are drawn when scrolled to
  if (kind === 'detail') grids = grids.filter(g => g.getBoundingClientRect().top < innerHeight);
  if (!grids.every(inked)) return false;  // a table not drawn yet
  if (kind === 'runs') return grids.length > 0;
  const charts = [...document.querySelectorAll('.js-plotly-plot')];
  return charts.length >= want && charts.every(c => c.querySelector('.main-svg'));
}"""
# The most rows any table on the page holds (from the grids' accessibility tables).
ROWS_JS = """() => Math.max(-1, ...[...document.querySelectorAll('[data-testid="stDataFrame"] [aria-rowcount]')]
  .map(t => Number(t.getAttribute('aria-rowcount')) - 1))"""


# --breakdown: one page per ingredient of Runs and Compare, to see where a cold load's time goes.
PROBE_PAGE = '''"""Digit Lab benchmark probe: one ingredient of the Runs/Compare pages per ?v=…"""
import sys
sys.path.insert(0, {root!r})
import streamlit as st
from core.store.facade import RunStore
from dashboard import charts, run_list
from dashboard.compare import tables as compare_tables
from dashboard.runs import table as runs_table

store = st.cache_resource(lambda: RunStore({db!r}))()
v = st.query_params.get("v", "empty")
st.title("probe " + v)
runs = store.list_runs()
ids = runs["run_id"].head({n_compare}).tolist()
labels = run_list.unique_labels(runs)
if v == "table":
    st.dataframe(runs_table.runs_view(runs), hide_index=True, height=560)
elif v == "line chart":
    st.plotly_chart(charts.metric_lines(store.histories(ids, "epoch"), ["accuracy", "val_accuracy"], names=labels))
elif v == "two tables":
    picked = runs[runs["run_id"].isin(ids)]
    st.dataframe(compare_tables.summary_table(picked, labels))
    st.dataframe(compare_tables.param_diff({{labels[r]: c for r, c in zip(picked["run_id"], picked["config"])}}))
elif v.startswith("parallel coordinates"):
    pool = runs if v.endswith("all runs") else runs[runs["run_id"].isin(ids)]
    st.plotly_chart(charts.parallel_coordinates(pool, compare_tables.varying(pool, (*run_list.HYPERPARAMETERS, "n_params")),
                                                "test_accuracy"))
elif v == "confusion matrices, one chart each":
    cols = st.columns(3)
    for i, (rid, ev) in enumerate(compare_tables.evaluations(store, ids).items()):
        cols[i % 3].plotly_chart(charts.confusion_heatmap(ev.confusion, title=labels[rid], height=340,
                                                          show_scale=False), key=rid)
elif v == "confusion matrices, one figure":
    st.plotly_chart(charts.confusion_grid({{labels[r]: ev.confusion for r, ev in compare_tables.evaluations(store, ids).items()}}))
'''
# name -> (check kind, how many rows or charts must be drawn)
PROBES = {"empty": ("compare", 0), "table": ("runs", -1), "two tables": ("compare", 0), "line chart": ("compare", 1),
          "parallel coordinates, compared runs": ("compare", 1), "parallel coordinates, all runs": ("compare", 1),
          "confusion matrices, one chart each": ("compare", 1), "confusion matrices, one figure": ("compare", 1)}


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str, data: Path | None, folder: Path, script: str = "dashboard/app.py") -> Server:
    """`python -m streamlit run dashboard/app.py` on a free port, no worker; waits for /_stcore/health."""
    port = free_port()
    log = folder / f"streamlit-{port}.log"
    cmd = [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
           "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none", "--", "--db", db_url]
    if data is not None:
        cmd += ["--data", str(data)]
    env = {**os.environ, "DIGITLAB_NO_WORKER": "1", "DIGITLAB_ARTIFACTS": str(folder / "artifacts")}
    proc = subprocess.Popen(cmd, cwd=common.ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    server = Server(proc, port, log)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"streamlit did not answer /_stcore/health within 60 s: {log.read_text()[-2000:]}")


def load_once(browser, url: str, kind: str, want: int, timeout_s: float, shot: Path | None = None,
              tabs: dict[str, str] | None = None, warm: bool = False,
              server_pid: int | None = None) -> tuple[float, float, dict[str, float], float]:
    """Seconds from navigation in a new browser context until the page's title shows, and until
    the page is drawn and idle; then seconds from a click on each of `tabs` (label -> the key
    of the chart it draws) until that chart is drawn and idle. `warm`: the context first loads
    the page once (untimed), as a returning visitor whose browser has cached the app's scripts;
    the timed load is then a new navigation (and a new Streamlit session) in that context.
    The last value is the CPU seconds the server process spent on the timed load (0 without
    `server_pid`): the share of a load that Digit Lab's own code decides, which other load on the
    machine barely moves; the rest of a cold load is the browser's work."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        if warm:
            page.goto(url, wait_until="commit")
            page.wait_for_function(DRAWN_JS, arg=[kind, want], polling=50, timeout=timeout_s * 1000)
            page.goto("about:blank")
        cpu0 = common.process_cpu_s(server_pid, missing=0.0) if server_pid else 0.0
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        deadline = t0 + timeout_s
        page.wait_for_selector("h1", timeout=timeout_s * 1000)  # the app is up and the script has begun
        title = time.perf_counter() - t0
        while True:
            left_ms = max(1.0, (deadline - time.perf_counter()) * 1000)
            handle = page.wait_for_function(DRAWN_JS, arg=[kind, want], polling=50, timeout=left_ms)
            if handle.json_value() == "exception":
                raise RuntimeError(f"the page shows an exception: {url}")
            done = time.perf_counter() - t0
            page.wait_for_timeout(500)
            if page.evaluate(DRAWN_JS, [kind, want]) is True:  # still drawn and idle: the load is over
                break
        server_cpu = (common.process_cpu_s(server_pid, missing=0.0) if server_pid else 0.0) - cpu0
        if kind == "runs" and want > 0:  # not timed: the grid's row count shows 200 ms after it is drawn
            try:
                page.wait_for_function(f"() => ({ROWS_JS})() >= {want}", polling=50, timeout=10_000)
            except Exception:
                raise RuntimeError(f"the runs table holds {page.evaluate(ROWS_JS)} rows, not {want}: {url}") from None
        if shot is not None:
            page.screenshot(path=str(shot), full_page=True)
        opened = {}
        for label, key in (tabs or {}).items():
            t1 = time.perf_counter()
            page.get_by_role("tab", name=label).click()
            page.wait_for_function(TAB_DRAWN_JS, arg=key, polling=50, timeout=timeout_s * 1000)
            opened[label] = time.perf_counter() - t1
        return title, done, opened, server_cpu
    finally:
        context.close()


def measure(browser, url: str, kind: str, want: int, loads: int, timeout_s: float, shot: Path | None,
            tabs: dict[str, str] | None = None, server_pid: int | None = None) -> dict:
    loaded = [load_once(browser, url, kind, want, timeout_s, shot if i == 0 else None, tabs, server_pid=server_pid)
              for i in range(loads + 1)]
    titles, times = [t for t, _, _, _ in loaded[1:]], [d for _, d, _, _ in loaded[1:]]
    warm = [load_once(browser, url, kind, want, timeout_s, warm=True)[1] for _ in range(loads)]
    out = {"first_load_s": loaded[0][1], "s": common.stats(times), "title_s": common.stats(titles),
           "server_cpu_s": common.stats([c for _, _, _, c in loaded[1:]]),
           "warm_s": common.stats(warm), "raw_s": times, "url": url}
    if tabs:
        out["tabs_s"] = {label: common.stats([o[label] for _, _, o, _ in loaded[1:]]) for label in tabs}
    return out


def breakdown(browser, db_url: str, args, folder: Path) -> dict:
    """Cold loads of a probe page showing one ingredient of the Runs/Compare pages at a time."""
    script = folder / "probe_page.py"
    script.write_text(PROBE_PAGE.format(root=str(common.ROOT), db=db_url, n_compare=args.compare))
    server = start_server(db_url, None, folder, script=str(script))
    out = {}
    try:
        for name, (kind, want) in PROBES.items():
            url = f"{server.url}/?v={urllib.parse.quote(name)}"
            want = args.runs if want < 0 else want
            load_once(browser, url, kind, want, args.timeout)  # the first load after start, not counted
            times = [load_once(browser, url, kind, want, args.timeout)[1] for _ in range(args.loads)]
            out[name] = {"s": common.stats(times), "raw_s": times}
            print(f"  probe {name}: {common.span(out[name]['s'], '{:.2f}', ' s')}", flush=True)
    finally:
        server.stop()
    return out


def _verdict(median: float, target: float | None) -> str:
    if target is None:
        return "—"
    return f"≤ {target:g} s: " + ("met" if median <= target else "MISSED")


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.split("\n")[0])
    common.add_data_argument(parser)
    parser.add_argument("--runs", type=int, default=1000, help="synthetic runs in the store")
    parser.add_argument("--compare", type=int, default=10, help="runs on the Compare page")
    parser.add_argument("--loads", type=int, default=7, help="timed cold loads per page (after a first one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds before a load counts as failed")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium executable")
    parser.add_argument("--screenshots", metavar="DIR", default=None, help="save one screenshot per page here")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time each ingredient alone (empty page, table, one chart, parallel coordinates, "
                             "confusion matrices) on a probe page")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs, args.compare, args.loads = 30, 3, 1
    if not Path(args.chromium).exists():
        print(f"no Chromium at {args.chromium}: install it (`apt-get install chromium`) or pass --chromium")
        return 2
    from playwright.sync_api import sync_playwright

    from bench.store_scale import build_store

    started, load_before = time.time(), common.loadavg()
    folder = Path(tempfile.mkdtemp(prefix="digitlab-dashboard-"))
    shots = Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    try:
        data = common.mnist_h5(args.data) if args.data or common.MNIST_IDX_DIR.is_dir() else None
        store, facts = build_store(folder, args.runs, epochs=20, batch_points=100)
        runs = store.list_runs()
        compare_ids = runs["run_id"].head(args.compare).tolist()  # the newest runs, as a user would pick
        db_url = store.url
        store.close()
        print(f"store: {args.runs:,} runs, {facts['metric_rows']:,} metric rows ({facts['db_mb']} MB)", flush=True)
        server = start_server(db_url, data, folder)
        figures: dict[str, Any] = {"runs": args.runs, "compare": args.compare, "loads": args.loads,
                                   "target_s": TARGET_S, "pages": {}}
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
                try:
                    pages = {"Runs": (f"{server.url}/runs", "runs", args.runs),
                             "Compare": (f"{server.url}/compare?runs={','.join(compare_ids)}", "compare",
                                         COMPARE_CHARTS),
                             "Run detail": (f"{server.url}/run?run={compare_ids[0]}", "detail", DETAIL_CHARTS)}
                    for name, (url, kind, want) in pages.items():
                        shot = shots / f"{name.lower()}.png" if shots else None
                        figures["pages"][name] = measure(browser, url, kind, want, args.loads, args.timeout, shot,
                                                         COMPARE_TABS if name == "Compare" else None,
                                                         server_pid=server.proc.pid)
                        print(f"{name}: {common.span(figures['pages'][name]['s'], '{:.2f}', ' s')}", flush=True)
                    if args.breakdown:
                        figures["breakdown"] = breakdown(browser, db_url, args, folder)
                finally:
                    browser.close()
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows = [[name, f"{fig['first_load_s']:.2f}", f"{fig['title_s']['median']:.2f}", common.span(fig["s"], "{:.2f}"),
             f"{fig['s']['p95']:.2f}", _verdict(fig["s"]["median"], TARGET_S.get(name)),
             common.span(fig["warm_s"], "{:.2f}"), common.span(fig["server_cpu_s"], "{:.2f}")]
            for name, fig in figures["pages"].items()]
    print()
    print(common.table(["page", "first load (s)", "title shown (s)", "cold load median (min–max) s", "p95 s",
                        "target", "returning visitor (cached scripts) s",
                        "server CPU-s per cold load"], rows))
    tab_rows = [[f"{name} → {label}", common.span(st, "{:.2f}"), f"{st['p95']:.2f}"]
                for name, fig in figures["pages"].items() for label, st in fig.get("tabs_s", {}).items()]
    if tab_rows:
        print()
        print(common.table(["tab opened in a loaded page", "click → drawn, median (min–max) s", "p95 s"], tab_rows))
    path = common.write_results("dashboard", figures, args.results, started, load_before,
                                notes=[f"{args.runs:,} synthetic runs; Compare with the {args.compare} newest",
                                       "each load: a new Chromium context; timed from navigation until the data is "
                                       "drawn and the script run is over (still so 0.5 s later)",
                                       "first_load_s: the first load after the server started (server caches empty)",
                                       "title_s: from navigation until the page's title is shown",
                                       "warm_s: a returning visitor: the same kind of load in a context that "
                                       "loaded the page once before (the app's scripts in the browser cache)",
                                       "server_cpu_s: CPU seconds the dashboard process spent on each cold load",
                                       "tabs_s: Compare's other (lazy) tabs, from the click until the tab's chart is "
                                       "drawn and the script run is over"])
    if "breakdown" in figures:
        print()
        print(common.table(["probe page (one ingredient)", "cold load median (min–max) s"],
                           [[name, common.span(f["s"], "{:.2f}")] for name, f in figures["breakdown"].items()]))
    print(common.steal_line())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
