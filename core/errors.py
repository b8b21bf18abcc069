"""The one base of every error a user of Digit Lab may see.

A `DigitLabError` carries a one-line message that says what is wrong and, optionally, a hint
that says how to fix it. The CLI catches this one class and prints the line (exit 2); the
dashboard shows it in one box. Anything else that escapes is a bug and keeps its traceback.
"""
from __future__ import annotations


class DigitLabError(Exception):
    """What is wrong, in one line, and optionally how to fix it."""

    def __init__(self, message: str = "", hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message
