"""The Maildir file formats, pure (no I/O): message file names and their ``:2,`` info, Dovecot's
``dovecot-uidlist`` (v3, reading v1 too), ``dovecot-keywords`` and ``subscriptions``, and the
Maildir++ ``maildirsize`` quota file.

References: the Maildir spec (cr.yp.to/proto/maildir.html), Maildir++ (Courier's maildirquota),
Dovecot's maildir-uidlist/maildir-keywords formats as Dovecot 2.3 writes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pymailsrv.store.base import ANSWERED, DELETED, DRAFT, FLAGGED, SEEN

INFO_SEP = ":2,"
# Maildir info letters, in the sorted order the spec requires.
LETTER_TO_FLAG = {"D": DRAFT, "F": FLAGGED, "R": ANSWERED, "S": SEEN, "T": DELETED}
FLAG_TO_LETTER = {v.lower(): k for k, v in LETTER_TO_FLAG.items()}
MAX_KEYWORDS = 26  # letters a-z

_SIZE_RE = re.compile(r",S=(\d+)")
_VSIZE_RE = re.compile(r",W=(\d+)")


# -- message file names -------------------------------------------------------------------------
def split_name(filename: str) -> tuple[str, str | None]:
    """``base:2,FS`` → (``base``, ``FS``); a name without info → (name, None)."""
    base, sep, info = filename.partition(INFO_SEP)
    if not sep:
        # Some writers use ";" instead of ":" (filesystems without ":"); not ours.
        return filename, None
    return base, info


def sizes_from_base(base: str) -> tuple[int | None, int | None]:
    """The ``,S=`` (stored size) and ``,W=`` (RFC822 size) fields of a base name, if present."""
    s = _SIZE_RE.search(base)
    w = _VSIZE_RE.search(base)
    return (int(s.group(1)) if s else None, int(w.group(1)) if w else None)


def escape_host(hostname: str) -> str:
    """The Maildir spec: ``/`` → ``\\057`` and ``:`` → ``\\072`` in the host part."""
    return hostname.replace("/", "\\057").replace(":", "\\072")


def unique_base(sec: int, usec: int, pid: int, seq: int, host: str, size: int, vsize: int) -> str:
    """``<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<rfc822 size>`` (POSTFIX-SEMANTICS §7)."""
    return f"{sec}.M{usec}P{pid}Q{seq}.{host},S={size},W={vsize}"


def parse_info(info: str | None, keywords: list[str]) -> frozenset[str]:
    """IMAP flags of a ``:2,`` info string: system letters, then a-z keyword indices."""
    if not info:
        return frozenset()
    out: set[str] = set()
    for ch in info:
        flag = LETTER_TO_FLAG.get(ch)
        if flag is not None:
            out.add(flag)
        elif "a" <= ch <= "z":
            idx = ord(ch) - ord("a")
            if idx < len(keywords):
                out.add(keywords[idx])
    return frozenset(out)


def build_info(flags: Iterable[str], keyword_index: Mapping[str, int], keep: str = "") -> str:
    """The info letters for ``flags``: sorted, system letters first (ASCII order puts upper case
    before lower case). Upper-case letters in ``keep`` that IMAP doesn't map (``P`` passed) are
    preserved. Keywords missing from ``keyword_index`` raise KeyError."""
    letters = {c for c in keep if "A" <= c <= "Z" and c not in LETTER_TO_FLAG}
    for flag in flags:
        letter = FLAG_TO_LETTER.get(flag.lower())
        if letter is not None:
            letters.add(letter)
        elif not flag.startswith("\\"):
            letters.add(chr(ord("a") + keyword_index[flag]))
    return "".join(sorted(letters))


def is_system_flag(flag: str) -> bool:
    return flag.startswith("\\")


# -- dovecot-keywords -------------------------------------------------------------------------------
def parse_keywords(text: str) -> list[str]:
    """``<index> <name>`` lines → names by index (holes become "")."""
    found: dict[int, str] = {}
    for line in text.splitlines():
        idx, sep, name = line.partition(" ")
        if sep and idx.isdigit() and name and int(idx) < MAX_KEYWORDS:
            found[int(idx)] = name
    out = [""] * (max(found) + 1 if found else 0)
    for i, name in found.items():
        out[i] = name
    return out


def format_keywords(keywords: list[str]) -> str:
    return "".join(f"{i} {name}\n" for i, name in enumerate(keywords) if name)


# -- dovecot-uidlist ----------------------------------------------------------------------------------
@dataclass(slots=True)
class UidList:
    uidvalidity: int
    next_uid: int = 1
    header_extra: list[str] = field(default_factory=list)  # G<guid> and fields we don't interpret
    records: dict[str, int] = field(default_factory=dict)  # base name -> uid, ascending by uid

    @property
    def last_uid(self) -> int:
        return next(reversed(self.records.values()), 0)

    def header(self) -> str:
        return " ".join(["3", f"V{self.uidvalidity}", f"N{self.next_uid}", *self.header_extra]) + "\n"

    def format(self) -> str:
        lines = [self.header()]
        lines.extend(f"{uid} :{base}\n" for base, uid in self.records.items())
        return "".join(lines)


class UidListError(ValueError):
    """The uidlist is unreadable; the caller rebuilds it with a new UIDVALIDITY."""


def parse_uidlist_header(line: str) -> UidList:
    parts = line.split()
    if not parts:
        raise UidListError("empty uidlist header")
    if parts[0] == "1" and len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
        return UidList(uidvalidity=int(parts[1]), next_uid=int(parts[2]))
    if parts[0] != "3":
        raise UidListError(f"unsupported uidlist version {parts[0]!r}")
    validity = next_uid = None
    extra: list[str] = []
    for tok in parts[1:]:
        if tok[:1] == "V" and tok[1:].isdigit():
            validity = int(tok[1:])
        elif tok[:1] == "N" and tok[1:].isdigit():
            next_uid = int(tok[1:])
        else:
            extra.append(tok)
    if validity is None:
        raise UidListError("uidlist header without V")
    return UidList(uidvalidity=validity, next_uid=next_uid or 1, header_extra=extra)


def parse_uidlist_records(text: str, into: UidList) -> None:
    """Add ``<uid> [ext fields] :<base>`` (v3) or ``<uid> <base>`` (v1) lines to ``into``.

    Records must ascend; a line that doesn't parse or goes backwards is skipped (Dovecot would
    rebuild; skipping keeps every other message's UID). ``next_uid`` ends > every UID seen.
    """
    records = into.records
    last = into.last_uid
    for line in text.splitlines():
        pos = line.find(" :")
        if pos > 0:
            head, base = line[:pos], line[pos + 2 :]
            uid_s = head.split(" ", 1)[0]
        else:
            uid_s, _, base = line.partition(" ")
        if not uid_s.isdigit() or not base:
            continue
        uid = int(uid_s)
        if uid <= last or base in records:
            continue
        records[base] = uid
        last = uid
    if last >= into.next_uid:
        into.next_uid = last + 1


def parse_uidlist(text: str) -> UidList:
    header, _, rest = text.partition("\n")
    ul = parse_uidlist_header(header)
    parse_uidlist_records(rest, ul)
    return ul


def format_records(records: Iterable[tuple[int, str]]) -> str:
    return "".join(f"{uid} :{base}\n" for uid, base in records)


# -- subscriptions ----------------------------------------------------------------------------------
def parse_subscriptions(text: str, sep: str = ".") -> list[str]:
    """Dovecot 2.3 writes ``V\\t2``, a blank line, then names with TAB between hierarchy levels;
    older files hold one name per line."""
    lines = text.split("\n")
    if lines and lines[0] == "V\t2":
        return [line.replace("\t", sep) for line in lines[2:] if line]
    return [line for line in lines if line]


def format_subscriptions(names: Iterable[str], sep: str = ".") -> str:
    return "V\t2\n\n" + "".join(n.replace(sep, "\t") + "\n" for n in names)


# -- maildirsize (Maildir++ quota) ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MaildirSize:
    bytes_limit: int
    count_limit: int
    bytes_used: int
    count_used: int
    lines: int


def format_quota_header(bytes_limit: int, count_limit: int = 0) -> str:
    """``<bytes>S,<count>C``; an unlimited quota is written ``0S``."""
    parts = []
    if bytes_limit > 0 or count_limit <= 0:
        parts.append(f"{max(bytes_limit, 0)}S")
    if count_limit > 0:
        parts.append(f"{count_limit}C")
    return ",".join(parts) + "\n"


def parse_maildirsize(text: str) -> MaildirSize | None:
    """Sum of the ``bytes count`` lines under the limits header; None if malformed (recalculate)."""
    lines = text.split("\n")
    if not lines or not lines[0]:
        return None
    bytes_limit = count_limit = 0
    for part in lines[0].split(","):
        part = part.strip()
        if part.endswith("S") and part[:-1].isdigit():
            bytes_limit = int(part[:-1])
        elif part.endswith("C") and part[:-1].isdigit():
            count_limit = int(part[:-1])
        elif part:
            return None
    used = count = n = 0
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            return None
        try:
            used += int(fields[0])
            count += int(fields[1])
        except ValueError:
            return None
        n += 1
    return MaildirSize(bytes_limit, count_limit, used, count, n)


def format_quota_line(size: int, count: int) -> bytes:
    return f"{size} {count}\n".encode("ascii")
