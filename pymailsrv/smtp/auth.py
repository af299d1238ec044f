"""SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.

Implementation notes
- The mechanisms are async functions (``auth_PLAIN``, ``auth_LOGIN``) in an explicit table; the
  password check awaits the shared Authenticator (hashing runs off the event loop there), unlike
  aiosmtpd's synchronous ``authenticator=`` callback.
- The client's SASL lines are read raw and never traced or logged; only the (sanitized) user name
  appears in a log line, never the password.
- Both LOGIN exchanges work: the challenge form (Outlook: ``334 VXNlcm5hbWU6`` then
  ``334 UGFzc3dvcmQ6``) and the initial-response form (Thunderbird: ``AUTH LOGIN <user>``).
  PLAIN takes an initial response or answers ``334 `` (empty challenge) first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pymailsrv.auth.base import AuthUnavailable
from pymailsrv.auth.sasl import (
    LOGIN_PASSWORD_PROMPT,
    LOGIN_USERNAME_PROMPT,
    SaslError,
    decode_base64,
    decode_login_field,
    decode_plain,
)
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.session import SmtpSession, log
from pymailsrv.smtp.wire import Line

Credentials = tuple[str, str]


class _Abort(Exception):
    """The exchange ended with a reply already queued (or the connection is gone)."""


async def _challenge(s: SmtpSession, prompt: str) -> str:
    s.reply(f"334 {prompt}")
    item = await s.next_line()
    if item is None:
        s.lost = True
        s.closing = True
        raise _Abort
    if not isinstance(item, Line):
        s.reply(R.AUTH_BAD_BASE64)
        raise _Abort
    text = item.text.decode("ascii", "replace").strip()
    if text == "*":  # RFC 4954 §4: the client cancels
        s.reply(R.AUTH_ABORTED)
        raise _Abort
    return text


def _base64_ok(s: SmtpSession, text: str) -> None:
    try:
        decode_base64(text)
    except SaslError:
        s.reply(R.AUTH_BAD_BASE64)
        raise _Abort from None


async def auth_PLAIN(s: SmtpSession, initial: str | None) -> Credentials:
    response = await _challenge(s, "") if initial is None else initial
    if response == "=":  # RFC 4954 §4: an empty initial response
        response = ""
    _base64_ok(s, response)
    try:
        authzid, authcid, password = decode_plain(response)
    except SaslError:
        s.reply(R.AUTH_FAILED)
        raise _Abort from None
    if authzid and authzid != authcid:  # no proxy authorization
        s.reply(R.AUTH_FAILED)
        raise _Abort
    return authcid, password


async def auth_LOGIN(s: SmtpSession, initial: str | None) -> Credentials:
    user_b64 = await _challenge(s, LOGIN_USERNAME_PROMPT) if initial is None else initial
    _base64_ok(s, user_b64)
    try:
        username = decode_login_field(user_b64)
    except SaslError:
        s.reply(R.AUTH_FAILED)
        raise _Abort from None
    pass_b64 = await _challenge(s, LOGIN_PASSWORD_PROMPT)
    _base64_ok(s, pass_b64)
    try:
        password = decode_login_field(pass_b64)
    except SaslError:
        s.reply(R.AUTH_FAILED)
        raise _Abort from None
    return username, password


MECHANISMS: dict[str, Callable[[SmtpSession, str | None], Awaitable[Credentials]]] = {
    "PLAIN": auth_PLAIN,
    "LOGIN": auth_LOGIN,
}


def safe_name(name: str) -> str:
    """A user name fit for a log line: no control characters, bounded."""
    cleaned = "".join(c if c.isprintable() and c not in "\r\n" else "?" for c in name)
    return cleaned[:256]


async def cmd_auth(s: SmtpSession, arg: str) -> None:
    if not s.auth_offered():
        s.reply(R.AUTH_NOT_ENABLED)
        return
    if not s.helo:
        s.reply(R.NEED_HELO)
        return
    if s.sasl_username:
        s.reply(R.AUTH_ALREADY)
        return
    if s.txn is not None:
        s.reply(R.AUTH_IN_TRANSACTION)
        return
    parts = arg.split()
    if not parts or len(parts) > 2:
        s.reply(R.AUTH_SYNTAX)
        return
    mechanism = parts[0].upper()
    run = MECHANISMS.get(mechanism)
    if run is None:
        s.reply(R.AUTH_BAD_MECHANISM)
        return
    try:
        username, password = await run(s, parts[1] if len(parts) == 2 else None)
    except _Abort:
        return
    await _verify(s, mechanism, username, password)


async def _verify(s: SmtpSession, mechanism: str, username: str, password: str) -> None:
    assert s.svc.authenticator is not None
    try:
        account = await s.svc.authenticator.authenticate(
            username, password, service="smtp", remote_ip=s.state.client_address)
    except AuthUnavailable:
        log.warning("%s: SASL %s authentication failed: temporary failure, sasl_username=%s",
                    s.client, mechanism, safe_name(username))
        s.reply(R.AUTH_TEMPFAIL)
        return
    if account is None:
        log.warning("%s: SASL %s authentication failed: authentication failure, sasl_username=%s",
                    s.client, mechanism, safe_name(username))
        s.reply(R.AUTH_FAILED)
        return
    s.sasl_method = mechanism
    s.sasl_username = account.username
    s.state.sasl_method = mechanism
    s.state.sasl_username = account.username
    s.reply(R.AUTH_OK)
