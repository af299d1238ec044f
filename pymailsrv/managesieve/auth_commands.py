"""Commands of the unauthenticated state and the session's own: CAPABILITY, AUTHENTICATE
(RFC 5804 §2.1, SASL PLAIN and LOGIN from the shared credential layer), STARTTLS (§2.2), LOGOUT
(§2.3), NOOP (§2.13), UNAUTHENTICATE (§2.14)."""

from __future__ import annotations

from pymailsrv.auth import sasl
from pymailsrv.errors import ClientSyntaxError, Refusal
from pymailsrv.managesieve import replies
from pymailsrv.managesieve.parser import BadRequest, Request
from pymailsrv.managesieve.session import Session, login_log
from pymailsrv.net.forward import adopt_forwarded_client
from pymailsrv.net.networks import in_networks


def text_arg(value: object) -> str:
    """A string argument as text (RFC 5804 §4: UTF-8)."""
    if not isinstance(value, bytes):
        raise ClientSyntaxError(replies.BAD_ARGUMENTS)
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ClientSyntaxError(replies.NOT_UTF8) from None


def arity(req: Request, *counts: int) -> None:
    if len(req.args) not in counts:
        raise ClientSyntaxError(replies.BAD_ARGUMENTS)


async def cmd_capability(s: Session, req: Request) -> None:
    arity(req, 0)
    s.send_capabilities()
    s.send(replies.ok(replies.DONE))


async def cmd_logout(s: Session, req: Request) -> None:
    arity(req, 0)
    s.send(replies.ok(replies.LOGOUT))
    s.quit = True


async def cmd_noop(s: Session, req: Request) -> None:
    """RFC 5804 §2.11: an optional string is echoed in a TAG response code."""
    arity(req, 0, 1)
    tag = replies.string(text_arg(req.args[0])).decode("utf-8") if req.args else ""
    s.send(replies.ok(replies.DONE, f"TAG {tag}" if tag else ""))


async def cmd_starttls(s: Session, req: Request) -> None:
    arity(req, 0)
    s.request_starttls(active=replies.TLS_ACTIVE, unavailable=replies.TLS_UNAVAILABLE)
    s.send(replies.ok(replies.BEGIN_TLS))


async def cmd_unauthenticate(s: Session, req: Request) -> None:
    arity(req, 0)
    s.logout()
    s.send(replies.ok(replies.UNAUTHENTICATED))


async def _ask(s: Session, challenge: str) -> bytes:
    """RFC 5804 §2.1: the challenge as a string; the client answers with a string ("*" cancels)."""
    s.send(replies.string(challenge) + b"\r\n")
    request = await s.next_input()
    if request is None:
        raise ConnectionResetError("client closed during AUTHENTICATE")
    if isinstance(request, BadRequest) or request.name or len(request.args) != 1 \
            or not isinstance(request.args[0], bytes):
        raise sasl.SaslMalformed("not a string")
    return request.args[0]


async def cmd_authenticate(s: Session, req: Request) -> None:
    arity(req, 1, 2)
    mechanism = text_arg(req.args[0]).upper()
    if mechanism not in sasl.MECHANISMS:
        raise Refusal(replies.AUTH_UNKNOWN_MECH)
    if mechanism not in sasl.offered(s.plaintext_allowed()):
        raise Refusal(replies.PLAINTEXT_DISALLOWED, code=replies.CODE_ENCRYPT_NEEDED)
    initial = text_arg(req.args[1]) if len(req.args) > 1 else None

    async def ask(challenge: str) -> bytes:
        return await _ask(s, challenge)

    try:
        credentials = await sasl.negotiate(mechanism, initial, ask)
    except sasl.SaslCancelled:
        raise Refusal(replies.AUTH_ABORTED) from None
    except sasl.AuthzidRefused as exc:
        raise _aborted(s, "authorization identity refused", exc.authcid, mechanism) from None
    except sasl.SaslError:
        raise Refusal(replies.AUTH_MALFORMED) from None
    account = await s.services.authenticator.authenticate(
        credentials.authcid, credentials.password, service="sieve", remote_ip=s.conn.peer_ip)
    if account is None:
        raise _aborted(s, "auth failed", credentials.authcid, credentials.mechanism)
    if await s.forward(account, credentials.password, credentials.mechanism):
        return
    s.login(account, credentials.mechanism)
    s.send(replies.ok(replies.LOGGED_IN))


def _aborted(s: Session, reason: str, user: str, method: str) -> Refusal:
    s.log_aborted_login(reason, user, method)
    return Refusal(replies.AUTH_FAILED)


def capa_sasl(s: Session) -> tuple[str, str] | None:
    """RFC 5804 §1.7: SASL lists what this connection may use (nothing once authenticated)."""
    if s.account is not None:
        return None
    return ("SASL", " ".join(sasl.offered(s.plaintext_allowed())))


def capa_starttls(s: Session) -> tuple[str, str] | None:
    return ("STARTTLS", "") if s.options.tls_context is not None and not s.conn.tls and s.account is None else None


def capa_unauthenticate(s: Session) -> tuple[str, str] | None:
    return ("UNAUTHENTICATE", "")  # RFC 5804 §2.14.1


async def cmd_xclient(s: Session, req: Request) -> None:
    """Pigeonhole's XCLIENT ADDR=... PORT=... [SESSION=...]: a proxy in login_trusted_networks
    says whose connection this is; anybody else is refused. Unknown attributes are ignored."""
    fields: dict[str, str] = {}
    for arg in req.args:
        if not isinstance(arg, bytes):
            raise ClientSyntaxError(replies.BAD_ARGUMENTS)
        key, _, value = arg.decode("ascii", "replace").partition("=")
        fields[key.upper()] = value
    if "ADDR" not in fields:
        raise ClientSyntaxError(replies.BAD_ARGUMENTS)
    if not adopt_forwarded_client(s.conn, fields["ADDR"], fields.get("PORT"), s.options.plaintext.trusted_networks):
        raise Refusal(replies.XCLIENT_UNTRUSTED)
    login_log.info("proxied client: rip=%s, proxy=%s", s.conn.peer_ip, s.conn.forwarded_by)
    s.send(replies.ok())


def capa_xclient(s: Session) -> tuple[str, str] | None:
    """Advertised only to login_trusted_networks (as Dovecot), before a proxy has used it."""
    trusted = s.options.plaintext.trusted_networks
    return ("XCLIENT", "") if not s.conn.forwarded_by and in_networks(s.conn.peer_ip, trusted) else None
