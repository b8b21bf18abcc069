"""Digit Lab's engine: data, architectures, config, store, training, worker, preprocessing and inference, CLI.

Importing `core` stays light: it never imports streamlit or plotly, and TensorFlow is
imported only inside the functions that build, fit or load a model.
"""
import os

# TensorFlow prints info lines on import; keep the CLI and the dashboard quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
