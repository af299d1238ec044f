"""The SMTP command table (STYLE.md rule 2) and the handlers of the session commands.

``COMMANDS[verb] = SmtpCommand(handler, before_tls, policy_gated)``: ``before_tls`` commands are allowed
while TLS is required but not yet active (RFC 3207 §4: EHLO, STARTTLS, NOOP, QUIT, RSET);
``policy_gated`` commands get the connect-stage refusal when smtpd_delay_reject = no rejected the
client. EHLO derives its keyword list from what is implemented here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymailsrv.message.headers import printable
from pymailsrv.pipeline.base import Transaction
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.auth import cmd_auth
from pymailsrv.smtp.data import cmd_data
from pymailsrv.smtp.session import SmtpSession, log
from pymailsrv.smtp.wire import (
    ArgumentError,
    PathArgument,
    decode_xtext,
    parse_notify,
    parse_orcpt,
    parse_path_argument,
)
from pymailsrv.types import Recipient

Handler = Callable[[SmtpSession, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SmtpCommand:
    handler: Handler
    before_tls: bool = False
    policy_gated: bool = False


# --- HELO / EHLO (RFC 5321 §4.1.1.1) ---------------------------------------------------------


async def cmd_helo(s: SmtpSession, arg: str) -> None:
    await _greet(s, arg, extended=False)


async def cmd_ehlo(s: SmtpSession, arg: str) -> None:
    await _greet(s, arg, extended=True)


async def _greet(s: SmtpSession, arg: str, *, extended: bool) -> None:
    if not arg:
        s.reply(R.EHLO_SYNTAX if extended else R.HELO_SYNTAX)
        return
    if any(ord(c) < 32 or ord(c) == 127 for c in arg):
        # The name goes into Received: (issue 13). What reject_invalid_helo_hostname answers,
        # with the name shown as Postfix logs it (controls as "?").
        s.reply(R.INVALID_HELO.format(name=printable(arg)))
        return
    if s.connect_refusal is not None:
        s.reply(s.connect_refusal.reply())
        return
    s.reset_transaction()  # RFC 5321 §4.1.4: HELO/EHLO resets the transaction
    s.state.helo_name = arg
    decision = await s.check("helo")
    if decision.refused:
        s.state.helo_name = s.helo
        s.reply(decision.reply())
        return
    s.helo = arg
    s.extended = extended
    s.state.protocol = "ESMTP" if extended else "SMTP"
    if not extended:
        s.reply(R.HELO_OK.format(host=s.cfg.myhostname))
        return
    words = ehlo_keywords(s)
    s.reply("\r\n".join(f"250-{k}" for k in words[:-1]) + f"\r\n250 {words[-1]}")


def ehlo_keywords(s: SmtpSession) -> list[str]:
    """The EHLO reply lines after the hostname, in Postfix's order (RFC 5321 §4.1.1.1)."""
    limit = s.cfg.message_size_limit
    words = [s.cfg.myhostname, "PIPELINING", f"SIZE {limit}" if limit else "SIZE"]
    if not s.cfg.disable_vrfy:
        words.append("VRFY")
    if s.starttls_offered():
        words.append("STARTTLS")
    mechanisms = " ".join(s.sasl_mechanisms())
    if mechanisms:
        words.append(f"AUTH {mechanisms}")
        if s.cfg.broken_sasl_auth_clients:
            words.append(f"AUTH={mechanisms}")
    words += ["ENHANCEDSTATUSCODES", "8BITMIME", "DSN", "SMTPUTF8"]
    return words


# --- MAIL (RFC 5321 §4.1.1.2, RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531, RFC 3461) ------------


async def cmd_mail(s: SmtpSession, arg: str) -> None:
    if not s.helo and s.cfg.helo_required:
        s.reply(R.NEED_HELO)
        return
    if s.txn is not None:
        s.reply(R.NESTED_MAIL)
        return
    if s.listener.is_submission and not s.sasl_username:
        s.reply(R.AUTH_REQUIRED)
        return
    try:
        path = parse_path_argument(arg, "FROM", R.MAIL_SYNTAX, R.BAD_SENDER)
        txn = _mail_params(s, path.address, path.params)
    except ArgumentError as exc:
        s.reply(exc.reply)
        return
    if not await _sender_owned(s, txn.sender):
        return
    s.state.sender = txn.sender
    decision = await s.check("mail", txn)
    if decision.refused:
        s.state.sender = None
        s.reply(decision.reply())
        return
    s.txn = txn
    s.reply(R.MAIL_OK)


def _mail_params(s: SmtpSession, sender: str, params: dict[str, str]) -> Transaction:
    txn = Transaction(sender=sender)
    for key, value in params.items():
        if key == "SIZE":
            if not value.isdigit() or len(value) > 20:
                raise ArgumentError(R.BAD_SIZE)
            limit = s.cfg.message_size_limit
            if limit and int(value) > limit:
                s.noqueue_reject("MAIL", R.SIZE_EXCEEDED, sender=sender)
                raise ArgumentError(R.SIZE_EXCEEDED)
            s.state.size = int(value)
        elif key == "BODY":
            if value.upper() not in ("7BIT", "8BITMIME"):
                raise ArgumentError(R.BAD_BODY)
            txn.body_type = value.upper()
        elif key == "SMTPUTF8":
            if value:
                raise ArgumentError(R.BAD_SMTPUTF8)
            txn.smtputf8 = True
        elif key == "RET":
            if value.upper() not in ("FULL", "HDRS"):
                raise ArgumentError(R.BAD_RET)
            txn.ret = value.upper()
        elif key == "ENVID":
            try:
                txn.envid = decode_xtext(value)
            except ValueError:
                raise ArgumentError(R.BAD_ENVID) from None
        elif key == "AUTH":  # RFC 4954 §5: accepted, not trusted
            continue
        else:
            raise ArgumentError(R.UNSUPPORTED_OPTION.format(option=key))
    return txn


async def _sender_owned(s: SmtpSession, sender: str) -> bool:
    """reject_sender_login_mismatch on submission: the login must own the MAIL FROM address."""
    if not (s.listener.is_submission and s.cfg.submission_sender_login_mismatch):
        return True
    if not sender or not s.sasl_username or s.svc.directory is None:
        return True
    if await s.svc.directory.login_owns(s.sasl_username, sender):
        return True
    reply = R.SENDER_NOT_OWNED.format(addr=sender, login=s.sasl_username)
    s.noqueue_reject("MAIL", reply, sender=sender)
    s.reply(reply)
    return False


# --- RCPT (RFC 5321 §4.1.1.3, RFC 3461 NOTIFY/ORCPT) --------------------------------------------


async def cmd_rcpt(s: SmtpSession, arg: str) -> None:
    parsed = recipient_argument(s, arg)
    if parsed is None:
        return
    txn, path, rcpt = parsed
    if path.raw != path.address:
        rcpt.original = path.raw
    if len(txn.recipients) >= s.cfg.recipient_limit:
        s.noqueue_reject("RCPT", R.TOO_MANY_RECIPIENTS, rcpt.original or rcpt.address)
        s.reply(R.TOO_MANY_RECIPIENTS)
        return
    s.state.recipient = rcpt.original or rcpt.address
    decision = await s.check("rcpt", txn, rcpt)
    if decision.refused:
        s.reply(decision.reply())
        return
    txn.recipients.append(rcpt)
    s.state.recipient_count = len(txn.recipients)
    s.reply(R.RCPT_OK)


def recipient_argument(s: SmtpSession, arg: str) -> tuple[Transaction, PathArgument, Recipient] | None:
    """RCPT's transaction and parsed argument (SMTP's and LMTP's), or None after the reply
    (no MAIL yet, a bad argument)."""
    txn = s.txn
    if txn is None:
        s.reply(R.NEED_MAIL)
        return None
    try:
        path = parse_path_argument(arg, "TO", R.RCPT_SYNTAX, R.BAD_RECIPIENT)
        if not path.address:
            raise ArgumentError(R.BAD_RECIPIENT)
        rcpt = rcpt_params(path.address, path.params)
    except ArgumentError as exc:
        s.reply(exc.reply)
        return None
    return txn, path, rcpt


def rcpt_params(address: str, params: dict[str, str]) -> Recipient:
    rcpt = Recipient(address=address)
    for key, value in params.items():
        if key == "NOTIFY":
            try:
                rcpt.notify = parse_notify(value)
            except ValueError:
                raise ArgumentError(R.BAD_NOTIFY) from None
        elif key == "ORCPT":
            try:
                rcpt.orcpt = parse_orcpt(value)
            except ValueError:
                raise ArgumentError(R.BAD_ORCPT) from None
        else:
            raise ArgumentError(R.UNSUPPORTED_OPTION.format(option=key))
    return rcpt


# --- small commands ---------------------------------------------------------------------------


async def cmd_rset(s: SmtpSession, arg: str) -> None:
    if arg:
        s.reply(R.RSET_SYNTAX)
        return
    s.reset_transaction()
    s.reply(R.RSET_OK)


async def cmd_noop(s: SmtpSession, arg: str) -> None:
    s.reply(R.NOOP_OK)


async def cmd_quit(s: SmtpSession, arg: str) -> None:
    s.reply(R.QUIT_OK)
    s.closing = True


async def cmd_vrfy(s: SmtpSession, arg: str) -> None:
    if s.cfg.disable_vrfy:
        s.reply(R.VRFY_DISABLED)
        return
    if not arg:
        s.reply(R.VRFY_SYNTAX)
        return
    s.reply(R.VRFY_OK.format(addr=arg.strip("<>")))


async def cmd_starttls(s: SmtpSession, arg: str) -> None:
    if arg:
        s.reply(R.STARTTLS_SYNTAX)
        return
    if s.tls_active:
        s.reply(R.TLS_ALREADY)
        return
    if not s.starttls_offered():
        s.reply(R.NOT_IMPLEMENTED)
        return
    s.reply(R.STARTTLS_GO)
    await s.flush()
    s.reset_helo()  # RFC 3207 §4.2: forget everything learnt before TLS
    if not await s.start_tls():
        s.closing = True
        s.lost = True
        return
    log.debug("STARTTLS done for %s", s.client)


COMMANDS: dict[str, SmtpCommand] = {
    "HELO": SmtpCommand(cmd_helo, before_tls=True),
    "EHLO": SmtpCommand(cmd_ehlo, before_tls=True),
    "STARTTLS": SmtpCommand(cmd_starttls, before_tls=True),
    "AUTH": SmtpCommand(cmd_auth, policy_gated=True),
    "MAIL": SmtpCommand(cmd_mail, policy_gated=True),
    "RCPT": SmtpCommand(cmd_rcpt, policy_gated=True),
    "DATA": SmtpCommand(cmd_data, policy_gated=True),
    "RSET": SmtpCommand(cmd_rset, before_tls=True),
    "NOOP": SmtpCommand(cmd_noop, before_tls=True),
    "VRFY": SmtpCommand(cmd_vrfy, policy_gated=True),
    "QUIT": SmtpCommand(cmd_quit, before_tls=True),
}
