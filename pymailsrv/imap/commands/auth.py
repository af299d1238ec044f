"""Not-authenticated state: STARTTLS, LOGIN, AUTHENTICATE with SASL-IR (RFC 4959).

The mechanisms, the authzid rule and the plaintext rule are the credential layer's (auth/sasl.py,
auth/plaintext.py), shared with SMTP and POP3; here are the IMAP framing (``+ challenge``) and the
mapping of its typed errors: not base64 or ``*`` → BAD, anything else → NO [AUTHENTICATIONFAILED].
A user name is logged escaped (pymailsrv.log.escape_for_log): a literal may hold CR LF.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymailsrv.auth import sasl
from pymailsrv.auth.base import authenticate_counted
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.imap import wire
from pymailsrv.imap.commands.base import Done, Server
from pymailsrv.imap.grammar import Command
from pymailsrv.imap.session import AUTH, LOGOUT
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.net import PlaintextPending
from pymailsrv.net.forward import BackendUnavailable, ClientInfo

if TYPE_CHECKING:
    from pymailsrv.imap.session import Session

log = get_logger("imap-login")


async def starttls(srv: Server, s: Session, cmd: Command) -> Done:
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


def _privacy_required() -> Refusal:
    return Refusal(wire.PRIVACY_REQUIRED.split("] ", 1)[1], code="PRIVACYREQUIRED")


def _aborted(s: Session, reason: str, user: str, method: str) -> Refusal:
    log.info("Aborted login (%s): user=<%s>, method=%s, rip=%s", reason, escape_for_log(user), method,
             s.conn.peer_ip)
    return Refusal("Authentication failed.", code="AUTHENTICATIONFAILED")


async def _login(srv: Server, s: Session, user: str, password: str, method: str, tag: str) -> Done:
    account = await authenticate_counted(srv.auth, user, password, service="imap", remote_ip=s.conn.peer_ip,
                                         mechanism=method)
    if account is None:
        raise _aborted(s, "auth failed", user, method)
    if not await srv.user_ip.open(account.username, s.conn.peer_ip, srv.config.max_userip):
        log.info("Maximum number of connections from user+IP exceeded: user=<%s>, rip=%s",
                 account.username, s.conn.peer_ip)
        raise Refusal("Maximum number of connections from user+IP exceeded "
                      f"(mail_max_userip_connections={srv.config.max_userip})", code="LIMIT")
    if srv.forwarder is not None and await _forward(srv, s, account.username, password, tag):
        s.account = account
        log.info("Login: user=<%s>, method=%s, rip=%s%s, session=<%s>, proxy", account.username, method,
                 s.conn.peer_ip, ", TLS" if s.conn.tls else "", s.sid)
        return Done(sent=True)
    s.account = account
    s.state = AUTH
    tls = ", TLS" if s.conn.tls else ""
    log.info("Login: user=<%s>, method=%s, rip=%s%s, session=<%s>", account.username, method,
             s.conn.peer_ip, tls, s.sid)
    await srv.store.list_folders(account)  # creates the special-use folders at first login
    return Done("Logged in", code="CAPABILITY " + " ".join(srv.capabilities(s)))


async def _forward(srv: Server, s: Session, user: str, password: str, tag: str) -> bool:
    """A front node: log in to the user's backend and relay its answer with the client's tag;
    the server then splices the session (ImapServer.proxied). False: served here."""
    assert srv.forwarder is not None
    c = s.conn
    client = ClientInfo(c.peer_ip, c.peer_port, c.local_ip, c.local_port, s.sid)
    try:
        upstream = await srv.forwarder.open("imap", user, password, client)
    except BackendUnavailable as exc:
        srv.user_ip.close(user, c.peer_ip)
        raise Refusal(wire.BACKEND_UNAVAILABLE, code="UNAVAILABLE", temporary=True) from exc
    except BaseException:
        srv.user_ip.close(user, c.peer_ip)
        raise
    if upstream is None:
        return False
    s.upstream = upstream
    s.write(tag.encode() + b" " + upstream.reply + b"\r\n")
    s.state = LOGOUT  # the command loop ends; the splice takes over
    return True


async def login(srv: Server, s: Session, cmd: Command) -> Done:
    if not srv.plaintext_ok(s):
        raise _privacy_required()
    user, password = cmd.args
    return await _login(srv, s, user.decode("utf-8", "replace"), password.decode("utf-8", "replace"), "LOGIN",
                        cmd.tag)


async def authenticate(srv: Server, s: Session, cmd: Command) -> Done:
    """RFC 3501 §6.2.2 with SASL-IR (RFC 4959): ``=`` is an empty initial response."""
    mech, ir = cmd.args
    if mech not in sasl.MECHANISMS:
        raise Refusal("Unsupported authentication mechanism.")
    if mech not in sasl.offered(srv.plaintext_ok(s)):
        raise _privacy_required()

    async def ask(challenge: str) -> bytes:
        s.write(f"+ {challenge}\r\n".encode())
        return await s.client_line()

    try:
        credentials = await sasl.negotiate(mech, ir, ask)
    except sasl.SaslCancelled as exc:
        raise ClientSyntaxError("Authentication aborted by client.") from exc
    except sasl.SaslBadBase64 as exc:
        raise ClientSyntaxError("Invalid base64 data in continued response") from exc
    except sasl.AuthzidRefused as exc:
        raise _aborted(s, "authorization identity refused", exc.authcid, mech) from exc
    except sasl.SaslError as exc:
        raise _aborted(s, "malformed response", "", mech) from exc
    return await _login(srv, s, credentials.authcid, credentials.password, mech, cmd.tag)
