"""Reads an strace log of a mail server and checks, for every SMTP "250 … queued as ID" it sent,
that the message was durable before that reply: power loss after the 250 must not lose it.

The log comes from ``strace -f -yy -ttt -s 4096 -o FILE -e trace=…`` (``-y`` prints each fd's
path, so a write, an fsync and a rename can be tied to one file without tracking fds). A message
counts as durable at its 250 when a file whose written bytes hold the message's token

(a) had its data flushed — an fsync/fdatasync of the file, or a syncfs(2)/sync(2) of its
    filesystem, that started after the file's last write and ended before its rename (a name
    must never point at unflushed bytes) and before the 250;
(b) got its final name by a rename/link before the 250 — in the queue's spool (any directory
    there but ``incoming/``, the scratch area) or in a Maildir's ``new/`` or ``cur/``;
(c) had that name flushed — an fsync of the directory, or a syncfs/sync, that started after the
    rename ended and ended before the 250; and every directory above it that the log shows being
    made (a Sieve folder, a Maildir made on first delivery) had its own entry flushed as well (an
    fsync of its parent or a syncfs after the mkdir), or the message is lost with its folder.

Either one such copy in the spool, or one in every expected Maildir (a server that delivers
before it answers), makes the message durable. The order is the order of the log's lines: strace
writes each event as it sees it, so a call split by another thread ("<unfinished …>" then
"<… resumed>") starts at its first line and ends at its second.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

_PREFIX = re.compile(r"^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:\d+\.\d+\s+)?")
_COMPLETE = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?:<(.*?)>)?(?:\s+E[A-Z0-9]+\s.*)?(?:\s+\(.*\))?$")
_UNFINISHED = re.compile(r"^(\w+)\((.*?)\s*<unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_RESUMED_TAIL = re.compile(r"^(.*)\)\s+=\s+(-?\d+|\?)(?:<(.*?)>)?(?:\s+E[A-Z0-9]+\s.*)?(?:\s+\(.*\))?$")
_FD_ARG = re.compile(r"(-?\d+|AT_FDCWD)<(.*?)>(?=,\s|\)|$)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ACK = re.compile(rb"250[ -][^\r\n]*?queued as ([A-Za-z0-9]+)")
_SOCKET_KINDS = ("TCP:", "TCPv6:", "UDP:", "UNIX", "socket:")

WRITES = frozenset({"write", "pwrite64", "writev", "pwritev", "pwritev2"})
SENDS = frozenset({"sendto", "sendmsg", "write", "writev"})
FILE_SYNCS = frozenset({"fsync", "fdatasync"})
RENAMES = frozenset({"rename", "renameat", "renameat2"})
LINKS = frozenset({"link", "linkat"})
MKDIRS = frozenset({"mkdir", "mkdirat"})


@dataclass(frozen=True, slots=True)
class Call:
    """One system call: ``start``/``end`` are the indexes of its first and last line."""
    start: int
    end: int
    pid: str
    name: str
    args: str
    result: str
    result_path: str | None
    text: str

    @property
    def ok(self) -> bool:
        return self.result not in ("?",) and not self.result.startswith("-")


def parse(lines: Iterable[str]) -> list[Call]:
    """The completed system calls of a log, in the order in which they ended."""
    calls: list[Call] = []
    pending: dict[tuple[str, str], tuple[int, str, str]] = {}
    for index, raw in enumerate(lines):
        line = raw.rstrip("\n")
        m = _PREFIX.match(line)
        pid = (m.group(1) or m.group(2) or "") if m else ""
        rest = line[m.end():] if m else line
        if rest.startswith(("+++", "---")):
            continue
        if c := _UNFINISHED.match(rest):
            pending[(pid, c.group(1))] = (index, c.group(2), line)
            continue
        if c := _RESUMED.match(rest):
            started = pending.pop((pid, c.group(1)), None)
            tail = _RESUMED_TAIL.match(c.group(2))
            if started is None or tail is None:
                continue
            start, head, first = started
            calls.append(Call(start, index, pid, c.group(1), head + tail.group(1), tail.group(2),
                              tail.group(3), first + "\n" + line))
            continue
        if c := _COMPLETE.match(rest):
            calls.append(Call(index, index, pid, c.group(1), c.group(2), c.group(3), c.group(4), line))
    return calls


def unescape(text: str) -> bytes:
    """The bytes of one strace string literal (C escapes, \\xHH with -x, octal otherwise)."""
    out = bytearray()
    i = 0
    simple = {"n": 10, "r": 13, "t": 9, "v": 11, "f": 12, "a": 7, "b": 8, '"': 34, "\\": 92, "'": 39}
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 == len(text):
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "x":
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            digits = re.match(r"[0-7]{1,3}", text[i + 1:])
            if digits is None:
                out.append(ord(nxt))
                i += 2
            else:
                out.append(int(digits.group(0), 8))
                i += 1 + len(digits.group(0))
    return bytes(out)


def _strings(args: str) -> bytes:
    return b"".join(unescape(s) for s in _STRING.findall(args))


def _fd_paths(args: str) -> list[str]:
    return [_clean(m.group(2)) for m in _FD_ARG.finditer(args)]


def _clean(path: str) -> str:
    return path.removesuffix(" (deleted)")


def _path_args(call: Call) -> list[str]:
    """The path arguments of rename/link(at): resolved against their dirfd's path (``-y``)."""
    parts = _split_args(call.args)
    if call.name in ("rename", "link", "mkdir"):
        return [_literal(p) for p in parts[:2]]
    paths = []
    for dirfd, name in ((parts[0], parts[1]), (parts[2], parts[3])):
        rel = _literal(name)
        base = _FD_ARG.match(dirfd)
        paths.append(rel if os.path.isabs(rel) or base is None else os.path.join(_clean(base.group(2)), rel))
    return paths


def _mkdir_path(call: Call) -> str:
    parts = _split_args(call.args)
    if call.name == "mkdir":
        return _literal(parts[0])
    rel = _literal(parts[1])
    base = _FD_ARG.match(parts[0])
    return rel if os.path.isabs(rel) or base is None else os.path.join(_clean(base.group(2)), rel)


def _literal(arg: str) -> str:
    m = _STRING.fullmatch(arg)
    return unescape(m.group(1)).decode("utf-8", "surrogateescape") if m else arg


def _split_args(args: str) -> list[str]:
    """Top-level comma-separated arguments (strings may hold commas, fd paths too)."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    i = 0
    while i < len(args):
        ch = args[i]
        if quoted:
            cur.append(ch)
            if ch == "\\" and i + 1 < len(args):
                cur.append(args[i + 1])
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            cur.append(ch)
        elif ch in "<[{(":
            depth += 1
            cur.append(ch)
        elif ch in ">]})" and depth:
            depth -= 1
            cur.append(ch)
        elif ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    parts.append("".join(cur).strip())
    return parts


@dataclass(eq=False)
class _File:
    """One file (inode) as the log shows it: its bytes, flushes and names."""
    data: bytearray = field(default_factory=bytearray)
    last_write: int = -1
    syncs: list[tuple[int, int]] = field(default_factory=list)
    names: list[tuple[str, int, int]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Expect:
    """What a queue id's 250 must be backed by: the token its bytes hold, the Maildirs it goes to."""
    token: bytes
    maildirs: frozenset[str]


@dataclass
class Report:
    acked: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)


def default_filesystem(path: str) -> Hashable:
    """The device of the nearest existing ancestor (checked after the run: tmp files are gone)."""
    while True:
        try:
            return os.stat(path).st_dev
        except OSError:
            parent = os.path.dirname(path)
            if parent == path:
                return None
            path = parent


class _Checker:
    def __init__(self, expect: dict[str, Expect], spool: str,
                 filesystem: Callable[[str], Hashable]) -> None:
        self.expect, self.spool, self.filesystem = expect, spool.rstrip("/"), filesystem
        self.by_path: dict[str, _File] = {}
        self.files: list[_File] = []
        self.dir_syncs: dict[str, list[tuple[int, int, str]]] = {}
        self.fs_syncs: list[tuple[Hashable, int, int, str]] = []  # fs None: sync(2), every fs
        self.made_dirs: dict[str, tuple[int, str]] = {}  # mkdir'ed during the log: when, the line
        self.report = Report()

    def _file(self, path: str, fresh: bool = False) -> _File:
        f = self.by_path.get(path)
        if f is None or fresh:
            f = self.by_path[path] = _File()
            self.files.append(f)
        return f

    def apply(self, call: Call) -> None:
        if not call.ok:
            return
        name = call.name
        if name == "openat" and call.result_path and "O_CREAT" in call.args:
            fresh = "O_TRUNC" in call.args or "O_EXCL" in call.args
            self._file(_clean(call.result_path), fresh).lines.append(call.text)
        elif name in WRITES:
            path = (_fd_paths(call.args) or [""])[0]
            if path and not path.startswith(_SOCKET_KINDS):
                f = self._file(path)
                f.data += _strings(call.args)
                f.last_write = call.end
                f.lines.append(call.text)
        elif name in FILE_SYNCS:
            for path in _fd_paths(call.args)[:1]:
                if path in self.by_path:
                    self.by_path[path].syncs.append((call.start, call.end))
                    self.by_path[path].lines.append(call.text)
                self.dir_syncs.setdefault(path, []).append((call.start, call.end, call.text))
        elif name == "syncfs":
            for path in _fd_paths(call.args)[:1]:
                self.fs_syncs.append((self.filesystem(path), call.start, call.end, call.text))
        elif name == "sync":
            self.fs_syncs.append((None, call.start, call.end, call.text))
        elif name in RENAMES or name in LINKS:
            old, new = _path_args(call)
            moved = self.by_path.pop(old, None) if name in RENAMES else self.by_path.get(old)
            if moved is not None:
                self.by_path[new] = moved
                moved.names.append((new, call.start, call.end))
                moved.lines.append(call.text)
        elif name in MKDIRS:
            path = _mkdir_path(call)
            self.made_dirs[os.path.normpath(path)] = (call.end, call.text)
        elif name == "unlink":
            for s in _STRING.findall(call.args)[:1]:
                self.by_path.pop(unescape(s).decode("utf-8", "surrogateescape"), None)

    def ack(self, call: Call) -> None:
        if not call.ok or call.name not in SENDS:
            return
        path = (_fd_paths(call.args) or [""])[0]
        if not path.startswith(_SOCKET_KINDS):
            return
        for m in _ACK.finditer(_strings(call.args)):
            qid = m.group(1).decode()
            expect = self.expect.get(qid)
            if expect is None:
                continue
            self.report.acked.add(qid)
            problem = self._why_not_durable(expect, call.start)
            if problem:
                self.report.failures.append(f"{qid} acknowledged at line {call.start + 1} but {problem}\n"
                                            f"  ack: {call.text[:300]}")

    def _fs_synced(self, path: str, after: int, before: int) -> str | None:
        fs = self.filesystem(path)
        for sfs, s, e, text in self.fs_syncs:
            if after < s and e < before and (sfs is None or sfs == fs):
                return text
        return None

    def _durable_name(self, f: _File, name: str, rs: int, re_: int, ack: int) -> str | None:
        """None when this name of ``f`` was durable at line ``ack``, else why not."""
        data = any(f.last_write < s and e < rs for s, e in f.syncs) \
            or self._fs_synced(name, f.last_write, rs) is not None
        if not data:
            return f"{name}: no fsync of its data (nor syncfs) between its last write and its rename"
        directory = os.path.dirname(name)
        named = any(re_ < s and e < ack for s, e, _ in self.dir_syncs.get(directory, ())) \
            or self._fs_synced(name, re_, ack) is not None
        if not named:
            return f"{name}: no fsync of {directory} (nor syncfs) between its rename and the 250"
        while directory != os.path.dirname(directory):
            made = self.made_dirs.get(directory)
            parent = os.path.dirname(directory)
            if made is not None and not (
                    any(made[0] < s and e < ack for s, e, _ in self.dir_syncs.get(parent, ()))
                    or self._fs_synced(directory, made[0], ack) is not None):
                return (f"{name}: its directory {directory} was made during the run but no fsync of {parent}"
                        f" (nor syncfs) followed before the 250\n    mkdir: {made[1][:300]}")
            directory = parent
        return None

    def _place(self, name: str, maildirs: frozenset[str]) -> str | None:
        """'spool', a Maildir of ``maildirs``, or None for a name that is not final."""
        parent = os.path.dirname(name)
        if parent.startswith(self.spool + "/") and os.path.basename(parent) != "incoming":
            return "spool"
        for home in maildirs:
            if parent in (os.path.join(home, "new"), os.path.join(home, "cur")):
                return home
        return None

    def _why_not_durable(self, expect: Expect, ack: int) -> str | None:
        durable: set[str] = set()
        reasons: list[str] = []
        for f in self.files:
            if expect.token not in f.data:
                continue
            for name, rs, re_ in f.names:
                if re_ >= ack:
                    continue
                place = self._place(name, expect.maildirs)
                if place is None:
                    continue
                why = self._durable_name(f, name, rs, re_, ack)
                if why is None:
                    durable.add(place)
                else:
                    reasons.append(why + "\n    " + "\n    ".join(line[:300] for line in f.lines))
        if "spool" in durable or (expect.maildirs and expect.maildirs <= durable):
            return None
        if not reasons:
            return "no file holding its token had got a final name (spool or Maildir new/) before it"
        return "no durable copy:\n  " + "\n  ".join(reasons)


def check(lines: Iterable[str], expect: dict[str, Expect], spool: str,
          filesystem: Callable[[str], Hashable] = default_filesystem) -> Report:
    """Replays the log; every 250 for a queue id of ``expect`` is checked when it is sent."""
    checker = _Checker(expect, spool, filesystem)
    calls = parse(lines)
    # effects apply when a call ends; a reply counts from when its send started
    timeline = sorted([(c.end, 1, i) for i, c in enumerate(calls)] + [(c.start, 0, i) for i, c in enumerate(calls)])
    for _, kind, i in timeline:
        if kind == 0:
            checker.ack(calls[i])
        else:
            checker.apply(calls[i])
    return checker.report
