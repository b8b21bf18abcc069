"""Digit Lab's Streamlit dashboard: entry point, shared UI helpers, charts and state."""
