"""Compare's group histories: each selection a mean line with a band, N at each step on hover, and
its member runs as thin lines on request.

Built like dashboard/charts.py's builders (plain data in, a `go.Figure` out, nothing read from the
store or Streamlit), with its palette, legend names and axes, so a group's curve reads like a run's.
"""
from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import PALETTE, empty_figure, key_label

# The band choices: label -> how its edges are read from core.search.repeats.history_band()'s columns.
BANDS = {"±1 std": "std", "standard error": "sem", "min–max": "range"}


def band_edges(band: pd.DataFrame, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The band's lower and upper edge at each point; where one run has a value, both are its mean."""
    mean = band["mean"].to_numpy(dtype=float)
    if kind == "range":
        low, high = band["min"].to_numpy(dtype=float), band["max"].to_numpy(dtype=float)
    elif kind in ("std", "sem"):
        width = band[kind].to_numpy(dtype=float)
        low, high = mean - width, mean + width
    else:
        raise ValueError(f"band must be one of {', '.join(BANDS.values())}, got {kind!r}")
    return np.where(np.isfinite(low), low, mean), np.where(np.isfinite(high), high, mean)


def _rgba(colour: str, alpha: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band_lines(bands: Mapping[str, pd.DataFrame], keys: Iterable[str], band: str = "std", x: str = "epoch",
               members: Mapping[str, pd.DataFrame] | None = None, log_y: bool = False,
               height: int = 380) -> go.Figure:
    """One mean line per (selection, key) with a shaded band, from history_band() frames (a single
    point, one epoch, carries its band as an error bar).

    `bands` maps each selection's legend name to its band frame (key, x, n, mean, std, sem, min,
    max) and sets the colours' order; `band` is "std", "sem" or "range". Hovering a mean shows N,
    the runs with a value at that step. `members` (legend name -> the member runs' rows: run_id,
    key, x, value) adds each run as a thin line in its selection's colour. Validation keys are dashed.
    """
    keys = list(keys)
    if x not in ("epoch", "step"):
        raise ValueError(f"x must be 'epoch' or 'step', got {x!r}")
    fig = go.Figure()
    drawn = False
    for i, (name, frame) in enumerate(bands.items()):
        colour = PALETTE[i % len(PALETTE)]
        for key in keys:
            rows = frame[frame["key"] == key].sort_values(x) if not frame.empty else frame
            if rows.empty:
                continue
            drawn = True
            label, dash = f"{name} · {key_label(key)}", "dash" if key.startswith("val_") else "solid"
            xs = rows[x].to_numpy()
            if rows["n"].max() > 1:  # a band needs two runs somewhere
                low, high = band_edges(rows, band)
                fig.add_trace(go.Scatter(x=xs, y=high, mode="lines", line=dict(width=0), showlegend=False,
                                         hoverinfo="skip", legendgroup=label, name=f"{label} band"))
                fig.add_trace(go.Scatter(x=xs, y=low, mode="lines", line=dict(width=0), fill="tonexty",
                                         fillcolor=_rgba(colour, 0.18), showlegend=False, hoverinfo="skip",
                                         legendgroup=label, name=f"{label} band"))
            for run_id, run in ((members or {}).get(name, pd.DataFrame(columns=["run_id", "key"]))
                                .query("key == @key").groupby("run_id", sort=False)):
                run = run.sort_values(x)
                fig.add_trace(go.Scatter(x=run[x], y=run["value"], mode="lines", legendgroup=label,
                                         line=dict(color=colour, width=1, dash=dash), opacity=0.45,
                                         showlegend=False, name=f"{label} · run {run_id[:6]}", hoverinfo="skip"))
            spread = {}
            if len(xs) == 1 and rows["n"].max() > 1:  # one point (one epoch): the band as an error bar
                low, high = band_edges(rows, band)
                mean = rows["mean"].to_numpy(dtype=float)
                spread = dict(error_y=dict(type="data", symmetric=False, array=(high - mean).tolist(),
                                           arrayminus=(mean - low).tolist(), color=colour, thickness=2, width=8))
            fig.add_trace(go.Scatter(x=xs, y=rows["mean"], name=label, legendgroup=label, connectgaps=False, **spread,
                                     customdata=[int(n) for n in rows["n"]],
                                     mode="lines+markers" if len(xs) <= 30 else "lines",
                                     line=dict(color=colour, dash=dash, width=2.5), marker=dict(size=5),
                                     hovertemplate="%{y} (N = %{customdata})"))
    if not drawn:
        return empty_figure("No values logged yet", height)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=50, b=10), hovermode="x unified",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    fig.update_xaxes(title="epoch" if x == "epoch" else "batch step")
    if all(key.removeprefix("val_") == "accuracy" for key in keys):
        fig.update_yaxes(tickformat=".0%", hoverformat=".2%")
    if x == "epoch":
        top = max((f[x].max() for f in bands.values() if not f.empty), default=0)
        fig.update_xaxes(dtick=1 if top <= 20 else None)
    if log_y:
        fig.update_yaxes(type="log")
    return fig
