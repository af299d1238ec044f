"""Dovecot 2.3 configuration syntax, read as Dovecot's config parser reads it.

- ``key = value``; a value in double or single quotes loses them; ``<path`` values are kept as
  written (the caller decides whether the file's contents matter, e.g. ``ssl_cert = </etc/…``);
- ``#`` outside quotes starts a comment anywhere on a line; a line ending in ``\\`` continues on
  the next (joined with one space, as settings.c does for dovecot-sql.conf.ext too);
- ``kind [name] {`` opens a section, ``}`` closes it;
- ``!include PATH`` / ``!include_try PATH``: a glob, relative to the including file's directory;
  ``!include`` of a missing file is an error, ``!include_try`` is not;
- ``$name`` in a value is the value the setting had so far (``mail_plugins = $mail_plugins quota``)
  or Dovecot's built-in default for it.

``tokenize`` is pure (text in, lines out); ``load`` reads files and follows includes.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pymailsrv.errors import ConfigError

# Built-in defaults that $name references and the translation need (doveconf -d, Dovecot 2.3).
DEFAULTS = {
    "protocols": "",  # Debian's (protocols.d adds each installed one); upstream: imap pop3 lmtp
    "mail_plugins": "",
    "auth_mechanisms": "plain",
    "ssl": "yes",
    "disable_plaintext_auth": "yes",
    "listen": "*, ::",
    "pop3_uidl_format": "%08Xu%08Xv",
    "mail_location": "",
}


@dataclass(frozen=True, slots=True)
class Setting:
    value: str
    file: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Section:
    """A section (the root has kind ""): its settings, later ones replacing earlier ones, and
    its subsections in file order."""

    kind: str = ""
    name: str = ""
    file: str = ""
    line: int = 0
    settings: dict[str, Setting] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)

    def get(self, key: str) -> Setting | None:
        return self.settings.get(key)

    def value(self, key: str, default: str = "") -> str:
        s = self.settings.get(key)
        return s.value if s is not None else default

    def find(self, kind: str, name: str | None = None) -> list[Section]:
        return [s for s in self.sections if s.kind == kind and (name is None or s.name == name)]

    def merged(self, kind: str, name: str) -> Section:
        """Every ``kind name { }`` of this section as one (Dovecot merges repeated named
        sections, the later setting winning)."""
        out = Section(kind, name)
        for s in self.find(kind, name):
            out.settings.update(s.settings)
            out.sections.extend(s.sections)
            out.file, out.line = out.file or s.file, out.line or s.line
        return out


@dataclass(frozen=True, slots=True)
class Line:
    kind: str  # "set", "open", "close", "include", "include_try"
    key: str
    value: str
    line: int


_KEY = re.compile(r"[A-Za-z0-9_./-]+")


def _strip_comment(text: str) -> str:
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return text[:i]
        i += 1
    return text


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def tokenize(text: str, filename: str = "<string>") -> Iterator[Line]:
    """The logical lines of a Dovecot configuration text."""
    pending = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw).strip()
        if pending:
            line = f"{pending} {line}".strip()
        else:
            start = number
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        pending = ""
        if line:
            yield _classify(line, filename, start)
    if pending:
        yield _classify(pending, filename, start)


def _classify(line: str, filename: str, number: int) -> Line:
    if line == "}":
        return Line("close", "", "", number)
    if line.startswith("!include_try ") or line.startswith("!include "):
        directive, _, path = line.partition(" ")
        return Line(directive[1:], "", unquote(path.strip()), number)
    key, eq, value = line.partition("=")
    if eq and _KEY.fullmatch(key.strip()):
        return Line("set", key.strip(), unquote(value.strip()), number)
    if line.endswith("{"):
        kind, _, name = line[:-1].strip().partition(" ")
        if _KEY.fullmatch(kind):
            return Line("open", kind, unquote(name.strip()), number)
    raise ConfigError(f'cannot parse "{line[:60]}"', file=filename, line=number)


Reader = Callable[[str], str]


def _read_file(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def load(path: str, *, read: Reader = _read_file, max_depth: int = 20) -> Section:
    """The whole configuration rooted at ``path`` (dovecot.conf), includes followed."""
    root = Section()
    try:
        text = read(path)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    _load_into([root], text, path, read, max_depth)
    return root


def _load_into(stack: list[Section], text: str, path: str, read: Reader, depth: int) -> None:
    base_depth = len(stack)
    for ln in tokenize(text, path):
        top = stack[-1]
        if ln.kind == "set":
            prior = top.value(ln.key) or (stack[0].value(ln.key) if top is not stack[0] else "")
            value = _expand(ln.value, ln.key, prior, top, stack[0])
            top.settings[ln.key] = Setting(value, path, ln.line)
        elif ln.kind == "open":
            sec = Section(ln.key, ln.value, path, ln.line)
            top.sections.append(sec)
            stack.append(sec)
        elif ln.kind == "close":
            if len(stack) <= base_depth:
                raise ConfigError('"}" without an open section', file=path, line=ln.line)
            stack.pop()
        else:
            if depth <= 0:
                raise ConfigError("includes nested too deeply", file=path, line=ln.line)
            pattern = ln.value if os.path.isabs(ln.value) else os.path.join(os.path.dirname(path), ln.value)
            matches = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
            for inc in matches:
                try:
                    inc_text = read(inc)
                except OSError as exc:
                    if ln.kind == "include_try":
                        continue
                    raise ConfigError(f"!include {inc}: {exc.strerror}", file=path, line=ln.line) from None
                _load_into(stack, inc_text, inc, read, depth - 1)
    if len(stack) != base_depth:
        raise ConfigError(f'section "{stack[-1].kind}" is not closed', file=path)


_VAR = re.compile(r"\$([A-Za-z0-9_]+)")


def _expand(value: str, key: str, prior: str, top: Section, root: Section) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == key:
            return prior if prior or key not in DEFAULTS else DEFAULTS[key]
        for sec in (top, root):
            if name in sec.settings:
                return sec.settings[name].value
        return DEFAULTS.get(name, m.group(0))

    return _VAR.sub(repl, value) if "$" in value else value


def load_flat(path: str, *, read: Reader = _read_file) -> Section:
    """A ``.conf.ext`` of plain settings (dovecot-sql.conf.ext): no sections, no includes."""
    try:
        text = read(path)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path) from None
    root = Section(file=path)
    for ln in tokenize(text, path):
        if ln.kind != "set":
            raise ConfigError("expected key = value", file=path, line=ln.line)
        root.settings[ln.key] = Setting(ln.value, path, ln.line)
    return root


def connect_args(connect: str) -> dict[str, list[str]]:
    """Dovecot's SQL ``connect`` string: ``host=a host=b dbname=x user=y password="p w"``; each
    key may repeat (several hosts). A value without ``key=`` (SQLite's path) is under ""."""
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"""(?:([A-Za-z_]+)=)?("(?:\\.|[^"])*"|'[^']*'|\S+)""", connect):
        out.setdefault((m.group(1) or "").lower(), []).append(unquote(m.group(2)))
    return out
