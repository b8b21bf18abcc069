"""Who may do what: optional sign-in configured in .streamlit/secrets.toml, and two roles.

- **editor** may train, cancel, tag, annotate, delete and save drawings;
- **viewer** may browse, compare and draw, nothing that writes.

Three modes, chosen by what the secrets hold:

```toml
# 1. Shared passwords (compared in constant time; the role lives in this browser session).
[digitlab]
password = "for editors"                  # or a list: ["one", "another"]
viewer_password = "for viewers"           # optional

# 2. OpenID Connect through Streamlit's st.login (needs `pip install Authlib`):
[auth]                                    # Streamlit's own section: redirect_uri, cookie_secret,
redirect_uri = "http://localhost:8501/oauth2callback"   # client_id, client_secret,
# ...                                                   # server_metadata_url (or [auth.NAME])
[digitlab]
editors = ["ada@example.org"]             # emails, "@example.org" for a domain, or "*"
viewers = ["@example.org"]
oidc_provider = "google"                  # only with named providers ([auth.google])
```

3. Nothing configured: open mode. If the server listens on localhost only (our
.streamlit/config.toml) everyone who reaches it is an editor; if it listens on the network,
everyone is a viewer until a sign-in is configured, so a stranger can never delete runs.

`gate()` runs before any page and stops the script until the visitor is signed in.
`require_editor(action)` is called by every write action itself (not only by hiding its
button) and says why when it refuses.
"""
from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

import streamlit as st

ROLES = ("editor", "viewer")
ROLE_KEY = "digitlab_role"          # session_state: the signed-in role
USER_KEY = "digitlab_user"          # session_state: who signed in (email, or the role for passwords)
FAILS_KEY = "digitlab_failed_signins"
LOCAL_ADDRESSES = {"localhost", "127.0.0.1", "::1"}
OPEN_CAPTION = "Open mode: anyone who can reach this app can edit; it listens on localhost only."
NETWORK_CAPTION = ("Open mode on a network address: everyone is a **viewer**. Set a password in "
                   "`.streamlit/secrets.toml` (`[digitlab] password = ...`) to train or delete.")


@dataclass(frozen=True)
class AuthConfig:
    mode: str                        # "open", "password" or "oidc"
    editor_passwords: tuple[str, ...] = ()
    viewer_passwords: tuple[str, ...] = ()
    editors: tuple[str, ...] = ()    # OIDC allow-lists: emails, "@domain" or "*"
    viewers: tuple[str, ...] = ()
    provider: str | None = None


def _secret(section: str) -> dict[str, Any]:
    """A secrets section as a plain dict; {} when it or secrets.toml is missing."""
    try:
        value = st.secrets.get(section)
    except Exception:  # no secrets.toml at all (StreamlitSecretNotFoundError) or a broken one
        return {}
    return dict(value) if hasattr(value, "keys") else {}


def _strings(value: Any) -> tuple[str, ...]:
    """A secret that may be one string or a list of them, without empty entries."""
    items = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
    return tuple(str(v) for v in items if str(v))


def config() -> AuthConfig:
    """What .streamlit/secrets.toml configures (read on every call: a changed file applies at once)."""
    ours = _secret("digitlab")
    lists = dict(editors=tuple(e.lower() for e in _strings(ours.get("editors"))),
                 viewers=tuple(v.lower() for v in _strings(ours.get("viewers"))))
    if _secret("auth"):
        return AuthConfig("oidc", provider=ours.get("oidc_provider") or None, **lists)
    editors, viewers = _strings(ours.get("password")), _strings(ours.get("viewer_password"))
    if editors or viewers:
        return AuthConfig("password", editors, viewers, **lists)
    return AuthConfig("open")


def listens_locally() -> bool:
    """True when the server accepts connections from this machine only (server.address)."""
    return str(st.get_option("server.address") or "").strip("[]") in LOCAL_ADDRESSES


# -- roles ----------------------------------------------------------------------------------------


def role() -> str | None:
    """'editor', 'viewer', or None before signing in."""
    if config().mode == "open":
        return "editor" if listens_locally() else "viewer"
    found = st.session_state.get(ROLE_KEY)
    return found if found in ROLES else None


def user() -> str:
    """Who is using the app, for labels such as a drawing's author ('' in open mode)."""
    return str(st.session_state.get(USER_KEY, "")) if config().mode != "open" else ""


def can_edit() -> bool:
    return role() == "editor"


def require_editor(action: str = "do this") -> bool:
    """True if the visitor may edit; otherwise show why (one st.error) and return False.

    Call it inside the action itself, right before it writes: `if auth.require_editor("delete runs"): ...`.
    """
    if can_edit():
        return True
    st.error(denied_message(action))
    return False


def denied_message(action: str) -> str:
    """Why this visitor cannot `action`, and what would allow it."""
    if role() is None:
        return f"Sign in to {action}."
    if config().mode == "open":
        return (f"This app is open on a network without sign-in, so it is read-only: you cannot {action}. "
                "Set `[digitlab] password` in .streamlit/secrets.toml to allow editing.")
    return f"Your role is viewer: you cannot {action}. Sign in as an editor to do it."


def role_for_password(typed: str, cfg: AuthConfig) -> str | None:
    """The role a typed password grants (editor first), comparing every password in constant time."""
    given = typed.encode("utf-8")
    is_editor = [hmac.compare_digest(given, p.encode("utf-8")) for p in cfg.editor_passwords]
    is_viewer = [hmac.compare_digest(given, p.encode("utf-8")) for p in cfg.viewer_passwords]
    return "editor" if any(is_editor) else "viewer" if any(is_viewer) else None


def role_for_email(email: str | None, cfg: AuthConfig) -> str | None:
    """The role an OIDC account gets from the allow-lists: exact email, '@domain', or '*'."""
    if not email:
        return None
    email = email.strip().lower()

    def listed(entries: tuple[str, ...]) -> bool:
        return any(e == "*" or e == email or (e.startswith("@") and email.endswith(e)) for e in entries)
    return "editor" if listed(cfg.editors) else "viewer" if listed(cfg.viewers) else None


# -- the gate ---------------------------------------------------------------------------------------


def gate() -> None:
    """Called by app.py before any page renders: shows sign-in and stops the script until signed in."""
    cfg = config()
    if cfg.mode == "open":
        st.sidebar.caption(OPEN_CAPTION if listens_locally() else NETWORK_CAPTION)
        return
    if cfg.mode == "oidc":
        _oidc_gate(cfg)
    elif role() is None:
        _password_form(cfg)
    _signed_in_sidebar(cfg)


def _password_form(cfg: AuthConfig) -> None:
    st.title("Digit Lab")
    st.write("This Digit Lab is private. Enter the password you were given.")
    with st.form("auth_sign_in"):
        typed = st.text_input("Password", type="password", key="auth_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        granted = role_for_password(typed, cfg)
        if granted:
            st.session_state[ROLE_KEY] = st.session_state[USER_KEY] = granted
            st.session_state.pop(FAILS_KEY, None)
            st.rerun()
        fails = st.session_state[FAILS_KEY] = st.session_state.get(FAILS_KEY, 0) + 1
        time.sleep(min(fails, 5) * 0.5)  # slows guessing in this session
        st.error("Wrong password.")
    st.stop()


def _oidc_user() -> tuple[bool, str | None]:
    """(signed in?, email) from Streamlit's st.user."""
    signed_in = bool(getattr(st.user, "is_logged_in", False))
    return signed_in, (st.user.get("email") if signed_in else None)


def _oidc_gate(cfg: AuthConfig) -> None:
    from streamlit.auth_util import is_authlib_installed

    signed_in, email = _oidc_user()
    if not signed_in:
        st.session_state.pop(ROLE_KEY, None)
        st.title("Digit Lab")
        if not is_authlib_installed():
            st.error("Sign-in is configured ([auth] in .streamlit/secrets.toml) but Authlib is not installed: "
                     "`pip install 'Authlib>=1.3.2'` and restart.")
            st.stop()
        st.write("This Digit Lab is private. Sign in with your account.")
        if st.button("Sign in", type="primary", key="auth_login"):
            if cfg.provider:
                st.login(cfg.provider)
            else:
                st.login()
        st.stop()
    granted = role_for_email(email, cfg)
    if granted is None:
        st.title("Digit Lab")
        st.error(f"The account {email or '(no email)'} has no access here. Ask the person running this "
                 "Digit Lab to add it to `editors` or `viewers` in .streamlit/secrets.toml.")
        if st.button("Sign out", key="auth_logout_denied"):
            st.logout()
        st.stop()
    st.session_state[ROLE_KEY], st.session_state[USER_KEY] = granted, email


def _signed_in_sidebar(cfg: AuthConfig) -> None:
    who = st.session_state.get(USER_KEY) or role()
    label = f"Signed in as **{who}**" + (f" ({role()})" if who != role() else "")
    st.sidebar.caption(label + ("" if can_edit() else " · view only"))
    if st.sidebar.button("Sign out", key="auth_sign_out"):
        sign_out(cfg)


def sign_out(cfg: AuthConfig | None = None) -> None:
    """Forget this session's role (and end the OIDC session), then start over at the gate."""
    for key in (ROLE_KEY, USER_KEY, FAILS_KEY):
        st.session_state.pop(key, None)
    if (cfg or config()).mode == "oidc":
        st.logout()
    st.rerun()
