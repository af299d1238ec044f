"""SPF restrictions (RFC 7208) for smtpd_*_restrictions, in place of the policyd-spf policy
service Postfix sites run (senderauth/spf.py evaluates):

- ``reject_spf_fail``: the MAIL FROM identity (postmaster@HELO for the null sender) fails SPF →
  550 5.7.23; a DNS failure defers only if the mail would otherwise be accepted (DEFER_IF_PERMIT,
  like the other DNS checks).
- ``check_spf_policy``: policyd-spf's default policy: the HELO identity, then MAIL FROM; a fail
  of either → 550 5.7.23, a temperror → 451 4.7.24.

Both answer DUNNO before MAIL FROM. A permerror, softfail, neutral or none decides nothing
(policyd-spf's defaults); the sender_auth stage records every result in Authentication-Results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pymailsrv.errors import TemporaryFailure
from pymailsrv.policy.base import Decision
from pymailsrv.policy.checks_dns import _defer_if_permit
from pymailsrv.policy.context import DUNNO, Ctx, refuse
from pymailsrv.policy.dns import Resolver, Status
from pymailsrv.policy.registry import simple
from pymailsrv.senderauth.dnslookup import Lookup
from pymailsrv.senderauth.spf import SpfResult, check_host

if TYPE_CHECKING:
    from pymailsrv.policy.restrictions import RestrictionEngine

SPF_FAIL = "<{sender}>: Sender address rejected: Message rejected due to: SPF fail - not authorized by {domain}"
SPF_HELO_FAIL = "<{helo}>: Helo command rejected: Message rejected due to: SPF fail - not authorized"
SPF_TEMP = "<{sender}>: Sender address rejected: SPF temporary error for {domain}, try again later"


def resolver_lookup(resolver: Resolver) -> Lookup:
    """The restrictions' resolver as a sender-authentication Lookup."""

    async def lookup(name: str, rdtype: str) -> list[str]:
        status, answer = await resolver.query(name, rdtype)
        if status is Status.TEMPFAIL:
            raise TemporaryFailure(f"DNS {rdtype} lookup of {name} failed")
        return answer

    return lookup


async def _mail_from(engine: RestrictionEngine, ctx: Ctx) -> SpfResult | None:
    state = ctx.state
    if state.sender is None:
        return None
    helo = state.helo_name.strip("[]")
    lookup = resolver_lookup(engine.resolver)
    if state.sender:
        return await check_host(state.client_address, state.sender, helo, lookup)
    return await check_host(state.client_address, "", helo, lookup, domain=helo)


@simple("reject_spf_fail")
async def reject_spf_fail(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    found = await _mail_from(engine, ctx)
    if found is None:
        return DUNNO
    sender = ctx.state.sender or f"postmaster@{found.domain}"
    if found.result == "fail":
        return refuse(550, "5.7.23", SPF_FAIL.format(sender=sender, domain=found.domain))
    if found.result == "temperror":
        return _defer_if_permit(ctx, refuse(451, "4.7.24", SPF_TEMP.format(sender=sender, domain=found.domain)))
    return DUNNO


@simple("check_spf_policy")
async def check_spf_policy(engine: RestrictionEngine, ctx: Ctx) -> Decision:
    state = ctx.state
    if state.sender is None:
        return DUNNO
    helo = state.helo_name.strip("[]")
    if helo and state.sender:  # for the null sender the MAIL FROM check below is the HELO check
        by_helo = await check_host(state.client_address, "", helo, resolver_lookup(engine.resolver), domain=helo)
        if by_helo.result == "fail":
            return refuse(550, "5.7.23", SPF_HELO_FAIL.format(helo=helo))
    found = await _mail_from(engine, ctx)
    if found is None:
        return DUNNO
    sender = state.sender or f"postmaster@{found.domain}"
    if found.result == "fail":
        return refuse(550, "5.7.23", SPF_FAIL.format(sender=sender, domain=found.domain))
    if found.result == "temperror":
        return refuse(451, "4.7.24", SPF_TEMP.format(sender=sender, domain=found.domain))
    return DUNNO
