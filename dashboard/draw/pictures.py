"""The Draw page's small pictures as HTML: each row of them (the preprocessing steps, the
attributions, the activations, the nearest training digits) is one `st.html` element that holds
its images inline, as PNG data at their natural size, scaled up by the browser with square pixels.

Why not an `st.image` each: a drawing shows about twenty pictures. As `st.image` calls, each was an
element of its own, stored in the server's media store and fetched by the browser with a request
of its own, and each was encoded at its displayed size (a 28×28 attribution as 168×168, a
26×26 feature map as 52×52). In a room of visitors drawing at once that was a quarter of the
server's work per drawing (`bench/visitors.py`). Here a 28×28 image is encoded as 28×28 and
shown 168 pixels wide with `image-rendering: pixelated`: the same picture, a fraction of the work.

The HTML is built from our own PNG bytes and captions (escaped); `st.html` sanitises it again.
Pure functions: testable without Streamlit running.
"""
from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from dashboard.draw import once

FRAME_CSS = "rgb(38, 39, 48)"    # the dark frame around a step that does not fill its box
CAPTION_CSS = "font-size:0.875rem;line-height:1.3;opacity:0.65;text-align:center;margin-top:0.3rem"
MAX_DISPLAY_FACTOR = 6           # the browser scales an image up by at most this much (see display_factor)


@dataclass(frozen=True)
class Picture:
    """One image as it is shown: PNG bytes, a caption, and its displayed size in CSS pixels."""
    png: bytes
    caption: str
    width: int
    height: int
    pixelated: bool = True       # scaled up with square pixels (no blur)
    box: int | None = None       # centred in a box of this side, filled with the dark frame colour


@dataclass(frozen=True)
class Markup:
    """A picture made of HTML (a strip of coloured cells with their labels), with a caption."""
    html: str
    caption: str


def picture(image: np.ndarray, caption: str, scale: int = 1, box: int | None = None,
            pixelated: bool = True) -> Picture:
    """An image array (H, W) or (H, W, 3), uint8, encoded at its own size and shown `scale` times larger."""
    a = np.asarray(image)
    h, w = a.shape[:2]
    return Picture(once.png(a), caption, w * scale, h * scale, pixelated, box)


def display_factor(scale: int, limit: int = MAX_DISPLAY_FACTOR) -> int:
    """How much of an integer up-scaling to leave to the browser: the largest divisor of `scale` up
    to `limit`. An image drawn at scale // f with one-pixel gaps and shown f times larger keeps
    gaps of f pixels; the limit keeps those gaps thin when maps are tiny and scaled up a lot."""
    return max(d for d in range(1, max(1, min(scale, limit)) + 1) if scale % d == 0)


def data_uri(png_bytes: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes).decode("ascii")


def figure(p: Picture) -> str:
    """One picture with its caption below, as an HTML <figure>."""
    style = f"display:block;width:{p.width}px;height:{p.height}px;max-width:100%"
    if p.pixelated:
        style += ";image-rendering:pixelated"
    alt = html.escape(p.caption, quote=True)
    img = f'<img src="{data_uri(p.png)}" alt="{alt}" width="{p.width}" height="{p.height}" style="{style}">'
    width = p.width
    if p.box:
        width = max(p.box, p.width)
        img = (f'<div style="width:{p.box}px;height:{p.box}px;background:{FRAME_CSS};display:flex;'
               f'align-items:center;justify-content:center">{img}</div>')
    return _figure(img, p.caption, f"{width}px")


def _figure(inner: str, caption: str, width: str) -> str:
    below = f'<figcaption style="{CAPTION_CSS}">{html.escape(caption)}</figcaption>' if caption else ""
    return f'<figure style="margin:0;width:{width};max-width:100%">{inner}{below}</figure>'


def row(pictures: Iterable[Picture | Markup], gap: int = 16) -> str:
    """Pictures side by side, wrapping onto the next line when the column is too narrow."""
    inner = "".join(figure(p) if isinstance(p, Picture) else _figure(p.html, p.caption, "max-content")
                    for p in pictures)
    return f'<div style="display:flex;flex-wrap:wrap;gap:{gap // 2}px {gap}px;align-items:flex-start">{inner}</div>'


_CAPTION = re.compile(r"<figcaption[^>]*>(.*?)</figcaption>", re.S)


def captions(body: str) -> list[str]:
    """The captions in a row's HTML, in order (for tests and for reading a page's pictures back)."""
    return [html.unescape(c) for c in _CAPTION.findall(body)]
