"""Sieve lexer and parser (RFC 5228 §8): text in, a list of RawCommand out, no I/O.

Implementation notes:
- Positions are 1-based line and column of the token's first character; every SieveError names one.
- Line ends: CRLF or bare LF (scripts edited on Unix have LF; RFC 5228 §8.1 says CRLF).
- Quoted strings: ``\\"`` and ``\\\\`` are escapes; a backslash before anything else is dropped
  (RFC 5228 §2.4.2). Multi-line ``text:`` strings undo dot-stuffing (§2.4.2, §8.1).
- Nesting depth and script size are bounded so a hostile script cannot exhaust the stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pymailsrv.sieve.errors import SieveError
from pymailsrv.sieve.syntax import (
    Arg,
    NumberArg,
    Pos,
    RawCommand,
    RawTest,
    StringArg,
    StringListArg,
    TagArg,
)

MAX_SCRIPT_BYTES = 1 << 20  # Pigeonhole's sieve_max_script_size default
MAX_NESTING = 32  # blocks and tests, as Pigeonhole's SIEVE_MAX_BLOCK_NESTING/TEST_NESTING
MAX_NUMBER = (1 << 63) - 1

_QUANTIFIERS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(slots=True)
class Token:
    kind: str  # ident, tag, number, string, mstring, punct, eof
    value: str | int
    pos: Pos


_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
      | (?P<hash>\#[^\n]*)
      | (?P<bracket>/\*)
      | (?P<mstring>text:)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>[0-9]+[KkMmGg]?)
      | (?P<quote>")
      | (?P<punct>[\[\](),;{}])
    """,
    re.VERBOSE,
)


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.line = 1
        self.line_start = 0

    def pos(self, i: int | None = None) -> Pos:
        i = self.i if i is None else i
        return Pos(self.line, i - self.line_start + 1)

    def _advance(self, end: int) -> None:
        """Move to ``end``, counting the lines passed."""
        chunk = self.text[self.i:end]
        n = chunk.count("\n")
        if n:
            self.line += n
            self.line_start = self.i + chunk.rindex("\n") + 1
        self.i = end

    def tokens(self) -> list[Token]:
        out: list[Token] = []
        text = self.text
        while self.i < len(text):
            m = _TOKEN.match(text, self.i)
            if m is None:
                ch = text[self.i]
                raise SieveError(f"unexpected character {ch!r}", *self._lc())
            kind = m.lastgroup or ""
            start = self.pos()
            if kind in ("ws", "hash"):
                self._advance(m.end())
            elif kind == "bracket":
                end = text.find("*/", m.end())
                if end < 0:
                    raise SieveError("unterminated comment", start.line, start.column)
                self._advance(end + 2)
            elif kind == "quote":
                out.append(Token("string", self._quoted(m.end()), start))
            elif kind == "mstring":
                out.append(Token("string", self._multiline(m.end()), start))
            elif kind == "number":
                out.append(Token("number", self._number(m.group(), start), start))
                self._advance(m.end())
            elif kind == "tag":
                out.append(Token("tag", m.group()[1:].lower(), start))
                self._advance(m.end())
            elif kind == "ident":
                out.append(Token("ident", m.group().lower(), start))
                self._advance(m.end())
            else:
                out.append(Token("punct", m.group(), start))
                self._advance(m.end())
        out.append(Token("eof", "", self.pos()))
        return out

    def _lc(self) -> tuple[int, int]:
        p = self.pos()
        return p.line, p.column

    @staticmethod
    def _number(word: str, pos: Pos) -> int:
        q = word[-1].upper() if word[-1].isalpha() else ""
        n = int(word[:-1] if q else word) * _QUANTIFIERS[q]
        if n > MAX_NUMBER:
            raise SieveError("number too large", pos.line, pos.column)
        return n

    def _quoted(self, i: int) -> str:
        text = self.text
        parts: list[str] = []
        start = self.pos()
        while True:
            j = text.find('"', i)
            k = text.find("\\", i)
            if j < 0:
                raise SieveError("unterminated quoted string", start.line, start.column)
            if 0 <= k < j:
                parts.append(text[i:k])
                if k + 1 >= len(text):
                    raise SieveError("unterminated quoted string", start.line, start.column)
                parts.append(text[k + 1])  # RFC 5228 §2.4.2: "\" before any char is that char
                i = k + 2
                continue
            parts.append(text[i:j])
            self._advance(j + 1)
            return "".join(parts).replace("\r\n", "\n")

    def _multiline(self, i: int) -> str:
        text = self.text
        start = self.pos()
        # text: *(SP / HTAB) (hash-comment / CRLF)
        m = re.compile(r"[ \t]*(?:#[^\n]*)?\r?\n").match(text, i)
        if m is None:
            raise SieveError("expected a line end after 'text:'", start.line, start.column)
        i = m.end()
        lines: list[str] = []
        while True:
            nl = text.find("\n", i)
            if nl < 0:
                self._advance(len(text))
                raise SieveError("unterminated multi-line string (no '.' line)", start.line, start.column)
            line = text[i:nl].removesuffix("\r")
            i = nl + 1
            if line == ".":
                break
            lines.append(line[1:] if line.startswith("..") else line)
        self._advance(i)
        return "".join(x + "\n" for x in lines)


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.k = 0

    def peek(self) -> Token:
        return self.toks[self.k]

    def take(self) -> Token:
        t = self.toks[self.k]
        self.k += 1
        return t

    def is_punct(self, ch: str) -> bool:
        t = self.peek()
        return t.kind == "punct" and t.value == ch

    def expect(self, ch: str, what: str) -> Token:
        t = self.peek()
        if not (t.kind == "punct" and t.value == ch):
            raise SieveError(f"expected {what} but found {describe(t)}", t.pos.line, t.pos.column)
        return self.take()

    def commands(self, depth: int, until_brace: bool) -> list[RawCommand]:
        out: list[RawCommand] = []
        while True:
            t = self.peek()
            if t.kind == "eof":
                if until_brace:
                    raise SieveError("unexpected end of script: missing '}'", t.pos.line, t.pos.column)
                return out
            if until_brace and t.kind == "punct" and t.value == "}":
                self.take()
                return out
            out.append(self.command(depth))

    def command(self, depth: int) -> RawCommand:
        t = self.take()
        if t.kind != "ident":
            raise SieveError(f"expected a command but found {describe(t)}", t.pos.line, t.pos.column)
        args = self.arguments()
        tests, test_list = self.test_part(depth)
        nxt = self.peek()
        block: list[RawCommand] | None = None
        if nxt.kind == "punct" and nxt.value == ";":
            self.take()
        elif nxt.kind == "punct" and nxt.value == "{":
            if depth >= MAX_NESTING:
                raise SieveError("blocks nested too deeply", nxt.pos.line, nxt.pos.column)
            self.take()
            block = self.commands(depth + 1, until_brace=True)
        else:
            raise SieveError(f"expected ';' or '{{' after command '{t.value}' but found {describe(nxt)}",
                             nxt.pos.line, nxt.pos.column)
        return RawCommand(str(t.value), args, tests, block, t.pos, test_list)

    def test_part(self, depth: int) -> tuple[list[RawTest], bool]:
        t = self.peek()
        if t.kind == "ident":
            return [self.test(depth + 1)], False
        if t.kind == "punct" and t.value == "(":
            return self.test_list(depth + 1), True
        return [], False

    def test_list(self, depth: int) -> list[RawTest]:
        self.take()  # "("
        tests = [self.test(depth)]
        while self.is_punct(","):
            self.take()
            tests.append(self.test(depth))
        self.expect(")", "',' or ')' in a test list")
        return tests

    def test(self, depth: int) -> RawTest:
        t = self.take()
        if depth >= MAX_NESTING:
            raise SieveError("tests nested too deeply", t.pos.line, t.pos.column)
        if t.kind != "ident":
            raise SieveError(f"expected a test but found {describe(t)}", t.pos.line, t.pos.column)
        args = self.arguments()
        tests, test_list = self.test_part(depth)
        return RawTest(str(t.value), args, tests, t.pos, test_list)

    def arguments(self) -> list[Arg]:
        args: list[Arg] = []
        while True:
            t = self.peek()
            if t.kind == "string":
                self.take()
                args.append(StringArg(str(t.value), t.pos))
            elif t.kind == "number":
                self.take()
                args.append(NumberArg(int(t.value), t.pos))
            elif t.kind == "tag":
                self.take()
                args.append(TagArg(str(t.value), t.pos))
            elif t.kind == "punct" and t.value == "[":
                args.append(self.string_list())
            else:
                return args

    def string_list(self) -> StringListArg:
        start = self.take()
        values: list[str] = []
        while True:
            t = self.take()
            if t.kind != "string":
                raise SieveError(f"expected a string in a string list but found {describe(t)}",
                                 t.pos.line, t.pos.column)
            values.append(str(t.value))
            t = self.take()
            if t.kind == "punct" and t.value == "]":
                return StringListArg(values, start.pos)
            if not (t.kind == "punct" and t.value == ","):
                raise SieveError(f"expected ',' or ']' in a string list but found {describe(t)}",
                                 t.pos.line, t.pos.column)


def describe(t: Token) -> str:
    if t.kind == "eof":
        return "end of script"
    if t.kind == "string":
        return "a string"
    if t.kind == "number":
        return "a number"
    if t.kind == "tag":
        return f"tag ':{t.value}'"
    if t.kind == "ident":
        return f"identifier '{t.value}'"
    return f"'{t.value}'"


def parse(text: str) -> list[RawCommand]:
    """The commands of a script. Raises SieveError (with line and column) on any syntax error."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise SieveError("script too large", 1, 1)
    return Parser(Lexer(text).tokens()).commands(0, until_brace=False)
