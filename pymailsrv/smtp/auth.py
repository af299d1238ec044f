"""SMTP AUTH (RFC 4954) over the credential layer SMTP, IMAP and POP3 share.

Implementation notes
- The mechanisms, their decoding, the authzid rule and the plaintext rule are auth/'s, as for
  IMAP and POP3 (auth/sasl.py, auth/plaintext.py); this module frames the challenges
  (``334 base64``) and maps the layer's typed errors to Postfix's replies: not base64 → 501 5.5.2,
  ``*`` → 501 5.7.0, anything else the client got wrong → 535 5.7.8.
- The password check awaits the shared Authenticator (hashing off the event loop, throttling),
  unlike aiosmtpd's synchronous ``authenticator=`` callback.
- The client's SASL lines are read raw and never traced or logged; only the user name appears in
  a log line, escaped (pymailsrv.log.escape_for_log), never the password.
- Both LOGIN exchanges work: the challenge form (Outlook: ``334 VXNlcm5hbWU6`` then
  ``334 UGFzc3dvcmQ6``) and the initial-response form (Thunderbird: ``AUTH LOGIN <user>``).
  PLAIN takes an initial response or answers ``334 `` (empty challenge) first.
"""

from __future__ import annotations

from pymailsrv.auth import sasl
from pymailsrv.auth.base import AuthUnavailable, authenticate_counted
from pymailsrv.log import escape_for_log
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.session import SmtpSession, log
from pymailsrv.smtp.wire import Line


class _Abort(Exception):
    """The exchange ended with a reply already queued (or the connection is gone)."""


async def _ask(s: SmtpSession, challenge: str) -> str:
    s.reply(f"334 {challenge}")
    item = await s.next_line()
    if item is None:
        s.lost = True
        s.closing = True
        raise _Abort
    if not isinstance(item, Line):
        s.reply(R.AUTH_BAD_BASE64)
        raise _Abort
    return item.text.decode("ascii", "replace")


async def cmd_auth(s: SmtpSession, arg: str) -> None:
    mechanisms = s.sasl_mechanisms()
    if not mechanisms:
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
    if mechanism not in mechanisms:
        s.reply(R.AUTH_BAD_MECHANISM)
        return

    async def ask(challenge: str) -> str:
        return await _ask(s, challenge)

    try:
        credentials = await sasl.negotiate(mechanism, parts[1] if len(parts) == 2 else None, ask)
    except _Abort:
        return
    except sasl.SaslCancelled:  # RFC 4954 §4
        s.reply(R.AUTH_ABORTED)
        return
    except sasl.SaslBadBase64:
        s.reply(R.AUTH_BAD_BASE64)
        return
    except sasl.AuthzidRefused as exc:
        _log_failure(s, mechanism, "authorization identity refused", exc.authcid)
        s.reply(R.AUTH_FAILED)
        return
    except sasl.SaslError:
        _log_failure(s, mechanism, "malformed response", "")
        s.reply(R.AUTH_FAILED)
        return
    await _verify(s, credentials)


def _log_failure(s: SmtpSession, mechanism: str, reason: str, username: str) -> None:
    log.warning("%s: SASL %s authentication failed: %s, sasl_username=%s",
                s.client, mechanism, reason, escape_for_log(username))


async def _verify(s: SmtpSession, credentials: sasl.Credentials) -> None:
    assert s.svc.authenticator is not None
    mechanism, username = credentials.mechanism, credentials.authcid
    try:
        account = await authenticate_counted(s.svc.authenticator, username, credentials.password, service="smtp",
                                             remote_ip=s.state.client_address, mechanism=mechanism)
    except AuthUnavailable:
        _log_failure(s, mechanism, "temporary failure", username)
        s.reply(R.AUTH_TEMPFAIL)
        return
    if account is None:
        _log_failure(s, mechanism, "authentication failure", username)
        s.reply(R.AUTH_FAILED)
        return
    s.sasl_method = mechanism
    s.sasl_username = account.username
    s.state.sasl_method = mechanism
    s.state.sasl_username = account.username
    s.reply(R.AUTH_OK)
