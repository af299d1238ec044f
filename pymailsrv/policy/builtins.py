"""The built-in restrictions (POSTFIX-SEMANTICS §3) and the access-map actions (§4).

Each entry of :data:`BUILTINS` is compiled once per list position: ``make(engine, arg)`` checks
and prepares the argument (opens the table, parses the DNSBL zone) and returns the coroutine
function that runs for each check. Restrictions whose input is not there yet (no recipient at
MAIL, no HELO) answer DUNNO, as Postfix does.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from pymailsrv.config.settings import parse_time
from pymailsrv.errors import ConfigError
from pymailsrv.log import get_logger
from pymailsrv.policy import replies
from pymailsrv.policy.access import Action, address_keys, client_keys, domain_keys, ip_keys, split_dsn
from pymailsrv.policy.address import (
    is_fqdn_domain,
    is_ip,
    is_ip_literal,
    split_address,
    strip_brackets,
    strip_extension,
    valid_helo,
)
from pymailsrv.policy.base import Decision
from pymailsrv.policy.context import DUNNO, PERMIT, Ctx, client_label, format_log, refuse
from pymailsrv.policy.delegation import PolicyClient, PolicyError, parse_target
from pymailsrv.policy.dns import Status, reverse_ip
from pymailsrv.policy.tables import is_table_spec

if TYPE_CHECKING:
    from pymailsrv.policy.restrictions import RestrictionEngine

log = get_logger("smtpd")
StepFn = Callable[[Ctx], Awaitable[Decision]]
Check = Callable[["RestrictionEngine", Ctx], Awaitable[Decision]]
CheckArg = Callable[["RestrictionEngine", Ctx, object], Awaitable[Decision]]


@dataclass(frozen=True, slots=True)
class Spec:
    takes_arg: bool
    make: Callable[[RestrictionEngine, str | None], StepFn]


BUILTINS: dict[str, Spec] = {}


def simple(*names: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        def make(engine: RestrictionEngine, arg: str | None) -> StepFn:
            async def run(ctx: Ctx) -> Decision:
                return await fn(engine, ctx)
            return run
        for name in names:
            BUILTINS[name] = Spec(False, make)
        return fn
    return register


def with_arg(prepare: Callable[[RestrictionEngine, str], object],
             *names: str) -> Callable[[CheckArg], CheckArg]:
    def register(fn: CheckArg) -> CheckArg:
        def make(engine: RestrictionEngine, arg: str | None) -> StepFn:
            assert arg is not None
            prepared = prepare(engine, arg)

            async def run(ctx: Ctx) -> Decision:
                return await fn(engine, ctx, prepared)
            return run
        for name in names:
            BUILTINS[name] = Spec(True, make)
        return fn
    return register


def code(engine: RestrictionEngine, param: str) -> int:
    return engine.settings.get_int(param)


# --- generic --------------------------------------------------------------------------------------

BUILTINS["warn_if_reject"] = Spec(False, lambda engine, arg: _never)


async def _never(ctx: Ctx) -> Decision:
    return DUNNO


@simple("permit")
async def permit(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return PERMIT


@simple("dunno")
async def dunno(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return DUNNO


@simple("reject")
async def reject(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return ctx.rejected(code(engine, "reject_code"), "5.7.1")


@simple("defer")
async def defer(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return ctx.rejected(code(engine, "defer_code"), "4.7.1")


@simple("defer_if_permit")
async def defer_if_permit(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if ctx.defer_if_permit is None:
        ctx.defer_if_permit = ctx.rejected(450, "4.7.1", replies.DEFER_IF_PERMIT_TEXT)
    return DUNNO


@simple("defer_if_reject")
async def defer_if_reject(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if ctx.defer_if_reject is None:
        ctx.defer_if_reject = ctx.rejected(450, "4.7.1", replies.DEFER_IF_REJECT_TEXT)
    return DUNNO


@simple("permit_mynetworks")
async def permit_mynetworks(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return PERMIT if engine.in_mynetworks(ctx.state.client_address) else DUNNO


@simple("permit_sasl_authenticated")
async def permit_sasl_authenticated(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return PERMIT if ctx.state.sasl_username else DUNNO


@simple("permit_tls_clientcerts", "permit_tls_all_clientcerts")
async def permit_tls_clientcerts(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return DUNNO  # client certificates are not requested, so none is ever verified


@simple("reject_unauth_pipelining")
async def reject_unauth_pipelining(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if not ctx.state.pipelining_violation:
        return DUNNO
    r = replies.PIPELINING
    return refuse(r.code, r.dsn, r.format(name=ctx.reply_name, klass=ctx.reply_class))


@simple("reject_multi_recipient_bounce")
async def reject_multi_recipient_bounce(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    state = ctx.state
    limit = 0 if ctx.stage == "rcpt" else 1
    if state.sender == "" and state.recipient_count > limit:
        return ctx.rejected(550, "5.5.3", "Multi-recipient bounce")
    return DUNNO


@simple("reject_plaintext_session")
async def reject_plaintext_session(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if ctx.state.tls:
        return DUNNO
    return refuse(code(engine, "plaintext_reject_code"), "4.7.1", "Session encryption is required")


# --- relay control ----------------------------------------------------------------------------------

async def auth_destination(engine: RestrictionEngine, recipient: str) -> bool:
    """permit_auth_destination: a final or relay domain of ours, and not a routed address."""
    routed = await engine.domains.route(recipient)
    if routed.routed:
        return False
    if not routed.domain and routed.local_domain:
        return bool(routed.local)  # a bare local name is ours (myorigin); "" or "@" is nothing
    return await engine.domains.classify(routed) != "default"


@simple("permit_auth_destination")
async def permit_auth_destination(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if not ctx.state.recipient:
        return DUNNO
    return PERMIT if await auth_destination(engine, ctx.state.recipient) else DUNNO


@simple("reject_unauth_destination", "check_relay_domains")
async def reject_unauth_destination(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    recipient = ctx.state.recipient
    if not recipient or await auth_destination(engine, recipient):
        return DUNNO
    r = replies.RELAY_DENIED
    return refuse(code(engine, "relay_domains_reject_code"), r.dsn, r.format(name=recipient))


@simple("defer_unauth_destination")
async def defer_unauth_destination(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    recipient = ctx.state.recipient
    if not recipient or await auth_destination(engine, recipient):
        return DUNNO
    r = replies.RELAY_DEFERRED
    return refuse(r.code, r.dsn, r.format(name=recipient))


async def unlisted(engine: RestrictionEngine, ctx: Ctx, address: str, klass: str) -> Decision:
    """reject_unlisted_recipient / _sender: an address in a domain of ours that has no user."""
    address = strip_brackets(address)
    if not address:
        return DUNNO
    routed = await engine.domains.route(address)
    cls = await engine.domains.classify(routed)
    if await engine.domains.known(routed, cls):
        return DUNNO
    reply = {"local": replies.UNKNOWN_LOCAL, "virtual_alias": replies.UNKNOWN_VIRTUAL_ALIAS,
             "virtual_mailbox": replies.UNKNOWN_VIRTUAL_MAILBOX}.get(cls, replies.UNKNOWN_RELAY)
    param = "unknown_local_recipient_reject_code" if cls == "local" else "unknown_virtual_mailbox_reject_code"
    dsn = replies.SENDER_UNKNOWN_DSN if klass == replies.SENDER else reply.dsn
    return refuse(code(engine, param), dsn, reply.format(name=address, klass=klass))


@simple("reject_unlisted_recipient", "check_recipient_maps")
async def reject_unlisted_recipient(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if not ctx.state.recipient:
        return DUNNO
    return await unlisted(engine, ctx, ctx.state.recipient, replies.RECIPIENT)


@simple("reject_unlisted_sender")
async def reject_unlisted_sender(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if not ctx.state.sender:
        return DUNNO
    return await unlisted(engine, ctx, ctx.state.sender, replies.SENDER)


# --- syntax of names and addresses ------------------------------------------------------------------

@simple("reject_invalid_helo_hostname", "reject_invalid_hostname")
async def reject_invalid_helo_hostname(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    helo = ctx.state.helo_name
    if not helo or valid_helo(helo):
        return DUNNO
    r = replies.INVALID_HELO
    return refuse(code(engine, "invalid_hostname_reject_code"), r.dsn, r.format(name=helo))


@simple("reject_non_fqdn_helo_hostname", "reject_non_fqdn_hostname")
async def reject_non_fqdn_helo_hostname(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    helo = ctx.state.helo_name
    if not helo or is_fqdn_domain(helo):  # a bare IP address is not (Postfix answers 504 to it)
        return DUNNO
    r = replies.NON_FQDN_HELO
    return refuse(code(engine, "non_fqdn_reject_code"), r.dsn, r.format(name=helo))


def _non_fqdn(engine: RestrictionEngine, address: str | None, klass: str) -> Decision:
    if not address:
        return DUNNO
    _, domain = split_address(strip_brackets(address))
    if domain and is_fqdn_domain(domain):
        return DUNNO
    r = replies.NON_FQDN_ADDRESS
    return refuse(code(engine, "non_fqdn_reject_code"), r.dsn, r.format(name=address, klass=klass))


@simple("reject_non_fqdn_sender")
async def reject_non_fqdn_sender(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return _non_fqdn(engine, ctx.state.sender, replies.SENDER)


@simple("reject_non_fqdn_recipient")
async def reject_non_fqdn_recipient(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return _non_fqdn(engine, ctx.state.recipient, replies.RECIPIENT)


# --- DNS ------------------------------------------------------------------------------------------

@simple("reject_unknown_helo_hostname", "reject_unknown_hostname")
async def reject_unknown_helo_hostname(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    helo = ctx.state.helo_name
    if not helo or is_ip_literal(helo) or is_ip(helo):
        return DUNNO
    status = await engine.resolver.host_status(helo.rstrip("."))
    if status is Status.FOUND:
        return DUNNO
    r = replies.UNKNOWN_HELO
    if status is Status.TEMPFAIL:  # Postfix: DEFER_IF_PERMIT on a temporary DNS error
        return _defer_if_permit(ctx, refuse(450, r.dsn, r.format(name=helo)))
    return refuse(code(engine, "unknown_hostname_reject_code"), r.dsn, r.format(name=helo))


def _defer_if_permit(ctx: Ctx, decision: Decision) -> Decision:
    if ctx.defer_if_permit is None:
        ctx.defer_if_permit = decision
    return DUNNO


async def _unknown_domain(engine: RestrictionEngine, ctx: Ctx, address: str | None, klass: str) -> Decision:
    if not address:
        return DUNNO
    address = strip_brackets(address)
    _, domain = split_address(address)
    if not domain or is_ip_literal(domain):
        return DUNNO
    routed = await engine.domains.route(address)
    if routed.local_domain or await engine.domains.classify(routed) != "default":
        return DUNNO  # Postfix checks only domains it is not the final destination for
    status, null_mx = await engine.resolver.mail_domain_status(domain.rstrip("."))
    sender = klass == replies.SENDER
    if status is Status.FOUND and null_mx:
        r = replies.NULL_MX_SENDER if sender else replies.NULL_MX_RECIPIENT
        return refuse(r.code, r.dsn, r.format(name=address, klass=klass, domain=domain))
    if status is Status.FOUND:
        return DUNNO
    r = replies.UNKNOWN_SENDER_DOMAIN if sender else replies.UNKNOWN_RECIPIENT_DOMAIN
    if status is Status.TEMPFAIL:
        return _defer_if_permit(ctx, refuse(450, r.dsn, r.format(name=address)))
    return refuse(code(engine, "unknown_address_reject_code"), r.dsn, r.format(name=address))


@simple("reject_unknown_sender_domain")
async def reject_unknown_sender_domain(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return await _unknown_domain(engine, ctx, ctx.state.sender, replies.SENDER)


@simple("reject_unknown_recipient_domain")
async def reject_unknown_recipient_domain(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    return await _unknown_domain(engine, ctx, ctx.state.recipient, replies.RECIPIENT)


@simple("reject_unknown_client_hostname", "reject_unknown_client")
async def reject_unknown_client_hostname(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if ctx.state.client_name and ctx.state.client_name != "unknown":
        return DUNNO
    return refuse(450, "4.7.25",
                  f"Client host rejected: cannot find your hostname, [{ctx.state.client_address}]")


@simple("reject_unknown_reverse_client_hostname")
async def reject_unknown_reverse_client_hostname(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if ctx.state.reverse_client_name and ctx.state.reverse_client_name != "unknown":
        return DUNNO
    return refuse(450, "4.7.25",
                  f"Client host rejected: cannot find your reverse hostname, [{ctx.state.client_address}]")


_OCT = r"(\d{1,3}|\[[\d.;]+\])"
_FILTER = re.compile(r"\.".join([_OCT] * 4))


def _rbl_zone(engine: RestrictionEngine, arg: str) -> tuple[str, list[str] | None]:
    zone, eq, filt = arg.partition("=")
    zone = zone.strip().rstrip(".").lower()
    if not zone or "." not in zone:
        raise ConfigError(f'bad DNSBL zone "{arg}"')
    if not eq:
        return zone, None
    m = _FILTER.fullmatch(filt.strip())
    if not m:
        raise ConfigError(f'bad DNSBL reply filter "{filt}" (d.d.d.d, an octet may be [a..b] or [a;b])')
    return zone, list(m.groups())


def _octet_matches(pattern: str, value: str) -> bool:
    if not pattern.startswith("["):
        return pattern == value
    for part in pattern[1:-1].split(";"):
        low, dots, high = part.partition("..")
        if dots and low.isdigit() and high.isdigit() and int(low) <= int(value) <= int(high):
            return True
        if not dots and part == value:
            return True
    return False


async def _dnsbl(engine: RestrictionEngine, query: str, zone: str, filt: list[str] | None,
                 klass: str, what: str) -> Decision:
    status, answers = await engine.resolver.query(f"{query}.{zone}", "A")
    if status is Status.TEMPFAIL:
        log.warning("%s: RBL lookup error: Host or domain name not found. Name service error for "
                    "name=%s.%s type=A: Host not found, try again", what, query, zone)
        return DUNNO
    if status is not Status.FOUND:
        return DUNNO
    if filt is not None and not any(
            all(_octet_matches(p, v) for p, v in zip(filt, a.split("."), strict=False)) for a in answers):
        return DUNNO
    _, txt = await engine.resolver.query(f"{query}.{zone}", "TXT")
    reason = f"; {txt[0]}" if txt else ""
    r = replies.RBL
    return refuse(code(engine, "maps_rbl_reject_code"), r.dsn,
                  r.format(klass=klass, what=what, zone=zone, reason=reason))


@with_arg(_rbl_zone, "reject_rbl_client")
async def reject_rbl_client(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
    zone, filt = cast(tuple[str, list[str] | None], arg)
    query = reverse_ip(ctx.state.client_address)
    if query is None:
        return DUNNO
    return await _dnsbl(engine, query, zone, filt, replies.CLIENT, ctx.state.client_address)


def _rhsbl(which: str) -> CheckArg:
    async def check(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
        zone, filt = cast(tuple[str, list[str] | None], arg)
        state = ctx.state
        if which == "sender":
            name, klass = split_address(strip_brackets(state.sender or ""))[1], replies.SENDER
        elif which == "recipient":
            name, klass = split_address(strip_brackets(state.recipient))[1], replies.RECIPIENT
        elif which == "helo":
            name, klass = state.helo_name, replies.HELO
        elif which == "client":
            name, klass = state.client_name, replies.CLIENT
        else:
            name, klass = state.reverse_client_name, replies.CLIENT
        name = name.rstrip(".").lower()
        if not name or name == "unknown" or is_ip_literal(name) or is_ip(name):
            return DUNNO
        return await _dnsbl(engine, name, zone, filt, klass, name)
    return check


for _which in ("sender", "recipient", "helo", "client", "reverse_client"):
    with_arg(_rbl_zone, f"reject_rhsbl_{_which}")(_rhsbl(_which))


async def _listed(engine: RestrictionEngine, query: str, zone: str, filt: list[str] | None) -> bool:
    status, answers = await engine.resolver.query(f"{query}.{zone}", "A")
    if status is not Status.FOUND:
        return False
    return filt is None or any(
        all(_octet_matches(p, v) for p, v in zip(filt, a.split("."), strict=False)) for a in answers)


@with_arg(_rbl_zone, "permit_dnswl_client")
async def permit_dnswl_client(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
    zone, filt = cast(tuple[str, list[str] | None], arg)
    query = reverse_ip(ctx.state.client_address)
    return PERMIT if query is not None and await _listed(engine, query, zone, filt) else DUNNO


@with_arg(_rbl_zone, "permit_rhswl_client")
async def permit_rhswl_client(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
    zone, filt = cast(tuple[str, list[str] | None], arg)
    name = ctx.state.client_name.rstrip(".").lower()
    if not name or name == "unknown":
        return DUNNO
    return PERMIT if await _listed(engine, name, zone, filt) else DUNNO


# --- SASL sender ownership ----------------------------------------------------------------------------

async def _owners(engine: RestrictionEngine, address: str) -> list[str] | None:
    """Logins that own ``address`` per smtpd_sender_login_maps (None: the address is unowned)."""
    local, domain = split_address(address)
    base, _ = strip_extension(local, engine.delimiter)
    keys = list(dict.fromkeys([address, f"{base}@{domain}" if domain else base, f"@{domain}"]))
    for table in engine.login_maps:
        for key in keys:
            value = await table.get(key)
            if value is not None:
                return [v.lower() for v in re.split(r"[\s,]+", value) if v]
    return None


async def _owned_by(engine: RestrictionEngine, login: str, address: str) -> bool:
    if engine.login_maps:
        owners = await _owners(engine, address)
        return owners is not None and login.lower() in owners
    return await engine.directory.login_owns(login, address)


async def _owned_at_all(engine: RestrictionEngine, address: str) -> bool:
    if engine.login_maps:
        return await _owners(engine, address) is not None
    if await engine.directory.mailbox(address) is not None:
        return True
    return await engine.directory.resolve(address) != [address]


def _login_check(authenticated: bool, unauthenticated: bool, known_only: bool) -> Check:
    async def check(engine: RestrictionEngine, ctx: Ctx) -> Decision:
        sender = strip_brackets(ctx.state.sender or "").lower()
        if not sender:
            return DUNNO
        login = ctx.state.sasl_username
        if login and authenticated:
            if known_only and not await _owned_at_all(engine, sender):
                return DUNNO
            if not await _owned_by(engine, login, sender):
                r = replies.LOGIN_NOT_OWNER
                return refuse(r.code, r.dsn, r.format(name=ctx.state.sender or "", login=login))
        elif not login and unauthenticated and await _owned_at_all(engine, sender):
            r = replies.LOGIN_NOT_LOGGED_IN
            return refuse(r.code, r.dsn, r.format(name=ctx.state.sender or ""))
        return DUNNO
    return check


simple("reject_sender_login_mismatch")(_login_check(True, True, False))
simple("reject_authenticated_sender_login_mismatch")(_login_check(True, False, False))
simple("reject_known_sender_login_mismatch")(_login_check(True, True, True))
simple("reject_unauthenticated_sender_login_mismatch")(_login_check(False, True, False))


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
    s = ctx.state
    state_name = {"connect": "CONNECT", "helo": "HELO" if s.protocol == "SMTP" else "EHLO", "mail": "MAIL",
                  "rcpt": "RCPT", "data": "DATA", "end_of_data": "END-OF-MESSAGE"}[ctx.stage]
    return {
        "request": "smtpd_access_policy", "protocol_state": state_name,
        "protocol_name": s.protocol or "SMTP", "helo_name": s.helo_name, "queue_id": s.queue_id,
        "sender": s.sender or "", "recipient": s.recipient, "recipient_count": str(s.recipient_count),
        "client_address": s.client_address, "client_name": s.client_name,
        "reverse_client_name": s.reverse_client_name, "client_port": str(s.client_port),
        "instance": s.instance, "sasl_method": s.sasl_method, "sasl_username": s.sasl_username,
        "sasl_sender": "", "size": str(s.size), "ccert_subject": "", "ccert_issuer": "",
        "ccert_fingerprint": "", "encryption_protocol": "", "encryption_cipher": s.encryption_cipher,
        "encryption_keysize": "0", "etrn_domain": "", "stress": "", "policy_context": "",
        "compatibility_level": "3.6", "service": s.service,
    }


@with_arg(_policy_target, "check_policy_service")
async def check_policy_service(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
    client, default = cast(tuple[PolicyClient, str], arg)
    try:
        action = await client.query(policy_attributes(ctx))
    except PolicyError:
        action = default
    return await engine.action(ctx, action, ctx.reply_name, ctx.reply_class, "policy query")


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
        _log_action(ctx, verb.lower(), f"<{name}>: {klass} {text}")
        return DUNNO
    return await engine.run_named(ctx, action.text, label)
