"""Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE PLAIN/LOGIN with SASL-IR (RFC 4959)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymailsrv.auth.sasl import MECHANISMS, SaslCancelled, SaslError, SaslExchange
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import wire
from pymailsrv.imap.commands.base import Done
from pymailsrv.imap.grammar import Command
from pymailsrv.imap.session import AUTH, LOGOUT
from pymailsrv.log import get_logger
from pymailsrv.net import PlaintextPending

if TYPE_CHECKING:
    from pymailsrv.imap.server import ImapServer
    from pymailsrv.imap.session import Session

log = get_logger("imap-login")


async def starttls(srv: ImapServer, s: Session, cmd: Command) -> Done:
    if srv.tls is None or s.conn.tls:
        raise ClientSyntaxError("TLS is already active." if s.conn.tls else "TLS support isn't enabled.")
    if s.parser.buffered or s.conn.pending:
        # RFC 3501 §6.2.1 / CVE-2011-0411: never carry plaintext over into the TLS session
        s.write(f"{cmd.tag} BAD STARTTLS followed by more data.\r\n".encode())
        s.untagged("BYE Plaintext after STARTTLS refused.")
        s.state = LOGOUT
        return Done(sent=True)
    s.write(f"{cmd.tag} OK Begin TLS negotiation now.\r\n".encode())
    await s.flush()
    try:
        await s.conn.start_tls(srv.tls)
    except PlaintextPending:
        s.state = LOGOUT
        s.conn.close()
    return Done(sent=True)


def _check_plaintext(srv: ImapServer, s: Session) -> None:
    if not srv.plaintext_ok(s):
        raise Refusal(wire.PRIVACY_REQUIRED.split("] ", 1)[1], code="PRIVACYREQUIRED")


async def _login(srv: ImapServer, s: Session, user: str, password: str, method: str) -> Done:
    account = await srv.auth.authenticate(user, password, service="imap", remote_ip=s.conn.peer_ip)
    if account is None:
        log.info("Aborted login (auth failed): user=<%s>, method=%s, rip=%s", user, method, s.conn.peer_ip)
        raise Refusal("Authentication failed.", code="AUTHENTICATIONFAILED")
    if not await srv.user_ip.open(account.username, s.conn.peer_ip, srv.config.max_userip):
        log.info("Maximum number of connections from user+IP exceeded: user=<%s>, rip=%s",
                 account.username, s.conn.peer_ip)
        raise Refusal("Maximum number of connections from user+IP exceeded "
                      f"(mail_max_userip_connections={srv.config.max_userip})", code="LIMIT")
    s.account = account
    s.state = AUTH
    tls = ", TLS" if s.conn.tls else ""
    log.info("Login: user=<%s>, method=%s, rip=%s%s, session=<%s>", account.username, method,
             s.conn.peer_ip, tls, s.sid)
    await srv.store.list_folders(account)  # creates the special-use folders at first login
    return Done("Logged in", code="CAPABILITY " + " ".join(srv.capabilities(s)))


async def login(srv: ImapServer, s: Session, cmd: Command) -> Done:
    _check_plaintext(srv, s)
    user, password = cmd.args
    return await _login(srv, s, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"), "LOGIN")


async def authenticate(srv: ImapServer, s: Session, cmd: Command) -> Done:
    """RFC 3501 §6.2.2 with SASL-IR (RFC 4959): ``=`` is an empty initial response."""
    mech, ir = cmd.args
    if mech not in MECHANISMS:
        raise Refusal("Unsupported authentication mechanism.")
    _check_plaintext(srv, s)
    try:
        ex = SaslExchange(mech, None if ir is None else (b"" if ir == b"=" else ir))
        while ex.challenge is not None:
            s.write(f"+ {ex.challenge}\r\n".encode())
            ex.respond(await s.client_line())
    except SaslCancelled as exc:
        raise ClientSyntaxError("Authentication aborted by client.") from exc
    except SaslError as exc:
        raise ClientSyntaxError("Invalid base64 data in continued response") from exc
    return await _login(srv, s, ex.authcid, ex.password, mech)
