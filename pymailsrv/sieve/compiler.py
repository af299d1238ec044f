"""Check a parsed script against the command table and turn it into a Script the interpreter runs.

Pure module. What is checked here (each error with line and column): unknown commands, tests and
tags; a command, test or tag whose extension was not required (RFC 5228 §3.2); argument kinds and
counts; tags of one group given twice; ``require`` after other commands; ``elsif``/``else``
without ``if``; unknown comparators, relations, date parts and extensions; regexes and variable
names that cannot work. ``encoded-character`` strings are decoded here (RFC 5228 §2.4.2.4).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pymailsrv.sieve.errors import SieveError, SieveRuntimeError
from pymailsrv.sieve.match import user_regex
from pymailsrv.sieve.notify import valid_method
from pymailsrv.sieve.parser import parse
from pymailsrv.sieve.spec import (
    COMMANDS,
    COMPARATORS,
    EXTENSIONS,
    RELATIONS,
    SET_MODIFIERS,
    TESTS,
    Spec,
)
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

Value = str | list[str] | int | bool


@dataclass(slots=True)
class Node:
    """A checked command or test. ``tags`` maps a tag group (``match``, ``comparator``,
    ``addrpart``…) to the chosen tag's name and a tag with an argument to that argument; a lone
    tag maps to True. ``args`` holds the positional arguments in the table's order (an absent
    optional one is None)."""

    name: str
    tags: dict[str, Value]
    args: list[Value | None]
    tests: list[Node]
    block: list[Node] | None
    line: int
    column: int = 0


@dataclass(slots=True)
class Script:
    """A compiled script: run it with ``pymailsrv.sieve.interpreter``. Immutable once built."""

    commands: list[Node]
    requires: frozenset[str]
    name: str = ""
    includes: list[tuple[str, str]] = field(default_factory=list)  # (location, name) it may include
    uses: frozenset[str] = frozenset()  # the command and test names it contains


IMPLIES = {"vacation-seconds": ("vacation",)}  # RFC 6131 §2: it implies "vacation"
_ADDRESS = re.compile(r"^<?[^@<>\s]+@[^@<>\s]+>?$")
_OPTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*=")  # RFC 5435 §3.5: name=value
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENCODED = re.compile(r"\$\{(hex|unicode):([^}]*)\}", re.IGNORECASE)


def compile_script(text: str, extensions: Iterable[str] | None = None, *, name: str = "") -> Script:
    """Parse and check a Sieve script. ``extensions`` limits what ``require`` may name (default:
    every one in EXTENSIONS, e.g. a site's ``sieve_extensions``). Raises SieveError with the line
    and column of the first problem."""
    allowed = frozenset(EXTENSIONS if extensions is None else extensions)
    raw = parse(text)
    requires: set[str] = set()
    seen_other = False
    for cmd in raw:
        if cmd.name == "require":
            if seen_other:
                raise SieveError("require must come before any other command", cmd.pos.line, cmd.pos.column)
            for ext in _require_names(cmd):
                if ext not in allowed:
                    raise SieveError(f"unknown extension '{ext}'", cmd.pos.line, cmd.pos.column)
                requires.add(ext)
                requires.update(IMPLIES.get(ext, ()))
        else:
            seen_other = True
    checker = _Checker(frozenset(requires))
    commands = checker.block([c for c in raw if c.name != "require"], top=True)
    return Script(commands, frozenset(requires), name, checker.includes, frozenset(checker.uses))


def _require_names(cmd: RawCommand) -> list[str]:
    if len(cmd.args) != 1 or not isinstance(cmd.args[0], StringArg | StringListArg) or cmd.tests or cmd.block:
        raise SieveError("require takes one string list", cmd.pos.line, cmd.pos.column)
    a = cmd.args[0]
    return [a.value] if isinstance(a, StringArg) else list(a.values)


class _Checker:
    def __init__(self, requires: frozenset[str]) -> None:
        self.requires = requires
        self.includes: list[tuple[str, str]] = []
        self.uses: set[str] = set()
        self.encoded = "encoded-character" in requires

    def need(self, ext: str | None, what: str, pos: Pos) -> None:
        if ext is not None and ext not in self.requires:
            raise SieveError(f"{what} needs require \"{ext}\"", pos.line, pos.column)

    def block(self, cmds: list[RawCommand], top: bool = False) -> list[Node]:
        out: list[Node] = []
        prev = ""
        for cmd in cmds:
            if cmd.name == "require":
                raise SieveError("require must come before any other command", cmd.pos.line, cmd.pos.column)
            if cmd.name in ("elsif", "else") and prev not in ("if", "elsif"):
                raise SieveError(f"{cmd.name} without a preceding if", cmd.pos.line, cmd.pos.column)
            out.append(self.command(cmd))
            prev = cmd.name
        return out

    def command(self, cmd: RawCommand) -> Node:
        spec = COMMANDS.get(cmd.name)
        if spec is None:
            raise SieveError(f"unknown command '{cmd.name}'", cmd.pos.line, cmd.pos.column)
        self.need(spec.ext, f"command '{cmd.name}'", cmd.pos)
        self.uses.add(cmd.name)
        tags, args = self.arguments(cmd.name, spec, cmd.args, cmd.pos)
        tests = self.tests_of(cmd.name, spec, cmd.tests, cmd.test_list, cmd.pos)
        if spec.block and cmd.block is None:
            raise SieveError(f"command '{cmd.name}' needs a block", cmd.pos.line, cmd.pos.column)
        if not spec.block and cmd.block is not None:
            raise SieveError(f"command '{cmd.name}' takes no block", cmd.pos.line, cmd.pos.column)
        block = self.block(cmd.block) if cmd.block is not None else None
        node = Node(cmd.name, tags, args, tests, block, cmd.pos.line, cmd.pos.column)
        self.check_command(node, cmd.pos)
        return node

    def test(self, t: RawTest) -> Node:
        spec = TESTS.get(t.name)
        if spec is None:
            raise SieveError(f"unknown test '{t.name}'", t.pos.line, t.pos.column)
        self.need(spec.ext, f"test '{t.name}'", t.pos)
        self.uses.add(t.name)
        tags, args = self.arguments(t.name, spec, t.args, t.pos)
        tests = self.tests_of(t.name, spec, t.tests, t.test_list, t.pos)
        node = Node(t.name, tags, args, tests, None, t.pos.line, t.pos.column)
        self.check_test(node, t.pos)
        return node

    def tests_of(self, name: str, spec: Spec, tests: list[RawTest], as_list: bool, pos: Pos) -> list[Node]:
        if spec.tests == "none" and tests:
            raise SieveError(f"'{name}' takes no test", tests[0].pos.line, tests[0].pos.column)
        if spec.tests == "one" and (len(tests) != 1 or as_list):
            raise SieveError(f"'{name}' needs exactly one test", pos.line, pos.column)
        if spec.tests == "list" and not as_list:
            raise SieveError(f"'{name}' needs a test list in parentheses", pos.line, pos.column)
        return [self.test(t) for t in tests]

    def arguments(self, name: str, spec: Spec, raw: list[Arg],
                  pos: Pos) -> tuple[dict[str, Value], list[Value | None]]:
        tags: dict[str, Value] = {}
        positional: list[Arg] = []
        i = 0
        while i < len(raw):
            a = raw[i]
            i += 1
            if not isinstance(a, TagArg):
                positional.append(a)
                continue
            if positional:
                raise SieveError(f"tag ':{a.name}' after a positional argument of '{name}'", a.pos.line, a.pos.column)
            ts = spec.tags.get(a.name)
            if ts is None:
                raise SieveError(f"unknown tag ':{a.name}' for '{name}'", a.pos.line, a.pos.column)
            self.need(ts.ext, f"tag ':{a.name}'", a.pos)
            key = ts.group or a.name
            if key in tags:
                raise SieveError(f"tag ':{a.name}' conflicts with an earlier tag", a.pos.line, a.pos.column)
            if ts.arg is None:
                tags[key] = a.name if ts.group else True
                continue
            if i >= len(raw):
                raise SieveError(f"tag ':{a.name}' needs an argument", a.pos.line, a.pos.column)
            value = self.value(raw[i], ts.arg, f"argument of ':{a.name}'")
            i += 1
            if ts.group:
                tags[key] = a.name
                tags[a.name] = value
            else:
                tags[key] = value
        return tags, self.positionals(name, spec, positional, pos)

    def positionals(self, name: str, spec: Spec, given: list[Arg], pos: Pos) -> list[Value | None]:
        want = len(spec.pos)
        least = want - spec.optional_first - spec.optional_last
        if not least <= len(given) <= want:
            where = given[want].pos if len(given) > want else pos
            raise SieveError(f"'{name}' takes {want if least == want else f'{least} to {want}'} "
                             f"positional argument(s), not {len(given)}", where.line, where.column)
        missing = want - len(given)
        kinds = spec.pos
        out: list[Value | None] = []
        if spec.optional_first and missing:
            kinds = kinds[missing:]
            out = [None] * missing
        for a, kind in zip(given, kinds, strict=False):
            out.append(self.value(a, kind, f"argument of '{name}'"))
        out += [None] * (want - len(out))
        return out

    def value(self, a: Arg, kind: str, what: str) -> Value:
        if kind == "num":
            if not isinstance(a, NumberArg):
                raise SieveError(f"{what} must be a number", a.pos.line, a.pos.column)
            return a.value
        if kind == "str":
            if not isinstance(a, StringArg):
                raise SieveError(f"{what} must be a string", a.pos.line, a.pos.column)
            return self.decode(a.value, a.pos)
        if isinstance(a, StringArg):
            return [self.decode(a.value, a.pos)]
        if isinstance(a, StringListArg):
            return [self.decode(v, a.pos) for v in a.values]
        raise SieveError(f"{what} must be a string list", a.pos.line, a.pos.column)

    def decode(self, s: str, pos: Pos) -> str:
        if not self.encoded or "${" not in s:
            return s
        return _ENCODED.sub(lambda m: _decode_one(m, pos), s)

    # -- per-command rules the table cannot say ---------------------------------------------
    def check_command(self, n: Node, pos: Pos) -> None:
        if n.name == "set":
            var = str(n.args[0])
            if not _VAR_NAME.match(var):
                raise SieveError(f"invalid variable name '{var}'", pos.line, pos.column)
            groups = [SET_MODIFIERS[m] for m in SET_MODIFIERS if m in n.tags]
            if len(groups) != len(set(groups)):
                raise SieveError("two modifiers of the same precedence", pos.line, pos.column)
        elif n.name in ("setflag", "addflag", "removeflag") and n.args[0] is not None:
            self.need("variables", f"the variable argument of '{n.name}'", pos)
        elif n.name == "global":
            self.need("variables", "command 'global'", pos)
            for var in _strs(n.args[0]):
                if not _VAR_NAME.match(var):
                    raise SieveError(f"invalid variable name '{var}'", pos.line, pos.column)
        elif n.name == "include":
            script = str(n.args[0])
            if not script or "/" in script or script.startswith("."):
                raise SieveError(f"invalid script name '{script}'", pos.line, pos.column)
            self.includes.append((str(n.tags.get("location", "personal")), script))
        elif n.name in ("addheader", "deleteheader"):
            field_name = str(n.args[0])
            if not re.fullmatch(r"[!-9;-~]+", field_name):
                raise SieveError(f"invalid header field name '{field_name}'", pos.line, pos.column)
        elif n.name == "notify":
            self.check_notify(n, pos)
        elif n.name == "redirect" and "${" not in str(n.args[0]) and not _ADDRESS.match(str(n.args[0]).strip()):
            raise SieveError(f"redirect: invalid address '{n.args[0]}'", pos.line, pos.column)
        elif n.name == "vacation" and "from" in n.tags and not _maybe_address(str(n.tags["from"])):
            raise SieveError("vacation :from is not an address", pos.line, pos.column)
        self.check_match(n, pos)

    def check_notify(self, n: Node, pos: Pos) -> None:
        """RFC 5435 §3: what can be known before a message arrives (constants only)."""
        method = str(n.args[0])
        if "${" not in method and not valid_method(method):
            raise SieveError(f"notify: unsupported or invalid method '{method}'", pos.line, pos.column)
        importance = n.tags.get("importance")
        if importance is not None and "${" not in str(importance) and str(importance) not in ("1", "2", "3"):
            raise SieveError("notify :importance must be \"1\", \"2\" or \"3\"", pos.line, pos.column)
        for option in _strs(n.tags.get("options")):
            if "${" not in option and not _OPTION.match(option):
                raise SieveError(f"notify: invalid option '{option}' (name=value)", pos.line, pos.column)
        sender = n.tags.get("from")
        if sender is not None and not _maybe_address(str(sender)):
            raise SieveError("notify :from is not an address", pos.line, pos.column)

    def check_test(self, n: Node, pos: Pos) -> None:
        if n.name == "size" and "size" not in n.tags:
            raise SieveError("size needs :over or :under", pos.line, pos.column)
        if n.name == "envelope":
            for part in _strs(n.args[0]):
                if "${" not in part and part.lower() not in ("from", "to", "auth"):
                    raise SieveError(f"unknown envelope part '{part}'", pos.line, pos.column)
        if n.name == "hasflag" and n.args[0] is not None:
            self.need("variables", "the variable list of 'hasflag'", pos)
        self.check_match(n, pos)

    def check_match(self, n: Node, pos: Pos) -> None:
        cmp = n.tags.get("comparator")
        if cmp is not None:
            if str(cmp) not in COMPARATORS:
                raise SieveError(f"unknown comparator '{cmp}'", pos.line, pos.column)
            if cmp == "i;ascii-numeric":
                self.need("comparator-i;ascii-numeric", "comparator 'i;ascii-numeric'", pos)
        match = n.tags.get("match")
        if match in ("count", "value"):
            rel = str(n.tags[str(match)]).lower()
            if rel not in RELATIONS:
                raise SieveError(f"unknown relation '{rel}'", pos.line, pos.column)
            n.tags[str(match)] = rel
        if match == "regex":
            if cmp == "i;ascii-numeric":
                raise SieveError("regex cannot use comparator i;ascii-numeric", pos.line, pos.column)
            keys = n.args[-1]
            for k in _strs(keys):
                if "${" in k and "variables" in self.requires:
                    continue
                try:
                    user_regex(k, False)
                except SieveRuntimeError as exc:
                    raise SieveError(exc.message, pos.line, pos.column) from None
        if "index" in n.tags and int(n.tags["index"]) < 1:  # type: ignore[arg-type]
            raise SieveError(":index must be 1 or more", pos.line, pos.column)
        if "last" in n.tags and "index" not in n.tags and n.name != "addheader" and n.name != "duplicate":
            raise SieveError(":last needs :index", pos.line, pos.column)


def _maybe_address(s: str) -> bool:
    """Could this be an address once variables are expanded?"""
    return "@" in s or "${" in s


def _strs(v: Value | None) -> list[str]:
    if isinstance(v, list):
        return v
    return [] if v is None else [str(v)]


def _decode_one(m: re.Match[str], pos: Pos) -> str:
    kind, body = m.group(1).lower(), m.group(2)
    words = body.split()
    if not words or any(not re.fullmatch(r"[0-9A-Fa-f]+", w) for w in words):
        return m.group(0)  # RFC 5228 §2.4.2.4: not a valid encoding: left as it is
    if kind == "hex":
        if any(len(w) % 2 for w in words):
            return m.group(0)
        data = bytes.fromhex("".join(words))
        return data.decode("utf-8", "replace")
    chars: list[str] = []
    for w in words:
        cp = int(w, 16)
        if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            raise SieveError(f"invalid unicode character U+{w.upper()}", pos.line, pos.column)
        chars.append(chr(cp))
    return "".join(chars)
