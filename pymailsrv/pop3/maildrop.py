"""The POP3 maildrop: a numbered snapshot of INBOX taken at login (RFC 1939 §5), deletion marks
that take effect only in the UPDATE state, and UIDLs in Dovecot's format. Pure (no I/O).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from pymailsrv.errors import ConfigError, Refusal
from pymailsrv.pop3 import replies
from pymailsrv.store.base import DELETED, MessageInfo

DEFAULT_UIDL_FORMAT: Final = "%08Xu%08Xv"

# Dovecot's %-variables: optional width (0-padded), modifiers (X = hexadecimal, U = upper case),
# then the variable letter; %% is a literal %. We know %u (UID) and %v (UIDVALIDITY). Dovecot's
# hex is lower case: its default %08Xu%08Xv gives "000000016b027449" (checked against
# Dovecot 2.3 pop3 on the same Maildir), so ours does too, or clients would download again.
_VAR = re.compile(r"%(?:(%)|(0?\d*)([XxLU]*)([a-zA-Z]|\{[a-z]+\}))")
_NAMES: Final = {"u": "uid", "v": "uidvalidity", "{uid}": "uid", "{uidvalidity}": "uidvalidity"}


def compile_uidl_format(fmt: str) -> str:
    """Turn a Dovecot pop3_uidl_format into a Python format string; ConfigError if unsupported."""
    out: list[str] = []
    pos = 0
    for m in _VAR.finditer(fmt):
        out.append(fmt[pos:m.start()].replace("{", "{{").replace("}", "}}"))
        pos = m.end()
        if m.group(1):
            out.append("%")
            continue
        width, mods, var = m.group(2), m.group(3), m.group(4)
        name = _NAMES.get(var)
        if name is None:
            raise ConfigError(f"pop3_uidl_format: unsupported variable %{var} (use %u and %v)")
        hexa = "X" in mods or "x" in mods
        kind = ("X" if "U" in mods else "x") if hexa else "d"
        out.append("{" + name + ":" + width + kind + "}")
    out.append(fmt[pos:].replace("{", "{{").replace("}", "}}"))
    result = "".join(out)
    if "{uid:" not in result:
        raise ConfigError("pop3_uidl_format must contain %u, or UIDLs would not be unique")
    return result


def format_uidl(fmt: str, uid: int, uidvalidity: int) -> str:
    """``fmt`` as returned by ``compile_uidl_format``."""
    return fmt.format(uid=uid, uidvalidity=uidvalidity)


class Maildrop:
    """Message numbers 1..N over the login-time snapshot; numbers never shift during a session."""

    __slots__ = ("_deleted", "_fmt", "_messages", "uidvalidity")

    def __init__(self, messages: Sequence[MessageInfo], uidvalidity: int, uidl_format: str,
                 *, hide_deleted: bool = True) -> None:
        if hide_deleted:
            messages = [m for m in messages if DELETED not in m.flags]
        self._messages = list(messages)
        self._deleted: set[int] = set()  # message numbers marked with DELE
        self._fmt = uidl_format
        self.uidvalidity = uidvalidity

    def __len__(self) -> int:
        return len(self._messages)

    def stat(self) -> tuple[int, int]:
        """(count, octets) of messages not marked deleted (RFC 1939 §5 STAT)."""
        count = size = 0
        for n, info in enumerate(self._messages, 1):
            if n not in self._deleted:
                count += 1
                size += info.size
        return count, size

    def get(self, n: int) -> MessageInfo:
        """The message numbered ``n``; Refusal if there is none or it is marked deleted."""
        if not 1 <= n <= len(self._messages):
            raise Refusal(replies.NO_SUCH_MESSAGE.format(n=n))
        if n in self._deleted:
            raise Refusal(replies.MESSAGE_DELETED)
        return self._messages[n - 1]

    def live(self) -> list[tuple[int, MessageInfo]]:
        """(number, info) of every message not marked deleted, ascending."""
        return [(n, m) for n, m in enumerate(self._messages, 1) if n not in self._deleted]

    def uidl(self, info: MessageInfo) -> str:
        return format_uidl(self._fmt, info.uid, self.uidvalidity)

    def delete(self, n: int) -> None:
        self.get(n)
        self._deleted.add(n)

    def reset(self) -> None:
        self._deleted.clear()

    def deleted_uids(self) -> list[int]:
        return sorted(self._messages[n - 1].uid for n in self._deleted)
