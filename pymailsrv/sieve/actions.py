"""What a script asks for: the actions, in order, and the one-line description of each that the
differential test compares with Pigeonhole's ``sieve-test`` (``describe``).

Pure module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ActionKind = Literal["keep", "fileinto", "redirect", "reject", "ereject", "discard", "vacation", "notify"]
INBOX = "INBOX"
SYSTEM_FLAGS = ("\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft")


@dataclass(slots=True)
class Vacation:
    """RFC 5230 / RFC 6131. ``seconds`` is already within the site's limits."""

    reason: str
    seconds: int
    subject: str = ""
    from_: str = ""
    addresses: tuple[str, ...] = ()
    mime: bool = False
    handle: str = ""


@dataclass(slots=True)
class Notify:
    """RFC 5435 with the mailto method (RFC 5436)."""

    method: str
    from_: str = ""
    importance: int = 2
    options: tuple[str, ...] = ()
    message: str = ""


@dataclass(slots=True)
class Action:
    kind: ActionKind
    target: str = ""  # the folder (keep/fileinto), the address (redirect)
    flags: tuple[str, ...] = ()  # imap4flags at the time of the action
    copy: bool = False
    create: bool = False
    reason: str = ""  # reject / ereject
    vacation: Vacation | None = None
    notify: Notify | None = None
    implicit: bool = False
    fields: list[tuple[str, str]] | None = None  # the header as the action saw it (editheader)
    line: int = 0

    @property
    def stores(self) -> bool:
        return self.kind in ("keep", "fileinto")


@dataclass(slots=True)
class Result:
    """The outcome of one run: ``actions`` in order (the implicit keep, if any, last).
    ``error`` is set when the script failed at run time; then ``actions`` is the implicit keep
    alone (RFC 5228 §2.10.6). ``duplicates`` are the ``duplicate`` ids to record now that the
    script succeeded: (id, seconds, last)."""

    actions: list[Action] = field(default_factory=list)
    error: str | None = None
    duplicates: list[tuple[str, int, bool]] = field(default_factory=list)

    def describe(self) -> list[str]:
        return [describe(a) for a in self.actions]


def canonical_flags(flags: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Flags split on spaces, system flags in their canonical case, each once (RFC 5232 §3);
    ``\\Recent`` and unknown ``\\`` flags cannot be set and are dropped, as Pigeonhole does."""
    out: dict[str, str] = {}
    for item in flags:
        for flag in item.split():
            low = flag.lower()
            if low in SYSTEM_FLAGS:
                flag = "\\" + low[1:].capitalize()
            elif flag.startswith("\\"):
                continue
            out.setdefault(low, flag)
    return tuple(out.values())


def describe(a: Action) -> str:
    """``store FOLDER [flags]``, ``redirect ADDR``, ``reject REASON``, ``discard``,
    ``vacation seconds=N [subject=S] [from=F]``, ``notify METHOD importance=N``."""
    if a.stores:
        flags = " ".join(sorted(f.lower() for f in a.flags))
        return f"store {a.target}" + (f" flags: {flags}" if flags else "")
    if a.kind == "redirect":
        return f"redirect {a.target}"
    if a.kind in ("reject", "ereject"):
        return f"{a.kind} {a.reason.strip()}"
    if a.kind == "vacation" and a.vacation is not None:
        v = a.vacation
        out = f"vacation seconds={v.seconds}"
        if v.subject:
            out += f" subject={v.subject}"
        if v.from_:
            out += f" from={v.from_}"
        return out
    if a.kind == "notify" and a.notify is not None:
        return f"notify {a.notify.method.split('?')[0]} importance={a.notify.importance}"
    return a.kind
