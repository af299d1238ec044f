"""The evaluation context of one ``Restrictions.check`` call, reply helpers and the Postfix-style
reject log line (shared by the engine, the built-ins and the SMTP session)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pymailsrv.log import escape_for_log
from pymailsrv.policy import replies
from pymailsrv.policy.address import Routed
from pymailsrv.policy.base import Decision, SmtpState, Stage

PERMIT = Decision("permit")
DUNNO = Decision("dunno")

STAGE_COMMAND: dict[str, str] = {
    "connect": "CONNECT", "helo": "HELO", "mail": "MAIL", "rcpt": "RCPT", "data": "DATA",
    "end_of_data": "END-OF-MESSAGE",
}


def refuse(code: int, dsn: str, text: str) -> Decision:
    """A reject (5xx) or defer (4xx) decision; the enhanced code follows the basic code's class."""
    return Decision("reject" if code >= 500 else "defer", code, replies.dsn_for(code, dsn), text)


def client_label(state: SmtpState) -> str:
    return f"{state.client_name or 'unknown'}[{state.client_address}]"


def stage_command(stage: str, state: SmtpState) -> str:
    if stage == "helo":
        return "EHLO" if state.protocol.upper().startswith("ESMTP") else "HELO"
    return STAGE_COMMAND.get(stage, stage.upper())


def format_log(event: str, stage: str, state: SmtpState, text: str) -> str:
    """``NOQUEUE: reject: RCPT from host[ip]: 554 5.7.1 <x>: Relay access denied; from=<s>
    to=<r> proto=ESMTP helo=<h>``, as Postfix's smtpd logs every refusal and action; the names
    the client supplied are escaped (pymailsrv.log.escape_for_log)."""
    line = (f"{state.queue_id or 'NOQUEUE'}: {event}: {stage_command(stage, state)} from "
            f"{client_label(state)}: {text};")
    if state.sender is not None:
        line += f" from=<{escape_for_log(state.sender)}>"
    if state.recipient:
        line += f" to=<{escape_for_log(state.recipient)}>"
    line += f" proto={state.protocol or 'SMTP'}"
    if state.helo_name:
        line += f" helo=<{escape_for_log(state.helo_name)}>"
    return line


def format_reject(stage: str, state: SmtpState, decision: Decision, *, event: str = "reject") -> str:
    """The log line of a refusal the session itself makes (size, limits) or the engine made."""
    return format_log(event, stage, state, decision.reply())


@dataclass(slots=True)
class Ctx:
    """Mutable state of one evaluation: which list runs (for the generic reply texts), the
    DEFER_IF_* actions seen so far, side effects, warn_if_reject and the nesting depth."""

    stage: Stage
    state: SmtpState
    reply_name: str = ""
    reply_class: str = ""
    effects: list[tuple[str, str]] = field(default_factory=list)
    warn_next: bool = False
    defer_if_permit: Decision | None = None
    defer_if_reject: Decision | None = None
    depth: int = 0
    # the restriction that refused, and the one that set defer_if_permit (the metrics' reason)
    decided_by: str = ""
    deferred_by: str = ""
    # route() + classify() results per address for this check (one Directory round trip each)
    resolved: dict[str, tuple[Routed, str]] = field(default_factory=dict)

    def rejected(self, code: int, dsn: str, text: str = replies.ACCESS_DENIED) -> Decision:
        """``<name>: Class rejected: text`` for the list being evaluated."""
        return refuse(code, dsn, replies.REJECTED.format(name=self.reply_name, klass=self.reply_class,
                                                          text=text))
