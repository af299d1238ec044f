"""AUTHORIZATION-state commands: CAPA, USER, PASS, AUTH (RFC 5034), STLS (RFC 2595), and QUIT.

The mechanisms, the authzid rule and the plaintext rule are the credential layer's (auth/sasl.py,
auth/plaintext.py), shared with SMTP and IMAP; here are the POP3 framing (``+ challenge``) and the
mapping of its typed errors to replies. User names are logged escaped (pymailsrv.log).
"""

from __future__ import annotations

from pymailsrv.auth import sasl
from pymailsrv.auth.base import authenticate_counted
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.net.forward import adopt_forwarded_client
from pymailsrv.net.networks import in_networks
from pymailsrv.pop3 import replies
from pymailsrv.pop3.parser import TOO_LONG, Command
from pymailsrv.pop3.session import Session, State, login_log


def _no_args(cmd: Command) -> None:
    if cmd.args:
        raise ClientSyntaxError(replies.NO_ARGUMENTS_ALLOWED)


def _require_plaintext_allowed(s: Session) -> None:
    if not s.plaintext_allowed():
        raise Refusal(replies.PLAINTEXT_DISALLOWED, code=replies.CODE_AUTH)


async def cmd_capa(s: Session, cmd: Command) -> None:
    """RFC 2449 §5: derived from the command table, so only implemented commands appear."""
    _no_args(cmd)
    s.send(replies.multiline(replies.ok(replies.CAPA_HEADER), s.capabilities()))


async def cmd_user(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 USER."""
    name = cmd.rest.strip()
    if not name:
        raise ClientSyntaxError(replies.MISSING_ARGUMENT)
    _require_plaintext_allowed(s)
    s.user_arg = name
    s.send(replies.ok())


async def cmd_pass(s: Session, cmd: Command) -> None:
    """RFC 1939 §7 PASS; the password is the rest of the line (it may contain spaces)."""
    if not cmd.rest:
        raise ClientSyntaxError(replies.MISSING_ARGUMENT)
    _require_plaintext_allowed(s)
    user, s.user_arg = s.user_arg, None
    if user is None:
        raise Refusal(replies.NO_USERNAME)
    await authenticate(s, user, cmd.rest, "USER")


async def authenticate(s: Session, user: str, password: str, method: str) -> None:
    account = await authenticate_counted(s.services.authenticator, user, password, service="pop3",
                                         remote_ip=s.conn.peer_ip, mechanism=method)
    if account is None:
        raise _aborted(s, "auth failed", user, method)
    if await s.forward(account, password, method):
        return
    await s.login(account, method)
    s.send(replies.ok(replies.LOGGED_IN))


def _aborted(s: Session, reason: str, user: str, method: str) -> Refusal:
    s.log_aborted_login(reason, user, method)
    return Refusal(replies.AUTH_FAILED, code=replies.CODE_AUTH)


async def _challenge(s: Session, text: str) -> bytes:
    """RFC 5034 §4: send ``+ base64`` and read the client's line (``*`` cancels: SaslExchange)."""
    s.send(f"+ {text}\r\n".encode("ascii"))
    line = await s.next_input()
    if line is None:
        raise ConnectionResetError("client closed during AUTH")
    if line is TOO_LONG:
        raise ClientSyntaxError(replies.LINE_TOO_LONG)
    assert isinstance(line, bytes)
    return line


async def cmd_auth(s: Session, cmd: Command) -> None:
    """RFC 5034 AUTH mechanism [initial-response]; bare AUTH lists mechanisms (as Dovecot)."""
    if not cmd.args:
        mechanisms = sasl.offered(s.plaintext_allowed())
        s.send(replies.multiline(replies.ok(replies.AUTH_MECHS_HEADER), mechanisms))
        return
    if len(cmd.args) > 2:
        raise ClientSyntaxError(replies.TOO_MANY_ARGUMENTS)
    mechanism = cmd.args[0].upper()
    if mechanism not in sasl.MECHANISMS:
        raise Refusal(replies.AUTH_UNKNOWN_MECH)
    if mechanism not in sasl.offered(s.plaintext_allowed()):
        raise Refusal(replies.PLAINTEXT_DISALLOWED, code=replies.CODE_AUTH)

    async def ask(challenge: str) -> bytes:
        return await _challenge(s, challenge)

    try:
        credentials = await sasl.negotiate(mechanism, cmd.args[1] if len(cmd.args) > 1 else None, ask)
    except sasl.SaslCancelled:
        raise Refusal(replies.AUTH_ABORTED) from None
    except sasl.SaslBadBase64:
        raise ClientSyntaxError(replies.AUTH_INVALID_BASE64) from None
    except sasl.AuthzidRefused as exc:  # no proxy authorization
        raise _aborted(s, "authorization identity refused", exc.authcid, mechanism) from None
    except sasl.SaslError:
        raise ClientSyntaxError(replies.AUTH_MALFORMED) from None
    await authenticate(s, credentials.authcid, credentials.password, credentials.mechanism)


async def cmd_xclient(s: Session, cmd: Command) -> None:
    """Dovecot's XCLIENT ADDR=... PORT=... [SESSION=...]: a proxy in login_trusted_networks says
    whose connection this is; anybody else is refused. Unknown attributes are ignored."""
    fields = dict(arg.partition("=")[::2] for arg in cmd.args)
    fields = {k.upper(): v for k, v in fields.items()}
    if "ADDR" not in fields:
        raise ClientSyntaxError(replies.MISSING_ARGUMENT)
    if not adopt_forwarded_client(s.conn, fields["ADDR"], fields.get("PORT"), s.options.plaintext.trusted_networks):
        raise Refusal(replies.XCLIENT_UNTRUSTED)
    login_log.info("proxied client: rip=%s, proxy=%s", s.conn.peer_ip, s.conn.forwarded_by)
    s.send(replies.ok())


def capa_xclient(s: Session) -> str:
    """Advertised only to login_trusted_networks (as Dovecot)."""
    trusted = s.options.plaintext.trusted_networks
    return "XCLIENT" if not s.conn.forwarded_by and in_networks(s.conn.peer_ip, trusted) else ""


def capa_user(s: Session) -> str:
    """RFC 2449 §6.8 / RFC 2595 §4: USER is not announced where plaintext passwords are refused."""
    return "USER" if s.plaintext_allowed() else ""


def capa_sasl(s: Session) -> str:
    """RFC 5034 §6: the SASL capability lists only mechanisms usable on this connection."""
    mechanisms = sasl.offered(s.plaintext_allowed())
    return "SASL " + " ".join(mechanisms) if mechanisms else ""


def capa_stls(s: Session) -> str:
    return "STLS" if s.options.tls_context is not None and not s.conn.tls else ""


async def cmd_stls(s: Session, cmd: Command) -> None:
    """RFC 2595 §4 STLS; the session upgrades after this reply is flushed."""
    _no_args(cmd)
    s.request_starttls(active=replies.TLS_ACTIVE, unavailable=replies.TLS_UNAVAILABLE)
    s.send(replies.ok(replies.BEGIN_TLS))


async def cmd_quit(s: Session, cmd: Command) -> None:
    """RFC 1939 §5/§6: QUIT in TRANSACTION enters UPDATE and removes the DELE'd messages."""
    s.quit = True
    if s.state is State.AUTHORIZATION:
        s.send(replies.ok(replies.LOGGING_OUT))
        return
    deleted = bool(s.maildrop and s.maildrop.deleted_uids())
    if not await s.end_maildrop(quit=True):
        s.send(replies.err(replies.DELETE_FAILED, replies.CODE_SYS_TEMP))
        return
    s.send(replies.ok(replies.LOGGING_OUT_DELETED if deleted else replies.LOGGING_OUT))
