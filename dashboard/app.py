"""Digit Lab dashboard: `python -m streamlit run dashboard/app.py [-- --db URL --data PATH]`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `import core` works under streamlit run

import streamlit as st

from dashboard import auth, state

st.set_page_config(page_title="Digit Lab", page_icon="✍️", layout="wide")
auth.gate()
PAGES = [
    st.Page("../pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("../pages/runs.py", title="Runs", icon=":material/table_rows:"),
    st.Page("../pages/run_detail.py", title="Run detail", icon=":material/query_stats:", url_path="run"),
    st.Page("../pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("../pages/study.py", title="Study", icon=":material/science:", url_path="study"),
    st.Page("../pages/draw.py", title="Draw", icon=":material/draw:"),
    st.Page("../pages/data.py", title="Data", icon=":material/dataset:"),
]
page = st.navigation(PAGES)
state.startup()
state.warm_up_status()  # Keras, a worker and the default model load in the background from the first visit
page.run()
