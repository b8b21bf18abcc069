"""Chart builders and table helpers: the right traces, shapes, gaps and numbers."""
import math

import numpy as np
import pandas as pd
import pytest

from dashboard import charts, run_list
from dashboard.compare import tables as compare_tables
from dashboard.run_detail.digits import gallery_digits
from dashboard.runs import table as runs_table


def _history(rows):
    """store.histories()-shaped rows from (run_id, key, epoch, value)."""
    return pd.DataFrame([(r, "epoch", k, e * 10, e, v, 0.0) for r, k, e, v in rows],
                        columns=["run_id", "scope", "key", "step", "epoch", "value", "ts"])


def test_metric_lines_one_trace_per_run_and_key_with_nan_gaps():
    history = _history([("a", "loss", 1, 0.9), ("a", "loss", 2, math.nan), ("a", "loss", 3, 0.5),
                        ("a", "val_loss", 1, 1.0), ("a", "accuracy", 1, 0.7)])
    fig = charts.metric_lines(history, ["loss", "val_loss"])
    assert [t.name for t in fig.data] == ["train loss", "validation loss"]
    loss = fig.data[0]
    assert list(loss.x) == [1, 2, 3] and loss.y[0] == 0.9 and math.isnan(loss.y[1]) and loss.y[2] == 0.5
    assert loss.connectgaps is False
    assert fig.layout.xaxis.title.text == "epoch"


def test_metric_lines_many_runs_colour_by_run_and_dash_validation():
    history = _history([("a", "loss", 1, 0.9), ("a", "val_loss", 1, 1.0), ("b", "loss", 1, 0.8),
                        ("b", "val_loss", 1, 0.7)])
    fig = charts.metric_lines(history, ["loss", "val_loss"], names={"a": "run A", "b": "run B"})
    assert [t.name for t in fig.data] == ["run A · train loss", "run A · validation loss",
                                          "run B · train loss", "run B · validation loss"]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color
    assert [t.line.dash for t in fig.data] == ["solid", "dash", "solid", "dash"]
    reordered = charts.metric_lines(history, ["loss"], names={"b": "run B", "a": "run A"})
    assert [t.name for t in reordered.data] == ["run B · train loss", "run A · train loss"]


def test_metric_lines_smoothing_keeps_a_faint_raw_line_and_gaps():
    history = _history([("a", "loss", e, v) for e, v in enumerate([1.0, 0.0, math.nan, 1.0], start=1)])
    fig = charts.metric_lines(history, ["loss"], smoothing=0.5)
    raw, smoothed = fig.data
    assert raw.showlegend is False and raw.opacity == 0.25
    assert smoothed.y[0] == pytest.approx(1.0)  # debiased: the first point is itself
    assert smoothed.y[1] == pytest.approx((0.25 + 0) / 0.75)
    assert math.isnan(smoothed.y[2])


def test_metric_lines_by_step_and_empty_history():
    history = _history([("a", "loss", 1, 0.9), ("a", "loss", 2, 0.5)])
    assert list(charts.metric_lines(history, ["loss"], x="step").data[0].x) == [10, 20]
    empty = charts.metric_lines(history.iloc[:0], ["loss"])
    assert not empty.data and empty.layout.annotations[0].text == "No values logged yet"
    with pytest.raises(ValueError):
        charts.metric_lines(history, ["loss"], x="time")


def test_smooth_rejects_bad_weight_and_keeps_zero_weight_values():
    np.testing.assert_array_equal(charts.smooth([1.0, 2.0], 0), [1.0, 2.0])
    with pytest.raises(ValueError):
        charts.smooth([1.0], 1.0)


def test_lr_curve_uses_a_log_axis():
    history = _history([("a", "learning_rate", e, 1e-3 * 0.9 ** e) for e in range(1, 4)] + [("a", "loss", 1, 1.0)])
    fig = charts.lr_curve(history)
    assert len(fig.data) == 1 and fig.layout.yaxis.type == "log"
    assert charts.lr_curve(history[history.key == "loss"]).layout.annotations[0].text.startswith("No learning rate")


def test_confusion_heatmap_counts_normalised_and_clickable():
    matrix = np.diag([5] * 10)
    matrix[3, 8] = 5  # half of the 3s read as 8
    fig = charts.confusion_heatmap(matrix.tolist())
    heat = fig.data[0]
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (10, 10) and heat.z[3][8] == 5
    assert heat.text[3][8] == "5" and list(fig.layout.yaxis.range) == [9.5, -0.5]  # 0 at the top
    norm = charts.confusion_heatmap(matrix, normalise=True).data[0]
    assert norm.z[3][8] == pytest.approx(0.5) and norm.z[0][0] == 1.0 and norm.text[3][8] == "50%"
    clickable = charts.confusion_heatmap(matrix, clickable=True)
    assert len(clickable.data) == 2 and clickable.data[1].type == "scatter" and len(clickable.data[1].x) == 100
    i = list(zip(clickable.data[1].y, clickable.data[1].x)).index((3, 8))
    assert clickable.data[1].text[i].startswith("true 3, predicted 8: 5 digits")
    cell = charts.confusion_heatmap(matrix, highlight=(3, 8)).layout.shapes[0]
    assert (cell.x0, cell.x1, cell.y0, cell.y1) == (7.5, 8.5, 2.5, 3.5)
    row = charts.confusion_heatmap(matrix, highlight=(3, None)).layout.shapes[0]
    assert (row.x0, row.x1, row.y0, row.y1) == (-0.5, 9.5, 2.5, 3.5)
    assert not charts.confusion_heatmap(matrix).layout.shapes
    with pytest.raises(ValueError):
        charts.confusion_heatmap([[1, 2], [3, 4]])


def test_confusion_heatmap_empty_row_is_zero_not_nan():
    matrix = np.zeros((10, 10), dtype=int)
    matrix[1, 1] = 3
    z = np.asarray(charts.confusion_heatmap(matrix, normalise=True).data[0].z)
    assert not np.isnan(z).any() and z[1, 1] == 1.0 and z[0].sum() == 0


def test_confusion_grid_one_figure_one_scale_square_cells():
    a, b = np.diag([10] * 10), np.diag([20] * 10)
    b[3, 5] = 4
    fig = charts.confusion_grid({"run a": a, "a much longer run name than fits above": b,
                                 "c": a, "d": a, "e": a, "f": a, "g": a}, columns=5)
    assert len(fig.data) == 7 and {t.type for t in fig.data} == {"heatmap"}
    assert {t.zmax for t in fig.data} == {20.0}  # one colour scale: counts compare across runs
    assert fig.data[1].text[3][5] == "4" and "true 3, predicted 5: 4 digits" in fig.data[1].customdata[3][5]
    titles = [a.text for a in fig.layout.annotations]
    assert "run a" in titles and any(t.endswith("…") and len(t) == 28 for t in titles)
    assert fig.layout.yaxis7.scaleanchor == "x7" and fig.layout.height == 2 * 250 + 40  # two rows
    shares = charts.confusion_grid({"x": b}, normalise=True).data[0]
    assert shares.zmax == 1 and shares.text[3][3] == "83%"
    assert charts.confusion_grid({"x": a, "y": b}).layout.height == 340 + 40  # few runs: bigger cells
    assert "No confusion matrices" in charts.confusion_grid({}).layout.annotations[0].text
    with pytest.raises(ValueError, match="10×10"):
        charts.confusion_grid({"bad": np.zeros((9, 10))})


def test_difference_heatmap_signs():
    a, b = np.diag([10] * 10), np.diag([10] * 10)
    a[4, 4], a[4, 9] = 7, 3   # A misreads three 4s as 9s
    b[7, 7], b[7, 1] = 8, 2   # B misreads two 7s as 1s
    fig = charts.difference_heatmap(a, b, ("new", "old"))
    heat = fig.data[0]
    assert heat.text[4][9] == "+3" and heat.text[7][1] == "-2" and heat.text[0][0] == ""
    assert heat.z[4][9] < 0 and heat.z[4][4] < 0  # worse: a new mistake, fewer correct
    assert heat.z[7][1] > 0 and heat.z[7][7] > 0  # better: a mistake fixed
    assert heat.zmid == 0 and fig.layout.title.text == "new − old"
    norm = charts.difference_heatmap(a, b, normalise=True).data[0]
    assert norm.text[4][9] == "+30.0"  # percentage points of the 4s row


def test_parallel_coordinates_dimensions_and_missing_metric():
    runs = pd.DataFrame({"learning_rate": [1e-2, 1e-3, 1e-4], "optimizer": ["adam", "sgd", "adam"],
                         "dropout": [None, 0.2, 0.5], "batch_size": [32, 64, 128],
                         "test_accuracy": [0.9, 0.95, None]})
    fig = charts.parallel_coordinates(runs, ["learning_rate", "optimizer", "dropout", "batch_size"], "test_accuracy")
    par = fig.data[0]
    assert par.type == "parcoords"
    labels = [d.label for d in par.dimensions]
    assert labels == ["learning rate (log)", "optimizer", "dropout", "batch size", "test accuracy %"]
    assert list(par.dimensions[0].values) == pytest.approx([-2, -3])  # the run without a result is left out
    assert list(par.dimensions[1].ticktext) == ["adam", "sgd"]
    assert list(par.dimensions[2].ticktext) == ["0.2", "default"]  # None = the preset's dropout
    assert list(par.line.color) == pytest.approx([90, 95])
    none = charts.parallel_coordinates(runs.assign(test_accuracy=None), ["batch_size"], "test_accuracy")
    assert not none.data and "No run has a test accuracy" in none.layout.annotations[0].text


def test_probability_bars_highlight():
    probs = [0.01] * 10
    probs[7] = 0.91
    fig = charts.probability_bars(probs, highlight=7)
    bar = fig.data[0]
    assert list(bar.x) == list(range(10)) and bar.text[7] == "91%"
    assert bar.marker.color[7] != bar.marker.color[0] and len(set(bar.marker.color)) == 2
    with pytest.raises(ValueError):
        charts.probability_bars([0.5, 0.5])


def test_kernel_images_mosaic_and_conv_kernels():
    kernels = np.arange(10 * 3 * 3, dtype=float).reshape(10, 3, 3) - 45
    fig = charts.kernel_images(kernels, columns=4)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3 * 4 - 1, 4 * 4 - 1)  # 3 rows × 4 columns of 3×3, 1-pixel gaps
    np.testing.assert_array_equal(z[0:3, 4:7], kernels[1])
    assert np.isnan(z[3]).all() and np.isnan(z[8:, 8:]).all()  # gaps and empty slots are blank

    class Conv2D:
        def get_weights(self):
            return [np.ones((3, 3, 2, 5)) * np.arange(5), np.zeros(5)]

    class Dense:
        def get_weights(self):
            raise AssertionError("only the first Conv2D is read")

    class Model:
        layers = [Conv2D(), Dense()]
    got = charts.conv_kernels(Model())
    assert got.shape == (5, 3, 3) and got[4, 0, 0] == 4
    assert charts.conv_kernels(type("M", (), {"layers": []})()) is None


def test_digit_tiles_are_square_pixels():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[0, 0] = 255
    (tile,) = charts.digit_tiles(image, scale=3)
    assert tile.shape == (84, 84) and tile[:3, :3].min() == 255 and tile[3:, 3:].max() == 0


def test_param_diff_keeps_only_differing_parameters():
    diff = compare_tables.param_diff({"A": {"lr": 0.1, "seed": 1, "layers": [{"type": "Flatten"}], "dropout": None},
                              "B": {"lr": 0.01, "seed": 1, "layers": [{"type": "Flatten"}], "dropout": 0.2}})
    # a Train-form field reads by its label; a key no field has (here "lr") keeps its stored name
    assert list(diff.index) == ["lr", "Dropout rate"] and list(diff.columns) == ["A", "B"]
    assert list(diff.loc["Dropout rate"]) == ["—", "0.2"]
    assert compare_tables.param_diff({"A": {"x": 1}, "B": {"x": 1}}).empty


def test_confusion_changes_lists_fixed_and_broken_mistakes():
    a, b = np.zeros((10, 10), int), np.zeros((10, 10), int)
    a[4, 9], b[7, 1], a[2, 2] = 3, 2, 50
    table = compare_tables.confusion_changes(a, b)
    assert list(table["mistake"]) == ["4 → 9", "7 → 1"]
    assert list(table["A − B"]) == [3, -2]
    assert list(table["in A"]) == ["more often (broke)", "less often (fixed)"]


def test_filter_and_sort_runs():
    runs = pd.DataFrame({"run_id": ["a1", "b2", "c3"], "name": ["Alpha", "beta", "Gamma"],
                         "status": ["completed", "failed", "completed"], "architecture": ["x", "y", "x"],
                         "group_name": [None, "g", "g"], "tags": [["t"], [], ["t", "u"]],
                         "test_accuracy": [0.5, None, 0.9], "created_at": [1.0, 2.0, 3.0]})
    assert list(runs_table.filter_runs(runs, statuses=["completed"], groups=["g"])["run_id"]) == ["c3"]
    assert list(runs_table.filter_runs(runs, tags=["u", "t"])["run_id"]) == ["a1", "c3"]
    assert list(runs_table.filter_runs(runs, search="ALP")["run_id"]) == ["a1"]
    assert list(runs_table.filter_runs(runs, search="b2")["run_id"]) == ["b2"]  # an id prefix
    assert list(runs_table.sort_runs(runs, "test accuracy")["run_id"]) == ["c3", "a1", "b2"]  # missing last
    assert list(runs_table.sort_runs(runs, "test accuracy", reverse=True)["run_id"]) == ["a1", "c3", "b2"]
    assert list(runs_table.sort_runs(runs, "name")["name"]) == ["Alpha", "beta", "Gamma"]
    assert runs_table.all_tags(runs) == ["t", "u"] and run_list.all_groups(runs) == ["g"]


def test_gallery_digits_checks_the_test_split(tiny_data, tmp_path):
    from core.data.dataset import load_dataset

    data = load_dataset(tiny_data)
    images, why = gallery_digits(tiny_data, [3, 0], data.y_test[[3, 0]])
    assert why == "" and np.array_equal(images, data.x_test[[3, 0]])
    wrong_labels = (data.y_test[[3, 0]] + 1) % 10  # a re-ingested dataset: same indices, other digits
    images, why = gallery_digits(tiny_data, [3, 0], wrong_labels)
    assert images is None and "not the one this run was evaluated on" in why
    images, why = gallery_digits(tiny_data, [len(data.y_test)], [0])
    assert images is None
    images, why = gallery_digits(tmp_path / "missing.h5", [0], [0])
    assert images is None and why.startswith("The test digits cannot be shown")


def test_compare_reads_like_the_other_pages_percent_accuracy_whole_number_axes():
    import pandas as pd

    from dashboard.charts import metric_lines, parallel_coordinates

    history = pd.DataFrame([("a", "epoch", key, e, e, v) for e in (1, 2) for key, v in
                            (("accuracy", 0.8), ("val_accuracy", 0.85), ("loss", 0.5))],
                           columns=["run_id", "scope", "key", "step", "epoch", "value"])
    assert metric_lines(history, ["accuracy", "val_accuracy"]).layout.yaxis.tickformat == ".0%"
    assert metric_lines(history, ["loss"]).layout.yaxis.tickformat is None
    runs = pd.DataFrame({"train_limit": [2000, None, 5000], "batch_size": [32, 64, 128],
                         "test_accuracy": [0.9, 0.91, 0.92]})
    dims = parallel_coordinates(runs, ["train_limit", "batch_size"], "test_accuracy").data[0].dimensions
    assert list(dims[0].ticktext) == ["2000", "5000", "default"]  # not "2000.0"
    assert dims[1].tickformat == ",d"


def test_a_whole_number_axis_repeats_no_tick_label():
    """Issue 27, item 12: 'epochs planned' between 2 and 3 read 3, 3, 3, 2, 2, 2 (ticks at 2.2, 2.4 … rounded)."""
    runs = pd.DataFrame({"epochs": [2, 3, 3, 2], "seed": list(range(0, 400, 100)), "wide": [1, 50, 100, 7],
                         "test_accuracy": [0.9, 0.91, 0.92, 0.93]})
    dims = charts.parallel_coordinates(runs, ["epochs", "seed", "wide"], "test_accuracy").data[0].dimensions
    assert list(dims[0].tickvals) == [2, 3] and list(dims[0].ticktext) == ["2", "3"]
    for dim in dims[:3]:
        assert len(set(dim.ticktext)) == len(dim.ticktext)
        assert all(float(t) == int(t) for t in dim.tickvals)
    same = charts.parallel_coordinates(runs.assign(epochs=3), ["epochs"], "test_accuracy").data[0].dimensions[0]
    assert list(same.ticktext) == ["3"]


def test_a_cancelled_runs_partial_epoch_is_not_plotted():
    import pandas as pd

    from dashboard.charts import complete_epochs

    # 10 steps per epoch; cancelled at step 14, and Keras still ended epoch 2 (with a validation pass)
    rows = pd.DataFrame([("a", "epoch", "val_accuracy", 10, 1, 0.8), ("a", "epoch", "val_accuracy", 14, 2, 0.7),
                         ("b", "epoch", "val_accuracy", 20, 1, 0.9)],
                        columns=["run_id", "scope", "key", "step", "epoch", "value"])
    assert complete_epochs(rows, 10)["epoch"].tolist() == [1, 1]
    assert complete_epochs(rows, {"a": 10, "b": 20})[["run_id", "epoch"]].values.tolist() == [["a", 1], ["b", 1]]
    assert len(complete_epochs(rows, {"a": None})) == 3  # unknown: kept


def test_history_best_so_far_runs_to_the_last_trial_and_ticks_are_whole_trials():
    from dashboard.study import charts as study_charts
    table = pd.DataFrame({"trial": [3, 0, 1, 2, 4], "run_id": list("dabce"), "name": list("dabce"),
                          "status": ["pruned", "pruned", "completed", "completed", "running"],
                          "value": [0.97, 0.5, 0.8, 0.9, None]})
    fig = study_charts.history_chart(table, "val_accuracy", "maximize")
    best = next(t for t in fig.data if t.name == "best so far")
    assert list(best.x) == [1, 2, 3] and list(best.y) == pytest.approx([80, 90, 90])  # a pruned value is never the best
    assert fig.layout.yaxis.title.text == "validation accuracy (%)"  # in percent, as on every page (issue 27)
    assert fig.layout.xaxis.dtick == 1 and fig.layout.xaxis.tickmode == "linear"
    low = study_charts.history_chart(table.assign(value=[0.1, 0.9, 0.5, 0.7, None]), "val_loss", "minimize")
    assert list(next(t for t in low.data if t.name == "best so far").y) == [0.5, 0.5, 0.5]
    many = pd.DataFrame({"trial": range(120), "run_id": range(120), "name": range(120),
                         "status": "completed", "value": np.linspace(0.1, 0.9, 120)})
    assert study_charts.history_chart(many, "val_accuracy", "maximize").layout.xaxis.dtick == 12


def test_band_lines_mean_band_members_and_hover_n():
    """Compare's group histories (issue 24): a mean with its band (std, sem or min–max edges), N on
    hover, members as thin lines; one epoch carries its band as an error bar."""
    from core.search.repeats import history_band
    from dashboard.compare.charts import band_edges, band_lines

    rows = pd.DataFrame({"run_id": ["a", "a", "b", "b", "c"], "key": "val_accuracy", "epoch": [1, 2, 1, 2, 1],
                         "step": 0, "value": [0.80, 0.90, 0.84, 0.94, 0.82]})
    band = history_band(rows)
    assert band["n"].tolist() == [3, 2]
    low, high = band_edges(band[band["epoch"] == 1], "range")
    assert (low[0], high[0]) == (0.80, 0.84)
    low, high = band_edges(band[band["epoch"] == 1], "std")
    assert high[0] - 0.82 == pytest.approx(0.02)
    fig = band_lines({"A": band}, ["val_accuracy"], "sem", members={"A": rows})
    fills = [t for t in fig.data if t.fill == "tonexty"]
    members = [t for t in fig.data if t.opacity == 0.45]
    mean = next(t for t in fig.data if t.customdata is not None)
    assert len(fills) == 1 and len(members) == 3 and list(mean.customdata) == [3, 2]
    assert "N = %{customdata}" in mean.hovertemplate and mean.line.dash == "dash"
    one = band_lines({"A": band[band["epoch"] == 1]}, ["val_accuracy"], "range")
    bar = next(t for t in one.data if t.customdata is not None).error_y
    assert bar.array[0] == pytest.approx(0.02) and bar.arrayminus[0] == pytest.approx(0.02)
    with pytest.raises(ValueError):
        band_edges(band, "iqr")
    assert band_lines({"A": band.head(0)}, ["accuracy"]).layout.annotations  # "No values logged yet"


def test_confusion_changes_as_rates_when_test_sets_differ():
    """Issue 27, item 4: mistakes as shares of each true digit, not raw counts, across test sizes."""
    a = np.diag([90] * 10)
    a[3, 5] = 10  # 10 of 100 threes read as 5
    b = np.diag([9] * 10)
    b[3, 5] = 1   # 1 of 10 threes read as 5: the same rate
    b[7, 1] = 1   # 1 of 10 sevens read as 1: a new mistake
    table = compare_tables.confusion_changes(a, b, rates=True)
    assert list(table.columns) == ["mistake", "A %", "B %", "A − B (points)", "in A"]
    assert table["mistake"].tolist() == ["7 → 1"]  # 3 → 5 is 10 % in both: no change
    assert table.iloc[0]["B %"] == 10.0 and table.iloc[0]["in A"] == "less often (fixed)"
