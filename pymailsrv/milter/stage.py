"""The ``milters`` pipeline stage: every milter of smtpd_milters (or non_smtpd_milters) at every
SMTP event, in order, as Postfix's smtpd and cleanup drive them (MILTER_README).

Implementation notes
- One connection per milter per SMTP session, opened at connect and closed (SMFIC_QUIT) at the
  end of the session; mail the server generates gets a whole conversation at its ``message``.
- Milters run one after the other; at the end of the message each one gets the header and body
  as the milters before it left them, and its modifications are applied before the next one runs.
- A milter that fails (cannot be reached, times out, breaks the protocol) is logged once and then
  answers with its default action (milter_default_action) for the rest of the session, as
  Postfix's milter8 does; the stage bounds its own waits, so it runs without the runner's limit.
- SMFIR_ACCEPT at connect or HELO ends the milter's part in the session, later on in the
  message; SMFIR_DISCARD, SMFIR_REJECT and SMFIR_TEMPFAIL end the message's part too.
- Re-injected mail (from a content filter) is not filtered again (Postfix's no_milters).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pymailsrv.config.parser import split_list
from pymailsrv.config.settings import Settings, parse_time
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.milter import macros as M
from pymailsrv.milter import protocol as P
from pymailsrv.milter.client import MilterConnection, MilterFailure, MilterSpec, Reply, parse_socket
from pymailsrv.milter.protocol import Modification, ProtocolError
from pymailsrv.pipeline.base import ACCEPT, EVENTS, BaseStage, Event, Session, Transaction, Verdict, refusal
from pymailsrv.pipeline.build import parse_item
from pymailsrv.pipeline.message import Message
from pymailsrv.pipeline.runner import Pipeline
from pymailsrv.policy.context import format_log
from pymailsrv.policy.tables import open_table
from pymailsrv.types import LookupTable, Recipient

debug = logging.getLogger("pymailsrv.milter")

# Postfix milter8.c's replies: to SMFIR_REJECT / SMFIR_TEMPFAIL, and for a milter that failed
# (milter_default_action reject / tempfail)
REJECTED = "550 5.7.1 Command rejected"
TEMPFAILED = "451 4.7.1 Service unavailable - try again later"
DEFAULT_TEMPFAIL = TEMPFAILED
DEFAULT_REJECT = "550 5.5.0 Service unavailable"

_CHECK_STAGE = {"connect": "connect", "helo": "helo", "mail": "mail", "rcpt": "rcpt", "data": "data",
                "message": "end_of_data"}
_KIND_ACTION = {"add_header": P.F_ADDHDRS, "insert_header": P.F_ADDHDRS, "change_header": P.F_CHGHDRS,
                "replace_body": P.F_CHGBODY, "add_rcpt": P.F_ADDRCPT | P.F_ADDRCPT_PAR,
                "delete_rcpt": P.F_DELRCPT, "change_from": P.F_CHGFROM, "quarantine": P.F_QUARANTINE}
_BARE_LF = re.compile(r"\n(?![ \t])")


@dataclass(slots=True)
class _Milter:
    """One milter in one session."""

    spec: MilterSpec
    conn: MilterConnection | None = None
    failed: bool = False
    done: str = ""  # "session" after an accept at connect/HELO, "message" for this message
    in_message: bool = False  # MAIL was sent and the message not finished or aborted


class MilterStage(BaseStage):
    """The milters of one kind of mail, in order."""

    name = "milters"
    timeout = 0.0  # each wait has its milter_*_timeout

    def __init__(self, specs: Sequence[MilterSpec], macro_lists: Sequence[tuple[str, ...]], host: M.Host,
                 client_maps: Sequence[LookupTable] = (), base: MilterSpec | None = None) -> None:
        self.specs = tuple(specs)
        self.macro_lists = tuple(macro_lists)
        self.host = host
        self.client_maps = tuple(client_maps)  # smtpd_milter_maps
        self.base = base or MilterSpec("")  # the parameters' defaults, for milters a map names
        self.events: frozenset[Event] = frozenset(EVENTS) if self.specs or self.client_maps else frozenset()

    # --- the SMTP events ------------------------------------------------------------------------
    async def connect(self, session: Session) -> Verdict:
        if session.origin == "reinject":
            return ACCEPT
        specs = await self._client_specs(session) if self.client_maps and session.origin != "local" else None
        if specs is not None:
            session.stage_data[self.name] = [_Milter(spec) for spec in specs]
        milters = self._milters(session) or []
        for m in milters:
            try:
                m.conn = await MilterConnection.open(m.spec)
            except MilterFailure as exc:
                self._failed(m, session, exc)
        state = session.state
        family, port, address = _family(state.client_address, state.client_port)
        return await self._each(session, "connect", None, P.M_CONNECT, P.P_NOCONNECT, P.P_NR_CONN,
                                P.connect(state.client_name, family, port, address))

    async def helo(self, session: Session) -> Verdict:
        return await self._each(session, "helo", None, P.M_HELO, P.P_NOHELO, P.P_NR_HELO,
                                P.helo(session.state.helo_name))

    async def mail(self, session: Session, txn: Transaction) -> Verdict:
        for m in self._milters(session) or ():
            if m.done == "message":
                m.done = ""
            if m.in_message and m.conn is not None and not m.failed:
                # the last transaction ended where this stage did not see it (an earlier stage refused it)
                self._abort(m)
        return await self._each(session, "mail", txn, P.M_ENVFROM, P.P_NOMAIL, P.P_NR_MAIL,
                                P.mail(txn.sender, _mail_args(txn)))

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        return await self._each(session, "rcpt", txn, P.M_ENVRCPT, P.P_NORCPT, P.P_NR_RCPT,
                                P.rcpt(rcpt.address, _rcpt_args(rcpt)), rcpt.address)

    async def data(self, session: Session, txn: Transaction) -> Verdict:
        return await self._each(session, "data", txn, P.M_DATA, P.P_NODATA, P.P_NR_DATA, P.simple(P.DATA))

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        if session.origin == "reinject":
            return ACCEPT
        local = session.origin == "local"
        try:
            if local:  # generated mail: the whole conversation now
                verdict = await self._envelope(session, txn)
                if verdict.action != "accept":
                    return verdict
            return await self._content(session, txn, msg)
        finally:
            if local:
                await self.close(session)

    async def abort(self, session: Session, txn: Transaction) -> None:
        for m in self._milters(session) or ():
            if m.in_message and m.conn is not None and not m.failed:
                self._abort(m)
            if m.done == "message":
                m.done = ""

    async def close(self, session: Session) -> None:
        for m in session.stage_data.pop(self.name, ()):
            if m.conn is not None:
                await m.conn.close(quit=not m.failed)

    async def _client_specs(self, session: Session) -> list[MilterSpec] | None:
        """smtpd_milter_maps: the milters for this client (none for DISABLE), or None when no
        table has its address (then smtpd_milters)."""
        address = session.state.client_address
        for table in self.client_maps:
            value = await table.get(address)
            if value is None:
                continue
            if value.strip().upper() == "DISABLE":
                return []
            try:
                return [_with_options(replace(self.base, socket=sock), options, "smtpd_milter_maps")
                        for sock, options in (parse_item(item, "smtpd_milter_maps", MILTER_OPTIONS)
                                              for item in split_list(value))
                        if _checked_socket(sock)]
            except (ConfigError, ValueError) as exc:
                get_logger(_logger(session)).warning("smtpd_milter_maps: bad value for %s: %s; using smtpd_milters",
                                                     address, exc)
                return None
        return None

    # --- one event at every milter -------------------------------------------------------------
    def _milters(self, session: Session) -> list[_Milter] | None:
        if session.origin == "reinject":
            return None
        milters: list[_Milter] | None = session.stage_data.get(self.name)
        if milters is None:
            milters = session.stage_data[self.name] = [_Milter(spec) for spec in self.specs]
        return milters

    async def _each(self, session: Session, event: Event, txn: Transaction | None, macro_stage: int,
                    no_step: int, no_reply: int, packet: bytes, rcpt: str | None = None) -> Verdict:
        """Send one event to every milter in turn; the first refusal or discard decides."""
        for m in self._milters(session) or ():
            if m.failed:
                verdict = self._default_verdict(m, event)
            elif m.done or m.conn is None or not m.conn.wants(no_step):
                continue
            else:
                verdict = await self._send(m, session, event, txn, macro_stage, no_reply, packet, rcpt)
            if verdict.action != "accept":
                return verdict
        return ACCEPT

    async def _send(self, m: _Milter, session: Session, event: Event, txn: Transaction | None, macro_stage: int,
                    no_reply: int, packet: bytes, rcpt: str | None = None) -> Verdict:
        conn = m.conn
        assert conn is not None
        try:
            self._send_macros(conn, macro_stage, packet[4:5], session, txn, rcpt)
            reply = await conn.command(packet, no_reply=not conn.wants(no_reply))
        except MilterFailure as exc:
            return self._failed(m, session, exc, event)
        if event == "mail":
            m.in_message = True
        if reply is None:
            return ACCEPT
        return self._verdict(m, session, event, txn, reply)

    def _send_macros(self, conn: MilterConnection, macro_stage: int, command: bytes, session: Session,
                     txn: Transaction | None, rcpt: str | None = None) -> None:
        names = conn.negotiated.macros.get(macro_stage, self.macro_lists[macro_stage])
        if names:
            conn.send(P.macros(command, M.pick(M.values(self.host, session, txn, rcpt), names)))

    def _abort(self, m: _Milter) -> None:
        assert m.conn is not None
        try:
            m.conn.send(P.simple(P.ABORT))
            m.conn.flush()  # now: the milter may let go of the message
        except MilterFailure:
            m.failed = True
        m.in_message = False

    # --- the generated mail's envelope, the message content --------------------------------------
    async def _envelope(self, session: Session, txn: Transaction) -> Verdict:
        verdict = await self.connect(session)
        if verdict.action == "accept" and session.state.helo_name:
            verdict = await self.helo(session)
        if verdict.action == "accept":
            verdict = await self.mail(session, txn)
        for recipient in list(txn.recipients):
            if verdict.action != "accept":
                break
            verdict = await self.rcpt(session, txn, recipient)
        return verdict if verdict.action != "accept" else await self.data(session, txn)

    async def _content(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        held = ""
        for m in self._milters(session) or ():
            if m.failed:
                verdict = self._default_verdict(m, "message")
            elif m.done or m.conn is None:
                verdict = ACCEPT
            else:
                try:
                    verdict = await self._message(m, session, txn, msg)
                except MilterFailure as exc:
                    verdict = self._failed(m, session, exc, "message")
                m.in_message = False
            if m.done == "message":
                m.done = ""
            if verdict.action == "quarantine":
                held = held or verdict.reason
            elif verdict.action != "accept":
                return verdict
        return Verdict("quarantine", reason=held) if held else ACCEPT

    async def _message(self, m: _Milter, session: Session, txn: Transaction, msg: Message) -> Verdict:
        """Headers, end of headers, body and end of message to one milter; its modifications."""
        conn = m.conn
        assert conn is not None
        nr_header = not conn.wants(P.P_NR_HDR)
        if conn.wants(P.P_NOHDRS):
            leading_space = not conn.wants(P.P_HDR_LEADSPC)
            for raw in msg.headers:
                name, value = _header_for_milter(raw, leading_space)
                reply = await conn.command(P.header(name, value), content=True, no_reply=nr_header)
                if reply is not None and reply.code != P.R_CONTINUE:
                    return self._verdict(m, session, "message", txn, reply)
        if conn.wants(P.P_NOEOH):
            self._send_macros(conn, P.M_EOH, P.EOH, session, txn)
            reply = await conn.command(P.simple(P.EOH), content=True, no_reply=not conn.wants(P.P_NR_EOH))
            if reply is not None and reply.code != P.R_CONTINUE:
                return self._verdict(m, session, "message", txn, reply)
        if conn.wants(P.P_NOBODY):
            body = msg.body if msg.eol == P_CRLF else msg.body.replace(b"\n", b"\r\n")
            for chunk in P.body_chunks(body):
                reply = await conn.command(chunk, content=True, no_reply=not conn.wants(P.P_NR_BODY))
                if reply is not None and reply.code == P.R_SKIP:
                    break
                if reply is not None and reply.code != P.R_CONTINUE:
                    return self._verdict(m, session, "message", txn, reply)
        self._send_macros(conn, P.M_EOM, P.BODYEOB, session, txn)
        reply = await conn.command(P.simple(P.BODYEOB), content=True)
        assert reply is not None
        if reply.code in (P.R_CONTINUE, P.R_ACCEPT):
            return self._modify(m, session, txn, msg, reply.modifications)
        return self._verdict(m, session, "message", txn, reply)

    def _modify(self, m: _Milter, session: Session, txn: Transaction, msg: Message,
                mods: Sequence[Modification]) -> Verdict:
        assert m.conn is not None
        body: list[bytes] = []
        held = ""
        for mod in mods:
            if not m.conn.may(_KIND_ACTION[mod.kind]):
                get_logger(_logger(session)).warning("milter %s: %s was not negotiated; ignored", m.spec.socket,
                                                     mod.kind)
                continue
            try:
                if mod.kind == "replace_body":
                    body.append(mod.data)
                elif mod.kind == "quarantine":
                    held = mod.value or "milter triggers HOLD action"
                else:
                    _apply(mod, txn, msg, leading_space=not m.conn.wants(P.P_HDR_LEADSPC))
            except ValueError as exc:
                get_logger(_logger(session)).warning("milter %s: bad %s: %s; ignored", m.spec.socket, mod.kind, exc)
        if body:
            new = b"".join(body)
            msg.replace_body(new if msg.eol == P_CRLF else new.replace(b"\r\n", b"\n"))
        return Verdict("quarantine", reason=held) if held else ACCEPT

    # --- replies and failures ----------------------------------------------------------------------
    def _verdict(self, m: _Milter, session: Session, event: Event, txn: Transaction | None, reply: Reply) -> Verdict:
        code = reply.code
        if code in (P.R_CONTINUE, P.R_SKIP):
            return ACCEPT
        if code == P.R_ACCEPT:
            m.done = "session" if event in ("connect", "helo") else "message"
            m.in_message = False
            return ACCEPT
        if code == P.R_DISCARD:
            if event in ("connect", "helo"):
                m.done = "session"
                return ACCEPT
            m.done, m.in_message = "message", False
            self._log(session, event, txn, "milter-discard", "milter triggers DISCARD action")
            return Verdict("discard", reason="milter triggers DISCARD action")
        if code == P.R_REPLYCODE:
            text = P.reply_text(reply.data)
            if text[:1] not in ("4", "5") or not text[:3].isdigit():
                return self._failed(m, session, MilterFailure(f"milter {m.spec.socket}: bad reply code {text!r}"),
                                    event)
            verdict = refusal(text)
        elif code == P.R_REJECT:
            verdict = Verdict("reject", REJECTED)
        else:  # SMFIR_TEMPFAIL, and SMFIR_CONN_FAIL/SHUTDOWN that end the milter's work
            verdict = Verdict("defer", TEMPFAILED)
        if event not in ("rcpt",):
            m.in_message = False
        return verdict

    def _failed(self, m: _Milter, session: Session, exc: Exception, event: Event | None = None) -> Verdict:
        """Log the failure once; from now on the milter answers with its default action."""
        m.failed = True
        m.in_message = False
        state = session.state
        get_logger(_logger(session)).warning("%s; from %s[%s]; default action %s", exc, state.client_name,
                                             state.client_address, m.spec.default_action)
        return self._default_verdict(m, event) if event is not None else ACCEPT

    @staticmethod
    def _default_verdict(m: _Milter, event: Event | None) -> Verdict:
        action = m.spec.default_action
        if action == "tempfail":
            return Verdict("defer", DEFAULT_TEMPFAIL)
        if action == "reject":
            return Verdict("reject", DEFAULT_REJECT)
        if action == "quarantine" and event == "message":
            return Verdict("quarantine", reason=f"milter {m.spec.socket} is unavailable")
        return ACCEPT

    @staticmethod
    def _log(session: Session, event: Event, txn: Transaction | None, what: str, text: str) -> None:
        state = session.state
        if txn is not None and txn.queue_id and txn.queue_id != state.queue_id:
            state = replace(state, queue_id=txn.queue_id)
        get_logger(_logger(session)).info("%s", format_log(what, _CHECK_STAGE[event], state, text))


P_CRLF = b"\r\n"


def _logger(session: Session) -> str:
    return "cleanup" if session.origin == "local" else "smtpd"


def _family(address: str, port: int) -> tuple[str, int, str]:
    if not address:
        return "U", 0, ""
    if address.startswith("/"):
        return "L", 0, address
    return ("6" if ":" in address else "4"), port, address


def _mail_args(txn: Transaction) -> list[str]:
    args = []
    if txn.body_type:
        args.append(f"BODY={txn.body_type}")
    if txn.smtputf8:
        args.append("SMTPUTF8")
    if txn.ret:
        args.append(f"RET={txn.ret}")
    if txn.envid:
        args.append(f"ENVID={txn.envid}")
    return args


def _rcpt_args(rcpt: Recipient) -> list[str]:
    args = []
    if rcpt.notify:
        args.append("NOTIFY=" + ",".join(rcpt.notify))
    if rcpt.orcpt:
        args.append(f"ORCPT={rcpt.orcpt}")
    return args


def _header_for_milter(raw: bytes, leading_space: bool) -> tuple[str, str]:
    """A header field as SMFIC_HEADER carries it: the name, and the value with folding as LF,
    without the line end and, unless the milter asked for it (SMFIP_HDR_LEADSPC), without the
    blank after the colon (Postfix milter8.c)."""
    name, _, value = raw.partition(b":")
    text = value.decode("utf-8", "surrogateescape").rstrip("\r\n").replace("\r\n", "\n")
    if not leading_space:
        text = text.lstrip(" \t")
    return name.decode("utf-8", "surrogateescape").strip(), text


def _header_value(value: str, leading_space: bool) -> str:
    """A value from the milter as Message wants it: folding as "\\n" + blank (a bare line break
    gets a tab, as Postfix repairs it), no trailing line end, no leading blank."""
    value = value.replace("\r\n", "\n").replace("\r", "").rstrip("\n")
    if leading_space:
        value = value.removeprefix(" ")
    return _BARE_LF.sub("\n\t", value)


def _apply(mod: Modification, txn: Transaction, msg: Message, *, leading_space: bool) -> None:
    """One modification (not a body or quarantine) in place; ValueError for a bad header."""
    kind = mod.kind
    if kind == "add_header":
        msg.add_header(mod.name, _header_value(mod.value, leading_space))
    elif kind == "insert_header":
        msg.insert_header(min(mod.index, len(msg.headers)), mod.name, _header_value(mod.value, leading_space))
    elif kind == "change_header":
        occurrence = max(mod.index, 1)  # libmilter: an index of 0 means the first
        if mod.value.strip():
            msg.change_header(mod.name, _header_value(mod.value, leading_space), occurrence)
        else:
            msg.delete_header(mod.name, occurrence)
    elif kind == "add_rcpt":
        address = P.strip_brackets(mod.value)
        if address and not any(r.address.lower() == address.lower() for r in txn.recipients):
            txn.add_recipient(address)
    elif kind == "delete_rcpt":
        txn.remove_recipient(P.strip_brackets(mod.value))
    elif kind == "change_from":
        txn.sender = P.strip_brackets(mod.value)


# --- configuration --------------------------------------------------------------------------------
MILTER_OPTIONS = ("default_action", "connect_timeout", "command_timeout", "content_timeout", "protocol")


def _base_spec(settings: Settings) -> MilterSpec:
    return MilterSpec("", settings.get_str("milter_default_action"), settings.get_seconds("milter_connect_timeout"),
                      settings.get_seconds("milter_command_timeout"), settings.get_seconds("milter_content_timeout"),
                      settings.get_int("milter_protocol"))


def _checked_socket(socket: str) -> bool:
    parse_socket(socket)  # ValueError for a bad one
    return True


def milter_specs(settings: Settings, param: str) -> list[MilterSpec]:
    """The milters ``param`` names, with Postfix 3's per-milter options ``{ inet:host:port,
    default_action = accept, command_timeout = 10s, … }``; ConfigError for a bad item."""
    base = _base_spec(settings)
    specs = []
    for item in settings.get_list(param):
        socket, options = parse_item(item, param, MILTER_OPTIONS)
        try:
            parse_socket(socket)
        except ValueError as exc:
            raise ConfigError(f"{param}: {exc}") from None
        specs.append(_with_options(replace(base, socket=socket), options, param))
    return specs


def _with_options(spec: MilterSpec, options: dict[str, str], param: str) -> MilterSpec:
    try:
        for key, value in options.items():
            if key == "default_action":
                if value not in ("accept", "tempfail", "reject", "quarantine"):
                    raise ValueError(f"bad default_action {value!r}")
                spec = replace(spec, default_action=value)
            elif key == "protocol":
                if not value.isdigit() or not 2 <= int(value) <= 6:
                    raise ValueError(f"bad protocol {value!r} (2 to 6)")
                spec = replace(spec, protocol=int(value))
            elif key == "connect_timeout":
                spec = replace(spec, connect_timeout=parse_time(value))
            elif key == "command_timeout":
                spec = replace(spec, command_timeout=parse_time(value))
            else:
                spec = replace(spec, content_timeout=parse_time(value))
    except ValueError as exc:
        raise ConfigError(f"{param}: {spec.socket}: {exc}") from None
    return spec


def milter_stage(settings: Settings, param: str) -> MilterStage:
    """The stage of the milters ``param`` (smtpd_milters, non_smtpd_milters) names."""
    host = M.Host(settings.expanded("myhostname"), settings.get_str("milter_macro_daemon_name"),
                  settings.get_str("milter_macro_v"))
    lists = [tuple(settings.get_list(p)) for p in M.STAGE_PARAMS]
    maps = [open_table(spec, settings) for spec in settings.get_list("smtpd_milter_maps")] \
        if param == "smtpd_milters" else []
    return MilterStage(milter_specs(settings, param), lists, host, maps, _base_spec(settings))


def require_milter_stage(pipeline: Pipeline, settings: Settings, pipeline_param: str, milters_param: str) -> None:
    """Milters configured for a pipeline without the milters stage would be ignored without a
    word: refuse that at start-up, naming both parameters."""
    names = [milters_param, "smtpd_milter_maps"] if milters_param == "smtpd_milters" else [milters_param]
    for name in names:
        if settings.get_list(name) and not any(slot.stage.name == MilterStage.name for slot in pipeline.slots):
            raise ConfigError(f"{name} is set, but {pipeline_param} does not name the milters stage")


__all__ = ["MilterStage", "ProtocolError", "milter_specs", "milter_stage", "require_milter_stage"]
