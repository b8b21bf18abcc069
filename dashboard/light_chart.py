"""Plotly figures drawn with plotly.js' cartesian bundle: pages open without Streamlit's full 4.7 MB Plotly.

`st.plotly_chart` makes the browser fetch and evaluate Streamlit's whole Plotly module (every trace
type, maps and WebGL included): about 0.25 s to fetch and 0.75-0.85 s of main-thread time, the
largest part of Compare's cold load. Figures made only of the trace types in plotly.js' *cartesian*
partial bundle (scatter, bar, heatmap, ...; 1.5 MB) are drawn here instead (Compare, Run detail,
Draw and Data use it) by a small Streamlit component that loads that bundle once per page from the
app's static folder (`dashboard/static/`, served because `.streamlit/config.toml` sets
`server.enableStaticServing`).

They look as `st.plotly_chart` draws them: the figure keeps Streamlit's "streamlit" template and
the component applies the page's theme to it (light or dark, the theme's chart colours and fonts)
as Streamlit's front end does; the mode bar has the same buttons and a fullscreen one. A figure
with any other trace type (e.g. parallel coordinates), or an app started without static serving,
goes to `st.plotly_chart` unchanged.

A chart can report clicks (`select=True`: the clicked point, as `st.plotly_chart`'s point selection).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import plotly.graph_objects as go
import plotly.io
import streamlit as st

STATIC = Path(__file__).resolve().parent / "static"
BUNDLE_FILE = "plotly-cartesian-4.1.1.min.js"
# The trace types in plotly.js' cartesian bundle (its README: plotly.js-cartesian-dist-min 4.1.1).
TRACES = frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d", "histogram2dcontour", "image",
                    "pie", "scatter", "scatterternary", "violin"})
HTML = '<div class="dl-chart"></div>'
CSS = ".dl-chart:fullscreen { width: 100vw; }"


def _js() -> str:
    return (Path(__file__).with_suffix(".js").read_text(encoding="utf-8")
            .replace("__BUNDLE__", f"app/static/{BUNDLE_FILE}"))


_mount = st.components.v2.component("digitlab.light_chart", html=HTML, css=CSS, js=_js(), isolate_styles=False)


def can_draw(fig: go.Figure) -> bool:
    """Whether this figure is drawn by the light component (else by `st.plotly_chart`)."""
    return (all(trace.type in TRACES for trace in fig.data) and (STATIC / BUNDLE_FILE).is_file()
            and bool(st.get_option("server.enableStaticServing")))


NO_SELECTION = {"points": [], "point_indices": [], "box": [], "lasso": []}


def _rerun() -> None:
    """A selection's callback: nothing to do, the rerun it starts is the point."""


def plotly_chart(fig: go.Figure, *, key: str, config: Mapping[str, Any] | None = None,
                 select: bool = False) -> dict | None:
    """Draw `fig` in the current container, full width, at its layout's height (450 px if unset).

    `key` identifies the chart between reruns (a new figure under the same key is redrawn in
    place, keeping the page still); `config` is Plotly's (e.g. `{"displayModeBar": False}`).
    With `select`, a click on a point selects it and reruns the page, a double click clears the
    selection, and the call returns `{"selection": {"points": [{"x", "y", ...}], ...}}`, as
    `st.plotly_chart(..., on_select="rerun", selection_mode="points")` does (which draws the
    figures this component cannot)."""
    if not can_draw(fig):
        if select:
            return st.plotly_chart(fig, key=key, config=dict(config or {}), on_select="rerun", selection_mode="points")
        st.plotly_chart(fig, key=key, config=dict(config or {}))
        return None
    data = {"figure": plotly.io.to_json(fig, validate=False), "config": dict(config or {}), "select": select}
    if not select:
        _mount(data=data, key=key)
        return None
    result = _mount(data=data, key=key, on_selection_change=_rerun, default={"selection": NO_SELECTION})
    return {"selection": result.get("selection") or NO_SELECTION}
