"""The Run detail page's sections: header, live summary and curves, test evaluation (confusion
matrix, per-class report, misclassified gallery) and the model (layers, kernels, files, script)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.config import TrainConfig
from core.model.execution import describe as describe_plan
from core.train.script import keras_script, script_file_name
from core.store.schema import MODEL_FILE, Run, RunNotFound
from core.store.facade import RunStore
from dashboard import charts, light_chart, state
from dashboard.format import dataset_label, duration_text, status_badge
from dashboard.nav import page_link
from dashboard.run_detail.digits import gallery_digits
from dashboard.run_detail.kernels import first_layer_kernels
from dashboard.run_detail.tables import config_table, layer_table, report_table

LIVE = ("queued", "running")
GALLERY = 48  # misclassified digits shown at once


def header(run: Run) -> None:
    """Name, status, group, tags, note, links (fork, compare with parent) and any error."""
    st.subheader(run.name)
    facts = [status_badge(run.status), run.architecture, f"id `{run.id}`"]
    facts += [f"group **{run.group_name}**"] if run.group_name else []
    facts += [f"tags: {', '.join(run.tags)}"] if run.tags else []
    st.markdown(" · ".join(facts))
    st.caption(dataset_caption(run))
    if (run.dataset or {}).get("execution"):
        st.caption(execution_caption(run))
    if run.note:
        st.markdown(f"> {run.note}")
    links = st.columns(3)
    with links[0]:
        page_link("train", "Fork this run", {"fork": run.id}, ":material/call_split:")
    if run.parent_id:
        with links[1]:
            page_link("compare", "Compare with its parent", {"runs": f"{run.parent_id},{run.id}"},
                             ":material/compare_arrows:")
    if run.status in ("failed", "interrupted") and run.error:
        st.error(f"The run {run.status}: {run.error.splitlines()[0]}")
        with st.expander("Error details"):
            st.code(run.error, language=None)
    elif run.status == "queued":
        st.info("Queued: a worker will start it soon. This page updates by itself.")


def dataset_caption(run: Run) -> str:
    """The data that trained the run, and how many digits it fit on and validated with."""
    d = run.dataset
    if not d:
        return ("Dataset: not recorded yet (it is when training starts)" if run.status in LIVE
                else "Dataset: not recorded (trained before runs recorded their dataset)")
    used = (f" · fit on {d['n_fit']:,}, validated on {d.get('n_val', 0):,}" if d.get("n_fit") else "")
    source = f" · from {d['source']}" if d.get("source") else ""
    return f"Dataset: {dataset_label(d)}{used}{source}"


def execution_caption(run: Run) -> str:
    """How the run trained on its machine (core.model.execution's plan) and why that plan."""
    plan = run.dataset["execution"]
    return f"Execution: {describe_plan(plan)}" + (f" ({plan['reason']})" if plan.get("reason") else "")


def _pct(value):
    return "—" if value is None or pd.isna(value) else f"{100 * value:.2f}%"


def summary(current) -> None:
    cols = st.columns(6)
    best_at = f"epoch {current.best_val_epoch}" if current.best_val_epoch else None
    last_at = f"epoch {current.last_val_epoch}" if current.last_val_epoch else None
    cols[0].metric("Best val accuracy", _pct(current.best_val_accuracy), best_at, delta_color="off", delta_arrow="off")
    cols[1].metric("Last val accuracy", _pct(current.last_val_accuracy), last_at, delta_color="off", delta_arrow="off")
    cols[2].metric("Test accuracy", _pct(current.test_accuracy))
    cols[3].metric("Drawn-set accuracy", _pct(current.drawn_accuracy))
    cols[4].metric("Duration", duration_text(current.duration))
    cols[5].metric("Parameters", "—" if current.n_params is None else f"{current.n_params:,}")


def live_section(store: RunStore, run: Run) -> None:
    """Summary figures and training curves; the page runs it as a fragment refreshing every 2 s while live."""
    try:  # read again on every rerun of this section (a click on its controls too): it may be gone
        current = store.get_run(run.id)
    except RunNotFound:
        st.rerun()  # deleted elsewhere: the whole page says so, not empty curves
    if run.status in LIVE and current.status not in LIVE:
        st.rerun()  # it just finished: redraw the whole page with its evaluation and model
    summary(current)
    if current.status == "running" and current.epochs:
        done = min(1.0, current.step / max(1, (current.steps_per_epoch or 1) * current.epochs))
        st.progress(done, text=f"epoch {current.epoch} of {current.epochs} done · step {current.step:,}")
    st.markdown("#### Training curves")
    c1, c2 = st.columns([1, 2])
    level = c1.segmented_control("Level", ["epoch", "batch"], default="batch" if run.status in LIVE else "epoch",
                                 key="detail_level", required=True,
                                 help="batch: running means within each epoch, sampled during training") or "epoch"
    smoothing = c2.slider("Smoothing", 0.0, 0.95, 0.0, 0.05, key="detail_smoothing",
                          help="exponential moving average; the raw values stay as a faint line")
    epochs = charts.complete_epochs(store.metric_history(run.id, "epoch"), current.steps_per_epoch)
    if level == "batch":  # train running means by step, with validation at each epoch's last step
        history = pd.concat([store.metric_history(run.id, "batch"), epochs[epochs["key"].str.startswith("val_")]])
    else:
        history = epochs
    left, right = st.columns(2)
    for column, metric in ((left, "loss"), (right, "accuracy")):
        fig = charts.metric_lines(history, [metric, f"val_{metric}"], smoothing, x="step" if level == "batch" else "epoch",
                                  title=metric.capitalize())
        with column:
            light_chart.plotly_chart(fig, key=f"detail_{metric}_chart")
    light_chart.plotly_chart(charts.lr_curve(epochs), key="detail_lr_chart")


def evaluation(store: RunStore, run: Run) -> None:
    """The test confusion matrix (click a cell to filter the gallery), per-class report, mistakes."""
    st.markdown("#### Test evaluation")
    evaluation = store.evaluation(run.id)
    if evaluation is None:
        st.info("The test evaluation appears here when the run completes.")
    else:
        st.caption(f"{evaluation.n:,} test digits · accuracy {_pct(evaluation.accuracy)} · loss "
                   + ("—" if evaluation.loss is None else f"{evaluation.loss:.4f}"))
        normalise = st.toggle("Row-normalised (share of each true digit)", key="detail_normalise")
        left, right = st.columns([3, 2])
        with left:
            chosen = (st.session_state.get("detail_true"), st.session_state.get("detail_pred"))
            matrix = charts.confusion_heatmap(evaluation.confusion, normalise, clickable=True, highlight=chosen)
            event = light_chart.plotly_chart(matrix, key="detail_confusion", select=True)
        right.dataframe(report_table(evaluation.report), hide_index=True, key="detail_report",
                        column_config={c: st.column_config.NumberColumn(format="%.1f")
                                       for c in ("precision %", "recall %", "F1 %")})
        points = ((event or {}).get("selection") or {}).get("points") or []
        click = (int(points[-1]["y"]), int(points[-1]["x"])) if points else None
        if click is None:  # deselected: clicking that cell again must count as a new click
            st.session_state.pop("detail_last_click", None)
        elif click != st.session_state.get("detail_last_click"):  # a new click picks the gallery cell
            st.session_state["detail_last_click"] = click
            st.session_state["detail_true"], st.session_state["detail_pred"] = click
            st.rerun()  # redraw the matrix with the cell outlined

        st.markdown("##### Misclassified test digits")
        st.caption("Click a cell of the matrix, or choose below, to see those mistakes (most confident first).")
        choices = [None, *range(10)]
        g1, g2, _ = st.columns([1, 1, 2])
        true = g1.selectbox("True digit", choices, key="detail_true", format_func=lambda d: "any" if d is None else str(d))
        pred = g2.selectbox("Predicted", choices, key="detail_pred", format_func=lambda d: "any" if d is None else str(d))
        wrong = store.misclassified(run.id, true, pred, limit=GALLERY)
        if true is not None and true == pred:
            st.info("That cell holds the correctly classified digits; pick a cell off the diagonal.")
        elif wrong.empty:
            st.info("No misclassified test digits of that kind.")
        else:
            images, why = gallery_digits(state.data_path(), wrong["idx"], wrong["true_label"])
            if images is None:
                st.warning(why)
            else:
                st.image(charts.digit_tiles(images), width=84,
                         caption=[f"{t}→{p} · {c:.0%}" for t, p, c in
                                  zip(wrong["true_label"], wrong["pred_label"], wrong["confidence"])])
                total = mistakes_of_kind(evaluation.confusion, true, pred)
                shown = (f"all {len(wrong)}" if total is None or total <= len(wrong)
                         else f"the {len(wrong)} most confident of {total:,}")
                st.caption(f"Showing {shown} such mistakes (true → predicted · confidence).")


def mistakes_of_kind(confusion: list[list[int]] | None, true: int | None, pred: int | None) -> int | None:
    """How many test digits the confusion matrix counts as misread with this true and predicted
    digit (None: any); None without a 10 x 10 matrix."""
    if not confusion or len(confusion) != 10:
        return None
    return sum(int(n) for t, row in enumerate(confusion) for p, n in enumerate(row)
               if t != p and true in (None, t) and pred in (None, p))


def model(store: RunStore, run: Run, config: TrainConfig | None) -> None:
    """Layer table, first-layer kernels (conv models), model download, resolved config, Keras script."""
    st.markdown("#### Model")
    stored_model = store.artifact(run.id, MODEL_FILE)  # in the store: downloadable from any machine
    if config is not None:
        st.dataframe(layer_table(config), hide_index=True, placeholder="—", key="detail_layers",
                     column_config={"layer": st.column_config.TextColumn(width="large"),
                                    "note": st.column_config.TextColumn(width="medium"),
                                    "parameters": st.column_config.NumberColumn(format="localized")})
    kernel_box = st.container()  # filled last: reading the model file is the slowest part
    if stored_model is not None:
        st.download_button(f"Download {MODEL_FILE} ({stored_model.size / 1e6:.1f} MB)",
                           lambda: store.artifact_file(run.id, MODEL_FILE).read_bytes(), file_name=f"{run.id}.keras",
                           mime="application/octet-stream", key="detail_download_model", icon=":material/download:",
                           on_click="ignore")
    else:
        st.caption("No model file in the store: " + ("it was removed or never saved." if run.status == "completed"
                                        else f"the run is {run.status}; completed runs save one."))
    with st.expander("Config (the resolved hyperparameters)"):
        st.dataframe(config_table(run.config), hide_index=True, key="detail_params", placeholder="—")
    if config is not None:
        with st.expander("Equivalent standalone Keras script"):
            script = keras_script(config, run.dataset)
            st.download_button("Download script", script, file_name=script_file_name(config), mime="text/x-python",
                               key="detail_download_script", on_click="ignore")
            st.code(script, language="python")

    if config is not None and any(layer["type"] == "Conv2D" for layer in config.hidden_layers()):
        with kernel_box:
            if run.status not in ("completed", "pruned"):
                st.caption("First-layer kernels appear here when the run completes.")
            else:
                with st.spinner("Reading the kernels…"):
                    kernels, why = first_layer_kernels(store, run.id)
                if kernels is None:
                    st.warning(why)
                else:
                    light_chart.plotly_chart(charts.kernel_images(kernels), key="detail_kernels")
                    st.caption(f"The {len(kernels)} kernels of the first Conv2D layer (blue: positive weights, "
                               "red: negative): the strokes and edges it looks for.")
