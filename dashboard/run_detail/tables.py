"""The Run detail page's tables: the per-digit report, the stored config and the model summary."""
from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from core.config import TrainConfig
from core.model.architectures import describe
from dashboard.format import param_text


def report_table(report: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Per-digit precision, recall, F1 (in %) and support from an Evaluation's report."""
    rows = [{"digit": int(d), "precision %": 100 * r["precision"], "recall %": 100 * r["recall"],
             "F1 %": 100 * r["f1"], "support": int(r["support"])}
            for d, r in sorted(report.items(), key=lambda kv: int(kv[0]))]
    return pd.DataFrame(rows, columns=["digit", "precision %", "recall %", "F1 %", "support"])


def config_table(config: Mapping[str, Any]) -> pd.DataFrame:
    """A run's stored config as (parameter, value) text rows; lists such as layers as compact JSON."""
    rows = [(k, param_text(v)) for k, v in config.items() if not (k == "layers" and not v)]  # a preset's: none
    return pd.DataFrame(rows, columns=["parameter", "value"])


def layer_table(config: TrainConfig) -> pd.DataFrame:
    """The model summary (layer, output shape, parameters) from core.model.architectures.describe."""
    rows = [{"layer": r.name, "output shape": "(" + ", ".join(map(str, r.output_shape)) + ")",
             "parameters": r.params, "note": r.note} for r in describe(config.hidden_layers())]
    if config.augment:
        rows.insert(1, {"layer": "RandomRotation · RandomTranslation · RandomZoom",
                        "output shape": "(28, 28, 1)", "parameters": 0, "note": "augmentation, training only"})
    if config.elastic:
        rows.insert(1, {"layer": "ElasticDistortion", "output shape": "(28, 28, 1)", "parameters": 0,
                        "note": "elastic distortion, training only"})
    return pd.DataFrame(rows)
