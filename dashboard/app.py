"""Digit Lab dashboard: `python -m streamlit run dashboard/app.py [-- --db URL --data PATH]`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `import core` works under streamlit run

import streamlit as st

from dashboard import auth, background, nav, plotly_json, script_cleanup

script_cleanup.install()  # no rerun pays for Keras' clear_session (fails at start-up if Streamlit changed)
plotly_json.install()     # a live chart is encoded once per tick, not per viewer (fails at start-up likewise)
st.set_page_config(page_title="Digit Lab", page_icon="✍️", layout="wide")
auth.gate()
page = st.navigation(nav.navigation_pages())
background.startup()
background.warm_up_status()  # Keras, a worker and the default model load in the background from the first visit
page.run()
