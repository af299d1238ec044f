"""The LMTP command table (RFC 2033) and its own handlers: LHLO, RCPT, DATA.

MAIL, RSET, NOOP, VRFY and QUIT are SMTP's handlers (smtp/commands.py). HELO and EHLO are not
commands here (RFC 2033 §4.1), nor is AUTH: LMTP serves a trusted MTA (mynetworks over TCP, or
a UNIX socket), as Dovecot's lmtp is run. STARTTLS is SMTP's handler.
"""

from __future__ import annotations

import asyncio
import email.utils
import time

from pymailsrv.delivery.base import DeliveryResult
from pymailsrv.errors import TemporaryFailure
from pymailsrv.lmtp import replies as L
from pymailsrv.lmtp.session import LmtpSession
from pymailsrv.log import escape_for_log, fmt_delay, get_logger
from pymailsrv.message.headers import printable
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.commands import (
    SmtpCommand,
    cmd_mail,
    cmd_noop,
    cmd_quit,
    cmd_rset,
    cmd_starttls,
    cmd_vrfy,
    recipient_argument,
)
from pymailsrv.smtp.data import data_transaction, receive_content
from pymailsrv.smtp.session import SmtpSession

log = get_logger("lmtp")

QUOTA_DSNS = ("5.2.2", "4.2.2")  # what the Maildir agent answers for a full mailbox


def _lmtp(s: SmtpSession) -> LmtpSession:
    assert isinstance(s, LmtpSession)
    return s


# --- LHLO (RFC 2033 §4.1) ------------------------------------------------------------------------


async def cmd_lhlo(s: SmtpSession, arg: str) -> None:
    if not arg:
        s.reply(L.LHLO_SYNTAX)
        return
    if any(ord(c) < 32 or ord(c) == 127 for c in arg):  # it goes into Received:
        s.reply(L.INVALID_LHLO.format(name=printable(arg)))
        return
    s.reset_transaction()
    s.helo = s.state.helo_name = arg
    s.extended = True
    s.state.protocol = "LMTP"
    limit = s.cfg.message_size_limit
    words = [s.cfg.myhostname, "PIPELINING", f"SIZE {limit}" if limit else "SIZE"]
    if s.starttls_offered():
        words.append("STARTTLS")
    words += ["ENHANCEDSTATUSCODES", "8BITMIME", "SMTPUTF8"]
    s.reply("\r\n".join(f"250-{k}" for k in words[:-1]) + f"\r\n250 {words[-1]}")


async def cmd_lmtp_mail(s: SmtpSession, arg: str) -> None:
    if not s.helo:  # RFC 2033 §4.1: LHLO is mandatory
        s.reply(L.NEED_LHLO)
        return
    await cmd_mail(s, arg)


# --- RCPT: only existing mailboxes, quota checked now as Dovecot's lmtp_rcpt_check_quota -------


async def cmd_lmtp_rcpt(s: SmtpSession, arg: str) -> None:
    ls = _lmtp(s)
    parsed = recipient_argument(s, arg)
    if parsed is None:
        return
    txn, _, rcpt = parsed
    addr = printable(rcpt.address)
    if len(txn.recipients) >= s.cfg.recipient_limit:
        s.reply(L.TOO_MANY_RECIPIENTS.format(addr=addr))
        return
    refusal = await _recipient_refusal(ls, rcpt.address, s.state.size)
    if refusal:
        s.noqueue_reject("RCPT", refusal, rcpt.address)
        s.reply(refusal)
        return
    txn.recipients.append(rcpt)
    s.state.recipient_count = len(txn.recipients)
    s.reply(R.RCPT_OK)


async def _recipient_refusal(s: LmtpSession, address: str, size: int) -> str:
    """The reply refusing ``address`` now, or "" (RFC 2033 §4.2: refused recipients get no
    reply after DATA)."""
    addr = printable(address)
    assert s.svc.directory is not None
    try:
        account = await s.svc.directory.mailbox(address)
    except TemporaryFailure:
        return L.LOOKUP_FAILED.format(addr=addr)
    if account is None:
        return L.USER_UNKNOWN.format(addr=addr)
    if not (s.lmtp.options.rcpt_check_quota and account.quota_bytes):
        return ""
    try:
        usage = await s.lmtp.store.quota(account)
    except OSError:
        return L.LOOKUP_FAILED.format(addr=addr)
    return "" if usage.has_room(size) else _quota_reply(s, addr)


def _quota_reply(s: LmtpSession, addr: str) -> str:
    opts = s.lmtp.options
    template = L.OVER_QUOTA_TEMP if opts.quota_full_tempfail else L.OVER_QUOTA
    return template.format(addr=addr, text=opts.quota_exceeded_message)


# --- DATA: receive once, deliver to each recipient, one reply each (RFC 2033 §4.2) ---------------


async def cmd_lmtp_data(s: SmtpSession, arg: str) -> None:
    ls = _lmtp(s)
    txn = data_transaction(s, arg)
    if txn is None:
        return
    s.reply(R.DATA_GO)
    content = await receive_content(s, replies=len(txn.recipients))
    s.reset_transaction(aborted=content is None)
    if content is None:
        return
    started = time.monotonic()
    tid = s.svc.queue.new_queue_id()
    recipients = [r.address for r in txn.recipients]
    if ls.lmtp.options.add_received_header:
        content = received_header(ls, tid, txn.sender, recipients) + content
    # each recipient on its own, together (as the queue manager's fast path): their fsyncs overlap
    results = await asyncio.gather(*(_deliver_one(ls, tid, txn.sender, r, content) for r in recipients))
    log.info("%s: client=%s, from=<%s>, size=%d, nrcpt=%d", tid, s.client, escape_for_log(txn.sender),
             len(content), len(recipients))
    for result in results:
        s.reply(_result_reply(ls, tid, result))
        _log_result(tid, result, time.monotonic() - started)
    s.errors = 0


async def _deliver_one(s: LmtpSession, tid: str, sender: str, recipient: str, content: bytes) -> DeliveryResult:
    try:
        results = await s.lmtp.delivery.deliver(sender, [recipient], content)
        if len(results) != 1:  # one reply per recipient, or the client's count goes wrong
            raise RuntimeError(f"{len(results)} results for one recipient")
        return results[0]
    except Exception:
        log.exception("error: %s: delivery to %s failed", tid, escape_for_log(recipient))
        return DeliveryResult(recipient, "deferred", "4.3.0", "temporary failure")


def _result_reply(s: LmtpSession, tid: str, result: DeliveryResult) -> str:
    addr = printable(result.recipient)
    if result.outcome == "sent":
        return L.SAVED.format(addr=addr, id=tid)
    if result.dsn in QUOTA_DSNS:  # Dovecot's quota_full_tempfail decides, not the agent's setting
        return _quota_reply(s, addr)
    if result.outcome == "bounced":
        dsn = result.dsn if result.dsn.startswith("5.") else "5.0.0"
        code = "550" if dsn.startswith("5.1.") else "552" if dsn.startswith("5.2.") else "554"
    else:
        if result.dsn.startswith("4.3"):  # a lookup or server fault: Dovecot's fixed text
            return L.TEMPORARY_FAILURE.format(addr=addr)
        dsn = result.dsn if result.dsn.startswith("4.") else "4.0.0"
        code = "452" if dsn.startswith("4.2.") else "451"
    return L.DELIVERY_FAILED.format(code=code, dsn=dsn, addr=addr, text=printable(result.text))


def _log_result(tid: str, result: DeliveryResult, delay: float) -> None:
    """Postfix's delivery line; "bounced" here means refused to the LMTP client (5xx)."""
    log.info("%s: to=<%s>, relay=%s, delay=%s, dsn=%s, status=%s (%s)", tid, escape_for_log(result.recipient),
             result.relay, fmt_delay(delay), result.dsn, result.outcome, result.text)


def received_header(s: LmtpSession, tid: str, sender: str, recipients: list[str]) -> bytes:
    """``Received:`` as Dovecot's lmtp writes it (``for`` only with one recipient)."""
    ip = s.state.client_address
    protocol = "LMTPS" if s.tls_active else "LMTP"
    lines = [f"Received: from {printable(s.helo)}" + (f" ([{ip}])" if ip else ""),
             f"\tby {s.cfg.myhostname} with {protocol}", f"\tid {tid}", f"\t(envelope-from <{printable(sender)}>)"]
    date = email.utils.formatdate(s.svc.clock.time(), localtime=True)
    if len(recipients) == 1:
        lines.append(f"\tfor <{printable(recipients[0])}>; {date}")
    else:
        lines[-1] += f"; {date}"
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")


COMMANDS: dict[str, SmtpCommand] = {
    "LHLO": SmtpCommand(cmd_lhlo),
    "STARTTLS": SmtpCommand(cmd_starttls),
    "MAIL": SmtpCommand(cmd_lmtp_mail),
    "RCPT": SmtpCommand(cmd_lmtp_rcpt),
    "DATA": SmtpCommand(cmd_lmtp_data),
    "RSET": SmtpCommand(cmd_rset),
    "NOOP": SmtpCommand(cmd_noop),
    "VRFY": SmtpCommand(cmd_vrfy),
    "QUIT": SmtpCommand(cmd_quit),
}
