"""One data set for every Directory test: the sample of POSTFIXADMIN-SCHEMA plus edge cases."""

from __future__ import annotations

from typing import Any

BASE = "/srv/vmail"


def _mb(username: str, **kw: Any) -> dict[str, Any]:
    return {"username": username, "password": "{PLAIN}pw-" + username.split("@")[0], **kw}


def _al(address: str, goto: str, active: bool = True) -> dict[str, Any]:
    return {"address": address, "goto": goto, "active": active}


SAMPLE: dict[str, list[dict[str, Any]]] = {
    "domain": [
        {"domain": "example.com"},
        {"domain": "example.net"},  # alias domain of example.com (and a domain row, as PostfixAdmin has)
        {"domain": "disabled.example", "active": False},
        {"domain": "backup.example", "backupmx": True},
        {"domain": "relay.example", "transport": "smtp:[192.0.2.25]"},
        {"domain": "lmtp.example", "transport": "lmtp:unix:private/dovecot-lmtp"},
        {"domain": "offad.example"},  # its alias_domain row is inactive
    ],
    "alias_domain": [
        {"alias_domain": "example.net", "target_domain": "example.com"},
        {"alias_domain": "offad.example", "target_domain": "example.com", "active": False},
        {"alias_domain": "aliasonly.example", "target_domain": "example.com"},  # no domain row
    ],
    "mailbox": [
        _mb("alice@example.com", name="Alice", quota=51200000),
        _mb("bob@example.com", name="Bob"),
        _mb("carol@example.com", name="Carol 王"),
        _mb("dave@example.com", active=False),
        _mb("heidi@example.com"),
        _mb("grace@example.com"),
        _mb("frank@example.net"),  # a real mailbox directly in the alias domain
        _mb("eve@disabled.example"),
        _mb("zoe@example.com", maildir="legacy/zoe-old/"),  # stored maildir, not recomputed
        _mb("evil@example.com", maildir="../../etc/"),
        _mb("ivan@example.com"),  # no identity alias row (inserted by another tool)
        {"username": "latin@example.com", "password": "{PLAIN}pässwörd"},  # latin1 bytes on MariaDB
    ],
    "alias": [
        _al("alice@example.com", "alice@example.com"),
        _al("bob@example.com", "bob.forward@elsewhere.example,bob@example.com"),  # forward + copy
        _al("carol@example.com", "carol@example.com"),
        _al("dave@example.com", "dave@example.com", active=False),  # disabled with its mailbox
        _al("heidi@example.com", "heidi@elsewhere.example"),  # forward only
        _al("grace@example.com", "grace@example.com,grace#example.com@autoreply.example.com"),
        _al("frank@example.net", "frank@example.net"),
        _al("eve@disabled.example", "eve@disabled.example"),
        _al("zoe@example.com", "zoe@example.com"),
        _al("@example.com", "alice@example.com"),  # catch-all
        _al("postmaster@example.com", "alice@example.com"),
        _al("team@example.com", " Alice@Example.COM , carol@example.com,,"),
        _al("chain@example.com", "team@example.com"),
        _al("loop1@example.com", "loop2@example.com"),
        _al("loop2@example.com", "loop1@example.com"),
        _al("self@example.com", "self@example.com,carol@example.com"),
        _al("old@example.com", "carol@example.com", active=False),
        _al("info@example.net", "carol@example.com"),
        _al("sales@example.com", "bob@example.com"),
        _al("hash#tag@example.com", "carol@example.com"),
        _al("ext+fixed@example.com", "carol@example.com"),
    ],
}
