"""Built-ins that ask DNS: unknown HELO/sender/recipient domains, null MX, DNSBL, RHSBL, DNSWL.
A temporary DNS error defers only if the mail would otherwise be accepted (DEFER_IF_PERMIT)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from pymailsrv.errors import ConfigError
from pymailsrv.policy import replies
from pymailsrv.policy.address import (
    is_ip,
    is_ip_literal,
    split_address,
    strip_brackets,
)
from pymailsrv.policy.base import Decision
from pymailsrv.policy.checks_basic import resolve
from pymailsrv.policy.context import DUNNO, PERMIT, Ctx, refuse
from pymailsrv.policy.dns import Status, reverse_ip
from pymailsrv.policy.registry import CheckArg, code, log, simple, with_arg

if TYPE_CHECKING:
    from pymailsrv.policy.restrictions import RestrictionEngine


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
    routed, cls = await resolve(engine, address, ctx)
    if routed.local_domain or cls != "default":
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
