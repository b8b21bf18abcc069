"""The team-drawn test set's store: labelled drawings, saved, listed, counted, deleted, read as arrays.

A drawing is stored twice: as the MNIST-like 28×28 image a model sees (uint8, ink = 255, the
output of `core.predict.preprocess.preprocess`) and as the original PNG (the canvas or the
upload), with its label, an optional author and when it was saved. Scoring runs on the drawn
set is `core.predict.drawn_set`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import sqlalchemy as sa

from core.errors import DigitLabError
from core.store.facade import RunStore
from core.store.schema import drawings_t

SOURCES = ("canvas", "upload")      # where a drawing came from
MAX_AUTHOR = 100                    # characters kept of an author's name (the column's size)
MAX_ORIGINAL = 5_000_000            # bytes: a larger original PNG is refused
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["id", "label", "author", "source", "created_at", "image", "has_original"]


class DrawingError(DigitLabError):
    """A drawing that cannot be saved, found or evaluated; the message is one line for the user."""


def _label(label: object) -> int:
    """The label as an int 0-9, or DrawingError echoing what was received."""
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) <= 9:
        raise DrawingError(f"label must be a digit 0-9, got {label!r}")
    return int(label)


def _image_bytes(image28: np.ndarray) -> bytes:
    """A 28×28 image (uint8, or float in [0, 1]) as 784 uint8 bytes, ink = 255."""
    a = np.asarray(image28)
    if a.shape != (28, 28):
        raise DrawingError(f"a drawing's image must be 28×28, got shape {a.shape}")
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        if not np.isfinite(f).all() or f.min() < 0 or f.max() > 1:
            raise DrawingError("a float image must hold values in [0, 1] (no NaN)")
        a = np.round(f * 255).astype(np.uint8)
    if not a.any():
        raise DrawingError("the drawing is empty: nothing to save")
    return a.tobytes()


def _original(original_png: bytes | None) -> bytes | None:
    if original_png is None:
        return None
    data = bytes(original_png)
    if not data.startswith(PNG_MAGIC):
        raise DrawingError("the original must be a PNG image")
    if len(data) > MAX_ORIGINAL:
        raise DrawingError(f"the original is {len(data) / 1e6:.1f} MB, over the {MAX_ORIGINAL / 1e6:g} MB limit")
    return data


def _decode(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.uint8).reshape(28, 28).copy()


def add_drawing(store: RunStore, label: int, image28: np.ndarray, original_png: bytes | None = None,
                author: str = "", source: str = "canvas") -> int:
    """Save a labelled drawing; returns its id. Raises DrawingError for a bad label, image or source."""
    values = dict(label=_label(label), image=_image_bytes(image28), original=_original(original_png),
                  author=" ".join(str(author or "").split())[:MAX_AUTHOR], created_at=time.time())
    if source not in SOURCES:
        raise DrawingError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    values["source"] = source
    return int(store.transact(lambda c: c.execute(sa.insert(drawings_t).values(**values)).inserted_primary_key[0]))


def list_drawings(store: RunStore, label: int | None = None) -> pd.DataFrame:
    """Drawings newest first: id, label, author, source, created_at, image (28×28 uint8), has_original."""
    d = drawings_t.c
    q = sa.select(d.id, d.label, d.author, d.source, d.created_at, d.image,
                  (d.original.is_not(None)).label("has_original")).order_by(d.created_at.desc(), d.id.desc())
    if label is not None:
        q = q.where(d.label == _label(label))
    rows = store.transact(lambda c: c.execute(q).all(), write=False)
    df = pd.DataFrame([dict(r._mapping) for r in rows], columns=COLUMNS)
    df["image"] = [_decode(b) for b in df["image"]]
    df["has_original"] = df["has_original"].astype(bool)
    return df


def count_drawings(store: RunStore) -> int:
    return int(store.transact(lambda c: c.execute(sa.select(sa.func.count()).select_from(drawings_t)).scalar(),
                              write=False))


def drawing_original(store: RunStore, drawing_id: int) -> bytes | None:
    """The original PNG of a drawing (None if it has none); DrawingError if there is no such drawing."""
    row = store.transact(lambda c: c.execute(sa.select(drawings_t.c.original)
                                             .where(drawings_t.c.id == int(drawing_id))).first(), write=False)
    if row is None:
        raise DrawingError(f"no drawing with id {drawing_id}")
    return row.original


def delete_drawing(store: RunStore, drawing_id: int) -> None:
    """Delete one drawing; DrawingError if there is no such drawing."""
    gone = store.transact(lambda c: c.execute(sa.delete(drawings_t).where(drawings_t.c.id == int(drawing_id))).rowcount)
    if not gone:
        raise DrawingError(f"no drawing with id {drawing_id}: it may have been deleted already")


def drawn_arrays(store: RunStore) -> tuple[np.ndarray, np.ndarray]:
    """The drawn set as model input: images (N, 28, 28) float32 in [0, 1] and labels (N,) int64."""
    rows = store.transact(lambda c: c.execute(sa.select(drawings_t.c.image, drawings_t.c.label)
                                              .order_by(drawings_t.c.id)).all(), write=False)
    if not rows:
        return np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64)
    x = np.stack([_decode(r.image) for r in rows]).astype(np.float32) / 255.0
    return x, np.array([r.label for r in rows], dtype=np.int64)
