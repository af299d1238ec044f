"""DATA (RFC 5321 §4.1.1.4): read the content in large chunks, run the pipeline's message stages
(end-of-data restrictions, header_checks, cleanup …), hand the message to the queue, answer 250
only once the queue has it."""

from __future__ import annotations

import logging

from pymailsrv import meter
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.pipeline.base import Transaction
from pymailsrv.pipeline.message import Message
from pymailsrv.queue.base import Envelope
from pymailsrv.smtp import cleanup
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.session import SmtpSession, log
from pymailsrv.smtp.wire import DataReader

cleanup_log = get_logger("cleanup")
debug = logging.getLogger("pymailsrv.smtp")


async def cmd_data(s: SmtpSession, arg: str) -> None:
    txn = data_transaction(s, arg)
    if txn is None:
        return
    if s.lines.pending:  # RFC 2920 §3.1: DATA must end a pipelined group
        s.state.pipelining_violation = True
    decision = await s.check("data", txn)
    if decision.refused:
        s.reply(decision.reply())
        return
    s.reply(R.DATA_GO)
    content = await receive_content(s)
    s.reset_transaction(aborted=content is None)
    if content is not None:
        await _finish_message(s, txn, content)


def data_transaction(s: SmtpSession, arg: str) -> Transaction | None:
    """The transaction DATA may start (SMTP's and LMTP's), or None after the reply (no valid
    recipient yet, an argument)."""
    txn = s.txn
    if txn is None or not txn.recipients:
        s.reply(R.NO_VALID_RCPT if txn is not None else R.NEED_RCPT)
        return None
    if arg:
        s.reply(R.DATA_SYNTAX)
        return None
    return txn


async def receive_content(s: SmtpSession, replies: int = 1) -> bytes | None:
    """The unstuffed content, or None after replying (size, bare LF) or losing the client.
    ``replies``: how many times a refusal is said (LMTP answers once per recipient, RFC 2033 §4.2)."""
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
        for _ in range(replies):
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
    # the id first, as Postfix has it: in Received: and in the client= line before the queue's
    queue_id = txn.queue_id = s.svc.queue.new_queue_id()
    msg = Message(content)
    decision = await s.check("message", txn, msg=msg)
    if decision.refused:
        s.reply(decision.reply())
        return
    message = msg.as_bytes()  # the body is copied once, here, if a stage changed the message
    envelope = _envelope(s, txn)
    if txn.discard or not envelope.recipients:
        log.info("%s: discard: END-OF-MESSAGE from %s; from=<%s> proto=%s helo=<%s>", queue_id,
                 s.client, escape_for_log(txn.sender), s.state.protocol, escape_for_log(s.helo))
        s.reply(R.QUEUED.format(queue_id=queue_id))
        return
    _log_queued(s, queue_id, cleanup.find_message_id(msg.headers))
    try:
        await s.svc.queue.submit(envelope, message, queue_id=queue_id)
    except TemporaryFailure:
        log.warning("%s: queue file write error", s.client, exc_info=True)
        s.reply(R.QUEUE_WRITE_ERROR)
        return
    except Exception:
        log.exception("error: %s: queue submission failed", s.client)
        s.reply(R.QUEUE_WRITE_ERROR)
        return
    s.errors = 0  # the error limits count errors "without delivering mail" (Postfix)
    meter.count("pymailsrv_messages_received_total", s.listener.kind)
    s.reply(R.QUEUED.format(queue_id=queue_id))


def _envelope(s: SmtpSession, txn: Transaction) -> Envelope:
    return Envelope(
        sender=txn.sender, recipients=txn.final_recipients(), client_name=s.state.client_name,
        client_address=s.state.client_address, helo=s.helo, protocol=_protocol(s, txn),
        sasl_method=s.sasl_method, sasl_username=s.sasl_username, arrival=s.svc.clock.time(),
        dsn_ret=txn.ret, dsn_envid=txn.envid, hold=txn.hold, filter=txn.filter,
        skip_filter=s.listener.kind == "reinject", smtputf8=txn.smtputf8, body_type=txn.body_type)


def _protocol(s: SmtpSession, txn: Transaction) -> str:
    return cleanup.with_protocol(s.extended, s.tls_active, bool(s.sasl_username), txn.smtputf8)


def _log_queued(s: SmtpSession, queue_id: str, mid: str) -> None:
    sasl = ""
    if s.sasl_username:
        sasl = f", sasl_method={s.sasl_method}, sasl_username={s.sasl_username}"
    log.info("%s: client=%s%s", queue_id, s.client, sasl)
    if mid:
        cleanup_log.info("%s: message-id=%s", queue_id, mid)
