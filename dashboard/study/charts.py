"""Plotly builders for a study: optimization history with the best so far, parameter importance,
one slice plot per parameter, and every run's objective per epoch with pruned runs marked.

Each takes the plain table core.search.study.trials_table() returns (one row per run: trial, status,
value, param_<field>) and returns a `go.Figure`; none reads the store. Parallel coordinates
come from dashboard.charts.parallel_coordinates.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.charts import empty_figure, key_label

STATUS_STYLE = {"completed": ("#2ca02c", "circle"), "pruned": ("#9467bd", "x")}
_MARGIN = dict(l=10, r=10, t=40, b=10)


def _finished(table: pd.DataFrame, objective: str = "") -> pd.DataFrame:
    """The completed and pruned runs with a value, by trial; an accuracy objective's values in percent."""
    if table.empty:
        return table
    done = table[table["status"].isin(tuple(STATUS_STYLE)) & table["value"].notna()].sort_values("trial")
    return done.assign(value=done["value"].astype(float) * _scale(objective))


def _scale(objective: str) -> float:
    """Accuracies show in percent, as on every other page; losses as they are."""
    return 100.0 if "accuracy" in objective else 1.0


def _y_title(objective: str) -> str:
    return key_label(objective) + (" (%)" if _scale(objective) == 100 else "")


def _y_format(objective: str) -> str:
    """The hover text's number: "%{y:.2f} %" for an accuracy, "%{y:.4f}" for a loss."""
    return "%{y:.2f} %" if _scale(objective) == 100 else "%{y:.4f}"


def history_chart(table: pd.DataFrame, objective: str, direction: str, height: int = 340) -> go.Figure:
    """The objective of each finished run by trial number, and the best completed value so far as a step
    line to the last finished trial; whole-number trial ticks."""
    done = _finished(table, objective)
    if done.empty:
        return empty_figure("No run of this study has finished yet", height)
    y = _y_format(objective)
    fig = go.Figure()
    for status, (colour, symbol) in STATUS_STYLE.items():
        part = done[done["status"] == status]
        if not part.empty:
            fig.add_trace(go.Scatter(x=part["trial"], y=part["value"], mode="markers", name=status,
                                     marker=dict(color=colour, symbol=symbol, size=9), text=part["name"],
                                     customdata=part["run_id"],
                                     hovertemplate=f"trial %{{x}}: {y}<br>%{{text}}<extra>{status}</extra>"))
    # a step line through every finished trial from the first completed one: a pruned run's value
    # is carried over from the completed run before it, so it never becomes the best
    carried = done["value"].where(done["status"] == "completed").ffill()
    since = carried.notna()
    if since.any():
        fig.add_trace(go.Scatter(x=done.loc[since, "trial"], y=best_so_far(carried[since], direction), mode="lines",
                                 name="best so far", line=dict(color="#d62728", shape="hv", width=2),
                                 hovertemplate=f"best after trial %{{x}}: {y}<extra></extra>"))
    span = int(done["trial"].max() - done["trial"].min())
    fig.update_layout(title="Optimization history", height=height, margin=_MARGIN,
                      xaxis=dict(title="trial", tickmode="linear", tick0=0, dtick=max(1, -(-span // 10))),
                      yaxis_title=_y_title(objective), legend=dict(orientation="h", y=-0.2))
    return fig


def importance_chart(importance: Mapping[str, float], note: str | None = None, height: int = 260) -> go.Figure:
    """Each parameter's share of the objective's variance, largest on top."""
    if not importance:
        return empty_figure(f"Parameter importance {note or 'is not available yet'}", height)
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v * 100 for _, v in items], y=[k.replace("_", " ") for k, _ in items],
                           orientation="h", marker_color="#1f77b4", text=[f"{v:.0%}" for _, v in items],
                           textposition="auto", hovertemplate="%{y}: %{x:.1f}%<extra></extra>"))
    fig.update_layout(title="Parameter importance (fANOVA)", height=height, margin=_MARGIN,
                      xaxis=dict(title="share of the objective's variance (%)", range=[0, 100]))
    return fig


def slice_chart(table: pd.DataFrame, field: str, spec: Mapping, objective: str, height: int = 280) -> go.Figure:
    """The objective of each finished run against one parameter (log axis for a log range)."""
    done = _finished(table, objective)
    column = f"param_{field}"
    if done.empty or column not in done:
        return empty_figure(f"{field.replace('_', ' ')}: no finished run yet", height)
    fig = go.Figure()
    categorical = spec.get("type") == "categorical"
    for status, (colour, symbol) in STATUS_STYLE.items():
        part = done[done["status"] == status]
        if not part.empty:
            x = part[column].map(str) if categorical else part[column]
            fig.add_trace(go.Scatter(x=x, y=part["value"], mode="markers", name=status, text=part["trial"],
                                     marker=dict(color=colour, symbol=symbol, size=9),
                                     hovertemplate=f"%{{x}}: {_y_format(objective)} (trial %{{text}})<extra>{status}</extra>"))
    xaxis: dict = dict(title=field.replace("_", " "))
    if spec.get("log"):
        xaxis["type"] = "log"
    if categorical:
        xaxis.update(type="category", categoryorder="array", categoryarray=[str(c) for c in spec["choices"]])
    fig.update_layout(title=field.replace("_", " "), height=height, margin=_MARGIN, xaxis=xaxis,
                      yaxis_title=_y_title(objective), showlegend=False)
    return fig


def intermediate_chart(table: pd.DataFrame, values: Mapping[str, Mapping[int, float]], objective: str,
                       height: int = 340) -> go.Figure:
    """Every run's objective per epoch; pruned runs dashed, with an ✕ at the epoch they stopped."""
    if table.empty or not any(values.get(r) for r in table["run_id"]):
        return empty_figure("No run has reported an epoch yet", height)
    fig = go.Figure()
    shown = set()
    for row in table.sort_values("trial").itertuples():
        points = values.get(row.run_id) or {}
        if not points:
            continue
        epochs = sorted(points)
        y = [points[e] * _scale(objective) for e in epochs]
        pruned = row.status == "pruned"
        group = "pruned" if pruned else ("running" if row.status in ("queued", "running") else "completed")
        colour = {"pruned": "#9467bd", "running": "#1f77b4", "completed": "#2ca02c"}[group]
        fig.add_trace(go.Scatter(x=epochs, y=y, mode="lines+markers", name=group, legendgroup=group,
                                 showlegend=group not in shown, line=dict(color=colour, dash="dash" if pruned else None),
                                 marker=dict(size=5), hovertemplate=f"trial {row.trial}, epoch %{{x}}: {_y_format(objective)}"
                                                                    f"<extra>{group}</extra>"))
        shown.add(group)
        if pruned:
            fig.add_trace(go.Scatter(x=[epochs[-1]], y=[y[-1]], mode="markers", showlegend=False, legendgroup=group,
                                     marker=dict(symbol="x", size=12, color=colour),
                                     hovertemplate=f"trial {row.trial} pruned after epoch %{{x}}<extra></extra>"))
    fig.update_layout(title="Intermediate values (pruned runs dashed, ✕ where they stopped)", height=height,
                      margin=_MARGIN, xaxis=dict(title="epoch", dtick=1), yaxis_title=_y_title(objective),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def best_so_far(values: pd.Series, direction: str) -> np.ndarray:
    """The running best of `values` (max or min by direction), for tests and tables."""
    return (values.cummax() if direction == "maximize" else values.cummin()).to_numpy()
