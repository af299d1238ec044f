"""The pipeline stages that write what Postfix's smtpd and cleanup write into a message (built on
smtp/cleanup.py), and the smtpd_pipeline that puts every built-in stage in its configured place."""

from __future__ import annotations

from collections.abc import Sequence

from pymailsrv.clock import Clock
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.milter.stage import milter_stage, require_milter_stage
from pymailsrv.pipeline.base import ACCEPT, BaseStage, Event, Session, Transaction, Verdict
from pymailsrv.pipeline.build import StageFactory, build_pipeline
from pymailsrv.pipeline.message import Message
from pymailsrv.pipeline.runner import Pipeline
from pymailsrv.pipeline.stages import ContentFilterStage, RestrictionStage
from pymailsrv.policy.base import LookupTable, Restrictions
from pymailsrv.smtp import cleanup
from pymailsrv.smtp import replies as R
from pymailsrv.smtp.context import SmtpConfig

cleanup_log = get_logger("cleanup")


class CleanupStage(BaseStage):
    """The ``Received:`` trace header (naming the queue id) with any access-map PREPEND headers
    under it, and ``Message-ID:``/``Date:`` for a submitted message that lacks them."""

    name = "cleanup"
    events: frozenset[Event] = frozenset({"message"})
    timeout = 0.0

    def __init__(self, config: SmtpConfig, clock: Clock) -> None:
        self.cfg = config
        self.clock = clock

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        cfg, state = self.cfg, session.state
        headers = msg.headers
        now = self.clock.time()
        if session.origin in ("submission", "smtps") or state.sasl_username:
            headers += cleanup.missing_headers(headers, cfg.myhostname, now)
        trace = cleanup.TraceInfo(
            helo=state.helo_name, client_name=state.client_name, client_address=state.client_address,
            myhostname=cfg.myhostname, mail_name=cfg.mail_name,
            protocol=cleanup.with_protocol(session.extended, session.tls_active, bool(state.sasl_username),
                                           txn.smtputf8),
            tls_version=session.tls_version if cfg.tls_received_header else "",
            tls_cipher=session.tls_cipher, tls_bits=session.tls_bits,
            sasl_username=state.sasl_username if cfg.sasl_authenticated_header else "",
            recipient=txn.recipients[0].address if len(txn.recipients) == 1 else "",
            timestamp=now, queue_id=txn.queue_id)
        top = [cleanup.received_header(trace)]
        top += [p.encode("utf-8", "surrogateescape") + b"\r\n" for p in txn.prepend]
        headers[:0] = top
        return ACCEPT


class HeaderChecksStage(BaseStage):
    """header_checks (Postfix header_checks(5)) on each header field; mail the content filter
    re-injects was checked before."""

    name = "header_checks"
    timeout = 0.0  # the tables bound their own lookups

    def __init__(self, tables: Sequence[LookupTable]) -> None:
        self.tables = tuple(tables)
        self.events = frozenset({"message"}) if self.tables else frozenset()

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        if session.origin == "reinject":
            return ACCEPT
        state = session.state
        result = await cleanup.header_checks(msg.headers, self.tables)
        for action, header, text in result.events:
            cleanup_log.info("NOQUEUE: %s: header %s from %s[%s]; from=<%s> proto=%s helo=<%s>%s",
                             "warning" if action == "warn" else action, header.replace("\n", " ")[:200],
                             state.client_name, state.client_address, escape_for_log(txn.sender),
                             state.protocol, escape_for_log(state.helo_name), f": {text}" if text else "")
        if result.reject:
            text = R.CONTENT_REJECTED.format(text=result.reject or R.CONTENT_REJECTED_DEFAULT)
            return Verdict("reject", text, logged=True)
        msg.headers[:] = result.headers
        txn.hold |= result.hold
        txn.discard |= result.discard
        txn.filter = result.filter or txn.filter
        txn.redirect = result.redirect or txn.redirect
        return ACCEPT


def smtpd_pipeline(settings: Settings, config: SmtpConfig, restrictions: Restrictions,
                   header_checks: Sequence[LookupTable], clock: Clock) -> Pipeline:
    """smtpd_pipeline: the stages of every message received over SMTP."""
    builtins: dict[str, StageFactory] = {
        "restrictions": lambda: RestrictionStage(restrictions),
        "header_checks": lambda: HeaderChecksStage(header_checks),
        "cleanup": lambda: CleanupStage(config, clock),
        "milters": lambda: milter_stage(settings, "smtpd_milters"),
        "content_filter": lambda: ContentFilterStage(settings.get_str("content_filter")),
    }
    pipeline = build_pipeline("smtpd_pipeline", settings, builtins)
    require_milter_stage(pipeline, settings, "smtpd_pipeline", "smtpd_milters")
    if not any(slot.stage.name == "restrictions" for slot in pipeline.slots):
        # like Postfix's refusal to start without a relay guard: never an open relay by mistake
        raise ConfigError("smtpd_pipeline: the restrictions stage is required (relay control)")
    return pipeline
