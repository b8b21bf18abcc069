"""dashboard/plotly_json.py and the live panel's per-tick view: a viewer of a live run is sent the same
panel as before, but the panel's texts, figures and the figures' JSON are made once per tick for every
viewer; a Streamlit or Plotly that calls or takes to_json differently stops the page, naming both."""
from __future__ import annotations

import json
import types
from pathlib import Path

import plotly.graph_objects as go
import plotly.io
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import plotly_json, poll
from dashboard.state import LIVE_EVERY
from dashboard.train import curves, live
from tests.helpers import running_run

TRAIN = str(Path(__file__).resolve().parents[1] / "pages" / "train.py")


@pytest.fixture
def encodings(monkeypatch):
    """How many figures Plotly's own JSON encoder has turned into JSON."""
    import plotly.io._json as plotly_json_module
    count = types.SimpleNamespace(n=0)
    stock = plotly_json_module.to_json_plotly

    def counted(*args, **kwargs):
        count.n += 1
        return stock(*args, **kwargs)
    monkeypatch.setattr(plotly_json_module, "to_json_plotly", counted)
    return count


def _sent(at) -> list[str]:
    """The figures' JSON as the page sent it (dashboard/light_chart.py's component carries it in its data)."""
    return [json.loads(c.proto.json)["figure"] for c in at.get("bidi_component")]


def test_the_installed_streamlit_and_plotly_are_what_the_wrapper_relies_on():
    plotly_json.check()
    assert plotly_json.installed()  # dashboard.train.curves installs it on import


def test_viewers_of_one_tick_are_sent_json_made_once_and_equal_to_plotlys(app_env, frozen, encodings):
    run_id = running_run(app_env.store, app_env.data_path)
    first = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert not first.exception
    assert encodings.n == 2  # the tick's loss and accuracy figures, once each
    second = AppTest.from_file(TRAIN, default_timeout=60).run()
    assert not second.exception and encodings.n == 2  # a second viewer of the tick encodes nothing
    specs = [_sent(at) for at in (first, second)]
    assert specs[0] == specs[1] and len(specs[0]) == 2
    # what is sent is exactly what Plotly makes of the same figures' dicts, made afresh as for any figure
    view = poll.shared((app_env.store.url, "view", run_id), LIVE_EVERY, lambda: None)
    assert specs[0] == [plotly.io.to_json.stock(go.Figure.to_dict(f), validate=False) for f in view.figures]
    app_env.store.checkpoint(run_id, [(run_id, "batch", "loss", 4, 1, 0.4), (run_id, "batch", "accuracy", 4, 1, 0.5)],
                             step=4, steps_per_epoch=6)
    frozen.now += LIVE_EVERY
    before = encodings.n
    second.run()
    assert encodings.n == before + 2 and _sent(second)[0] != specs[0][0]  # the next tick: new curves
    assert "Batch 4 of 6" in [p.proto.text for p in second.get("progress")]
    assert [m.value for m in second.metric][:2] == ["0.4000", "50.00%"]  # the last batch row's values


def test_other_figures_and_other_arguments_get_plotlys_own_json():
    fig = curves.SharedFigure()
    fig.add_scatter(x=[0, 1], y=[2, 3])
    plain = go.Figure(fig)
    stock = plotly.io.to_json.stock
    assert plotly.io.to_json(plain, validate=False) == stock(plain, validate=False)
    kept = fig.to_dict()
    kept.__dict__[plotly_json.ATTR] = "kept"  # a stand-in, to see which calls it answers
    assert plotly.io.to_json(kept, validate=False) == "kept"
    assert plotly.io.to_json(kept, validate=False, pretty=True) == stock(plain, validate=False, pretty=True)
    assert plotly.io.to_json(kept) == stock(plain)
    assert plotly.io.to_json(fig, validate=False) == stock(plain, validate=False)
    assert plotly.io.to_json({"data": [], "layout": {}}, validate=False) == stock({"data": [], "layout": {}},
                                                                                   validate=False)


@pytest.mark.parametrize("change", ["streamlit calls it otherwise", "plotly takes other arguments",
                                    "plotly changed a default"])
def test_a_changed_streamlit_or_plotly_fails_loudly_naming_both_versions(change):
    class Mixin:
        def plotly_chart(self, figure):
            if change == "streamlit calls it otherwise":
                return plotly.io.to_json(figure, validate=True)
            return plotly.io.to_json(figure, validate=False)

    def other_args(fig, validate=True, pretty=False, engine=None):
        return ""

    def other_default(fig, validate=True, pretty=False, remove_uids=False, engine=None):
        return ""

    chart_module = types.SimpleNamespace(PlotlyMixin=Mixin)
    io = types.SimpleNamespace(to_json={"plotly takes other arguments": other_args,
                                        "plotly changed a default": other_default}.get(change, plotly.io.to_json))
    with pytest.raises(plotly_json.PlotlyJsonChanged, match=r"Streamlit \d+\.\d+.*Plotly \d+\.\d+.*plotly_json\.py"):
        plotly_json.check(chart_module, io)
    if change != "streamlit calls it otherwise":
        with pytest.raises(plotly_json.PlotlyJsonChanged):
            plotly_json.install(io)
        assert not plotly_json.installed(io)


def test_the_running_view_says_what_the_panel_said():
    import pandas as pd

    from core.store.schema import Run
    run = Run(id="r", name="r", architecture="mlp-128-64", status="running", config={}, epochs=2, step=6,
              steps_per_epoch=4, last_val_accuracy=0.5)
    rows = [("r", "batch", key, step, 2, v) for step in (5, 6) for key, v in (("loss", 1.0 / step), ("accuracy", 0.1 * step))]
    batches = pd.DataFrame(rows, columns=["run_id", "scope", "key", "step", "epoch", "value"])
    view = live.running_view(run, batches, batches.iloc[:0], left=72)
    assert view.overall == (0.75, "Epoch 2 of 2 · 75% of the training done")
    assert view.batch == (0.5, "Batch 2 of 4")
    assert (view.loss, view.accuracy, view.val_accuracy, view.left) == ("0.1667", "60.00%", "50.00%", "1 min 12 s")
    assert len(view.figures) == 2 and all(plotly_json.ATTR in f.to_dict().__dict__ for f in view.figures)
    starting = live.running_view(Run(id="r", name="r", architecture="a", status="running", config={}, epochs=2),
                                 batches.iloc[:0], batches.iloc[:0], left=None)
    assert starting.batch is None and starting.left == "estimating…" and starting.figures is None
