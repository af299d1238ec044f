"""Access maps (check_*_access), check_policy_service, check_greylist and the access-map
actions (POSTFIX-SEMANTICS §4; Postfix's check_table_result())."""

from __future__ import annotations

import email.utils
from typing import TYPE_CHECKING, cast

from pymailsrv.config.settings import parse_time
from pymailsrv.errors import ConfigError
from pymailsrv.policy import replies
from pymailsrv.policy.access import Action, address_keys, client_keys, domain_keys, ip_keys, split_dsn
from pymailsrv.policy.address import is_ip, is_ip_literal, split_address, strip_brackets
from pymailsrv.policy.base import Decision, LookupTable
from pymailsrv.policy.context import DUNNO, PERMIT, Ctx, client_label, format_log, refuse
from pymailsrv.policy.delegation import PolicyClient, PolicyError, parse_target
from pymailsrv.policy.dns import Status
from pymailsrv.policy.registry import CheckArg, code, log, simple, with_arg
from pymailsrv.policy.tables import is_table_spec

if TYPE_CHECKING:
    from pymailsrv.policy.restrictions import RestrictionEngine


# --- access maps ----------------------------------------------------------------------------------

def _open(engine: RestrictionEngine, arg: str) -> object:
    if not is_table_spec(arg):
        raise ConfigError(f'"{arg}" is not a lookup table (type:name)')
    return engine.table(arg)


def _pattern(table: object) -> bool:
    return type(table).__name__ in ("RegexpTable", "CidrTable")


@with_arg(_open, "check_client_access")
async def check_client_access(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
    state = ctx.state
    keys = client_keys(state.client_name, state.client_address, parent_style=engine.parent_style)
    if _pattern(table):
        keys = [k for k in (state.client_name if state.client_name != "unknown" else "",
                            ip_keys(state.client_address)[0] if state.client_address else "") if k]
    return await engine.access(ctx, table, keys, client_label(state), replies.CLIENT,  # type: ignore[arg-type]
                               "check_client_access")


@with_arg(_open, "check_reverse_client_access")
async def check_reverse_client_access(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
    state = ctx.state
    name = state.reverse_client_name
    keys = client_keys(name, state.client_address, parent_style=engine.parent_style)
    if _pattern(table):
        keys = [k for k in (name if name != "unknown" else "", state.client_address) if k]
    label = f"{name or 'unknown'}[{state.client_address}]"
    return await engine.access(ctx, table, keys, label, replies.CLIENT,  # type: ignore[arg-type]
                               "check_reverse_client_access")


@with_arg(_open, "check_helo_access")
async def check_helo_access(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
    helo = ctx.state.helo_name
    if not helo:
        return DUNNO
    keys = [helo] if _pattern(table) else domain_keys(helo, parent_style=engine.parent_style)
    return await engine.access(ctx, table, keys, helo, replies.HELO,  # type: ignore[arg-type]
                               "check_helo_access")


@with_arg(_open, "check_sasl_access")
async def check_sasl_access(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
    login = ctx.state.sasl_username
    if not login:
        return DUNNO
    return await engine.access(ctx, table, [login], login, replies.CLIENT,  # type: ignore[arg-type]
                               "check_sasl_access")


def _mail_keys(engine: RestrictionEngine, table: object, address: str) -> list[str]:
    if _pattern(table):
        return [address or engine.null_key]
    return address_keys(address, delimiter=engine.delimiter, null_key=engine.null_key,
                        parent_style=engine.parent_style)


@with_arg(_open, "check_sender_access")
async def check_sender_access(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
    if ctx.state.sender is None:
        return DUNNO
    sender = strip_brackets(ctx.state.sender)
    return await engine.access(ctx, table, _mail_keys(engine, table, sender),  # type: ignore[arg-type]
                               sender, replies.SENDER, "check_sender_access")


@with_arg(_open, "check_recipient_access")
async def check_recipient_access(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
    recipient = strip_brackets(ctx.state.recipient)
    if not recipient:
        return DUNNO
    return await engine.access(ctx, table, _mail_keys(engine, table, recipient),  # type: ignore[arg-type]
                               recipient, replies.RECIPIENT, "check_recipient_access")


# --- policy delegation ------------------------------------------------------------------------------

def _policy_target(engine: RestrictionEngine, arg: str) -> object:
    target, options = parse_target(arg)
    timeout = engine.settings.get_seconds("smtpd_policy_service_timeout")
    if "timeout" in options:
        try:
            timeout = parse_time(options["timeout"])
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    default = options.get("default_action", "451 4.3.5 Server configuration problem")
    return engine.policy_client(target, timeout), default


def policy_attributes(ctx: Ctx) -> dict[str, str]:
    """The request attributes, in Postfix 3.7's order (golden/postfix_policy_attributes.txt)."""
    s = ctx.state
    state_name = {"connect": "CONNECT", "helo": "HELO" if s.protocol == "SMTP" else "EHLO", "mail": "MAIL",
                  "rcpt": "RCPT", "data": "DATA", "end_of_data": "END-OF-MESSAGE"}[ctx.stage]
    return {
        "request": "smtpd_access_policy", "protocol_state": state_name,
        "protocol_name": s.protocol or "SMTP", "client_address": s.client_address,
        "client_name": s.client_name, "client_port": str(s.client_port),
        "reverse_client_name": s.reverse_client_name, "server_address": s.server_address,
        "server_port": str(s.server_port), "helo_name": s.helo_name, "sender": s.sender or "",
        "recipient": s.recipient, "recipient_count": str(s.recipient_count), "queue_id": s.queue_id,
        "instance": s.instance, "size": str(s.size), "etrn_domain": "", "stress": "",
        "sasl_method": s.sasl_method, "sasl_username": s.sasl_username, "sasl_sender": "",
        "ccert_subject": "", "ccert_issuer": "", "ccert_fingerprint": "", "ccert_pubkey_fingerprint": "",
        "encryption_protocol": s.encryption_protocol, "encryption_cipher": s.encryption_cipher,
        "encryption_keysize": str(s.encryption_keysize), "policy_context": "",
    }


@with_arg(_policy_target, "check_policy_service")
async def check_policy_service(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
    client, default = cast(tuple[PolicyClient, str], arg)
    try:
        action = await client.query(policy_attributes(ctx))
    except PolicyError:
        action = default
    return await engine.action(ctx, action, ctx.reply_name, ctx.reply_class, "policy query")


# --- greylisting (pymailsrv extension) ---------------------------------------------------------------

@simple("check_greylist")
async def check_greylist(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    """postgrey's answers without postgrey: DEFER_IF_PERMIT 4.2.0 on a new triplet, PREPEND
    X-Greylist when a retry passes (policy/greylist.py)."""
    state = ctx.state
    if ctx.stage != "rcpt" or not state.recipient or state.sender is None:
        return DUNNO
    verdict = await engine.greylist().verdict(state.client_address, state.sender, state.recipient)
    if verdict.greylisted:
        text = engine.settings.get_str("greylist_text")
        return await engine.action(ctx, f"DEFER_IF_PERMIT 4.2.0 {text}", ctx.reply_name, ctx.reply_class,
                                   "check_greylist")
    if verdict.delayed:
        stamp = email.utils.formatdate(engine.clock.time(), localtime=False, usegmt=True)
        host = engine.settings.get_str("myhostname")
        ctx.effects.append(("prepend", f"X-Greylist: delayed {int(verdict.delayed)} seconds by pymailsrv at "
                                       f"{host}; {stamp}"))
    return DUNNO


# --- actions ------------------------------------------------------------------------------------

def _log_action(ctx: Ctx, event: str, text: str) -> None:
    log.info("%s", format_log(event, ctx.stage, ctx.state, text))


async def apply_action(engine: RestrictionEngine, ctx: Ctx, action: Action, name: str, klass: str,
                       label: str) -> Decision:
    """check_table_result(): what an access-map (or policy server) result does."""
    verb, text = action.verb, action.text
    dsn = action.dsn
    if verb in ("REJECT", "DEFER", "DEFER_IF_REJECT", "DEFER_IF_PERMIT"):
        dsn, text = split_dsn(text)  # "REJECT 5.7.0 text": the text may open with an enhanced code
    rejected = replies.REJECTED.format(name=name, klass=klass, text=text or replies.ACCESS_DENIED)
    triggers = f"<{name}>: {klass} {text or f'triggers {verb} action'}"
    if verb == "OK":
        return PERMIT
    if verb == "DUNNO":
        return DUNNO
    if verb == "REJECT":
        return refuse(code(engine, "access_map_reject_code"), dsn or "5.7.1", rejected)
    if verb == "DEFER":
        return refuse(code(engine, "access_map_defer_code"), dsn or "4.7.1", rejected)
    if verb == "CODE":
        return refuse(action.code, dsn or ("4.7.1" if action.code < 500 else "5.7.1"), rejected)
    if verb in ("DEFER_IF_REJECT", "DEFER_IF_PERMIT"):
        attr = "defer_if_reject" if verb == "DEFER_IF_REJECT" else "defer_if_permit"
        if getattr(ctx, attr) is None:
            setattr(ctx, attr, refuse(450, dsn or "4.7.1", rejected))
        return DUNNO
    if verb in ("HOLD", "DISCARD"):
        ctx.effects.append((verb.lower(), text))
        _log_action(ctx, verb.lower(), triggers)
        return PERMIT if verb == "DISCARD" else DUNNO
    if verb in ("REDIRECT", "FILTER", "BCC", "PREPEND"):
        if not text or (verb == "PREPEND" and ":" not in text) or (verb == "FILTER" and ":" not in text):
            log.warning("access table %s: %s action without valid argument: %s", label, verb, text)
            r = replies.SERVER_CONFIG
            return refuse(r.code, r.dsn, r.text)
        ctx.effects.append((verb.lower(), text))
        if verb != "PREPEND":
            _log_action(ctx, verb.lower(), f"<{name}>: {klass} triggers {verb} {text}")
        return DUNNO
    if verb in ("WARN", "INFO"):
        _log_action(ctx, verb.lower(), text)
        return DUNNO
    # nested restrictions reply about what the table was asked about (check_table_result())
    saved = ctx.reply_name, ctx.reply_class
    ctx.reply_name, ctx.reply_class = name, klass
    try:
        return await engine.run_named(ctx, action.text, label)
    finally:
        ctx.reply_name, ctx.reply_class = saved


# --- DNS-derived access: check_*_{a,mx,ns}_access ---------------------------------------------------------

MAX_SERVERS = 10


def _server_subject(which: str, ctx: Ctx) -> tuple[str, str, str]:
    """(reply name, reply class, domain to ask DNS about)."""
    s = ctx.state
    if which == "sender":
        return s.sender or "", replies.SENDER, split_address(s.sender or "")[1]
    if which == "recipient":
        return s.recipient, replies.RECIPIENT, split_address(s.recipient)[1]
    if which == "helo":
        return s.helo_name, replies.HELO, s.helo_name
    name = s.client_name if which == "client" else s.reverse_client_name
    return client_label(ctx.state), replies.CLIENT, "" if name == "unknown" else name


async def _servers(engine: RestrictionEngine, domain: str, rtype: str) -> list[str]:
    if rtype == "A":
        return [domain]
    status, records = await engine.resolver.query(domain, rtype)
    if status is not Status.FOUND:
        return [domain] if rtype == "MX" and status is Status.NOTFOUND else []  # implicit MX
    hosts = [r.split()[-1].rstrip(".").lower() for r in records]
    return [h for h in hosts if h][:MAX_SERVERS]


def _server_access(which: str, rtype: str) -> CheckArg:
    async def check(engine: RestrictionEngine, ctx: Ctx, table: object) -> Decision:
        name, klass, domain = _server_subject(which, ctx)
        domain = domain.rstrip(".").lower()
        if not domain or is_ip_literal(domain) or is_ip(domain):
            return DUNNO
        lookup = cast(LookupTable, table)
        label = f"check_{which}_{rtype.lower()}_access"
        for host in await _servers(engine, domain, rtype):
            keys = [host] if _pattern(table) else domain_keys(host, parent_style=engine.parent_style)
            for family in ("A", "AAAA"):
                status, addresses = await engine.resolver.query(host, family)
                if status is Status.FOUND:
                    for address in addresses:
                        keys += [address] if _pattern(table) else ip_keys(address)
            for key in keys:
                value = await lookup.get(key)
                if value is None:
                    continue
                if value.strip().upper() == "OK":  # Postfix refuses OK here "for safety reasons"
                    log.warning("%s: %s: OK is not allowed here, using DUNNO", label, key)
                    return DUNNO
                return await engine.action(ctx, value, name, klass, label)
        return DUNNO
    return check


for _which in ("client", "reverse_client", "helo", "sender", "recipient"):
    for _rtype in ("A", "MX", "NS"):
        with_arg(_open, f"check_{_which}_{_rtype.lower()}_access")(_server_access(_which, _rtype))
