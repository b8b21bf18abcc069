"""End to end in a real browser: Debian's Chromium driven by Playwright against the real app.

Opens every page (no exception box), launches a tiny run from the Train page and watches its
live progress, finds it completed in Runs and its curves in Run detail, compares two runs,
draws a digit on the canvas, saves it with a label and finds it in the Drawn set, starts a small
study from the Sweep tab and follows it on its page. Screenshots
of each page land in docs/screenshots/ (the README shows them).

Skipped when Chromium is absent, except in CI (CI=true), where that is a failure.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Chromium for the browser tests: apt-get install -y chromium")
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
if not SHARED_MNIST.exists():
    pytest.skip(f"MNIST files not found at {SHARED_MNIST}", allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(env: dict, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]) if "--json" in args else {}


@contextlib.contextmanager
def serving(env: dict):
    """The real dashboard on a free port with `env`: yields its URL once it answers its health check,
    and stops it afterwards."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.headless", "true",
         "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://localhost:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("the dashboard did not answer /_stcore/health within 60 s")
    try:
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=20)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The real dashboard on a free port over a populated temp store; yields (url, env)."""
    base = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "DIGITLAB_DB": f"sqlite:///{base / 'runs.db'}", "DIGITLAB_DATA": str(base / "mnist.h5"),
           "DIGITLAB_FLUSH_SECONDS": "0.5"}
    env.pop("DIGITLAB_NO_WORKER", None)
    _cli(env, "ingest", "--from", str(SHARED_MNIST))
    runs = [_cli(env, "train", "--arch", arch, "--train-limit", "3000", "--epochs", "2", "--lr", lr,
                 "--name", name, "--json")
            for arch, lr, name in (("mlp-128-64", "0.001", "mlp baseline"), ("cnn-small", "0.002", "cnn quick"))]
    with serving(env) as url:
        yield url, env, [r["run_id"] for r in runs]
    subprocess.run([sys.executable, "-m", "core", "worker", "--once"], cwd=ROOT, env=env, capture_output=True)
    subprocess.run(["pkill", "-f", str(base)], capture_output=True)  # the worker the dashboard started


@pytest.fixture(scope="module")
def page(app):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def settle(page, timeout: float = 30.0) -> None:
    """Wait until Streamlit has finished running the script (no running indicator, no spinner)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        busy = sum(page.locator(f'[data-testid="{testid}"]').filter(visible=True).count()
                   for testid in ("stStatusWidgetRunningIcon", "stStatusWidgetRunningManIcon", "stSpinner",
                                  "stSkeleton"))
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.time()
        elif time.time() - quiet_since > 2.0:
            return
        time.sleep(0.2)


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()


def fill(page, label: str, value: str) -> None:
    """Type into the input labelled `label` and submit it, as a user does."""
    box = page.get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")
    settle(page)


def open_train_form(page, url: str, epochs: int) -> None:
    """The Train page with mlp-128-64, `epochs` epochs and at most 1,000 training digits."""
    page.goto(url)
    settle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Architecture").click()
    page.get_by_role("option", name="mlp-128-64").click()
    settle(page)
    fill(page, "Epochs", str(epochs))
    fill(page, "Train on at most (digits)", "1000")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_the_first_page_of_a_fresh_server_keeps_the_form_after_the_warm_up(app, page, tmp_path):
    """The first visit after a server start, on an empty store: the sidebar's warm-up line polls
    until Keras is loaded. A full rerun started from that fragment made the browser show every
    hyperparameter the form sets through session state at its widget default (learning rate 0,
    batch size 8, seed 0), and the first edit sent those back (a Streamlit fragment-rerun bug)."""
    env = {**app[1], "DIGITLAB_DB": f"sqlite:///{tmp_path / 'fresh.db'}", "DIGITLAB_NO_WORKER": "1"}
    with serving(env) as url:  # the warm-up runs once per server process: this test needs its own
        page.goto(url)
        settle(page)
        expect(page.get_by_text("Warmed up in").first).to_be_visible(timeout=120_000)
        settle(page)
        fill(page, "Epochs", "3")
        assert page.get_by_label("Learning rate", exact=True).input_value() == "0.001"
        assert page.get_by_label("Random seed", exact=True).input_value() == "42"
        assert page.get_by_test_id("stAlert").count() == 0, page.get_by_test_id("stAlert").all_inner_texts()


def test_every_page_opens_without_an_exception(app, page):
    url, _, run_ids = app
    for path, text in (("", "Train"), ("runs", "Runs"), (f"run?run={run_ids[1]}", "cnn quick"),
                       (f"compare?runs={','.join(run_ids)}", "Compare"), ("draw", "Draw"), ("data", "Data")):
        page.goto(f"{url}/{path}")
        settle(page)
        expect(page.get_by_text(text).first).to_be_visible(timeout=20_000)
        no_exception(page)
        name = {"": "train", "runs": "runs", "data": "data"}.get(path, path.split("?")[0])
        if name != "draw":  # the Draw page's screenshot, with a digit read, comes from the drawing test
            shot(page, {"run": "run_detail"}.get(name, name))
    # Compare draws only its open tab; opening another one draws it and puts it in the link
    page.goto(f"{url}/compare?runs={','.join(run_ids)}")
    settle(page)
    page.get_by_role("tab", name="Confusion matrices").click()
    settle(page)
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=20_000)
    assert "view=Confusion" in page.url, page.url
    no_exception(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator('[data-testid="stTabs"]').first.screenshot(path=str(SHOTS / "compare_confusion.png"))


def test_compare_opens_without_streamlits_full_plotly(app, page):
    """A first visit to Compare draws its histories with plotly.js' cartesian bundle (1.5 MB), themed as
    st.plotly_chart themes a figure, and its parallel coordinates with the gl2d bundle (1.5 MB): never
    Streamlit's full Plotly module (4.7 MB)."""
    url, _, run_ids = app
    context = page.context.browser.new_context(viewport={"width": 1400, "height": 1000})  # empty cache
    try:
        fresh = context.new_page()
        fetched, errors = [], []
        fresh.on("request", lambda r: fetched.append(r.url))
        fresh.on("pageerror", lambda e: errors.append(str(e)))
        fresh.goto(f"{url}/compare?runs={','.join(run_ids)}")
        chart = '.st-key-compare_history_chart .js-plotly-plot'
        expect(fresh.locator(f"{chart} .main-svg").first).to_be_visible(timeout=30_000)
        settle(fresh)
        drawn = fresh.evaluate(f"""() => {{ const gd = document.querySelector('{chart}'), L = gd._fullLayout;
            return {{traces: gd.data.length, paper: L.paper_bgcolor, font: L.font.color, grid: L.yaxis.gridcolor,
                    names: gd.data.map(t => t.name)}}; }}""")
        assert any("/app/static/plotly-cartesian" in u for u in fetched), fetched
        assert not any("/PlotlyChart." in u for u in fetched), [u for u in fetched if "Plotly" in u]
        assert drawn["traces"] == 4 and all(" · " in n for n in drawn["names"]), drawn  # 2 runs × train, validation
        # the page's light theme, as st.plotly_chart applies it (no #0000xx placeholder left)
        assert (drawn["paper"].upper(), drawn["font"], drawn["grid"]) == ("#FFFFFF", "#808495", "#e6eaf1"), drawn
        # the mode bar's Fullscreen button gives the chart the whole screen, and Escape gives it back
        size = f"() => ['width', 'height'].map(a => +document.querySelector('{chart} .main-svg').getAttribute(a))"
        before = fresh.evaluate(size)
        fresh.hover(chart)
        fresh.locator(f'{chart} [data-title="Fullscreen"]').click()
        wait_until = time.time() + 10
        while fresh.evaluate(size) == before and time.time() < wait_until:
            time.sleep(0.2)
        assert fresh.evaluate(size) == [1400, 1000], (before, fresh.evaluate(size))
        fresh.evaluate("() => document.exitFullscreen()")
        while fresh.evaluate(size) != before and time.time() < wait_until + 10:
            time.sleep(0.2)
        assert fresh.evaluate(size) == before
        fresh.get_by_role("tab", name="Hyperparameters").click()
        expect(fresh.locator(".st-key-compare_parcoords .js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
        assert any("/app/static/plotly-gl2d" in u for u in fetched), fetched
        assert not any("/PlotlyChart." in u for u in fetched), [u for u in fetched if "Plotly" in u]
        lines = fresh.evaluate("() => document.querySelector('.st-key-compare_parcoords .js-plotly-plot')"
                               "._fullData[0].dimensions.length")
        assert lines >= 2  # the hyperparameters that vary and the result
        no_exception(fresh)
        assert not errors, errors
    finally:
        context.close()


def test_launch_a_tiny_run_and_follow_it_to_run_detail(app, page):
    url, env, _ = app
    open_train_form(page, url, epochs=1)
    page.get_by_label("Run name", exact=True).fill("browser run")
    page.get_by_role("button", name="Launch").click()
    # live progress, then the end of the run, both on the Train page
    expect(page.get_by_text("browser run").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("completed").first).to_be_visible(timeout=240_000)
    no_exception(page)
    shot(page, "train_live")

    page.goto(f"{url}/runs")
    settle(page)
    expect(page.get_by_text("3 of 3 runs shown").first).to_be_visible(timeout=20_000)  # the grid is a canvas
    no_exception(page)
    runs = json.loads(subprocess.run([sys.executable, "-m", "core", "runs", "--json"], cwd=ROOT, env=env,
                                     capture_output=True, text=True).stdout)
    ours = [r for r in runs if r["name"] == "browser run"]
    assert ours and ours[0]["status"] == "completed" and ours[0]["epoch"] == 1

    page.goto(f"{url}/run?run={ours[0]['run_id']}")
    settle(page)
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    assert page.locator(".js-plotly-plot").count() >= 2  # loss and accuracy curves at least
    no_exception(page)


def test_draw_a_digit_save_it_and_find_it_in_the_drawn_set(app, page):
    url, _, _ = app
    page.goto(f"{url}/draw")
    settle(page)
    canvas = page.locator("canvas.upper-canvas").first
    expect(canvas).to_be_visible(timeout=30_000)

    def draw_seven() -> None:  # the top bar, then the diagonal stroke
        box = canvas.bounding_box()
        x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
        page.mouse.move(x0 + 0.3 * w, y0 + 0.25 * h)
        page.mouse.down()
        page.mouse.move(x0 + 0.7 * w, y0 + 0.25 * h, steps=12)
        page.mouse.move(x0 + 0.45 * w, y0 + 0.8 * h, steps=16)
        page.mouse.up()
        settle(page)
        expect(page.get_by_text("What the model sees").first).to_be_visible(timeout=30_000)

    draw_seven()
    expect(page.get_by_text("Inside the model").first).to_be_visible(timeout=30_000)
    no_exception(page)
    # one way to clear: the canvas toolbar's bin (no second Clear button), and the page follows it
    canvas.hover()
    page.get_by_role("button", name="Reset canvas & history").click()
    settle(page)
    expect(page.get_by_text("Draw a digit").first).to_be_visible(timeout=20_000)
    assert page.get_by_text("What the model sees").count() == 0
    assert page.get_by_role("button", name="Clear", exact=True).count() == 0
    draw_seven()
    shot(page, "draw")
    label = page.get_by_test_id("stSelectbox").filter(has_text="Label")
    expect(label).to_be_visible(timeout=30_000)
    settle(page)
    label.scroll_into_view_if_needed()
    label.click()
    page.get_by_role("option", name="7", exact=True).click()
    page.get_by_role("button", name="Save with label").click()
    settle(page)
    expect(page.get_by_text("Saved drawing").first).to_be_visible(timeout=20_000)
    settle(page)
    no_exception(page)
    page.get_by_role("tab", name="Drawn set").click()
    settle(page)
    drawn_set = page.get_by_role("tabpanel", name="Drawn set")
    expect(drawn_set.get_by_text("1 drawing", exact=True)).to_be_visible(timeout=20_000)
    shot(page, "drawn_set")
    no_exception(page)


def test_a_bad_field_blocks_launch_in_the_browser(app, page):
    """Issue 14, item 1: in the browser a bounded number input kept its last valid value while it
    showed the rejected one, so Epochs 0 queued epochs=5. The value typed is what is checked."""
    url, env, _ = app
    before = len(json.loads(subprocess.run([sys.executable, "-m", "core", "runs", "--json"], cwd=ROOT, env=env,
                                           capture_output=True, text=True).stdout))
    page.goto(url)
    settle(page)
    fill(page, "Epochs", "0")
    fill(page, "Train on at most (digits)", "3")
    expect(page.get_by_text("Epochs must be an integer ≥ 1 and at most 1,000").first).to_be_visible(timeout=20_000)
    expect(page.get_by_text("Train on at most (digits) must be an integer ≥ 10").first).to_be_visible()
    assert page.get_by_label("Epochs", exact=True).input_value() == "0"  # what is shown is what is checked
    launch = page.get_by_role("button", name="Launch")
    expect(launch).to_be_disabled()
    no_exception(page)
    shot(page, "train_invalid")
    runs = json.loads(subprocess.run([sys.executable, "-m", "core", "runs", "--json"], cwd=ROOT, env=env,
                                     capture_output=True, text=True).stdout)
    assert len(runs) == before  # nothing queued


def test_emptied_dropout_and_train_limit_mean_their_defaults_in_the_browser(app, page):
    """Issue 27, item 1: select all, Backspace, Tab in "Dropout rate" gave 0.00 (the preset's 20 %
    dropout silently gone), in "Train on at most" 0 with an error. Empty now means the default, and
    that is what Launch queues."""
    url, env, _ = app
    page.goto(url)
    settle(page)
    page.get_by_test_id("stSelectbox").filter(has_text="Architecture").click()
    page.get_by_role("option", name="mlp-512-dropout").click()
    settle(page)
    fill(page, "Epochs", "1")
    for label, value in (("Dropout rate", "0.3"), ("Train on at most (digits)", "500")):
        fill(page, label, value)
        box = page.get_by_label(label, exact=True)
        box.select_text()
        box.press("Backspace")
        box.press("Tab")
        settle(page)
        assert box.input_value() == "", (label, box.input_value())
    assert page.get_by_test_id("stAlert").filter(has_text="must be").count() == 0
    page.get_by_label("Run name", exact=True).fill("emptied fields")
    page.get_by_role("button", name="Launch").click()
    settle(page)
    ours = next(r for r in _cli(env, "runs", "--json") if r["name"] == "emptied fields")
    _cli(env, "cancel", ours["run_id"])  # only its config matters here
    config = json.loads(subprocess.run([sys.executable, "-m", "core", "show", ours["run_id"], "--json"], cwd=ROOT,
                                       env=env, capture_output=True, text=True).stdout)["config"]
    assert config["dropout"] is None and config["train_limit"] is None  # the preset's 20 %, all digits
    no_exception(page)


def test_run_detail_and_compare_from_the_sidebar_show_the_last_selection(app, page):
    """Issue 14, item 3: opened from the sidebar (no link), both pages show what was looked at last."""
    url, _, run_ids = app
    page.goto(f"{url}/run?run={run_ids[0]}")
    settle(page)
    expect(page.get_by_text("mlp baseline").first).to_be_visible(timeout=20_000)
    nav = page.get_by_test_id("stSidebarNav")
    nav.get_by_role("link", name="Runs", exact=True).click()  # away, through the sidebar
    settle(page)
    nav.get_by_role("link", name="Run detail", exact=True).click()
    settle(page)
    assert f"run={run_ids[0]}" in page.url, page.url  # the URL says which run is shown
    expect(page.get_by_role("heading", name="mlp baseline")).to_be_visible(timeout=20_000)
    nav.get_by_role("link", name="Compare", exact=True).click()
    settle(page)
    assert "runs=" in page.url, page.url  # the newest finished runs, and the link says which
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
    no_exception(page)


def test_clicking_a_confusion_cell_on_run_detail_filters_the_mistakes(app, page):
    """The matrix is drawn by dashboard/light_chart.py: a click on a cell picks that (true, predicted)
    pair for the gallery below, and the cell is outlined."""
    url, env, run_ids = app
    page.goto(f"{url}/run?run={run_ids[0]}")
    settle(page)
    chart = ".st-key-detail_confusion .js-plotly-plot"
    expect(page.locator(f"{chart} .main-svg").first).to_be_visible(timeout=30_000)
    page.locator(chart).scroll_into_view_if_needed()
    # the most common mistake of the run, as the store has it
    cells = page.evaluate(f"""() => {{ const gd = document.querySelector('{chart}'), h = gd._fullData.find(t => t.type === 'heatmap');
        let best = null; h.z.forEach((row, t) => row.forEach((v, p) => {{ if (t !== p && (!best || v > best[2])) best = [t, p, v]; }}));
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
        return {{true: best[0], pred: best[1], x: box.left + xa._offset + xa.l2p(best[1]), y: box.top + ya._offset + ya.l2p(best[0])}}; }}""")
    page.mouse.click(cells["x"], cells["y"])
    settle(page)
    for label, digit in (("True digit", cells["true"]), ("Predicted", cells["pred"])):
        expect(page.get_by_role("combobox", name=label)).to_have_value(str(digit))
    captions = page.get_by_test_id("stImageCaption").all_inner_texts()
    assert captions and all(c.startswith(f"{cells['true']}→{cells['pred']} · ") for c in captions), captions[:3]
    shapes = page.evaluate(f"() => document.querySelector('{chart}').layout.shapes || []")
    assert shapes and shapes[0]["x0"] == cells["pred"] - 0.5 and shapes[0]["y0"] == cells["true"] - 0.5, shapes
    no_exception(page)


def test_the_runs_table_fits_a_1440_px_window(app, page):
    """Issue 14, item 8: the default columns fit beside the sidebar at 1440 × 900."""
    url, _, _ = app
    size = page.viewport_size
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{url}/runs")
    settle(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_be_visible(timeout=20_000)
    time.sleep(1)
    scroll, client = page.evaluate("""() => { const s = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
                                        return [s.scrollWidth, s.clientWidth] }""")
    assert scroll <= client + 1, (scroll, client)  # no horizontal scrolling: the last column is in view
    no_exception(page)
    shot(page, "runs_1440")
    page.set_viewport_size(size)


def test_launch_a_small_study_and_open_its_view(app, page):
    """Issue 12: from the Train page's Sweep tab a small TPE study with median pruning is started,
    the dashboard's worker trains it, and its view shows progress, the best run and every chart,
    agreeing with `python -m core study --json`."""
    url, env, _ = app
    open_train_form(page, url, epochs=2)
    page.get_by_role("tab", name="Sweep").click()
    page.get_by_test_id("stRadio").get_by_text("Study", exact=True).click()
    settle(page)
    fill(page, "Budget (runs)", "3")
    for i, (field, low, high) in enumerate((("Learning rate", "1e-3", "1e-1"), ("Dropout rate", "0.0", "0.5"))):
        page.get_by_test_id("stSelectbox").filter(has_text=f"Parameter {i + 1}").click()
        page.get_by_role("option", name=field, exact=True).click()  # labels, not snake_case (issue 27)
        settle(page)
        fill(page, f"{field} from", low)
        fill(page, f"{field} to", high)
    preview = page.get_by_text("3 runs: tpe").first
    expect(preview).to_be_visible(timeout=20_000)
    assert "median pruner" in preview.inner_text()
    page.get_by_label("Study name", exact=True).fill("browser study")
    page.get_by_role("button", name="Start the study (3 runs)").click()
    expect(page.get_by_text("Started the study").first).to_be_visible(timeout=30_000)
    no_exception(page)

    page.get_by_role("link", name="Open the study browser study").click()
    settle(page)
    assert "study=browser" in page.url, page.url
    expect(page.get_by_text("3 of 3 done").first).to_be_visible(timeout=240_000)  # it refreshes itself
    settle(page)
    expect(page.get_by_text("Best run so far").first).to_be_visible(timeout=30_000)
    # history, importance, intermediate values, a slice per parameter, parallel coordinates
    expect(page.locator(".js-plotly-plot").nth(5)).to_be_visible(timeout=30_000)
    no_exception(page)
    page.evaluate("""() => document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')
                              .forEach(e => e.scrollTop = 0)""")  # the link's click left it scrolled down
    shot(page, "study")
    data = _cli(env, "study", "browser study", "--json")
    assert data["search"] == "tpe" and data["counts"]["completed"] + data["counts"]["pruned"] == 3
    assert data["counts"]["queued"] == data["counts"]["running"] == 0
    best = page.get_by_role("link", name="Open the best run")
    assert data["best_run_id"] in best.get_attribute("href")
    banner = page.get_by_test_id("stAlert").filter(has_text="Best run so far").first.inner_text()
    assert f"{data['best_value']:.2%}" in banner, banner  # accuracies in percent, as on every page


def test_deleting_a_study_run_in_the_browser_trains_no_replacement(app, page):
    """Issue 27, item 2: deleting a trial of a finished study queued, trained and pruned a replacement
    within a second, and the confirmation said nothing. Now it says the study's budget goes down
    instead, and nothing new is queued."""
    url, env, _ = app
    before = _cli(env, "study", "browser study", "--json")
    victim = before["best_run_id"]
    page.goto(f"{url}/runs")
    settle(page)
    search = page.get_by_role("textbox", name="Search", exact=True)
    search.fill(victim)
    search.press("Enter")
    settle(page)
    expect(page.get_by_text("1 of ").first).to_be_visible(timeout=20_000)  # "1 of N runs shown"
    grid = page.locator('[data-testid="stDataFrame"]').first
    expect(grid).to_be_visible(timeout=20_000)
    time.sleep(1)
    box = grid.bounding_box()
    delete = page.get_by_role("button", name="Delete 1 run(s)…")
    for x in (16, 10, 24):  # the row's tick box, left of its name: the grid is a canvas
        page.mouse.click(box["x"] + x, box["y"] + 35 + 17)
        settle(page)
        if delete.count():
            break
    delete.click()
    settle(page)
    confirm = page.get_by_test_id("stAlert").filter(has_text="for good").first
    expect(confirm).to_contain_text("a study does not replace a deleted run")
    no_exception(page)
    page.get_by_role("button", name="Yes, delete").click()
    settle(page)
    expect(page.get_by_text("Deleted 1 run(s).").first).to_be_visible(timeout=20_000)
    time.sleep(6)  # the dashboard's worker polls the queue every second or so: a refill would be queued by now
    after = _cli(env, "study", "browser study", "--json")
    assert after["budget"] == before["budget"] - 1
    assert sum(after["counts"].values()) == sum(before["counts"].values()) - 1
    assert after["counts"]["queued"] == after["counts"]["running"] == 0


def _no_horizontal_scroll(page, grid) -> None:
    """The dataframe `grid` shows every column without horizontal scrolling."""
    scroll, client = grid.locator(".dvn-scroller").evaluate("s => [s.scrollWidth, s.clientWidth]")
    assert scroll <= client + 1, (scroll, client)


def test_two_configs_repeated_three_times_compare_as_two_bands_with_a_verdict(app, page):
    """Issue 24: from the Train page's "Repeat with N seeds", a tiny config ×3 and another ×3; Compare
    shows each as a mean with a band and says whether the difference is real, as `core compare` does.
    Issue 27, item 3: three runs with long auto-names all show in Compare's tables at 1440 px."""
    url, env, run_ids = app
    size = page.viewport_size
    page.set_viewport_size({"width": 1440, "height": 900})
    open_train_form(page, url, epochs=1)
    fill(page, "Train on at most (digits)", "400")  # apart from every other run's config
    fill(page, "Repeat with N seeds", "3")
    page.get_by_role("button", name="Launch 3 runs (seeds 42–44)").click()
    expect(page.get_by_text("Queued 3 runs").first).to_be_visible(timeout=30_000)
    fill(page, "Learning rate", "0.02")
    page.get_by_role("button", name="Launch 3 runs (seeds 42–44)").click()
    expect(page.get_by_text("Queued 3 runs").first).to_be_visible(timeout=30_000)
    no_exception(page)

    def groups() -> list[dict]:
        found = [g for g in _cli(env, "runs", "--group", "--json") if g["n"] == 3]
        return found if len(found) == 2 else []
    deadline = time.time() + 300
    while not (found := groups()) and time.time() < deadline:  # the dashboard's worker trains all six
        time.sleep(3)
    assert found, _cli(env, "runs", "--json")
    a, b = sorted(found, key=lambda g: g["mean_test_accuracy"])  # A: the weaker config, B the other
    members = a["run_ids"] + b["run_ids"]

    page.goto(f"{url}/compare?runs={','.join(members)}")
    settle(page)
    expect(page.get_by_text("Is the difference real?").first).to_be_visible(timeout=30_000)
    no_exception(page)
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible(timeout=30_000)
    bands = chart.evaluate("p => p.data.filter(t => t.fill === 'tonexty').map(t => t.legendgroup)")
    assert {g.split(" · ")[0] for g in bands} == {"A", "B"}, bands  # a band per group (train and validation)
    verdict = _cli(env, "compare", a["config_id"], b["config_id"], "--json")
    shown = page.get_by_test_id("stAlert").filter(has_text="seeds each").first
    if verdict["ci_low"] > 0 or verdict["ci_high"] < 0:
        expect(shown).to_contain_text(f"by {abs(verdict['difference']):.2f} points")
    else:
        expect(page.get_by_text("are not distinguishable").first).to_be_visible()
    page.set_viewport_size({"width": 1440, "height": 1900})  # tall enough for the tables, bands and verdict
    settle(page)
    shot(page, "compare_groups_1440")
    page.set_viewport_size({"width": 1440, "height": 900})

    # three single runs, two of them with long auto-names: every column in view (issue 27, item 3)
    three = [a["run_ids"][-1], b["run_ids"][-1], run_ids[0]]
    page.goto(f"{url}/compare?runs={','.join(three)}")
    settle(page)
    summary = page.locator('[data-testid="stDataFrame"]').nth(0)
    settings = page.locator('[data-testid="stDataFrame"]').nth(1)
    expect(settings).to_be_visible(timeout=20_000)
    time.sleep(1)
    _no_horizontal_scroll(page, summary)
    _no_horizontal_scroll(page, settings)
    names = _cli(env, "runs", "--json")
    for rid in three:  # each full name is on the page, beside its letter
        name = next(r["name"] for r in names if r["run_id"] == rid)
        expect(page.get_by_text(name, exact=False).first).to_be_visible()
    no_exception(page)
    shot(page, "compare_3_runs_1440")
    page.set_viewport_size(size)


def test_import_a_model_file_on_the_data_page_and_refuse_a_broken_one(app, page, tmp_path):
    """A .keras file trained elsewhere, uploaded in the browser, becomes a run scored on the test set;
    a file that is not a model gets one error line and no run."""
    import keras

    url, env, _ = app
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
    good = tmp_path / "from-a-notebook.keras"
    model.save(good)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"this is not a zip of a Keras model")
    from core.store.facade import RunStore

    store = RunStore(env["DIGITLAB_DB"])
    before = len(store.list_runs())

    page.goto(f"{url}/data")
    settle(page)
    page.get_by_text("Import a model trained elsewhere").click()
    uploader = page.get_by_test_id("stFileUploaderDropzoneInput")
    uploader.set_input_files(str(broken))
    settle(page)
    page.get_by_role("button", name="Import", exact=True).click()
    settle(page)
    errors = page.get_by_test_id("stAlertContentError")
    expect(errors.first).to_be_visible(timeout=30_000)
    assert errors.count() == 1 and "broken.keras" in errors.first.inner_text()
    no_exception(page)

    uploader.set_input_files(str(good))
    settle(page)
    fill(page, "Run name", "uploaded in the browser")
    page.get_by_role("button", name="Import", exact=True).click()
    settle(page, timeout=60)
    expect(page.get_by_text("Imported uploaded in the browser as run").first).to_be_visible(timeout=60_000)
    no_exception(page)
    runs = store.list_runs()
    assert len(runs) == before + 1  # the broken file wrote nothing
    imported = runs[runs["name"] == "uploaded in the browser"].iloc[0]
    assert imported["source"] == "imported" and 0.0 <= imported["test_accuracy"] <= 1.0
