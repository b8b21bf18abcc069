"""Synthetic drawings for the preprocessing and inference tests: strokes drawn with Pillow, like a canvas."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

# Strokes in a unit box (x right, y down), scaled to the digit's height when drawn.
SEVEN = [[(0.15, 0.05), (0.85, 0.05), (0.4, 1.0)], [(0.3, 0.5), (0.75, 0.5)]]
FOUR = [[(0.6, 0.0), (0.05, 0.65), (0.95, 0.65)], [(0.65, 0.3), (0.65, 1.0)]]


def drawing(strokes=FOUR, size=280, top=30, left=70, height=220, width=20) -> np.ndarray:
    """White strokes on black (H, W) uint8, like a canvas: a digit `height` px tall at (top, left)."""
    im = Image.new("L", (size, size) if isinstance(size, int) else size[::-1], 0)
    pen = ImageDraw.Draw(im)
    for stroke in strokes:
        pts = [(left + x * height * 0.7, top + y * height) for x, y in stroke]
        pen.line(pts, fill=255, width=width, joint="curve")
        for x, y in pts:  # round caps, like a canvas brush
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
    return np.asarray(im)


def rgba(ink: np.ndarray, colour=(0, 0, 0)) -> np.ndarray:
    """The ink map as strokes of `colour` on a transparent background (a drawable canvas)."""
    out = np.zeros((*ink.shape, 4), np.uint8)
    out[..., :3] = colour
    out[..., 3] = ink
    return out
