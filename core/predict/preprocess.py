"""Image work: any drawing, upload or photo → an MNIST-like 28×28 image, with its steps and hints.

MNIST digits were fitted into a 20×20 box keeping their aspect ratio (anti-aliased), then
placed in a 28×28 image with their centre of mass on pixel (14, 14), light ink on black.
`preprocess` does the same to any input: light or dark ink, opaque or transparent
background, any size; it keeps the intermediate steps for display, hints about likely
misreads, and raises `EmptyDrawing` for an empty canvas. `load_image_file` reads PNG, JPEG
and other Pillow images within size limits. Models live in `core.predict.inference`; this module
needs only NumPy, Pillow and SciPy, so importing it is cheap.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from scipy import ndimage as ndi

from core.errors import DigitLabError

SIZE = 28                # MNIST images are 28×28
BOX = 20                 # the digit's longer side is fitted into 20 px, as MNIST did
CENTRE = 14.0            # real MNIST test digits have their centre of mass at (13.99, 14.01) ± 0.29
FAINT = 0.05             # ink below 5 % of a full stroke's is background noise
MIN_CONTRAST = 0.05      # an ink map whose strongest pixel is below this is an empty canvas
MIN_INK = 0.0002         # ... as is one whose ink covers less than this fraction of the image
MIN_SIDE = 3             # ... or whose ink spans fewer pixels (or 2 % of the image's longer side)
SPECK = 0.02             # blobs with under 2 % of the largest blob's ink are stray marks
MIN_STROKE = 2.5         # strokes thinner than this once fitted (MNIST's median) are grown to it
MAX_STROKE = 3.5         # ... thicker ones (MNIST's 90th percentile) are shrunk to it
THIN_STROKE = 1.0        # below this width (under a pixel: it would fade), a hint
THICK_STROKE = 5.0       # above this one (its 99.5th), a hint
WORK_SIDE = 160          # larger crops are area-averaged to this before strokes are measured
MAX_BYTES = 10_000_000   # an image file over 10 MB is refused
MAX_PIXELS = 25_000_000  # ... as is one over 25 megapixels (decompression bombs)


class InferenceError(DigitLabError):
    """A drawing, image or model that cannot be used; the message is one line for the user."""


class EmptyDrawing(InferenceError):
    """The canvas is empty or holds only a speck: reported, not predicted."""


@dataclass(frozen=True)
class Preprocessed:
    image: np.ndarray               # (28, 28) float32 in [0, 1], light ink on dark, MNIST-like
    steps: dict[str, np.ndarray]    # "input", "crop", "scaled", "centred", in order, for display
    hints: list[str]                # why this drawing may be misread; empty when it looks fine
    ink_fraction: float             # ink mass over the image's area, after cleaning
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right) of the ink in input pixels;
                                     # bottom and right exclusive: ink[top:bottom, left:right]


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """L, RGB or RGBA uint8 (float32 in [0, 1] for 16-bit and float images)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        a = np.asarray(im, dtype=np.float32)
        return np.clip(a / (65535.0 if a.max() > 255 else 255.0), 0, 1)
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info:
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("L" if im.mode in ("1", "L") else "RGB"))


def _channels(image: Any) -> tuple[np.ndarray, np.ndarray | None, float]:
    """(colour, alpha, divisor): colour (H, W) or (H, W, 3) and alpha (H, W) or None, raw.

    Dividing a channel (as float32) by the divisor brings it to [0, 1]. Channels are left
    raw so that only those needed are converted.
    """
    a = _pil_to_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.size == 0 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (2, 3, 4))):
        raise InferenceError(f"expected an image of shape (H, W) or (H, W, 1-4 channels), got {a.shape}")
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.nan_to_num(a.astype(np.float32), nan=0, posinf=0, neginf=0).clip(0, None)
    top = 255.0 if a.dtype == np.uint8 else float(a.max())
    divisor = 65535.0 if top > 255 else 255.0 if top > 1.0 else 1.0
    channels = 1 if a.ndim == 2 else a.shape[2]
    alpha = a[:, :, -1] if channels in (2, 4) else None
    colour = a if channels == 1 else a[:, :, 0] if channels == 2 else a[:, :, :3]
    return colour, alpha, divisor


def _float(a: np.ndarray, divisor: float) -> np.ndarray:
    return np.clip(a.astype(np.float32) / np.float32(divisor), 0, 1)


def _border(a: np.ndarray) -> np.ndarray:
    """The pixels of a ring around the image (1-2 % of its size), channels kept."""
    b = max(1, min(a.shape[:2]) // 50)
    rest = a.shape[2:]
    return np.concatenate([a[:b].reshape(-1, *rest), a[-b:].reshape(-1, *rest),
                           a[:, :b].reshape(-1, *rest), a[:, -b:].reshape(-1, *rest)])


def _flatten(signed: np.ndarray) -> np.ndarray:
    """Subtract uneven lighting (a smooth quadratic surface fitted to the background).

    For photos and scans. The fit ignores ink (bright outliers), so it never eats strokes
    however thick.
    """
    h, w = signed.shape
    step = max(1, int(np.sqrt(signed.size / 4096)))
    sample = signed[::step, ::step]
    ys, xs = np.meshgrid(np.linspace(-1, 1, h)[::step], np.linspace(-1, 1, w)[::step], indexing="ij")
    terms = np.stack([np.ones_like(xs), xs, ys, xs * xs, xs * ys, ys * ys], -1).reshape(-1, 6)
    values, keep = sample.ravel(), np.ones(sample.size, bool)
    for _ in range(4):  # refit on pixels that are not well above the surface (not ink)
        coef = np.linalg.lstsq(terms[keep], values[keep], rcond=None)[0]
        residual = values - terms @ coef
        keep = residual < 2.5 * 1.4826 * float(np.median(np.abs(residual[keep]))) + 0.005
        if keep.sum() < 4 * terms.shape[1]:
            break
    y, x = np.linspace(-1, 1, h)[:, None], np.linspace(-1, 1, w)[None, :]
    c = coef.astype(np.float32)
    return signed - (c[0] + c[1] * x + c[2] * y + c[3] * x * x + c[4] * x * y + c[5] * y * y)


def _ink_map(image: Any) -> tuple[np.ndarray, bool]:
    """The ink map (see `to_ink`) and whether the image is digital (flat background)."""
    colour, alpha, divisor = _channels(image)
    rgb = None
    if alpha is not None and float(alpha.min()) < 0.98 * divisor:  # some transparency
        alpha = _float(alpha, divisor)
        if float(np.median(_border(alpha))) < 0.5:
            return alpha, True
        rgb = _float(colour, divisor)  # opaque background, some transparent pixels: composite
        a = alpha if rgb.ndim == 2 else alpha[..., None]
        rgb = rgb * a + np.median(_border(rgb)[_border(alpha) >= 0.5], axis=0) * (1 - a)
    rgb = _float(colour, divisor) if rgb is None else rgb.astype(np.float32)
    lum = rgb if rgb.ndim == 2 else 0.299 * rgb[:, :, 0] + 0.587 * rgb[:, :, 1] + 0.114 * rgb[:, :, 2]
    edge = _border(lum)
    digital = bool(np.mean(np.abs(edge - np.median(edge)) < 0.002) > 0.5)
    if digital:  # a drawing: the border is the background
        pixels, sel = _border(rgb), slice(None)
    else:  # a photo or scan: the commonest brightness is the paper (the border may be a desk)
        step = max(1, int(np.sqrt(lum.size / 16384)))
        pixels = rgb[::step, ::step].reshape(-1, *rgb.shape[2:])
        bins = np.minimum((lum[::step, ::step].ravel() * 32).astype(int), 31)
        sel = np.abs(bins - np.bincount(bins, minlength=32).argmax()) <= 1
    bg = np.median(pixels[sel], axis=0).astype(np.float32)
    bg_lum = float(bg) if rgb.ndim == 2 else float(0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2])
    ink = lum - bg_lum if bg_lum < 0.5 else bg_lum - lum
    if not digital:
        ink = _flatten(ink)
    if rgb.ndim == 3:  # coloured ink: how far a pixel's hue is from the background's
        for i in range(3):
            ink = np.maximum(ink, np.abs(rgb[:, :, i] - lum - (bg[i] - bg_lum)))
    return np.clip(ink, 0, 1).astype(np.float32), digital


def to_ink(image: Any) -> np.ndarray:
    """Any image as a float32 (H, W) ink map in [0, 1], 1 = ink, 0 = background.

    Strokes on a transparent background (a drawable canvas, a PNG) are the alpha channel.
    Otherwise ink is how far a pixel is from the background colour: darker on a light
    background, lighter on a dark one, or of another hue. A digital drawing's background
    is its border's colour; a photo's is its commonest brightness (the paper, even when a
    desk shows around it), and its uneven lighting is levelled first.
    """
    return _ink_map(image)[0]


def _clean(ink: np.ndarray, digital: bool = True) -> tuple[np.ndarray, bool]:
    """Drop the background's noise floor, faint haze and stray specks; full ink becomes 1.

    "Full ink" is the 90th percentile of the clearly inked pixels, not the single brightest
    one, so a photo's stroke reads as 1 like a canvas stroke does. Returns the cleaned map
    and whether a visible mark away from the digit was dropped.
    """
    step = max(1, int(np.sqrt(ink.size / 65536)))
    sample = ink[::step, ::step]
    median = float(np.median(sample))
    spread = float(np.median(np.abs(sample - median))) * 1.4826
    peak = float(ink.max())
    floor = min(median + 6 * spread, 0.5 * peak)
    full = float(np.percentile(ink[ink > (floor + peak) / 2], 90))
    ink = np.clip((ink - floor) / max(full - floor, 1e-6), 0, 1)
    ink[ink < FAINT] = 0
    labels, n = ndi.label(ink > 0, structure=np.ones((3, 3)))
    if n <= 1:
        return ink, False
    index = np.arange(1, n + 1)
    mass = ndi.sum_labels(ink, labels, index)
    if not digital:
        mass[_frame(labels, n, mass) - 1] = 0
    keep = mass >= SPECK * mass.max()
    if keep.all():
        return ink, False
    kept = np.where(np.concatenate([[False], keep])[labels], ink, 0).astype(np.float32)
    before, after = np.array(_bbox(ink)), np.array(_bbox(kept))
    moved = np.abs(before - after).max() > 0.05 * max(after[2] - after[0], after[3] - after[1])
    marks = ndi.maximum(ink, labels, index[~keep]) if moved else []
    return kept, bool(np.max(marks, initial=0) >= 0.5)  # a mark, not a photo's faint noise


def _frame(labels: np.ndarray, n: int, mass: np.ndarray) -> np.ndarray:
    """Labels of a photo's desk, shadow or paper edge: large solid or all-round blobs at the border.

    Only when something else big enough to be a digit remains; returns an int array.
    """
    edge = np.unique(_border(labels))
    boxes = ndi.find_objects(labels, max_label=n)
    frame = []
    for label in edge[edge > 0]:
        rows, cols = boxes[label - 1]
        area = np.count_nonzero(labels[rows, cols] == label)
        box_h, box_w = rows.stop - rows.start, cols.stop - cols.start
        around = box_h > 0.9 * labels.shape[0] and box_w > 0.9 * labels.shape[1]
        if area > 0.15 * labels.size and (around or area > 0.8 * box_h * box_w):
            frame.append(label)
    rest = np.delete(mass, np.array(frame, int) - 1)
    if not frame or not len(rest) or rest.max() < 0.002 * labels.size:
        return np.array([], int)
    return np.array(frame, int)


def _bbox(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the nonzero pixels; bottom and right exclusive."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _resize(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased resize of a float image: area average down, bilinear up."""
    filt = Image.BOX if shape[0] <= a.shape[0] else Image.BILINEAR
    return np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(shape[::-1], filt))


def _stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: ink mass over half the ink's outline length.

    The outline is counted in 4-neighbour edges, which overstates a curve's length by
    4/π on average; a 1-px line reads ≈ 1, a 3-px line ≈ 3.
    """
    mask = np.pad(ink > 0.25 * ink.max(), 1)
    edges = np.count_nonzero(mask[1:] != mask[:-1]) + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
    return 2 * float(ink.sum()) / max(edges, 1) * 4 / np.pi


def _thicken(ink: np.ndarray, radius: float) -> np.ndarray:
    """Grow the strokes by `radius` pixels on each side (soft-edged), keeping the original ink."""
    pad = int(np.ceil(radius)) + 1
    ink = np.pad(ink, pad)
    distance = ndi.distance_transform_edt(ink < 0.25 * ink.max())
    return np.maximum(ink, np.clip(radius + 0.5 - distance, 0, 1)).astype(np.float32)


def _thin(ink: np.ndarray, radius: float) -> np.ndarray:
    """Shrink the strokes by `radius` pixels on each side (soft-edged)."""
    distance = ndi.distance_transform_edt(ink >= 0.5 * ink.max())
    return (ink * np.clip(distance - radius, 0, 1)).astype(np.float32)


def _even_strokes(crop: np.ndarray) -> tuple[np.ndarray, str | None]:
    """Bring the stroke width, once fitted to BOX, into MNIST's usual range.

    A 2-px brush on a 280-px canvas would fade to a tenth of a pixel, and a huge one
    fills the digit's holes: strokes are grown to MIN_STROKE (only when shrinking, where
    they would fade) or shrunk to MAX_STROKE. Large crops are area-averaged to WORK_SIDE
    first. Returns the (re-cropped) ink and a hint for very thin or very thick strokes.
    """
    if max(crop.shape) > WORK_SIDE:
        k = max(crop.shape) / WORK_SIDE
        crop = _resize(crop, (max(1, round(crop.shape[0] / k)), max(1, round(crop.shape[1] / k))))
    scale = BOX / max(crop.shape)
    stroke = _stroke_width(crop) * scale
    hint = None
    if stroke < THIN_STROKE and scale < 1:
        hint = "Very thin strokes: thickened to read them; a thicker brush works better."
    elif stroke > THICK_STROKE:
        hint = ("Very thick strokes: thinned to read them, but holes in 0, 6, 8 or 9 may have "
                "closed up; a thinner brush works better.")
    if stroke < MIN_STROKE and scale < 1:
        changed = _thicken(crop, (MIN_STROKE - stroke) / scale / 2)
    elif stroke > MAX_STROKE:
        changed = _thin(crop, (stroke - MAX_STROKE) / scale / 2)
    else:
        return crop, hint
    if changed.max() < 0.5:  # nothing left: keep the strokes as drawn
        return crop, hint
    top, left, bottom, right = _bbox(changed > 0.05)
    return changed[top:bottom, left:right], hint


def _fit(crop: np.ndarray) -> np.ndarray:
    """Pad the crop to a square (centred, aspect kept) and resize it to BOX×BOX."""
    h, w = crop.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top:top + h, left:left + w] = crop
    return np.clip(_resize(square, (BOX, BOX)), 0, 1)


def _centre(box: np.ndarray) -> np.ndarray:
    """Place the BOX×BOX image in SIZE×SIZE with its centre of mass on pixel (14, 14).

    A whole-pixel placement (as MNIST did), then a bilinear shift of at most half a pixel,
    so the result moves smoothly, not in jumps, as the drawing moves: on drawn and real
    MNIST digits this read as well as or slightly better than whole pixels alone.
    """
    cy, cx = ndi.center_of_mass(box)
    dy, dx = int(np.floor(CENTRE - cy + 0.5)), int(np.floor(CENTRE - cx + 0.5))
    out = np.zeros((SIZE, SIZE), np.float32)
    ys, xs = slice(max(dy, 0), min(dy + BOX, SIZE)), slice(max(dx, 0), min(dx + BOX, SIZE))
    out[ys, xs] = box[ys.start - dy:ys.stop - dy, xs.start - dx:xs.stop - dx]
    return ndi.shift(out, (CENTRE - cy - dy, CENTRE - cx - dx), order=1)


def preprocess(image: np.ndarray | Image.Image) -> Preprocessed:
    """Turn a drawing or photo of one digit into an MNIST-like 28×28 image, with its steps.

    Raises EmptyDrawing when there is nothing (or only a speck) to read.
    """
    ink, digital = _ink_map(image)
    height, width = ink.shape
    steps: dict[str, np.ndarray] = {"input": (ink * 255).round().astype(np.uint8)}
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise EmptyDrawing("the canvas is empty: draw a digit")
    ink, specks = _clean(ink, digital)
    mass = float(ink.sum())
    top, left, bottom, right = bbox = _bbox(ink)
    h, w = bottom - top, right - left
    if mass < MIN_INK * ink.size or max(h, w) < max(MIN_SIDE, 0.02 * max(height, width)):
        raise EmptyDrawing("the drawing is only a speck: draw a bigger digit")

    hints = []
    if max(h, w) < 0.25 * min(height, width) or max(h, w) < 12:
        hints.append("The digit is small on the canvas: draw it bigger so details are not lost.")
    if top == 0 or left == 0 or bottom == height or right == width:
        hints.append("The drawing touches the edge of the canvas: part of it may be cut off.")
    if w > 1.6 * h:
        hints.append("The drawing is much wider than tall: draw one digit at a time.")
    if peak < 0.25:
        hints.append("The ink is faint (low contrast): use a darker pen or more light.")
    if specks:
        hints.append("Ignored stray marks away from the digit.")

    steps["crop"] = crop = ink[top:bottom, left:right]
    crop, hint = _even_strokes(crop)
    if hint:
        hints.append(hint)
    steps["scaled"] = box = _fit(crop)
    image28 = _centre(box)
    image28 = np.clip(image28 / max(float(image28.max()), 1e-6), 0, 1).astype(np.float32)
    steps["centred"] = image28
    return Preprocessed(image=image28, steps=steps, hints=hints,
                        ink_fraction=mass / ink.size, bbox=bbox)


def load_image_file(path_or_bytes: str | Path | bytes | Any, max_bytes: int = MAX_BYTES,
                    max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read a PNG, JPEG or other Pillow image (path, bytes or file-like) as an array for `to_ink`.

    Phone photos are turned upright by their EXIF orientation. Returns uint8 L, RGB or RGBA.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        name, data = "the upload", bytes(path_or_bytes)
    elif hasattr(path_or_bytes, "read"):
        name = getattr(path_or_bytes, "name", "the upload")
        getvalue = getattr(path_or_bytes, "getvalue", None)
        data = getvalue() if getvalue else path_or_bytes.read()
    else:
        path = Path(path_or_bytes)
        name = str(path)
        if not path.is_file():
            raise InferenceError(f"{name} is not a readable image (PNG or JPEG): no such file")
        if path.stat().st_size > max_bytes:
            raise InferenceError(f"{name} is {path.stat().st_size / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit for images")
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise InferenceError(f"{name} is {len(data) / 1e6:.1f} MB, over the {max_bytes / 1e6:g} MB limit for images")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise InferenceError(f"{name} is {im.width}×{im.height} pixels, over the "
                                     f"{max_pixels / 1e6:g} megapixel limit for images")
            return _pil_to_array(ImageOps.exif_transpose(im))
    except InferenceError:
        raise
    except Image.DecompressionBombError:
        raise InferenceError(f"{name} is over the {max_pixels / 1e6:g} megapixel limit for images: "
                             f"scale it down and try again") from None
    except Image.UnidentifiedImageError:  # its text names Pillow's internal buffer, not the file
        raise InferenceError(f"{name} is not a readable image: its content is none of the formats read here "
                             f"(PNG, JPEG, BMP, GIF, WebP). Save the digit as a PNG and try again") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, zlib errors...
        raise InferenceError(f"{name} is not a readable image (PNG or JPEG): {exc}") from None
