"""Sign-in and roles (dashboard/auth.py) through Streamlit's AppTest, with real secrets.

When a sign-in is configured nothing is visible before signing in; a viewer can look but
every write action refuses (enforced in the action, not by hiding the button); with nothing
configured the app is open only while it listens on localhost.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import auth

ROOT = Path(__file__).resolve().parents[1]
PASSWORDS = {"password": "editor-secret", "viewer_password": "viewer-secret"}
# Write actions and the functions that perform them; each call must sit behind require_editor/can_edit.
WRITE_CALLS = {"queue_run", "queue_sweep", "request_cancel", "update_run", "delete_run", "add_drawing",
               "delete_drawing", "ingest", "create_run", "set_status", "finish_run", "train",
               "evaluate_on_drawn", "evaluate_all",
               "create_study", "stop_study", "extend_study", "top_up", "top_up_all"}  # a study's writes


def demo_app():
    """A page with content and a delete action, behind the gate (as app.py puts every page)."""
    import streamlit as st

    from core.store.facade import RunStore
    from dashboard import auth

    auth.gate()
    st.markdown("SECRET RUN TABLE")
    store = RunStore(st.session_state.setdefault("db", ""))  # the test sets the URL first
    if st.button("Delete all runs", key="demo_delete") and auth.require_editor("delete runs"):
        for run_id in store.list_runs()["run_id"]:
            store.delete_run(run_id)
        st.success("deleted")


@pytest.fixture
def demo(store):
    run_id = store.create_run({"architecture": "mlp-128-64", "epochs": 1})

    def make(secrets: dict | None = None) -> AppTest:
        at = AppTest.from_function(demo_app, default_timeout=30)
        at.session_state["db"] = store.url
        for section, values in (secrets or {}).items():
            at.secrets[section] = values
        return at.run()
    make.store, make.run_id = store, run_id
    return make


def texts(at: AppTest) -> str:
    return " ".join(str(m.value) for m in [*at.markdown, *at.caption, *at.error, *at.success, *at.title])


def sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="auth_password").input(password)
    next(b for b in at.button if b.label == "Sign in").click()
    return at.run()


# ------------------------------------------------------------------------------ open mode


def test_open_mode_on_localhost_lets_everyone_edit_and_says_so(demo):
    at = demo()
    assert not at.exception and "SECRET RUN TABLE" in texts(at)
    assert auth.OPEN_CAPTION in [c.value for c in at.sidebar.caption]
    at.button(key="demo_delete").click().run()
    assert "deleted" in texts(at) and demo.store.list_runs().empty


def test_open_mode_on_a_network_address_is_read_only(demo, network_address):
    at = demo()
    assert "SECRET RUN TABLE" in texts(at) and auth.NETWORK_CAPTION in [c.value for c in at.sidebar.caption]
    at.button(key="demo_delete").click().run()
    assert "read-only" in texts(at) and len(demo.store.list_runs()) == 1


# ------------------------------------------------------------------------------ passwords


def test_nothing_is_visible_before_signing_in(demo):
    at = demo({"digitlab": PASSWORDS})
    assert not at.exception
    assert "SECRET RUN TABLE" not in texts(at) and [t.value for t in at.title] == ["Digit Lab"]
    assert at.text_input(key="auth_password").value == "" and not at.sidebar.button


def test_a_wrong_password_shows_nothing(demo):
    at = sign_in(demo({"digitlab": PASSWORDS}), "editor-secreT")
    assert "Wrong password." in texts(at) and "SECRET RUN TABLE" not in texts(at)
    assert at.session_state[auth.FAILS_KEY] == 1


def test_a_viewer_sees_everything_but_every_write_is_refused(demo):
    at = sign_in(demo({"digitlab": PASSWORDS}), "viewer-secret")
    assert "SECRET RUN TABLE" in texts(at) and at.session_state[auth.ROLE_KEY] == "viewer"
    assert any("view only" in c.value for c in at.sidebar.caption)
    at.button(key="demo_delete").click().run()
    assert "Your role is viewer: you cannot delete runs" in texts(at)
    assert len(demo.store.list_runs()) == 1, "the viewer's delete went through"


def test_an_editor_can_write_and_sign_out(demo):
    at = sign_in(demo({"digitlab": PASSWORDS}), "editor-secret")
    assert at.session_state[auth.ROLE_KEY] == "editor"
    at.button(key="demo_delete").click().run()
    assert demo.store.list_runs().empty
    at.sidebar.button(key="auth_sign_out").click().run()
    assert "SECRET RUN TABLE" not in texts(at) and auth.ROLE_KEY not in at.session_state


def test_several_editor_passwords_and_no_viewer_password(demo):
    secrets = {"digitlab": {"password": ["first-one", "second-one"]}}
    for password, role in (("second-one", "editor"), ("viewer-secret", None), ("", None)):
        at = sign_in(demo(secrets), password)
        assert at.session_state[auth.ROLE_KEY] == role if role else auth.ROLE_KEY not in at.session_state


def test_role_for_password_compares_bytes_in_constant_time():
    cfg = auth.AuthConfig("password", ("pässwörd",), ("viewer",))
    assert auth.role_for_password("pässwörd", cfg) == "editor"
    assert auth.role_for_password("viewer", cfg) == "viewer"
    assert auth.role_for_password("passwörd", cfg) is None and auth.role_for_password("", cfg) is None
    source = Path(auth.__file__).read_text()
    assert "hmac.compare_digest" in source and "== p" not in source


# ------------------------------------------------------------------------------ OIDC


@pytest.mark.parametrize("email, role", [("Ada@Example.org", "editor"), ("bob@example.org", "viewer"),
                                         ("eve@elsewhere.net", None), (None, None)])
def test_oidc_allow_lists_map_emails_to_roles(demo, monkeypatch, email, role):
    monkeypatch.setattr(auth, "_oidc_user", lambda: (True, email))
    secrets = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"},
               "digitlab": {"editors": ["ada@example.org"], "viewers": ["@example.org"]}}
    at = demo(secrets)
    assert not at.exception
    if role is None:
        assert "has no access here" in texts(at) and "SECRET RUN TABLE" not in texts(at)
    else:
        assert "SECRET RUN TABLE" in texts(at) and at.session_state[auth.ROLE_KEY] == role
        at.button(key="demo_delete").click().run()
        assert demo.store.list_runs().empty == (role == "editor")


@pytest.mark.parametrize("authlib", [True, False])
def test_oidc_before_signing_in_shows_only_the_sign_in(demo, monkeypatch, authlib):
    import streamlit.auth_util

    monkeypatch.setattr(auth, "_oidc_user", lambda: (False, None))
    monkeypatch.setattr(streamlit.auth_util, "is_authlib_installed", lambda: authlib)
    at = demo({"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x"}})
    assert not at.exception and "SECRET RUN TABLE" not in texts(at)
    if authlib:
        assert at.button(key="auth_login").label == "Sign in"
    else:
        assert "Authlib is not installed" in texts(at)


# ------------------------------------------------------------------------------ the real app


def test_the_real_app_shows_no_page_before_signing_in_and_a_viewer_cannot_train(app_env):
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.secrets["digitlab"] = PASSWORDS
    at.run()
    assert not at.exception and [t.value for t in at.title] == ["Digit Lab"]
    assert not at.selectbox and not at.number_input and not at.dataframe, "a page rendered before sign-in"
    at = sign_in(at, "viewer-secret")
    assert not at.exception and "Train" in [t.value for t in at.title]
    at.button(key="train_launch").click().run()
    assert any("Your role is viewer" in e.value for e in at.error)
    assert app_env.store.list_runs().empty, "a viewer queued a run"


def _guarded(call: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Is `call` inside an `if` that asks require_editor/can_edit, or after an early `if not ...: return`
    in one of the blocks around it (up to its function)?"""
    node = call
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.If) and node in parent.body and _asks(parent.test):
            return True
        for block in (getattr(parent, "body", None), getattr(parent, "orelse", None)):
            if isinstance(block, list) and node in block:
                for stmt in block[:block.index(node)]:
                    if isinstance(stmt, ast.If) and _asks(stmt.test) and any(
                            isinstance(s, (ast.Return, ast.Raise)) or "st.stop" in ast.unparse(s) for s in stmt.body):
                        return True
        if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
        node = parent
    return False


def _asks(test: ast.expr) -> bool:
    text = ast.unparse(test)
    return "require_editor(" in text or "can_edit(" in text


def _called_name(node: ast.Call) -> str | None:
    return getattr(node.func, "attr", getattr(node.func, "id", None))


def _enclosing_function(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> ast.AST | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    return None


def test_every_write_action_in_pages_and_dashboard_asks_require_editor():
    """A write (or a helper that writes without asking) must be guarded where the page calls it;
    a widget callback (on_click=...) that writes must ask inside itself."""
    files = [p for p in [*ROOT.glob("pages/*.py"), *ROOT.glob("dashboard/**/*.py")]
             if p.relative_to(ROOT).as_posix() not in ("dashboard/auth.py", "dashboard/state.py")]  # the gate itself; state only reads
    assert files, "no page found"
    trees = {path: ast.parse(path.read_text()) for path in files}
    parents = {child: node for tree in trees.values() for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    calls = [(path, node) for path, tree in trees.items() for node in ast.walk(tree) if isinstance(node, ast.Call)]
    writers = set(WRITE_CALLS)
    while True:  # a function that writes without asking is a writer itself: its callers must ask
        more = {f.name for _, c in calls if _called_name(c) in writers and not _guarded(c, parents)
                and (f := _enclosing_function(c, parents)) is not None} - writers
        if not more:
            break
        writers |= more
    unguarded = [f"{path.relative_to(ROOT)}:{c.lineno} {ast.unparse(c)[:70]}" for path, c in calls
                 if _called_name(c) in writers and _enclosing_function(c, parents) is None and not _guarded(c, parents)]
    unguarded += [f"{path.relative_to(ROOT)}:{c.lineno} callback {k.arg}={ast.unparse(k.value)} writes without asking"
                  for path, c in calls for k in c.keywords if k.arg in ("on_click", "on_change", "on_submit")
                  and getattr(k.value, "id", getattr(k.value, "attr", None)) in writers]
    assert not unguarded, "write actions without require_editor:\n" + "\n".join(unguarded)


def test_streamlit_settings_are_safe_for_a_demo():
    import tomllib

    from core.predict.preprocess import MAX_BYTES

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["server"]["address"] == "localhost"
    assert 1 <= settings["server"]["maxUploadSize"] <= MAX_BYTES / 1e6
    assert settings["server"]["runOnSave"] is False and settings["browser"]["gatherUsageStats"] is False
    assert settings["client"]["showErrorDetails"] in ("type", "none")  # no tracebacks for visitors
    assert not (ROOT / ".streamlit" / "secrets.toml").exists() or "secrets.toml" in (ROOT / ".gitignore").read_text()
