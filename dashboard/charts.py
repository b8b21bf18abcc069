"""Plotly figure builders: histories, confusion and difference matrices, parallel coordinates,
probability bars, learning-rate curves and first-layer kernels.

Each builder takes plain data (DataFrames from the store, lists, numpy arrays) and returns a
`go.Figure`; none of them reads the store or Streamlit state, so they are unit-testable.
Missing values (NaN, which the store returns for NULL) are gaps in lines, never zeros.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
DIGITS = list(range(10))
# Legend names of the keys the store logs (core.train.callbacks.StoreLogger).
KEY_LABELS = {"loss": "train loss", "val_loss": "validation loss", "accuracy": "train accuracy",
              "val_accuracy": "validation accuracy", "learning_rate": "learning rate",
              "epoch_seconds": "seconds per epoch"}
_MARGIN = dict(l=10, r=10, t=40, b=10)


def key_label(key: str) -> str:
    """'val_loss' -> 'validation loss'; unknown keys keep their name."""
    return KEY_LABELS.get(key, key.replace("val_", "validation ").replace("_", " "))


def empty_figure(message: str, height: int = 300) -> go.Figure:
    """A blank figure that says why it is blank (instead of empty axes)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, font=dict(size=14), x=0.5, y=0.5,
                       xref="paper", yref="paper")
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=_MARGIN)
    return fig


def smooth(values: Sequence[float], weight: float) -> np.ndarray:
    """Debiased exponential moving average (as TensorBoard's slider); NaN stays NaN and is skipped.

    `weight` in [0, 1): 0 returns the values unchanged, 0.9 averages over roughly ten points.
    """
    y = np.asarray(values, dtype=float)
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {weight!r}")
    if weight == 0 or y.size == 0:
        return y.copy()
    out = np.full_like(y, np.nan)
    last, count = 0.0, 0
    for i, v in enumerate(y):
        if math.isfinite(v):
            last = last * weight + (1 - weight) * v
            count += 1
            out[i] = last / (1 - weight ** count)
    return out


def metric_lines(history: pd.DataFrame, keys: Iterable[str], smoothing: float = 0.0, x: str = "epoch",
                 names: Mapping[str, str] | None = None, title: str = "", log_y: bool = False,
                 height: int = 320) -> go.Figure:
    """One line per (run, key) from store.histories() rows; NaN values are gaps.

    `names` maps run ids to legend names and sets the runs' order. `x` is "epoch" or "step". With one run, colours tell the keys apart; with several, colours
    tell the runs apart and validation keys are dashed. With `smoothing` > 0 the raw values
    stay as a faint line under the smoothed one (two traces per line).
    """
    keys = list(keys)
    if x not in ("epoch", "step"):
        raise ValueError(f"x must be 'epoch' or 'step', got {x!r}")
    rows = history[history["key"].isin(keys)] if not history.empty else history
    if rows.empty:
        return empty_figure("No values logged yet", height)
    names = dict(names or {})
    order = {run_id: i for i, run_id in enumerate(names)}  # runs in the order `names` lists them
    run_ids = sorted(dict.fromkeys(rows["run_id"]), key=lambda r: order.get(r, len(order)))
    many = len(run_ids) > 1
    fig = go.Figure()
    for r, run_id in enumerate(run_ids):
        for k, key in enumerate(keys):
            line = rows[(rows["run_id"] == run_id) & (rows["key"] == key)].sort_values(x)
            if line.empty:
                continue
            colour = PALETTE[(r if many else k) % len(PALETTE)]
            label = f"{names.get(run_id, run_id)} · {key_label(key)}" if many else key_label(key)
            dash = "dash" if many and key.startswith("val_") else "solid"
            xs, ys = line[x].to_numpy(), line["value"].to_numpy(dtype=float)
            if smoothing > 0:
                fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=1),
                                         opacity=0.25, showlegend=False, hoverinfo="skip", connectgaps=False,
                                         legendgroup=label))
                ys = smooth(ys, smoothing)
            fig.add_trace(go.Scatter(x=xs, y=ys, name=label, legendgroup=label, connectgaps=False,
                                     mode="lines+markers" if len(xs) <= 30 else "lines",
                                     line=dict(color=colour, dash=dash, width=2), marker=dict(size=5)))
    fig.update_layout(title=dict(text=title, x=0, xanchor="left") if title else None, height=height,
                      margin=dict(_MARGIN, t=50), hovermode="x unified",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1))
    fig.update_xaxes(title="epoch" if x == "epoch" else "batch step")
    if all(key.removeprefix("val_") == "accuracy" for key in keys):  # accuracies read as % on every page
        fig.update_yaxes(tickformat=".0%", hoverformat=".2%")
    if x == "epoch":
        fig.update_xaxes(dtick=1 if rows["epoch"].max() <= 20 else None)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def complete_epochs(epochs: pd.DataFrame, steps_per_epoch: int | Mapping[str, int | None] | None) -> pd.DataFrame:
    """Epoch rows of the epochs a run finished: a run cancelled mid-epoch still gets Keras' epoch
    end (a validation pass after a part of an epoch), which would plot as a lone, misleading point.

    `steps_per_epoch` is one run's, or run id -> its own for rows of several runs; unknown keeps the rows.
    """
    if epochs.empty or not steps_per_epoch or "step" not in epochs:
        return epochs
    spe = (pd.to_numeric(epochs["run_id"].map(steps_per_epoch), errors="coerce")
           if isinstance(steps_per_epoch, Mapping) else steps_per_epoch)
    keep = (epochs["step"] >= epochs["epoch"] * spe) | pd.isna(spe) if isinstance(spe, pd.Series) else \
        epochs["step"] >= epochs["epoch"] * spe
    return epochs[keep]


def lr_curve(history: pd.DataFrame, names: Mapping[str, str] | None = None, height: int = 260) -> go.Figure:
    """The learning rate per epoch (log scale), from the epoch-scope 'learning_rate' rows."""
    rows = history[history["key"] == "learning_rate"] if not history.empty else history
    if rows.empty:
        return empty_figure("No learning rate logged yet", height)
    fig = metric_lines(rows, ["learning_rate"], x="epoch", names=names, height=height, title="Learning rate")
    values = rows["value"].dropna()
    if len(values) and (values > 0).all():
        fig.update_yaxes(type="log", exponentformat="power")
    return fig


def _normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (recall per true digit); an empty row stays 0."""
    sums = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, sums, out=np.zeros_like(matrix, dtype=float), where=sums > 0)


def _cell_targets(hover: list[list[str]]) -> go.Scatter:
    """Invisible markers on every cell centre: Plotly heatmaps send no click data, markers do."""
    xs, ys = np.meshgrid(DIGITS, DIGITS)
    return go.Scatter(x=xs.ravel(), y=ys.ravel(), mode="markers", showlegend=False,
                      marker=dict(symbol="square", size=26, opacity=0, color="#000"),
                      text=[hover[t][p] for t, p in zip(ys.ravel(), xs.ravel())],
                      hovertemplate="%{text}<extra></extra>", name="cells")


def _matrix_axes(fig: go.Figure, height: int) -> None:
    fig.update_xaxes(title="predicted digit", tickmode="array", tickvals=DIGITS, side="bottom",
                     range=[-0.5, 9.5], showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(title="true digit", tickmode="array", tickvals=DIGITS, range=[9.5, -0.5],
                     showgrid=False, zeroline=False, scaleanchor="x", constrain="domain")
    fig.update_layout(height=height, margin=_MARGIN, clickmode="event+select", dragmode=False)


def _matrix_cells(matrix: Sequence[Sequence[float]], normalise: bool,
                  name: str = "") -> tuple[np.ndarray, list[list[str]], list[list[str]]]:
    """A confusion matrix's cell values (counts or row shares), cell labels and hover texts
    (headed by the run's `name` when one is given)."""
    counts = np.asarray(matrix, dtype=float)
    if counts.shape != (10, 10):
        raise ValueError(f"a confusion matrix is 10×10, got shape {counts.shape}" + (f" for {name}" if name else ""))
    hover_prefix = f"{name}<br>" if name else ""
    shares = _normalised(counts)
    text = [[f"{shares[t, p]:.0%}" if normalise else f"{int(counts[t, p])}" for p in DIGITS] for t in DIGITS]
    hover = [[f"{hover_prefix}true {t}, predicted {p}: {int(counts[t, p])} digits ({shares[t, p]:.1%} of the {t}s)"
              for p in DIGITS] for t in DIGITS]
    return (shares if normalise else counts), text, hover


def confusion_heatmap(matrix: Sequence[Sequence[float]], normalise: bool = False, title: str = "",
                      clickable: bool = False, height: int = 440, show_scale: bool = True,
                      highlight: tuple[int | None, int | None] = (None, None)) -> go.Figure:
    """The 10×10 confusion matrix (rows = true digit) with counts or row shares in each cell.

    `clickable`: an invisible marker per cell, so a point selection (light_chart's or st.plotly_chart's)
    reports the clicked cell (x = predicted, y = true). `highlight` = (true, predicted) outlines that
    cell, or a whole row or column when the other is None.
    """
    z, text, hover = _matrix_cells(matrix, normalise)
    fig = go.Figure(go.Heatmap(z=z, x=DIGITS, y=DIGITS, text=text, texttemplate="%{text}", colorscale="Blues",
                               customdata=hover, hovertemplate="%{customdata}<extra></extra>",
                               showscale=show_scale, zmin=0, zmax=1 if normalise else None,
                               colorbar=dict(title="share" if normalise else "digits", thickness=12),
                               hoverinfo="skip" if clickable else None))
    if clickable:
        fig.add_trace(_cell_targets(hover))
    true, pred = highlight
    if true is not None or pred is not None:
        rows = (true - 0.5, true + 0.5) if true is not None else (-0.5, 9.5)
        cols = (pred - 0.5, pred + 0.5) if pred is not None else (-0.5, 9.5)
        fig.add_shape(type="rect", x0=cols[0], x1=cols[1], y0=rows[0], y1=rows[1],
                      line=dict(color=PALETTE[3], width=3), fillcolor="rgba(0,0,0,0)")
    fig.update_layout(title=title or None)
    _matrix_axes(fig, height)
    return fig


def confusion_grid(matrices: Mapping[str, Sequence[Sequence[float]]], normalise: bool = False,
                   columns: int = 5, cell_height: int | None = None) -> go.Figure:
    """Several runs' confusion matrices as one figure, `columns` to a row, on one colour scale.

    One figure instead of one chart per run: the browser draws a single Plotly plot, which
    keeps Compare quick with 10 runs. Counts share a scale only when the runs were evaluated
    on the same number of digits; otherwise use `normalise`.
    """
    from plotly.subplots import make_subplots

    if not matrices:
        return empty_figure("No confusion matrices to show.")
    names = list(matrices)
    cols = max(1, min(columns, len(names)))
    rows = math.ceil(len(names) / cols)
    cell_height = cell_height or (340 if cols <= 3 else 250)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[_short(n) for n in names],
                        horizontal_spacing=0.03, vertical_spacing=0.12 / rows)
    cells = {n: _matrix_cells(m, normalise, n) for n, m in matrices.items()}
    top = 1.0 if normalise else max(float(z.max()) for z, _, _ in cells.values()) or 1.0
    for i, (z, text, hover) in enumerate(cells.values()):
        fig.add_trace(go.Heatmap(z=z, x=DIGITS, y=DIGITS, text=text, texttemplate="%{text}",
                                 textfont=dict(size=9), colorscale="Blues", zmin=0, zmax=top, showscale=False,
                                 customdata=hover, hovertemplate="%{customdata}<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
    fig.update_xaxes(tickmode="array", tickvals=DIGITS, range=[-0.5, 9.5], showgrid=False, zeroline=False,
                     constrain="domain", tickfont=dict(size=9))
    fig.update_yaxes(tickmode="array", tickvals=DIGITS, range=[9.5, -0.5], showgrid=False, zeroline=False,
                     constrain="domain", tickfont=dict(size=9))
    for i in range(len(names)):  # square cells: each y axis follows its own x axis
        suffix = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_layout(height=cell_height * rows + 40, margin=_MARGIN, dragmode=False)
    return fig


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"


def difference_heatmap(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]], names: tuple[str, str] = ("A", "B"),
                       normalise: bool = False, height: int = 440) -> go.Figure:
    """Run A − run B per cell; blue where A is better (more correct, fewer of a mistake), red where worse.

    Each cell shows the signed difference A − B (counts, or percentage points of the true
    digit's row with `normalise`, which compares runs evaluated on different test sizes).
    """
    ma, mb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if ma.shape != (10, 10) or mb.shape != (10, 10):
        raise ValueError(f"confusion matrices are 10×10, got {ma.shape} and {mb.shape}")
    diff = (_normalised(ma) - _normalised(mb)) * 100 if normalise else ma - mb
    better = np.where(np.eye(10, dtype=bool), diff, -diff)  # on the diagonal more is better, elsewhere fewer
    limit = float(np.abs(better).max()) or 1.0
    unit = " pp" if normalise else ""
    text = [[("" if diff[t, p] == 0 else f"{diff[t, p]:+.1f}" if normalise else f"{int(diff[t, p]):+d}")
             for p in DIGITS] for t in DIGITS]
    hover = [[f"true {t}, predicted {p}: {names[0]} {int(ma[t, p])}, {names[1]} {int(mb[t, p])} "
              f"({diff[t, p]:+.1f}{unit})" for p in DIGITS] for t in DIGITS]
    fig = go.Figure(go.Heatmap(
        z=better, x=DIGITS, y=DIGITS, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
        colorbar=dict(thickness=12, tickmode="array", tickvals=[-limit, 0, limit],
                      ticktext=[f"{names[0]} worse", "same", f"{names[0]} better"])))
    fig.update_layout(title=f"{names[0]} − {names[1]}")
    _matrix_axes(fig, height)
    return fig


def _category_text(value: Any) -> str:
    """An axis category: "default" for a missing value, whole numbers without ".0" (2000, not 2000.0)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "default"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value)}"
    return str(value)


def _dimension(values: pd.Series, label: str) -> dict:
    """One parallel-coordinates axis: numeric (learning rate on a log scale) or categorical."""
    numeric = pd.to_numeric(values, errors="coerce")
    if values.notna().all() and numeric.notna().all() and values.map(lambda v: not isinstance(v, bool)).all():
        numeric = numeric.astype(float)
        if label == "learning_rate" and (numeric > 0).all():
            logs = np.log10(numeric)
            ticks = sorted(set(np.round(logs, 6)))
            if len(ticks) > 8:
                ticks = list(np.linspace(min(ticks), max(ticks), 6))
            return dict(label="learning rate (log)", values=logs, tickvals=ticks,
                        ticktext=[f"{10 ** t:.2g}" for t in ticks])
        if bool(np.all(numeric == np.round(numeric))):  # whole numbers: ticks only at whole numbers, each once
            distinct = sorted(set(int(v) for v in numeric))
            lo, hi = distinct[0], distinct[-1]
            ticks = distinct if len(distinct) <= 8 else list(range(lo, hi + 1, -(-(hi - lo) // 6)))
            return dict(label=label.replace("_", " "), values=numeric, tickvals=ticks, tickformat=",d",
                        ticktext=[f"{t:,}" for t in ticks], range=[lo - 0.5, hi + 0.5] if lo == hi else None)
        return dict(label=label.replace("_", " "), values=numeric)
    text = values.map(_category_text)
    cats = sorted(set(text))
    codes = {c: i for i, c in enumerate(cats)}
    return dict(label=label.replace("_", " "), values=text.map(codes), tickvals=list(range(len(cats))),
                ticktext=cats, range=[-0.5, len(cats) - 0.5] if len(cats) == 1 else None)


def parallel_coordinates(runs_df: pd.DataFrame, dims: Sequence[str], color_metric: str,
                         height: int = 420) -> go.Figure:
    """One line per run through its hyperparameters `dims`, ending at and coloured by `color_metric`.

    Runs without a value for `color_metric` are left out. Accuracies are shown in percent.
    """
    if color_metric not in runs_df.columns:
        raise ValueError(f"unknown metric column {color_metric!r}")
    rows = runs_df[pd.to_numeric(runs_df[color_metric], errors="coerce").notna()]
    if rows.empty:
        return empty_figure(f"No run has a {color_metric.replace('_', ' ')} yet", height)
    metric = pd.to_numeric(rows[color_metric]).astype(float)
    if "accuracy" in color_metric:
        metric = metric * 100
    dimensions = [_dimension(rows[d].reset_index(drop=True), d) for d in dims if d in rows.columns]
    dimensions.append(dict(label=color_metric.replace("_", " ") + (" %" if "accuracy" in color_metric else ""),
                           values=metric.to_numpy()))
    dimensions = [{k: v for k, v in d.items() if v is not None} for d in dimensions]
    fig = go.Figure(go.Parcoords(
        line=dict(color=metric.to_numpy(), colorscale="Viridis", showscale=True,
                  colorbar=dict(title=dimensions[-1]["label"], thickness=12)),
        dimensions=dimensions, labelangle=0, labelside="top"))
    fig.update_layout(height=height, margin=dict(l=60, r=60, t=60, b=20))
    return fig


def probability_bars(probs: Sequence[float], highlight: int | None = None, height: int = 260,
                     title: str = "") -> go.Figure:
    """Ten bars, one per digit, with percentages; `highlight` (e.g. the prediction) stands out."""
    p = np.asarray(probs, dtype=float)
    if p.shape != (10,):
        raise ValueError(f"expected 10 probabilities, got shape {p.shape}")
    colours = [PALETTE[3] if d == highlight else "#9ecae1" for d in DIGITS]
    # Built from one dict, not with update_* calls: the same figure in a fifth of the time (Plotly
    # validates every property path of every update), and the Draw page builds one per answer.
    layout = {"xaxis": {"tickmode": "array", "tickvals": DIGITS, "title": {"text": "digit"}},
              "yaxis": {"range": [0, 1.12], "tickformat": ".0%", "title": {"text": "probability"}},
              "height": height, "margin": _MARGIN, "showlegend": False}
    if title:
        layout["title"] = {"text": title}
    return go.Figure({"data": [{"type": "bar", "x": DIGITS, "y": p, "marker": {"color": colours},
                                "text": [f"{v:.0%}" for v in p], "textposition": "outside", "cliponaxis": False,
                                "hovertemplate": "digit %{x}: %{y:.2%}<extra></extra>"}],
                      "layout": layout})


def conv_kernels(model: Any) -> np.ndarray | None:
    """The first Conv2D layer's kernels as (filters, k, k), averaged over input channels; None if none.

    Works on any Keras model through its public `layers` / `get_weights()` (no keras import here).
    """
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "Conv2D":
            weights = layer.get_weights()
            if not weights:
                return None
            kernel = np.asarray(weights[0], dtype=float)  # (k, k, in, filters)
            return kernel.mean(axis=2).transpose(2, 0, 1)
    return None


def kernel_images(kernels: np.ndarray, columns: int = 8, height: int | None = None) -> go.Figure:
    """A mosaic of first-layer kernels (filters, k, k): blue positive, red negative weights."""
    kernels = np.asarray(kernels, dtype=float)
    if kernels.ndim != 3 or kernels.shape[0] == 0:
        raise ValueError(f"expected kernels of shape (filters, k, k), got {kernels.shape}")
    n, kh, kw = kernels.shape
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    mosaic = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
    labels = np.full(mosaic.shape, "", dtype=object)
    for i, kernel in enumerate(kernels):
        r, c = divmod(i, cols)
        mosaic[r * (kh + 1): r * (kh + 1) + kh, c * (kw + 1): c * (kw + 1) + kw] = kernel
        labels[r * (kh + 1): r * (kh + 1) + kh, c * (kw + 1): c * (kw + 1) + kw] = f"filter {i + 1}"
    limit = float(np.nanmax(np.abs(mosaic))) or 1.0
    fig = go.Figure(go.Heatmap(z=mosaic, customdata=labels, colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
                               hovertemplate="%{customdata}: %{z:.3f}<extra></extra>",
                               colorbar=dict(title="weight", thickness=12)))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_layout(height=height or 60 + rows * 70, margin=_MARGIN)
    return fig


def digit_tiles(images: np.ndarray, scale: int = 3) -> list[np.ndarray]:
    """28×28 uint8 digits enlarged by `scale` with square pixels (no blur), for st.image."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    block = np.ones((scale, scale), dtype=np.uint8)
    return [np.kron(image.astype(np.uint8), block) for image in images]
