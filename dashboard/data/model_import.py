"""The Data page's model import: a `.keras` file trained elsewhere becomes a run, scored on the test set.

The same checks and steps as `python -m core import-model` (core.interop.models): safe_mode
loading, the size limit, a 28×28(×1) or 784 input and 10 outputs, a legacy `.h5` refused with
how to convert it. A refused file is one error line and nothing is written.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

from core.errors import DigitLabError
from core.interop.models import MAX_MODEL_BYTES, check_model, import_model
from dashboard import state
from dashboard.auth import require_editor
from dashboard.nav import page_link


def import_form() -> None:
    """File picker, optional name and Import button; on success a line with a link to the new run."""
    if done := st.session_state.pop("data_imported", None):
        run_id, name, accuracy = done
        st.success(f"Imported **{name}** as run `{run_id}`: {accuracy:.2%} on the test set. Draw on it, "
                   "compare it, or score it on the drawn set like any run.", icon=":material/check_circle:")
        page_link("run", "Open the imported run", {"run": run_id}, ":material/query_stats:")
    upload = st.file_uploader("Model file (.keras or a legacy .h5)", type=["keras", "h5"], key="data_model_file",
                              help=f"Saved with model.save('name.keras'); up to {MAX_MODEL_BYTES // 2**20} MB. "
                                   "Input 28×28(×1) or 784 values in [0, 1], 10 outputs.")
    name = st.text_input("Run name", key="data_model_name", placeholder="empty: the file's name")
    if st.button("Import", key="data_model_import", icon=":material/upload:", disabled=upload is None) \
            and require_editor("import a model"):
        try:
            with st.spinner("Loading and scoring the model on the test set…"):
                run_id = import_upload(upload.name, upload.getvalue(), name.strip() or None)
        except DigitLabError as exc:
            st.error(" ".join(str(exc).split()), icon=":material/error:")
        else:
            run = state.get_store().get_run(run_id)
            st.session_state["data_imported"] = (run_id, run.name, run.test_accuracy or 0.0)
            st.rerun()


def import_upload(filename: str, data: bytes, name: str | None = None) -> str:
    """Check and keep an uploaded model (its bytes, under its own name) as an imported run; its id."""
    stem = Path(filename).name  # the browser's name for the file, never a path
    with tempfile.TemporaryDirectory(prefix="digitlab-import-") as folder:
        path = Path(folder) / stem
        path.write_bytes(data)
        checked = check_model(path, state.data_path())
        return import_model(state.get_store(), checked, name=name or Path(stem).stem)
