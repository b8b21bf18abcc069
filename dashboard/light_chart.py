"""Plotly figures drawn with plotly.js' partial bundles: pages open without Streamlit's full 4.7 MB Plotly.

`st.plotly_chart` makes the browser fetch and evaluate Streamlit's whole Plotly module (every trace
type, maps and WebGL included): about 0.25 s to fetch and 0.75-0.85 s of main-thread time, the
largest part of Compare's cold load. Figures made only of the trace types of one of plotly.js'
partial bundles (1.5 MB each: *cartesian* for scatter, bar, heatmap and the other 2-D traces;
*gl2d* for parallel coordinates) are drawn here instead (every page's charts, Train's live curves
included) by a small Streamlit component that loads the bundle a figure needs, once per page, from
the app's static folder (`dashboard/static/`, served because `.streamlit/config.toml` sets
`server.enableStaticServing`).

They look as `st.plotly_chart` draws them: the figure keeps Streamlit's "streamlit" template and
the component applies the page's theme to it (light or dark, the theme's chart colours and fonts)
as Streamlit's front end does; the mode bar has the same buttons and a fullscreen one. A figure
that mixes trace types of two bundles, or any figure in an app started without static serving,
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
# plotly.js' partial bundles (from the plotly.js 4.1.1 package's dist/, as Streamlit 1.67 ships 4.1.1)
# and the trace types each holds, first match wins; tests/test_light_chart.py reads them from the files.
BUNDLES = {
    "plotly-cartesian-4.1.1.min.js": frozenset({"bar", "box", "contour", "heatmap", "histogram", "histogram2d",
                                                "histogram2dcontour", "image", "pie", "scatter", "scatterternary",
                                                "violin"}),
    "plotly-gl2d-4.1.1.min.js": frozenset({"parcoords", "scatter", "scattergl"}),
}
# Those present (a checkout without them draws everything with st.plotly_chart); looked for once.
PRESENT = {name: traces for name, traces in BUNDLES.items() if (STATIC / name).is_file()}
HTML = '<div class="dl-chart"></div>'
CSS = ".dl-chart:fullscreen { width: 100vw; }"

_mount = st.components.v2.component("digitlab.light_chart", html=HTML, css=CSS, isolate_styles=False,
                                    js=Path(__file__).with_suffix(".js").read_text(encoding="utf-8"))


def bundle_for(fig: go.Figure) -> str | None:
    """The partial bundle that draws every trace of `fig`, or None (then `st.plotly_chart` draws it)."""
    if not st.get_option("server.enableStaticServing"):
        return None
    kinds = {trace.type for trace in fig.data}
    return next((name for name, traces in PRESENT.items() if kinds <= traces), None)


def can_draw(fig: go.Figure) -> bool:
    """Whether this figure is drawn by the light component (else by `st.plotly_chart`)."""
    return bundle_for(fig) is not None


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
    bundle, config = bundle_for(fig), dict(config or {})
    if bundle is None:
        if select:
            return st.plotly_chart(fig, key=key, config=config, on_select="rerun", selection_mode="points")
        st.plotly_chart(fig, key=key, config=config)
        return None
    # to_dict(), then to_json: what st.plotly_chart does, so a shared live figure's JSON, made once per
    # tick, is used as it is (dashboard/plotly_json.py answers to_json for a dict that carries it)
    data = {"figure": plotly.io.to_json(fig.to_dict(), validate=False), "config": config, "select": select,
            "bundle": f"app/static/{bundle}"}
    if not select:
        _mount(data=data, key=key)
        return None
    result = _mount(data=data, key=key, on_selection_change=_rerun, default={"selection": NO_SELECTION})
    return {"selection": result.get("selection") or NO_SELECTION}
