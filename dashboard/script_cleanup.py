"""No rerun pays for Keras: Streamlit's clean-up after each script run, without its Keras part.

After every script run (each rerun, each fragment tick) Streamlit 1.67 calls
`streamlit.runtime.scriptrunner.script_runner._clean_problem_modules()`. When `keras` is in
`sys.modules` it calls `keras.backend.clear_session()` (resets Keras' global state, clears
TensorFlow's caches and runs a full `gc.collect()`), then closes matplotlib's figures. The
dashboard imports Keras from the first visit (the warm-up), so from then on every page paid that
clear: about 0.4 s of CPU per run. Our models are cached on purpose (dashboard/model_cache.py)
and no page builds a model, so there is nothing for the clear to free.

`install()` replaces that one function, once per process, with `keep_figures_clean` (the
matplotlib part only). It is the one place that relies on Streamlit's private code, so it checks
first that the function exists, reads `sys.modules["keras"]`, calls `clear_session`, closes
matplotlib figures, and is what the script runner calls after a run; if a Streamlit upgrade
changes any of that, the app stops at start-up with an error naming the Streamlit version,
never silently pays (or skips) something else. tests/test_script_cleanup.py pins it.
The post-run `gc.collect(2)` is turned off separately: `runner.postScriptGC = false` in
.streamlit/config.toml.

The same holds for the message that starts every script run (each fragment tick and each stroke
on the Draw page too): Streamlit fills in the theme by calling `config.get_options_for_section`
six times, and each call walks all of its several hundred options; that was about a tenth of a
live viewer's cost. `install()` also keeps each section's options once, read again whenever an
option is set (`config._set_option`, which `set_option` and every config file read go through)
or the options are parsed anew.
"""
from __future__ import annotations

import inspect
import logging
import sys

import streamlit
from streamlit import config
from streamlit.runtime.scriptrunner import script_runner

log = logging.getLogger("dashboard")

CHECKED_ON = "1.67.0"                      # the Streamlit version this was read against
TARGET = "_clean_problem_modules"          # script_runner's function called after each run
# What the stock function's source must contain, and the caller that must call it by name.
EXPECTED = ('sys.modules["keras"]', "clear_session()", '"matplotlib.pyplot"', 'close("all")')
CALLER = ("ScriptRunner", "_run_script")


class StreamlitChanged(RuntimeError):
    """Streamlit no longer has what dashboard/script_cleanup.py relies on: review that module."""


def keep_figures_clean() -> None:
    """Streamlit's clean-up minus Keras: close matplotlib's figures (pyplot keeps them globally)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        plt.close("all")
    except Exception:  # as in Streamlit: a failed close must never stop the app
        log.warning("could not close matplotlib figures after a script run", exc_info=True)


keep_figures_clean.digitlab = True  # marks the replacement, so `install` is idempotent


def _fail(why: str) -> StreamlitChanged:
    return StreamlitChanged(
        f"Streamlit {streamlit.__version__}: {why}. Digit Lab skips Streamlit's per-run Keras clean-up by "
        f"replacing streamlit.runtime.scriptrunner.script_runner.{TARGET} (checked on Streamlit {CHECKED_ON}); "
        "review dashboard/script_cleanup.py for this version, or pin streamlit==" + CHECKED_ON + ".")


def check(module=script_runner) -> None:
    """Raise StreamlitChanged unless `module` has the stock clean-up this module replaces."""
    stock = getattr(module, TARGET, None)
    if stock is None or not callable(stock):
        raise _fail(f"script_runner has no function {TARGET}()")
    if getattr(stock, "digitlab", False):
        return
    try:
        source = inspect.getsource(stock)
        caller = inspect.getsource(getattr(getattr(module, CALLER[0]), CALLER[1]))
    except (OSError, TypeError, AttributeError) as exc:
        raise _fail(f"cannot read {TARGET} or {'.'.join(CALLER)} ({exc})") from exc
    missing = [text for text in EXPECTED if text not in source]
    if missing:
        raise _fail(f"{TARGET}() no longer does what we replace (its source lacks {', '.join(missing)})")
    if f"{TARGET})" not in caller and f"{TARGET}()" not in caller:
        raise _fail(f"{'.'.join(CALLER)} no longer calls {TARGET}")
    try:
        config.get_option("runner.postScriptGC")
    except RuntimeError as exc:  # an unknown option: .streamlit/config.toml's switch would do nothing
        raise _fail("the option runner.postScriptGC is gone") from exc


_sections: dict[tuple[str, int], dict] = {}   # (section, id of the parsed options) -> its options


def _options_for_section(section: str, _stock=config.get_options_for_section) -> dict:
    """`config.get_options_for_section`, kept until an option is set or the options are parsed anew."""
    key = (section, id(config._config_options))
    if key not in _sections:
        _sections[key] = _stock(section)
    return dict(_sections[key])  # a copy: the caller may change it


def _set_option_then_forget(key, value, where_defined, _stock=config._set_option) -> None:
    _sections.clear()
    _stock(key, value, where_defined)


_options_for_section.digitlab = _set_option_then_forget.digitlab = True


def keep_config_sections(module=config) -> None:
    """Read each config section's options once (see above); fails loudly if `config` changed."""
    if getattr(module.get_options_for_section, "digitlab", False):
        return
    if not all(callable(getattr(module, name, None)) for name in ("get_options_for_section", "_set_option")) \
            or not hasattr(module, "_config_options"):
        raise _fail("streamlit.config has no get_options_for_section, _set_option or _config_options")
    module.get_options_for_section = _options_for_section
    module._set_option = _set_option_then_forget


def install(module=script_runner) -> None:
    """Replace the per-run clean-up with `keep_figures_clean` and keep the config's sections (once per
    process; fails loudly, see above)."""
    check(module)
    if not getattr(getattr(module, TARGET), "digitlab", False):
        setattr(module, TARGET, keep_figures_clean)
        log.info("Streamlit's per-run keras.backend.clear_session() is off (dashboard/script_cleanup.py)")
    keep_config_sections()
    if config.get_option("runner.postScriptGC"):
        log.warning("runner.postScriptGC is on (started outside the repo root?): every script run ends with "
                    "a full garbage collection; .streamlit/config.toml turns it off")


def installed(module=script_runner) -> bool:
    return bool(getattr(getattr(module, TARGET, None), "digitlab", False))
