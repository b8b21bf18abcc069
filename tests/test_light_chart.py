"""dashboard/light_chart.py: which figures it draws, the bundle it serves, and what it sends the browser.

The drawing itself (the bundle loads, the theme is applied, Compare never fetches Streamlit's full
Plotly) is checked in a real browser: tests/test_e2e_browser.py.
"""
import json
import re
import tomllib
from pathlib import Path

import plotly.graph_objects as go
import pytest
import streamlit.config
import streamlit.elements.lib.streamlit_plotly_theme as streamlit_theme
from streamlit import file_util
from streamlit.testing.v1 import AppTest

from dashboard import light_chart
from tests.helpers import chart_figures

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", list(light_chart.BUNDLES))
def test_the_trace_types_are_the_bundles_own(name):
    text = (light_chart.STATIC / name).read_text(encoding="utf-8")
    kind, version = re.fullmatch(r"plotly-(\w+)-([\d.]+)\.min\.js", name).groups()
    assert f"plotly.js ({kind} - minified) v{version}" in text[:200]  # the file is what its name says
    assert set(re.findall(r'name:"(\w+)",basePlotModule', text)) == light_chart.BUNDLES[name]


def test_streamlit_serves_the_bundle_from_the_apps_static_folder():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["enableStaticServing"] is True
    assert Path(file_util.get_app_static_dir(str(ROOT / "dashboard" / "app.py"))).resolve() == light_chart.STATIC


def test_every_colour_placeholder_of_streamlits_theme_is_replaced_in_the_browser():
    """Streamlit's Python template marks its colours #000001 ... #000040 and its front end replaces them;
    light_chart.js replaces the same ones (categorical, sequential, diverging, then named colours)."""
    placeholders = {v for v in vars(streamlit_theme).values() if isinstance(v, str) and v.startswith("#0000")}
    assert placeholders and all(re.fullmatch(r"#0000[0-4]\d", p) for p in placeholders)
    js = Path(light_chart.__file__).with_suffix(".js").read_text(encoding="utf-8")
    named = set(re.findall(r'"(#0000\d\d)"', js))
    numbered = {f"#{n:06d}" for n in range(1, 31)}  # the three 10-colour scales, filled by index
    assert placeholders <= named | numbered


@pytest.mark.parametrize("traces, bundle", [
    ([go.Scatter(y=[1, 2])], "plotly-cartesian-4.1.1.min.js"),
    ([go.Heatmap(z=[[1]]), go.Scatter(y=[1])], "plotly-cartesian-4.1.1.min.js"),
    ([go.Bar(y=[1])], "plotly-cartesian-4.1.1.min.js"),
    ([go.Parcoords(dimensions=[])], "plotly-gl2d-4.1.1.min.js"),
    ([go.Parcoords(dimensions=[]), go.Bar(y=[1])], None),   # no one bundle has both: st.plotly_chart
    ([go.Scattergeo(lat=[1], lon=[1])], None)])
def test_which_bundle_draws_a_figure(traces, bundle):
    fig = go.Figure(traces)
    assert light_chart.bundle_for(fig) == bundle and light_chart.can_draw(fig) is (bundle is not None)


def test_without_static_serving_every_figure_goes_to_streamlit():
    before = streamlit.config.get_option("server.enableStaticServing")
    streamlit.config.set_option("server.enableStaticServing", False)
    try:
        assert not light_chart.can_draw(go.Figure(go.Scatter(y=[1])))
    finally:
        streamlit.config.set_option("server.enableStaticServing", before)


SCRIPT = """
import plotly.graph_objects as go
from dashboard import light_chart
light_chart.plotly_chart(go.Figure(go.Scatter(y=[3, 1, 2], name="loss")).update_layout(height=310), key="a",
                         config={"displayModeBar": False})
light_chart.plotly_chart(go.Figure([go.Parcoords(dimensions=[dict(values=[1, 2], label="lr")]), go.Bar(y=[1])]),
                         key="b")
"""


def test_a_page_sends_the_figure_with_streamlits_template_and_falls_back_for_mixed_bundles(tmp_path):
    script = tmp_path / "page.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n" + SCRIPT, encoding="utf-8")
    at = AppTest.from_file(str(script), default_timeout=30).run()
    assert not at.exception
    [component], [fallback] = at.get("bidi_component"), at.get("plotly_chart")
    data = json.loads(component.proto.json)
    assert data["config"] == {"displayModeBar": False} and component.proto.component_name == "digitlab.light_chart"
    assert data["bundle"] == "app/static/plotly-cartesian-4.1.1.min.js" and data["select"] is False
    figure = json.loads(data["figure"])
    assert figure["data"][0]["y"] == [3, 1, 2] and figure["layout"]["height"] == 310
    # Streamlit's template rides along with its placeholders, for the browser to theme as st.plotly_chart's
    assert "#000001" in json.dumps(figure["layout"]["template"])
    assert json.loads(fallback.proto.spec)["data"][0]["type"] == "parcoords"
    assert [[t["type"] for t in f["data"]] for f in chart_figures(at)] == [["scatter"], ["parcoords", "bar"]]
