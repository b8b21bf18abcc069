"""Models from elsewhere: check a Keras model's shape, score it on the test set and keep it as a finished run.

The same steps serve a `.keras` file imported with `python -m core import-model` and a model
tracked by `core.track.DigitLabCallback`: once stored (model artifact + test evaluation), the
run works on Draw, predict and Compare like one trained here. Files are read only through
`core.predict.inference.load_model`, which uses Keras' safe_mode.
"""
from __future__ import annotations

import json
import logging
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DigitLabError
from core.predict.inference import load_model, predict_probabilities, score
from core.store.facade import RunStore
from core.store.schema import MODEL_FILE

log = logging.getLogger("core.interop")

MAX_MODEL_BYTES = 200 * 1024 * 1024  # a model file bigger than this is refused (MNIST models are a few MB)
MAX_MISCLASSIFIED = 2000             # as many mistakes as a run trained here keeps
INPUT_SHAPES = ((28, 28), (28, 28, 1), (784,))
H5_HINT = ("convert it with the Keras that wrote it: keras.models.load_model('model.h5').save('model.keras'), "
           "then import the .keras file")
# The Digit Lab layer types a Keras layer maps to, and the fields each keeps (core.model.architectures).
LAYER_FIELDS = {"Dense": ("units", "activation"), "Conv2D": ("filters", "kernel_size", "activation"),
                "MaxPooling2D": ("pool_size",), "Dropout": ("rate",), "BatchNormalization": (),
                "Flatten": (), "Activation": ("activation",)}


class InteropError(DigitLabError):
    """A model, log folder or tracking URI that cannot be brought in or out: one line, nothing written."""


def check_file(path: str | Path) -> Path:
    """A readable `.keras` file within the size limit, else InteropError naming the problem."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InteropError(f"no model file at {path}")
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise InteropError(f"{path.name} is a legacy HDF5 model, which Digit Lab does not load", hint=H5_HINT)
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise InteropError(f"{path.name} is {size / 2**20:.0f} MB; models up to {MAX_MODEL_BYTES // 2**20} MB "
                           f"are imported")
    if not zipfile.is_zipfile(path):
        raise InteropError(f"{path.name} is not a Keras model (a .keras file is a zip archive "
                           f"written by model.save('name.keras'))")
    return path


def check_shape(model: Any, label: str = "the model") -> None:
    """The input must be 28×28, 28×28×1 or 784 values, the output 10 classes; else InteropError."""
    inputs, outputs = list(getattr(model, "inputs", None) or []), list(getattr(model, "outputs", None) or [])
    if len(inputs) != 1 or len(outputs) != 1:
        raise InteropError(f"{label} has {len(inputs)} inputs and {len(outputs)} outputs; "
                           f"a digit classifier has one of each")
    shape_in = tuple(inputs[0].shape)[1:]
    shape_out = tuple(outputs[0].shape)[1:]
    if shape_in not in INPUT_SHAPES:
        raise InteropError(f"{label} takes input of shape {shape_in}; Digit Lab feeds "
                           f"28×28 images: (28, 28), (28, 28, 1) or (784,)")
    if shape_out != (10,):
        raise InteropError(f"{label} outputs shape {shape_out}; a digit classifier outputs 10 class scores, (10,)")


def test_split(data_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The test images (N, 28, 28) in [0, 1] and their labels (DataError when the dataset is missing)."""
    from core.data.dataset import load_dataset
    data = load_dataset(data_path)
    return data.x_test.astype("float32") / 255.0, data.y_test.astype("int64")


def evaluate(model: Any, x: np.ndarray, y: np.ndarray) -> dict:
    """Accuracy, loss, confusion, report and the most confident mistakes, as a run trained here stores them.

    The images go through predict_probabilities, which shapes them for the model's input (and
    softmaxes logits): exactly how Draw and predict will feed it.
    """
    probs = predict_probabilities(model, x)
    pred, conf = probs.argmax(axis=1), probs.max(axis=1)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-conf[wrong])][:MAX_MISCLASSIFIED]
    return {**score(probs, y), "wrong": np.flatnonzero(pred != y).tolist(),  # every mistake, for McNemar
            "misclassified": [(int(i), int(y[i]), int(pred[i]), float(conf[i])) for i in wrong]}


def layer_stack(model: Any) -> list[dict] | None:
    """The model's layers as Digit Lab layer dicts (see stack_of)."""
    return stack_of((type(layer).__name__, layer.get_config()) for layer in getattr(model, "layers", []))


def stack_of(layers) -> list[dict] | None:
    """(class name, layer config) pairs as Digit Lab layer dicts, the last Dense(10) left out as the presets
    do; None when a layer has no Digit Lab counterpart (then the stack shows as unknown, not guessed)."""
    stack = []
    for kind, cfg in layers:
        if kind == "InputLayer":
            continue
        if kind not in LAYER_FIELDS:
            return None
        entry = {"type": kind}
        for key in LAYER_FIELDS[kind]:
            value = cfg.get(key)
            value = value[0] if isinstance(value, (list, tuple)) else value
            if key == "activation" and value == "linear" or value is None:
                continue
            entry[{"kernel_size": "kernel", "pool_size": "pool"}.get(key, key)] = value
        stack.append(entry)
    if stack and stack[-1].get("type") == "Dense" and stack[-1].get("units") == 10:
        stack.pop()
    return stack


def declared_config(spec: dict) -> dict:
    """Optimizer, learning rate and layer stack as a Keras model's JSON declares them (a .keras file's
    config.json, or the "keras" summary TensorBoard's callback writes); what it does not say is left out."""
    out: dict[str, Any] = {}
    opt = (spec.get("compile_config") or {}).get("optimizer")
    if isinstance(opt, dict) and opt.get("class_name"):
        out["optimizer"] = opt["class_name"].lower()
        rate = (opt.get("config") or {}).get("learning_rate")
        if isinstance(rate, (int, float)):
            out["learning_rate"] = float(rate)
    elif isinstance(opt, str):  # compiled with optimizer="adam"
        out["optimizer"] = opt.lower()
    layers = (spec.get("config") or {}).get("layers")
    if isinstance(layers, list):
        stack = stack_of((layer.get("class_name"), layer.get("config") or {}) for layer in layers)
        if stack is not None:
            out.update(architecture="custom", layers=stack)
    return out


def file_config(path: Path) -> dict:
    """declared_config of a .keras file (its config.json): a model loaded with compile=False forgets its optimizer."""
    try:
        with zipfile.ZipFile(path) as archive:
            return declared_config(json.loads(archive.read("config.json")))
    except Exception:  # no readable config.json: load_model has already said what is wrong, or it loads anyway
        log.warning("%s: its config.json could not be read; the optimizer shows as unknown", path, exc_info=True)
        return {}


def model_config(model: Any, epochs: int | None = None, batch_size: int | None = None) -> dict:
    """What can be read of a model's training config; what cannot is None (shown as "—"), never a guess.

    Only TrainConfig's fields, so TrainConfig.from_dict keeps reading it; where the run came
    from is the run's `source` ("tracked" / "imported"), apart from the config.
    """
    optimizer = getattr(model, "optimizer", None)
    name = type(optimizer).__name__.lower() if optimizer is not None else None
    lr = None
    if optimizer is not None:
        try:
            import keras
            lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        except Exception:  # a schedule or a missing rate: unknown, shown as "—"
            lr = None
    stack = layer_stack(model)
    return {"architecture": "custom" if stack is not None else "external", "layers": stack or [],
            "optimizer": name, "learning_rate": lr, "batch_size": batch_size, "epochs": epochs,
            "dropout": None, "activation": None, "validation_split": None, "seed": None,
            "early_stopping": None, "lr_schedule": None, "train_limit": None, "augment": None,
            "elastic": None, "name": ""}


def save_model_file(store: RunStore, run_id: str, model: Any) -> Path:
    """The model saved to the run's artifacts folder (core.train.run.save_model: atomic, no partial file)."""
    from core.train.run import save_model
    return save_model(store, run_id, model)


def complete_with_model(store: RunStore, run_id: str, model_file: Path, evaluation: dict | None,
                        **summary: Any) -> None:
    """Keep the model file with the run and end it `completed`: with its test evaluation in one
    transaction when there is one, else with the model alone (no dataset to score it on)."""
    if evaluation is not None:
        store.complete_run(run_id, evaluation, artifacts={MODEL_FILE: model_file},
                           test_accuracy=evaluation["accuracy"], test_loss=evaluation["loss"], **summary)
        return
    with store.write():
        store.put_artifact(run_id, MODEL_FILE, model_file)
        store.finish_run(run_id, "completed", **summary)


@dataclass(frozen=True)
class CheckedModel:
    """A model file that passed every check, loaded with safe_mode, and its test evaluation."""
    path: Path
    model: Any
    evaluation: dict


def check_model(path: str | Path, data_path: str | Path) -> CheckedModel:
    """Check, load (safe_mode) and score a `.keras` file; InteropError, ModelUnavailable or DataError
    (the dataset is missing) before anything is written."""
    path = check_file(path)
    model = load_model(path, run_id=path.name)
    check_shape(model, path.name)
    return CheckedModel(path, model, evaluate(model, *test_split(data_path)))


def import_model(store: RunStore, checked: CheckedModel, name: str | None = None) -> str:
    """Keep a checked model as a completed, imported run (one transaction); its id."""
    config = {**model_config(checked.model), **file_config(checked.path)}
    with store.write():
        run_id = store.create_run(config, name=name or checked.path.stem, n_params=int(checked.model.count_params()),
                                  source="imported")
        store.claim_run(worker_id=f"import-{os.getpid()}", run_id=run_id)
        # its training data is not known: the dataset stays unrecorded
        complete_with_model(store, run_id, checked.path, checked.evaluation)
    return run_id
