"""Which names LIST and LSUB return, and with which attributes (RFC 3501 §6.3.8-9, RFC 5258
LIST-EXTENDED, RFC 6154 SPECIAL-USE). Pure: folders and subscriptions in, entries out.

Implementation notes:
- Subscriptions are independent of existence (RFC 3501 §6.3.6): a subscribed name that was
  deleted is still listed by LSUB and by LIST (SUBSCRIBED), the latter as ``\\NonExistent``.
- A parent is reported for its children (LSUB's ``%`` rule, LIST's CHILDINFO) only when a child
  that satisfies the criteria is not itself matched by the patterns: then the client would not
  learn of it otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pymailsrv import mutf7 as utf7
from pymailsrv.store.base import FolderInfo

SEP = "."
SELECT_OPTIONS = frozenset({"SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"})
RETURN_OPTIONS = frozenset({"SUBSCRIBED", "CHILDREN", "STATUS", "SPECIAL-USE"})
# selection options that choose names; RECURSIVEMATCH needs one of them (RFC 5258 §3)
_CRITERIA = ("SUBSCRIBED", "SPECIAL-USE")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    attrs: tuple[str, ...]
    childinfo: tuple[str, ...] = ()  # RFC 5258 §3.5 CHILDINFO criteria
    selectable: bool = True


def pattern(ref: bytes, pat: bytes) -> re.Pattern[str] | None:
    """Reference + pattern (modified UTF-7, ``*`` and ``%``) → a regex over Unicode names; None
    for a pattern that isn't valid modified UTF-7 (it can't match any name)."""
    try:
        text = utf7.decode(ref) + utf7.decode(pat)
    except (utf7.Utf7Error, UnicodeDecodeError):
        return None
    if text[:5].upper() == "INBOX" and (len(text) == 5 or text[5] in SEP + "*%"):
        text = "INBOX" + text[5:]
    rx = "".join(".*" if c == "*" else "[^.]*" if c == "%" else re.escape(c) for c in text)
    return re.compile(rx + r"\Z", re.DOTALL)


def check_options(select: Iterable[str], ret: Iterable[str]) -> str | None:
    """The reason a LIST-EXTENDED option set is invalid (a BAD, RFC 5258 §3), or None."""
    select = set(select)
    unknown = sorted(select - SELECT_OPTIONS) or sorted(set(ret) - RETURN_OPTIONS)
    if unknown:
        return "Unknown LIST option " + unknown[0]
    if "RECURSIVEMATCH" in select and not select & set(_CRITERIA):
        return "RECURSIVEMATCH needs another selection option"
    return None


def _parents_of_unmatched(names: Iterable[str], matches: Sequence[re.Pattern[str]]) -> set[str]:
    """Every parent of a name that no pattern matches."""
    out: set[str] = set()
    for name in names:
        if not any(rx.match(name) for rx in matches):
            parts = name.split(SEP)
            out.update(SEP.join(parts[:i]) for i in range(1, len(parts)))
    return out


def list_entries(folders: Sequence[FolderInfo], subscribed: Sequence[str], matches: Sequence[re.Pattern[str]],
                 select: Iterable[str] = (), ret: Iterable[str] = ()) -> list[Entry]:
    """LIST's answer, in folder order then the subscribed names that don't exist."""
    select, ret = set(select), set(ret)
    subs = set(subscribed)
    info = {f.name: f for f in folders}
    criteria = tuple(c for c in _CRITERIA if c in select)

    def chosen(name: str) -> bool:
        f = info.get(name)
        return (("SUBSCRIBED" not in select or name in subs)
                and ("SPECIAL-USE" not in select or (f is not None and f.special_use is not None)))

    names = list(info)
    if "SUBSCRIBED" in select:
        names += sorted(subs - set(info))
    with_children: set[str] = set()
    if "RECURSIVEMATCH" in select:  # RFC 5258 §3.5
        with_children = _parents_of_unmatched((n for n in names if chosen(n)), matches)
        names += sorted(with_children - set(names))
    show_subscribed = "SUBSCRIBED" in select or "SUBSCRIBED" in ret
    out = []
    for name in names:
        if not any(rx.match(name) for rx in matches):
            continue
        childinfo = criteria if name in with_children else ()
        if criteria and not chosen(name) and not childinfo:
            continue
        f = info.get(name)
        if f is None:
            attrs = ["\\NonExistent"]
        else:
            attrs = ["\\HasChildren" if f.has_children else "\\HasNoChildren"]
            if not f.selectable:
                attrs.insert(0, "\\Noselect")
            if f.special_use:
                attrs.append(f.special_use)
        if show_subscribed and name in subs:
            attrs.append("\\Subscribed")
        out.append(Entry(name, tuple(attrs), childinfo, f is not None and f.selectable))
    return out


def lsub_entries(folders: Sequence[FolderInfo], subscribed: Sequence[str], match: re.Pattern[str]) -> list[Entry]:
    """LSUB's answer: the subscribed names that match, and (RFC 3501 §6.3.9) as ``\\Noselect``
    an unsubscribed parent that matches where its subscribed child doesn't (``%``)."""
    subs = set(subscribed)
    info = {f.name: f for f in folders}
    parents = _parents_of_unmatched(subs, [match]) - subs
    out = []
    for name in sorted(subs | parents, key=lambda n: (n != "INBOX", n)):
        if not match.match(name):
            continue
        f = info.get(name)
        noselect = name in parents or (f is not None and not f.selectable)
        out.append(Entry(name, ("\\Noselect",) if noselect else ()))
    return out
