"""The app's pages, listed once: dashboard/app.py builds its navigation from PAGES, and
`page_link` links to any of them by key ('train', 'run', 'compare', …) with query params.

Paths are relative to dashboard/app.py, the entry script (`st.Page` resolves them from there).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlencode

import streamlit as st


@dataclass(frozen=True)
class PageSpec:
    """One page of the app: its script, its title and icon in the navigation, and its URL path."""
    path: str
    title: str
    icon: str
    url_path: str  # "" for the default page


# In navigation order; the first is the page the app opens on.
PAGES: dict[str, PageSpec] = {
    "train": PageSpec("../pages/train.py", "Train", ":material/model_training:", ""),
    "runs": PageSpec("../pages/runs.py", "Runs", ":material/table_rows:", "runs"),
    "run": PageSpec("../pages/run_detail.py", "Run detail", ":material/query_stats:", "run"),
    "compare": PageSpec("../pages/compare.py", "Compare", ":material/compare_arrows:", "compare"),
    "study": PageSpec("../pages/study.py", "Study", ":material/science:", "study"),
    "draw": PageSpec("../pages/draw.py", "Draw", ":material/draw:", "draw"),
    "data": PageSpec("../pages/data.py", "Data", ":material/dataset:", "data"),
}


def navigation_pages() -> list:
    """The `st.Page` list for `st.navigation`, the first page the default."""
    default = next(iter(PAGES))
    return [st.Page(spec.path, title=spec.title, icon=spec.icon, default=key == default,
                    **({"url_path": spec.url_path} if key != default else {}))
            for key, spec in PAGES.items()]


def page_link(page: str, label: str, query: Mapping[str, str] | None = None, icon: str | None = None,
              disabled: bool = False, help: str | None = None) -> None:
    """st.page_link to one of the app's pages (a key of PAGES: 'train', 'run', 'compare', …) with query params.

    When the page runs on its own (not under dashboard/app.py's navigation) there is nothing to
    link to by page, so a plain relative link is written instead.
    """
    spec = PAGES[page]
    try:
        st.page_link(spec.path, label=label, icon=icon, query_params=dict(query or {}), disabled=disabled, help=help)
    except (st.errors.StreamlitAPIException, KeyError):  # KeyError: a page this app does not register
        suffix = f"?{urlencode(dict(query))}" if query else ""
        st.markdown(f"[{label}](./{spec.url_path}{suffix})")
