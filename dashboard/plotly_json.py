"""A chart sent to every viewer of a tick is turned into JSON once, not once per viewer.

`st.plotly_chart` (Streamlit 1.67) calls `plotly.io.to_json(figure, validate=False)` on the figure's
`to_dict()` each time it draws a figure, and dashboard/light_chart.py (which draws the live panel's
curves) does the same: for the live panel, each viewer on each tick, on figures that are the same
for all of them (dashboard/train/curves.py builds them once per tick). That JSON is then sent.

`install()` wraps `plotly.io.to_json`, once per process: a figure's dict that carries the JSON made
for exactly those arguments (a `FigureDict`, given its JSON by `keep_json` once, when the shared
figure is built) gets it back; every other call goes to Plotly's function unchanged. It is the one
place that relies on how Streamlit calls Plotly, so it checks first that `st.plotly_chart` still
hands Plotly the figure's `to_dict()` (through `plotly.tools.return_figure_from_figure_or_data`)
and calls `plotly.io.to_json(figure, validate=False)` on it, and that `plotly.io.to_json` takes
those arguments with the same defaults; if an upgrade changes any of that, the Train page stops
with an error naming both versions, never silently sends a stale chart or pays the per-viewer
encoding again. tests/test_plotly_json.py pins it.
"""
from __future__ import annotations

import inspect

import plotly
import plotly.io
import plotly.tools
import streamlit
from streamlit.elements import plotly_chart as streamlit_plotly_chart

CHECKED_ON = ("1.67.0", "7.1.0")                        # Streamlit and Plotly versions this was read against
CALL = "plotly.io.to_json(figure, validate=False)"      # what st.plotly_chart must call, word for word
TO_FIGURE = "return_figure_from_figure_or_data("        # ... on what this gives it: a figure's to_dict()
ARGS = {"validate": False, "pretty": False, "remove_uids": True, "engine": None}   # that call's arguments
ATTR = "_digitlab_json"                                 # where a figure keeps its JSON (in its __dict__)


class PlotlyJsonChanged(RuntimeError):
    """Streamlit or Plotly no longer does what dashboard/plotly_json.py relies on: review that module."""


class FigureDict(dict):
    """A figure's dict (what `to_dict()` returns) that can carry its JSON: see `keep_json`."""


def _fail(why: str) -> PlotlyJsonChanged:
    return PlotlyJsonChanged(
        f"Streamlit {streamlit.__version__}, Plotly {plotly.__version__}: {why}. Digit Lab encodes the live "
        f"panel's charts once per tick by wrapping plotly.io.to_json (checked on Streamlit {CHECKED_ON[0]}, "
        f"Plotly {CHECKED_ON[1]}); review dashboard/plotly_json.py for these versions.")


def check(chart_module=streamlit_plotly_chart, io=plotly.io) -> None:
    """Raise PlotlyJsonChanged unless st.plotly_chart calls `io.to_json` as `CALL` and it takes `ARGS`."""
    try:
        source = inspect.getsource(chart_module.PlotlyMixin.plotly_chart)
    except (OSError, TypeError, AttributeError) as exc:
        raise _fail(f"cannot read st.plotly_chart's source ({exc})") from exc
    if CALL not in source or TO_FIGURE not in source:
        raise _fail(f"st.plotly_chart no longer calls {CALL} on plotly.tools.{TO_FIGURE}...)")
    try:
        to_figure = inspect.getsource(getattr(plotly.tools, TO_FIGURE[:-1]))
    except (OSError, TypeError, AttributeError) as exc:
        raise _fail(f"cannot read plotly.tools.{TO_FIGURE}...)'s source ({exc})") from exc
    if "figure_or_data.to_dict()" not in to_figure:
        raise _fail(f"plotly.tools.{TO_FIGURE}...) no longer hands on a figure's to_dict()")
    stock = getattr(io.to_json, "stock", io.to_json)
    try:
        params = inspect.signature(stock).parameters
    except (TypeError, ValueError) as exc:
        raise _fail(f"cannot read plotly.io.to_json's arguments ({exc})") from exc
    defaults = {name: p.default for name, p in params.items() if name != "fig"}
    if list(params)[:1] != ["fig"] or any(defaults.get(k, k) != v for k, v in ARGS.items() if k != "validate") \
            or set(defaults) != set(ARGS):
        raise _fail(f"plotly.io.to_json takes ({', '.join(params)}), not (fig, {', '.join(ARGS)})")


def install(io=plotly.io) -> None:
    """Wrap `io.to_json` (once per process; fails loudly, see above)."""
    check(io=io)
    if getattr(io.to_json, "digitlab", False):
        return
    stock = io.to_json

    def to_json(fig, validate=True, pretty=False, remove_uids=True, engine=None):
        if isinstance(fig, FigureDict) and (validate, pretty, remove_uids, engine) == tuple(ARGS.values()):
            made = fig.__dict__.get(ATTR)
            if made is not None:
                return made
        return stock(fig, validate=validate, pretty=pretty, remove_uids=remove_uids, engine=engine)

    to_json.digitlab, to_json.stock = True, stock
    to_json.__doc__ = stock.__doc__
    io.to_json = to_json


def installed(io=plotly.io) -> bool:
    return bool(getattr(io.to_json, "digitlab", False))


def keep_json(fig) -> str:
    """Make the JSON st.plotly_chart asks for of `fig`, whose `to_dict()` is a FigureDict made once
    (dashboard/train/curves.py's SharedFigure), keep it on that dict and return it.

    Call it once the figure is complete: neither may change afterwards (a shared figure does not)."""
    made = fig.to_dict()
    if not isinstance(made, FigureDict) or made is not fig.to_dict():
        raise TypeError(f"keep_json needs a figure whose to_dict() is one FigureDict, not {type(made).__name__}")
    made.__dict__[ATTR] = getattr(plotly.io.to_json, "stock", plotly.io.to_json)(made, **ARGS)
    return made.__dict__[ATTR]
