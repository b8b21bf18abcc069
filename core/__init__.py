"""Digit Lab's engine: data, architectures, config, store, training, worker, preprocessing and inference, CLI.

Importing `core` stays light: it never imports streamlit or plotly, and TensorFlow is
imported only inside the functions that build, fit or load a model.

TensorFlow runs with its own defaults, oneDNN included: oneDNN trains the conv presets with about
1.7x less CPU and is what computes bfloat16 natively (core.model.execution records it with each
run; TF_ENABLE_ONEDNN_OPTS=0 turns it off for anyone who wants TensorFlow's plain kernels). With
oneDNN on, TensorFlow prints a notice on import that TF_CPP_MIN_LOG_LEVEL does not silence;
`_QuietTensorFlowImport` keeps it out of the CLI, the worker and the dashboard.
"""
import importlib.abc
import importlib.util
import os
import sys
import tempfile
import threading

# TensorFlow prints info lines on import; keep the CLI and the dashboard quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

__version__ = "0.1.0"

# Lines TensorFlow's C++ side writes to stderr while it loads, before its logging is set up.
IMPORT_NOISE = ("All log messages before absl::InitializeLog() is called are written to STDERR",
                "oneDNN custom operations are on")


class _QuietLoader(importlib.abc.Loader):
    """Runs the real `tensorflow` loader with fd 2 pointed at a temporary file, then writes back to
    stderr everything written meanwhile (by any thread) except IMPORT_NOISE: nothing else is lost."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # is_package, get_source, get_resource_reader…: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with tempfile.TemporaryFile() as held:
            sys.stderr.flush()
            saved = os.dup(2)
            os.dup2(held.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                held.seek(0)
                kept = [line for line in held.read().splitlines(keepends=True)
                        if not any(noise.encode() in line for noise in IMPORT_NOISE)]
                if kept:
                    os.write(2, b"".join(kept))


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` through the normal finders and hands it a _QuietLoader (once per process)."""

    def __init__(self):
        self.lock = threading.Lock()

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow" or not self.lock.acquire(blocking=False):
            return None
        try:
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
        finally:
            self.lock.release()
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())
