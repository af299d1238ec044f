"""DATA (RFC 5321 §4.1.1.4): read the content in large chunks, run the end-of-data checks and
cleanup, hand the message to the queue, answer 250 only once the queue has it."""

from __future__ import annotations

import logging
import secrets

from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.queue.base import Envelope, Recipient
from pymailsrv.smtp import cleanup
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.session import SmtpSession, Transaction, apply_effect, log
from pymailsrv.smtp.wire import DataReader

cleanup_log = get_logger("cleanup")
debug = logging.getLogger("pymailsrv.smtp")


async def cmd_data(s: SmtpSession, arg: str) -> None:
    txn = s.txn
    if txn is None or not txn.recipients:
        s.reply(R.NO_VALID_RCPT if txn is not None else R.NEED_RCPT)
        return
    if arg:
        s.reply(R.DATA_SYNTAX)
        return
    if s.lines.pending:  # RFC 2920 §3.1: DATA must end a pipelined group
        s.state.pipelining_violation = True
    decision = await s.check("data")
    if decision.refused:
        s.reply(decision.reply())
        return
    s.apply_effects(decision)
    s.reply(R.DATA_GO)
    content = await _receive(s)
    s.reset_transaction()
    if content is not None:
        await _finish_message(s, txn, content)


async def _receive(s: SmtpSession) -> bytes | None:
    """The unstuffed content, or None after replying (size, bare LF) or losing the client."""
    limit = s.cfg.message_size_limit or (1 << 62)
    reader = DataReader(limit, s.cfg.forbid_bare_newline)
    rest = reader.feed(s.lines.take())
    while rest is None:
        chunk = await s.read_chunk()
        if not chunk:
            s.lost = True
            s.closing = True
            s.last_command = f"DATA ({reader.size} bytes)"  # as Postfix logs it
            return None
        rest = reader.feed(chunk)
    if rest:
        s.lines.feed(rest)
    if reader.too_big:
        s.noqueue_reject("END-OF-MESSAGE", R.SIZE_EXCEEDED)
        s.reply(R.SIZE_EXCEEDED)
        return None
    content = reader.content()
    if reader.bare_lf and s.cfg.forbid_bare_newline == "yes":
        log.info("warning: disconnecting %s for sending bare <LF> in DATA", s.client)
        s.reply(R.BARE_LF.format(host=s.cfg.myhostname))
        s.closing = True
        return None
    return content


async def _finish_message(s: SmtpSession, txn: Transaction, content: bytes) -> None:
    s.state.size = len(content)
    s.state.sender = txn.sender
    s.state.recipient_count = len(txn.recipients)
    decision = await s.check("end_of_data")
    if decision.refused:
        s.reply(decision.reply())
        return
    for kind, value in decision.effects:
        apply_effect(txn, kind, value)
    # the id first, as Postfix has it: in Received: and in the client= line before the queue's
    reserve = getattr(s.svc.queue, "new_queue_id", None)
    queue_id = reserve() if reserve is not None else ""
    cleaned = await _cleanup(s, txn, content, queue_id)
    if cleaned is None:
        return
    message, message_id = cleaned
    envelope = _envelope(s, txn)
    if txn.discard:
        queue_id = queue_id or secrets.token_hex(5).upper()
        log.info("%s: discard: END-OF-MESSAGE from %s; from=<%s> proto=%s helo=<%s>", queue_id,
                 s.client, escape_for_log(txn.sender), s.state.protocol, escape_for_log(s.helo))
        s.reply(R.QUEUED.format(queue_id=queue_id))
        return
    if queue_id:
        _log_queued(s, queue_id, message_id)
    try:
        if queue_id:
            await s.svc.queue.submit(envelope, message, queue_id=queue_id)  # type: ignore[call-arg]
        else:
            queue_id = await s.svc.queue.submit(envelope, message)
            _log_queued(s, queue_id, message_id)
    except TemporaryFailure:
        log.warning("%s: queue file write error", s.client, exc_info=True)
        s.reply(R.QUEUE_WRITE_ERROR)
        return
    except Exception:
        log.exception("error: %s: queue submission failed", s.client)
        s.reply(R.QUEUE_WRITE_ERROR)
        return
    s.errors = 0  # the error limits count errors "without delivering mail" (Postfix)
    s.reply(R.QUEUED.format(queue_id=queue_id))


def _envelope(s: SmtpSession, txn: Transaction) -> Envelope:
    recipients = txn.recipients
    if txn.redirect:  # Postfix REDIRECT: every recipient is replaced, the original kept
        recipients = [Recipient(address=txn.redirect, original=r.address, notify=r.notify,
                                orcpt=r.orcpt) for r in recipients[:1]]
    if txn.bcc:
        recipients = recipients + [Recipient(address=a, notify=("NEVER",)) for a in txn.bcc]
    return Envelope(
        sender=txn.sender, recipients=recipients, client_name=s.state.client_name,
        client_address=s.state.client_address, helo=s.helo, protocol=_protocol(s, txn),
        sasl_method=s.sasl_method, sasl_username=s.sasl_username, arrival=s.svc.clock.time(),
        dsn_ret=txn.ret, dsn_envid=txn.envid, hold=txn.hold, filter=txn.filter,
        skip_filter=s.listener.kind == "reinject", smtputf8=txn.smtputf8, body_type=txn.body_type)


def _protocol(s: SmtpSession, txn: Transaction) -> str:
    return cleanup.with_protocol(s.extended, s.tls_active, bool(s.sasl_username), txn.smtputf8)


async def _cleanup(s: SmtpSession, txn: Transaction, content: bytes,
                   queue_id: str = "") -> tuple[bytes, str] | None:
    """Received:, submission headers, header_checks, PREPEND; None after a content reject."""
    cfg = s.cfg
    headers, body_at = cleanup.header_block(content)
    if s.svc.header_checks and s.listener.kind != "reinject":
        result = await cleanup.header_checks(headers, s.svc.header_checks)
        for action, header, text in result.events:
            cleanup_log.info("NOQUEUE: %s: header %s from %s; from=<%s> proto=%s helo=<%s>%s",
                             "warning" if action == "warn" else action,
                             header.replace("\n", " ")[:200], s.client, escape_for_log(txn.sender),
                             s.state.protocol, escape_for_log(s.helo), f": {text}" if text else "")
        if result.reject:
            s.reply(R.CONTENT_REJECTED.format(text=result.reject or R.CONTENT_REJECTED_DEFAULT))
            return None
        headers = result.headers
        txn.hold |= result.hold
        txn.discard |= result.discard
        txn.filter = result.filter or txn.filter
        txn.redirect = result.redirect or txn.redirect
    if s.listener.is_submission or s.sasl_username:
        headers += cleanup.missing_headers(headers, cfg.myhostname, s.svc.clock.time())
    trace = cleanup.TraceInfo(
        helo=s.helo, client_name=s.state.client_name, client_address=s.state.client_address,
        myhostname=cfg.myhostname, mail_name=cfg.mail_name, protocol=_protocol(s, txn),
        tls_version=s.tls_version if cfg.tls_received_header else "",
        tls_cipher=s.tls_cipher, tls_bits=s.tls_bits,
        sasl_username=s.sasl_username if cfg.sasl_authenticated_header else "",
        recipient=txn.recipients[0].address if len(txn.recipients) == 1 else "",
        timestamp=s.svc.clock.time(), queue_id=queue_id)
    parts = [cleanup.received_header(trace)]
    parts += [p.encode("utf-8", "surrogateescape") + b"\r\n" for p in txn.prepend]
    parts += headers
    message = b"".join([*parts, memoryview(content)[body_at:]])  # the body is copied once, here
    return message, cleanup.find_message_id(headers)


def _log_queued(s: SmtpSession, queue_id: str, mid: str) -> None:
    sasl = ""
    if s.sasl_username:
        sasl = f", sasl_method={s.sasl_method}, sasl_username={s.sasl_username}"
    log.info("%s: client=%s%s", queue_id, s.client, sasl)
    if mid:
        cleanup_log.info("%s: message-id=%s", queue_id, mid)
