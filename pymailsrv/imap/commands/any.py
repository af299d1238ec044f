"""Commands valid in every state: CAPABILITY, NOOP, LOGOUT, ID (RFC 2971), ENABLE (RFC 5161)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymailsrv.imap import wire
from pymailsrv.imap.commands.base import Done, Server
from pymailsrv.imap.grammar import Command
from pymailsrv.imap.session import LOGOUT, NOT_AUTH
from pymailsrv.log import get_logger
from pymailsrv.net.forward import adopt_forwarded_client

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session

log = get_logger("imap-login")
ENABLEABLE = ("CONDSTORE", "QRESYNC")


async def capability(srv: Server, s: Session, cmd: Command) -> Done:
    s.untagged("CAPABILITY " + " ".join(srv.capabilities(s)))
    return Done("Capability completed.")


async def noop(srv: Server, s: Session, cmd: Command) -> Done:
    return Done("NOOP completed.")


async def logout(srv: Server, s: Session, cmd: Command) -> Done:
    s.untagged("BYE " + wire.BYE_LOGOUT)
    s.state = LOGOUT
    return Done("Logout completed.")


async def id_(srv: Server, s: Session, cmd: Command) -> Done:
    if cmd.args:
        s.client_id = dict(cmd.args)
        fields = {k.lower(): v for k, v in s.client_id.items()}  # RFC 2971 §3.3: case-insensitive
        forwarded = fields.get("x-originating-ip")
        if forwarded and s.state == NOT_AUTH and adopt_forwarded_client(
                s.conn, forwarded, fields.get("x-originating-port"), srv.config.plaintext.trusted_networks):
            log.info("proxied client: rip=%s, proxy=%s", s.conn.peer_ip, s.conn.forwarded_by)
    s.untagged(b'ID ("name" "pymailsrv" "vendor" "pymailsrv")')
    return Done("ID completed.")


async def enable(srv: Server, s: Session, cmd: Command) -> Done:
    """RFC 5161: unknown capabilities are ignored; the answer lists what was newly enabled.
    QRESYNC enables CONDSTORE too (RFC 7162 §3.2.3)."""
    new = list(dict.fromkeys(c for c in cmd.args if c in ENABLEABLE and c not in s.enabled))
    s.untagged("ENABLED" + "".join(" " + c for c in new))
    s.enabled.update(c for c in new if c != "CONDSTORE")
    if new:
        s.enable_condstore()
    return Done("Enabled.")
