"""``pymailsrv sieve check|test``: compile a script, or run it on a message and print the actions
it would take without taking any (as Pigeonhole's sieve-test does)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TextIO

from pymailsrv.sieve.compiler import compile_script
from pymailsrv.sieve.errors import SieveError
from pymailsrv.sieve.interpreter import Context, run_script
from pymailsrv.sieve.message import Envelope, SieveMessage


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def check(path: str, extensions: Iterable[str] | None, out: TextIO) -> int:
    try:
        compile_script(_read(path), extensions)
    except SieveError as exc:
        print(f"{path}:{exc.line}:{exc.column}: {exc.message}", file=out)
        return 1
    print(f"{path}: ok", file=out)
    return 0


def test(path: str, message_path: str, sender: str, recipient: str, extensions: Iterable[str] | None,
         out: TextIO) -> int:
    try:
        script = compile_script(_read(path), extensions)
    except SieveError as exc:
        print(f"{path}:{exc.line}:{exc.column}: {exc.message}", file=out)
        return 1
    with open(message_path, "rb") as f:
        msg = SieveMessage.parse(f.read().replace(b"\r\n", b"\n"))
    result = run_script(script, msg, Context(Envelope(sender, recipient)))
    if result.error is not None:
        print(f"{path}: {result.error}; the message would be kept", file=out)
    for action, text in zip(result.actions, result.describe(), strict=True):
        print(("implicit keep: " if action.implicit else "") + text, file=out)
    return 1 if result.error is not None else 0
