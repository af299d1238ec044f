"""Postfix master.cf (master(5)): one service per logical line, pure.

``service type private unpriv chroot wakeup maxproc command [args…]``; a line starting with white
space continues the previous one; ``#`` at the start of a line is a comment. ``-o name=value``
(or ``-o { name = value with spaces }``) overrides a main.cf parameter for that service only.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from pymailsrv.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Service:
    name: str  # "smtp", "submission", "127.0.0.1:10025", "amavis"
    type: str  # inet, unix, unix-dgram, fifo, pass
    command: str  # smtpd, smtp, pipe, spawn, …
    args: tuple[str, ...]  # after the command, -o options removed
    overrides: dict[str, str] = field(default_factory=dict)
    line: int = 0

    def argv(self) -> str:
        """The ``argv=…`` program of a pipe/spawn service with its arguments, or ""."""
        for i, a in enumerate(self.args):
            if a.startswith("argv="):
                return " ".join([a[5:], *self.args[i + 1:]])
        return ""


def _logical_lines(text: str) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[0] in " \t" and out:
            start, prev = out[-1]
            out[-1] = (start, f"{prev} {stripped}")
        else:
            out.append((number, stripped))
    return out


def _words(text: str) -> list[str]:
    """Split on white space; ``{ … }`` stays one word (its braces removed, inside stripped)."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] == "{":
            end = text.find("}", i)
            end = n if end < 0 else end
            words.append(text[i + 1:end].strip())
            i = end + 1
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        words.append(text[i:j])
        i = j
    return words


def parse(text: str, filename: str = "master.cf") -> list[Service]:
    services: list[Service] = []
    for number, line in _logical_lines(text):
        fields = _words(line)
        if len(fields) < 8:
            raise ConfigError("a service needs 8 fields at least", file=filename, line=number)
        name, kind, command, rest = fields[0], fields[1], fields[7], fields[8:]
        args: list[str] = []
        overrides: dict[str, str] = {}
        i = 0
        while i < len(rest):
            if rest[i] == "-o" and i + 1 < len(rest):
                key, _, value = rest[i + 1].partition("=")
                overrides[key.strip()] = value.strip()
                i += 2
            elif rest[i].startswith("-o") and len(rest[i]) > 2:
                key, _, value = rest[i][2:].partition("=")
                overrides[key.strip()] = value.strip()
                i += 1
            else:
                args.append(rest[i])
                i += 1
        services.append(Service(name, kind, command, tuple(args), overrides, number))
    return services


def split_argv(argv: str) -> list[str]:
    try:
        return shlex.split(argv)
    except ValueError:
        return argv.split()
