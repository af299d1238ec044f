"""Built-ins without DNS or tables: generic, relay control, unlisted users, name and address
syntax, SASL sender ownership (POSTFIX-SEMANTICS §3)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, cast

from pymailsrv.config.settings import parse_time
from pymailsrv.errors import ConfigError
from pymailsrv.policy import replies
from pymailsrv.policy.address import (
    Routed,
    is_fqdn_domain,
    split_address,
    strip_brackets,
    strip_extension,
    valid_helo,
)
from pymailsrv.policy.base import Decision
from pymailsrv.policy.context import DUNNO, PERMIT, Ctx, refuse
from pymailsrv.policy.registry import BUILTINS, BuiltinRestriction, Check, code, simple, with_arg
from pymailsrv.policy.tables.cidr import parse_ip

if TYPE_CHECKING:
    from pymailsrv.policy.restrictions import RestrictionEngine


# --- generic --------------------------------------------------------------------------------------

BUILTINS["warn_if_reject"] = BuiltinRestriction(False, lambda engine, arg: _never)


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


@simple("permit_inet_interfaces")
async def permit_inet_interfaces(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    addr = parse_ip(ctx.state.client_address)
    return PERMIT if addr is not None and str(addr) in engine.domains.own_addresses else DUNNO


def _seconds(engine: RestrictionEngine, arg: str) -> object:
    try:
        return parse_time(arg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@with_arg(_seconds, "sleep")
async def sleep(engine: RestrictionEngine, ctx: Ctx, arg: object) -> Decision:
    await engine.clock.sleep(cast(float, arg))  # "sleep N": slows down zombie clients, then DUNNO
    return DUNNO


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

async def resolve(engine: RestrictionEngine, address: str, ctx: Ctx | None = None) -> tuple[Routed, str]:
    """(where ``address`` routes to, its address class), remembered for the rest of the check."""
    hit = ctx.resolved.get(address) if ctx is not None else None
    if hit is None:
        routed = await engine.domains.route(address)
        hit = (routed, "local" if routed.local_domain else await engine.domains.classify(routed))
        if ctx is not None:
            ctx.resolved[address] = hit
    return hit


async def auth_destination(engine: RestrictionEngine, recipient: str, ctx: Ctx | None = None) -> bool:
    """permit_auth_destination: a final or relay domain of ours, and not a routed address."""
    routed, cls = await resolve(engine, recipient, ctx)
    if routed.routed:
        return False
    if not routed.domain and routed.local_domain:
        return bool(routed.local)  # a bare local name is ours (myorigin); "" or "@" is nothing
    return cls != "default"


@simple("permit_auth_destination")
async def permit_auth_destination(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    if not ctx.state.recipient:
        return DUNNO
    return PERMIT if await auth_destination(engine, ctx.state.recipient, ctx) else DUNNO


@simple("reject_unauth_destination", "check_relay_domains")
async def reject_unauth_destination(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    recipient = ctx.state.recipient
    if not recipient or await auth_destination(engine, recipient, ctx):
        return DUNNO
    r = replies.RELAY_DENIED
    return refuse(code(engine, "relay_domains_reject_code"), r.dsn, r.format(name=recipient))


@simple("defer_unauth_destination")
async def defer_unauth_destination(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    recipient = ctx.state.recipient
    if not recipient or await auth_destination(engine, recipient, ctx):
        return DUNNO
    r = replies.RELAY_DEFERRED
    return refuse(r.code, r.dsn, r.format(name=recipient))


async def unlisted(engine: RestrictionEngine, ctx: Ctx, address: str, klass: str) -> Decision:
    """reject_unlisted_recipient / _sender: an address in a domain of ours that has no user."""
    address = strip_brackets(address)
    if not address:
        return DUNNO
    routed, cls = await resolve(engine, address, ctx)
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
