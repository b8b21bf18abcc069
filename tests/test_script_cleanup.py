"""dashboard/script_cleanup.py: no script run pays for keras.backend.clear_session(), and a
Streamlit whose clean-up changed stops the app at start-up with its version named."""
from __future__ import annotations

import types
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner import script_runner
from streamlit.testing.v1 import AppTest

from dashboard import script_cleanup

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
STOCK = script_runner._clean_problem_modules if not script_cleanup.installed() else None


def test_the_installed_streamlit_has_the_clean_up_we_replace():
    script_cleanup.check()  # raises StreamlitChanged otherwise


def test_post_script_gc_is_off_in_the_repos_config():
    text = (Path(APP).parents[1] / ".streamlit" / "config.toml").read_text()
    assert "[runner]\n" in text and "\npostScriptGC = false\n" in text


@pytest.mark.parametrize("change", ["gone", "not keras", "not called"])
def test_a_changed_streamlit_fails_loudly_naming_its_version(change):
    def other_cleanup():  # does something else than the stock function
        return None

    class Calls:
        def _run_script(self):
            _clean_problem_modules()  # noqa: F821  (only its source is read)

    class DoesNotCall:
        def _run_script(self):
            return None

    fake = types.SimpleNamespace(ScriptRunner=DoesNotCall if change == "not called" else Calls)
    if change == "not keras":
        fake._clean_problem_modules = other_cleanup
    elif change == "not called":
        fake._clean_problem_modules = STOCK or script_cleanup.keep_figures_clean
        if STOCK is None:
            pytest.skip("the stock function was replaced before this module was imported")
    with pytest.raises(script_cleanup.StreamlitChanged, match=r"Streamlit \d+\.\d+.*script_cleanup\.py"):
        script_cleanup.install(fake)
    assert not script_cleanup.installed(fake)


def test_a_page_run_with_keras_imported_never_calls_clear_session(app_env, monkeypatch):
    import keras

    monkeypatch.setenv("DIGITLAB_WARMUP", "0")
    calls = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: calls.append(1))
    if STOCK is not None:  # the stock clean-up does call it: the spy works
        STOCK()
        assert calls == [1]
        calls.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    at.run()
    assert script_cleanup.installed() and script_runner._clean_problem_modules is script_cleanup.keep_figures_clean
    assert calls == []


def test_matplotlib_figures_are_still_closed_after_a_run():
    plt = pytest.importorskip("matplotlib.pyplot")
    plt.figure()
    script_cleanup.keep_figures_clean()
    assert plt.get_fignums() == []


def test_config_sections_are_read_once_and_again_after_an_option_is_set():
    from streamlit import config
    script_cleanup.keep_config_sections()
    script_cleanup.keep_config_sections()  # idempotent
    before = config.get_options_for_section("theme")
    assert config.get_options_for_section("theme") == before
    config.get_options_for_section("theme")["primaryColor"] = "changed by a caller"
    assert config.get_options_for_section("theme") == before  # callers get a copy
    old = config.get_option("theme.primaryColor")
    try:
        config.set_option("theme.primaryColor", "#123456")
        assert config.get_options_for_section("theme")["primaryColor"] == "#123456"
    finally:
        config.set_option("theme.primaryColor", old)
    assert config.get_options_for_section("theme")["primaryColor"] == old
