"""Sieve errors: every compile error carries the line and column (1-based) it was found at."""

from __future__ import annotations

from pymailsrv.errors import PymailsrvError


class SieveError(PymailsrvError):
    """A script that does not compile (syntax, unknown command, missing ``require``, bad
    argument). ``str()`` is ``line L, column C: message`` — safe to show to the script's owner."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(str(self))

    def __str__(self) -> str:
        if not self.line:
            return self.message
        return f"line {self.line}, column {self.column}: {self.message}"


class SieveRuntimeError(PymailsrvError):
    """A script failed while running on a message (a limit exceeded, a missing include, a bad
    regex). The delivery falls back to keep, as RFC 5228 §2.10.6 asks."""

    def __init__(self, message: str, line: int = 0) -> None:
        self.message = message
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)
