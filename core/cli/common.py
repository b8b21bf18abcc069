"""What every CLI command shares: the one-line user error, the parser that raises it, the store
named by --db, and output as text or JSON."""
from __future__ import annotations

import argparse
import json

from core import settings
from core.errors import DigitLabError


class UserError(DigitLabError):
    """Bad input from the user: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise UserError(f"{message} (see `{self.prog} --help`)")  # prog: "python -m core" or "python -m core train"


def open_store(args):
    """The run store of --db (else $DIGITLAB_DB, else runs.db at the repo root)."""
    from core.store.facade import RunStore
    return RunStore(settings.db_url(args.db))


def model_path(store, run_id: str) -> str | None:
    """Where the run's trained model is on this machine (fetched into the cache if needed); None if it has none."""
    from core.store.schema import MODEL_FILE
    return str(store.model_file(run_id)) if store.artifact(run_id, MODEL_FILE) is not None else None


def parse_layers(text: str | None) -> list | None:
    """--layers' JSON as a list (None when not given); a UserError saying where the JSON breaks."""
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--layers is not valid JSON ({exc.msg} at character {exc.pos})") from None


def emit(as_json: bool, data: dict, text: str) -> None:
    print(json.dumps(data) if as_json else text)
