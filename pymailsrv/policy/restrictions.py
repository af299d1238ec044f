"""The restriction engine: Postfix's smtpd_*_restrictions evaluated as smtpd_check.c does.

Implementation notes:
- Every list is compiled at start-up: an unknown restriction name, a missing argument or an
  unreadable table is a ConfigError naming the parameter, never a runtime failure.
- In a list the first permit or refusal decides that list; DUNNO goes on; the end of the list
  permits. A permit does not skip later lists (POSTFIX-SEMANTICS §3).
- smtpd_delay_reject = yes: the client, helo and sender lists run at RCPT (each with its own reply
  name/class), so ``check("connect"|"helo"|"mail")`` then only applies the sender-side defaults.
- DEFER_IF_REJECT turns a later 5xx of the same check into 450; DEFER_IF_PERMIT turns a final
  permit into 450. warn_if_reject makes the next restriction log ``reject_warning`` instead.
- At the end of RCPT, reject_unlisted_recipient runs (smtpd_reject_unlisted_recipient), even
  after a permit, as Postfix does; reject_unlisted_sender likewise for the sender.
- Access-map results may name restrictions or restriction classes; nesting is bounded.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pymailsrv import meter
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.parser import split_list
from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.net.networks import in_networks
from pymailsrv.policy import replies
from pymailsrv.policy.access import parse_action
from pymailsrv.policy.address import address_syntax_ok, normalize
from pymailsrv.policy.base import Decision, LookupTable, SmtpState, Stage
from pymailsrv.policy.context import DUNNO, PERMIT, Ctx, client_label, format_log, refuse
from pymailsrv.policy.delegation import PolicyClient
from pymailsrv.policy.dns import Resolver
from pymailsrv.policy.domains import Domains
from pymailsrv.policy.greylist import Greylist
from pymailsrv.policy.shared_greylist import SharedGreylist
from pymailsrv.policy.tables import close_table, open_table
from pymailsrv.policy.tables.cidr import parse_ip

log = get_logger("smtpd")
debug = logging.getLogger("pymailsrv.policy")

MAX_DEPTH = 50
StepFn = Callable[[Ctx], Awaitable[Decision]]


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    arg: str | None
    run: StepFn


# parameter → (reply class, which name the generic texts use)
LISTS: dict[str, tuple[str, str]] = {
    "smtpd_client_restrictions": (replies.CLIENT, "client"),
    "smtpd_helo_restrictions": (replies.HELO, "helo"),
    "smtpd_sender_restrictions": (replies.SENDER, "sender"),
    "smtpd_relay_restrictions": (replies.RECIPIENT, "recipient"),
    "smtpd_recipient_restrictions": (replies.RECIPIENT, "recipient"),
    "smtpd_data_restrictions": (replies.DATA, "data"),
    "smtpd_end_of_data_restrictions": (replies.END_OF_DATA, "end_of_data"),
}
RELAY_GUARDS = {"reject_unauth_destination", "defer_unauth_destination", "reject", "defer",
                "defer_if_permit", "check_relay_domains"}


def own_ip_addresses(settings: Settings) -> set[str]:
    """Addresses whose ``user@[addr]`` literals are local (trivial-rewrite's resolve_local):
    loopback, the explicit listener hosts and inet_interfaces entries that are addresses."""
    own = {"127.0.0.1", "::1"}
    candidates = list(settings.get_list("inet_interfaces"))
    for param in ("smtpd_listen", "submission_listen", "smtps_listen"):
        candidates += [listen.host for listen in settings.get_listen(param)]
    for item in candidates:
        addr = parse_ip(item)
        if addr is not None and not addr.is_unspecified:
            own.add(str(addr))
    return own


_STAGES: tuple[Stage, ...] = ("connect", "helo", "mail", "rcpt", "data", "end_of_data")

def normalized(state: SmtpState) -> SmtpState:
    """The state with sender/recipient in the internal form smtpd keeps (no brackets, no source
    route, local part unquoted), so replies and logs name them as Postfix does."""
    sender = None if state.sender is None else normalize(state.sender)
    recipient = normalize(state.recipient) if state.recipient else state.recipient
    if sender == state.sender and recipient == state.recipient:
        return state
    return dataclasses.replace(state, sender=sender, recipient=recipient)


def syntax_check(stage: Stage, state: SmtpState) -> Decision | None:
    """smtpd's own address check before any restriction: 501 5.1.3 / 5.1.7."""
    if stage == "rcpt" and state.recipient and not address_syntax_ok(state.recipient):
        r = replies.BAD_RECIPIENT_SYNTAX
    elif stage == "mail" and state.sender and not address_syntax_ok(state.sender):
        r = replies.BAD_SENDER_SYNTAX
    else:
        return None
    return refuse(r.code, r.dsn, r.text)


def reply_name(which: str, state: SmtpState) -> str:
    if which == "client":
        return client_label(state)
    if which == "helo":
        return state.helo_name
    if which == "sender":
        return state.sender or ""
    if which == "recipient":
        return state.recipient
    return "DATA" if which == "data" else "END-OF-MESSAGE"


class RestrictionEngine:
    """``Restrictions`` over Settings, a Directory, lookup tables, DNS and policy servers."""

    def __init__(self, settings: Settings, directory: Directory, *, resolver: Resolver | None = None,
                 clock: Clock | None = None, own_addresses: set[str] | None = None,
                 table_check_interval: float = 1.0) -> None:
        from pymailsrv.policy import builtins

        self.settings = settings
        self.directory = directory
        self.clock = clock or SystemClock()
        self.resolver = resolver or Resolver(settings.get_list("dns_nameservers"))
        self._tables: dict[str, LookupTable] = {}
        self._table_interval = table_check_interval
        self._policy: dict[str, PolicyClient] = {}
        self._greylist: Greylist | SharedGreylist | None = None
        self._builtins = builtins.BUILTINS
        self.delay_reject = settings.get_bool("smtpd_delay_reject")
        self.delimiter = settings.get_str("recipient_delimiter")
        self.null_key = settings.get_str("smtpd_null_access_lookup_key")
        self.parent_style = "smtpd_access_maps" in settings.get_list("parent_domain_matches_subdomains")
        self.mynetworks = settings.mynetworks()
        self.domains = Domains(settings, directory, self.table,
                               own_addresses if own_addresses is not None else own_ip_addresses(settings))
        self.login_maps = [self.table(s) for s in settings.get_list("smtpd_sender_login_maps")]
        self.classes: dict[str, list[Step]] = {}
        class_names = settings.get_list("smtpd_restriction_classes")
        for name in class_names:
            self.classes[name] = []
        for name in class_names:
            self.classes[name] = self.compile(settings.user_list(name), name)
        self.lists = {param: self.compile(settings.get_list(param), param) for param in LISTS}
        self._check_relay_guard()
        self._dynamic: dict[str, list[Step]] = {}
        self.unlisted_sender = settings.get_bool("smtpd_reject_unlisted_sender")
        self.unlisted_recipient = settings.get_bool("smtpd_reject_unlisted_recipient")
        # stages where nothing can refuse or act (Postfix's defaults: all but rcpt): after the
        # syntax check they answer at once, not through a context and empty lists (5 of 6 checks
        # of a message)
        self._idle_stages = frozenset(stage for stage in _STAGES if self._idle(stage))

    # --- set-up ---------------------------------------------------------------------------------
    def table(self, spec: str) -> LookupTable:
        table = self._tables.get(spec)
        if table is None:
            table = open_table(spec, self.settings, check_interval=self._table_interval)
            self._tables[spec] = table
        return table

    def greylist(self) -> Greylist | SharedGreylist:
        """check_greylist's state: this node's, or with greylist_shared the database's."""
        if self._greylist is None:
            s = self.settings
            local = Greylist(self.clock, delay=s.get_seconds("greylist_delay"),
                             retry_window=s.get_seconds("greylist_retry_window"),
                             max_age=s.get_seconds("greylist_max_age"),
                             auto_whitelist=s.get_int("greylist_auto_whitelist_clients"),
                             delimiters=self.delimiter or "+")
            self._greylist = local
            if s.get_bool("greylist_shared"):
                from pymailsrv.db.shared_greylist import SharedGreylistStore

                store = SharedGreylistStore(s.expanded("database_url"), prefix=s.expanded("database_table_prefix"))
                self._greylist = SharedGreylist(local, store, self.clock)
        return self._greylist

    def policy_client(self, target: str, timeout: float) -> PolicyClient:
        key = f"{target}/{timeout}"
        client = self._policy.get(key)
        if client is None:
            client = PolicyClient(target, timeout=timeout, clock=self.clock)
            self._policy[key] = client
        return client

    def compile(self, items: list[str], param: str) -> list[Step]:
        steps: list[Step] = []
        i = 0
        while i < len(items):
            name = items[i]
            i += 1
            key = name.lower()
            if key in self.classes or name in self.classes:
                cls = name if name in self.classes else key
                steps.append(Step(name, None, self._class_runner(cls)))
                continue
            spec = self._builtins.get(key)
            if spec is None:
                raise ConfigError(f'{param}: unknown restriction "{name}"')
            arg = None
            if spec.takes_arg:
                if i >= len(items):
                    raise ConfigError(f'{param}: missing argument after "{name}"')
                arg = items[i]
                i += 1
            try:
                steps.append(Step(key, arg, spec.make(self, arg)))
            except ConfigError as exc:
                raise ConfigError(f'{param}: {name} {arg or ""}: {exc.message}'.replace("  ", " "),
                                  file=exc.file, line=exc.line) from None
        return steps

    def _class_runner(self, name: str) -> StepFn:
        async def run(ctx: Ctx) -> Decision:
            return await self.run_list(self.classes[name], ctx)
        return run

    def _check_relay_guard(self) -> None:
        """Postfix refuses to start without a relay guard at RCPT (an open relay by mistake)."""
        def guarded(steps: list[Step], seen: set[str]) -> bool:
            for step in steps:
                if step.name in RELAY_GUARDS:
                    return True
                if step.arg is None and step.name in self.classes and step.name not in seen \
                        and guarded(self.classes[step.name], seen | {step.name}):
                    return True
            return False
        if not (guarded(self.lists["smtpd_relay_restrictions"], set())
                or guarded(self.lists["smtpd_recipient_restrictions"], set())):
            raise ConfigError("in parameter smtpd_relay_restrictions or smtpd_recipient_restrictions, "
                              "specify at least one working instance of: reject_unauth_destination, "
                              "defer_unauth_destination, reject, defer, defer_if_permit or "
                              "check_relay_domains")

    async def close(self) -> None:
        if isinstance(self._greylist, SharedGreylist):
            await self._greylist.close()
        for client in self._policy.values():
            await client.close()
        for table in self._tables.values():
            await close_table(table)

    def _idle(self, stage: Stage) -> bool:
        if any(self.lists[param] for param in self._due(stage)):
            return False
        sender_due = stage == "rcpt" if self.delay_reject else stage == "mail"
        return not (sender_due and self.unlisted_sender) and not (stage == "rcpt" and self.unlisted_recipient)

    # --- evaluation -----------------------------------------------------------------------------
    async def check(self, stage: Stage, state: SmtpState) -> Decision:
        state = normalized(state)
        bad_syntax = syntax_check(stage, state)
        if bad_syntax is not None:
            return bad_syntax  # smtpd answers these without a "NOQUEUE: reject" log line
        if stage in self._idle_stages:
            return DUNNO
        ctx = Ctx(stage, state)
        try:
            decision = await self._check(ctx)
        except TemporaryFailure as exc:
            debug.warning("temporary lookup failure: %s", exc)
            decision = refuse(replies.TEMP_LOOKUP.code, replies.TEMP_LOOKUP.dsn,
                              replies.TEMP_LOOKUP.format(name=ctx.reply_name))
            ctx.decided_by = "temporary_lookup_failure"
        if decision.refused:
            log.info("%s", format_log("reject", stage, state, decision.reply()))
            by = ctx.deferred_by if decision is ctx.defer_if_permit else ctx.decided_by
            meter.count("pymailsrv_smtpd_rejects_total", stage, by or "smtpd", decision.action)
            return decision
        return Decision(decision.action, effects=tuple(ctx.effects))

    def _due(self, stage: Stage) -> list[str]:
        early = ["smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions"]
        if stage == "rcpt":
            return ([*early] if self.delay_reject else []) + ["smtpd_relay_restrictions",
                                                              "smtpd_recipient_restrictions"]
        if stage in ("connect", "helo", "mail"):
            return [] if self.delay_reject else [early[("connect", "helo", "mail").index(stage)]]
        return ["smtpd_data_restrictions" if stage == "data" else "smtpd_end_of_data_restrictions"]

    async def _check(self, ctx: Ctx) -> Decision:
        state = ctx.state
        if ctx.stage == "rcpt" and state.recipient.lower() == "postmaster":
            return PERMIT  # RFC 5321 §4.5.1: <postmaster> is always accepted (smtpd_check_rcpt)
        result = DUNNO
        for param in self._due(ctx.stage):
            klass, which = LISTS[param]
            if which == "helo" and not state.helo_name:
                continue
            if which == "sender" and state.sender is None:
                continue
            ctx.reply_class, ctx.reply_name = klass, reply_name(which, state)
            if param != "smtpd_recipient_restrictions":
                ctx.defer_if_reject = None  # smtpd_check.c resets it per check; relay+recipient share one
            decision = await self.run_list(self.lists[param], ctx)
            if decision.refused:
                return decision
            if decision.action == "permit":
                result = PERMIT
        if ctx.defer_if_permit is not None:
            return ctx.defer_if_permit
        return await self._defaults(ctx) or result

    async def _defaults(self, ctx: Ctx) -> Decision | None:
        from pymailsrv.policy.builtins import unlisted

        state = ctx.state
        sender_due = ctx.stage == "rcpt" if self.delay_reject else ctx.stage == "mail"
        if sender_due and state.sender and self.unlisted_sender:
            ctx.reply_class, ctx.reply_name = replies.SENDER, state.sender
            decision = await unlisted(self, ctx, state.sender, replies.SENDER)
            if decision.refused:
                ctx.decided_by = "smtpd_reject_unlisted_sender"
                return decision
        if ctx.stage == "rcpt" and state.recipient and self.unlisted_recipient:
            ctx.reply_class, ctx.reply_name = replies.RECIPIENT, state.recipient
            decision = await unlisted(self, ctx, state.recipient, replies.RECIPIENT)
            if decision.refused:
                ctx.decided_by = "smtpd_reject_unlisted_recipient"
                return decision
        return None

    async def run_list(self, steps: list[Step], ctx: Ctx) -> Decision:
        if ctx.depth > MAX_DEPTH:
            debug.warning("restriction nesting too deep")
            return refuse(replies.SERVER_CONFIG.code, replies.SERVER_CONFIG.dsn, replies.SERVER_CONFIG.text)
        ctx.depth += 1
        try:
            for step in steps:
                if step.name == "warn_if_reject":
                    ctx.warn_next = True
                    continue
                warn, ctx.warn_next = ctx.warn_next, False
                deferring = ctx.defer_if_permit
                decision = await step.run(ctx)
                if deferring is None and ctx.defer_if_permit is not None and not ctx.deferred_by:
                    ctx.deferred_by = step.name  # the innermost step: run_list nests for classes
                if decision.action == "dunno":
                    continue
                if decision.refused and warn:
                    log.info("%s", format_log("reject_warning", ctx.stage, ctx.state, decision.reply()))
                    continue
                if decision.refused and not ctx.decided_by:
                    ctx.decided_by = step.name
                if decision.action == "reject" and ctx.defer_if_reject is not None:
                    return ctx.defer_if_reject
                return decision
            return DUNNO
        finally:
            ctx.depth -= 1

    async def run_named(self, ctx: Ctx, value: str, source: str) -> Decision:
        """An access-map result that names restrictions (or restriction classes)."""
        steps = self._dynamic.get(value)
        if steps is None:
            try:
                steps = self.compile(split_list(value), source)
            except ConfigError as exc:
                log.warning("%s", exc)
                return refuse(replies.SERVER_CONFIG.code, replies.SERVER_CONFIG.dsn,
                              replies.SERVER_CONFIG.text)
            self._dynamic[value] = steps
        return await self.run_list(steps, ctx)

    # --- shared helpers for the built-ins ---------------------------------------------------------
    def in_mynetworks(self, address: str) -> bool:
        return in_networks(parse_ip(address), self.mynetworks)

    async def access(self, ctx: Ctx, table: LookupTable, keys: list[str], name: str, klass: str,
                     label: str) -> Decision:
        """Look ``keys`` up in order; the first value found is the access-map action."""
        for key in keys:
            value = await table.get(key)
            if value is not None:
                return await self.action(ctx, value, name, klass, label)
        return DUNNO

    async def action(self, ctx: Ctx, value: str, name: str, klass: str, label: str) -> Decision:
        from pymailsrv.policy.builtins import apply_action

        return await apply_action(self, ctx, parse_action(value), name, klass, label)
