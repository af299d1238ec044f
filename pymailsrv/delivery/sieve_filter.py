"""Sieve at delivery: run the admin's and the user's scripts on a message for one mailbox and
carry out what is not a store (redirect, vacation, notify); the Maildir agent stores.

Implementation notes:
- Order (Pigeonhole): every ``sieve_before`` script, the user's active script, every
  ``sieve_after`` script, sharing one run (one action list, one implicit keep); a ``stop`` ends
  them all. No script at all: None, and the agent stores into INBOX as before.
- A failing run (a script that does not compile, a limit hit, a bad redirect address) keeps the
  message in INBOX and logs why (RFC 5228 §2.10.6).
- redirect, vacation and notify leave through the queue (``Outbox.submit_generated``, so they
  pass non_smtpd_pipeline, are retried and can be signed). A redirect keeps the original
  envelope sender (or the recipient, ``sieve_redirect_envelope_from``) and carries our
  ``Delivered-To:``, so a loop comes back as 5.4.6; never back to the sender (sieve/interpreter).
- Vacation (RFC 5230) answers only: when the user is among the To/Cc/Bcc/Resent-* recipients (or
  :addresses), after the RFC 3834 checks shared with PostfixAdmin's vacation (autoreply/), once
  per (handle, sender) and period, from the null sender with ``Auto-Submitted: auto-replied``.
- Notify by mailto (RFC 5436): not for mail that is itself automatic (§2.7), from the null
  sender with ``Auto-Submitted: auto-notified``.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from pymailsrv.autoreply import Reply, compose_reply, header_refusal, parse_headers, recipients_in_headers
from pymailsrv.autoreply.rules import sender_refusal
from pymailsrv.clock import Clock, SystemClock
from pymailsrv.config.settings import Settings
from pymailsrv.delivery.sieve_scripts import (
    NotCached,
    ScriptCache,
    SeenRecord,
    include_path,
    script_files,
    user_script_path,
)
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.message.headers import printable
from pymailsrv.sieve import EXTENSIONS, Script
from pymailsrv.sieve.actions import Action, Notify, Result, Vacation
from pymailsrv.sieve.interpreter import Context, run_scripts
from pymailsrv.sieve.message import Envelope, SieveMessage
from pymailsrv.sieve.notify import mailto_recipients
from pymailsrv.types import Account

log = get_logger("sieve")

RESENT = ("to", "cc", "bcc", "resent-to", "resent-cc", "resent-bcc")


class Outbox(Protocol):
    async def submit_generated(self, sender: str, recipients: Sequence[str], content: bytes) -> str | None:
        """Queue mail this server writes (after non_smtpd_pipeline); the queue id, or None when a
        stage stopped it. Raises TemporaryFailure when it cannot be spooled. (The queue manager.)"""
        ...


@dataclass(slots=True)
class Plan:
    """What the agent does with one message for one mailbox: ``stores`` (folder, flags, create,
    content or None for the unedited message), ``reject`` (a reason: bounce instead of storing),
    and the result for logging."""

    stores: list[tuple[str, tuple[str, ...], bool, bytes | None]] = field(default_factory=list)
    reject: str | None = None
    result: Result | None = None
    folders: frozenset[str] | None = None  # the folders that existed, when listed


class SieveFilter:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        extensions = settings.get_list("sieve_extensions") or list(EXTENSIONS)
        self.cache = ScriptCache(extensions, settings.get_int("sieve_script_cache_size"))
        self.before = settings.get_list("sieve_before")
        self.after = settings.get_list("sieve_after")
        self.global_dir = settings.expanded("sieve_global")
        self.user_scripts = settings.get_bool("sieve_user_scripts")
        self.max_actions = settings.get_int("sieve_max_actions")
        self.max_redirects = settings.get_int("sieve_max_redirects")
        self.redirect_from = settings.get_str("sieve_redirect_envelope_from")
        self.vacation_period = (int(settings.get_seconds("sieve_vacation_min_period")),
                                int(settings.get_seconds("sieve_vacation_default_period")),
                                int(settings.get_seconds("sieve_vacation_max_period")))
        self.duplicate_period = (int(settings.get_seconds("sieve_duplicate_default_period")),
                                 int(settings.get_seconds("sieve_duplicate_max_period")))
        self.delimiter = settings.expanded("recipient_delimiter") or "+"
        self.hostname = settings.expanded("myhostname")
        self.clock = clock or SystemClock()
        self.outbox: Outbox | None = None

    def attach(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def scripts_for(self, account: Account, *, compile: bool = True) -> tuple[list[Script], str | None] | None:
        """The scripts of this delivery in order, up to the first one that does not compile
        (whose error text comes second: the sequence ends there, as at a run-time failure), or
        None when there is no script at all. Without ``compile`` it raises NotCached instead of
        reading and compiling a file."""
        paths = script_files(self.before)
        if self.user_scripts:
            paths.append(user_script_path(account.maildir))
        paths += script_files(self.after)
        scripts: list[Script] = []
        for path in paths:
            loaded = self.cache.load(path, compile=compile)
            if loaded is None:
                continue
            if loaded.script is None:
                return scripts, f"{loaded.path}: {loaded.error}"
            scripts.append(loaded.script)
        return (scripts, None) if scripts else None

    async def plan(self, account: Account, sender: str, recipient: str, content: bytes,
                   list_folders: Callable[[], Awaitable[frozenset[str]]]) -> Plan | None:
        """Run the scripts; None when there are none. ``content`` as stored (LF, with our
        Return-Path/Delivered-To). ``list_folders`` is awaited only when a script tests folders
        (mailboxexists); the agent checks a fileinto target itself, when it has no :create."""
        try:
            sequence = self.scripts_for(account, compile=False)  # a stat per script when cached
        except NotCached:
            sequence = await asyncio.to_thread(self.scripts_for, account)
        if sequence is None:
            return None
        found, broken = sequence
        if broken is not None:
            log.warning("sieve: <%s>: script failed to compile, message kept: %s", recipient, broken)
            if not found:
                return Plan(stores=[("INBOX", (), False, None)])
        folders = await list_folders() if any("mailboxexists" in s.uses for s in found) else None
        plan = await self._run(found, account, sender, recipient, content, folders)
        plan.folders = folders
        return plan

    async def _run(self, found: list[Script], account: Account, sender: str, recipient: str, content: bytes,
                   folders: frozenset[str] | None) -> Plan:
        if any({"duplicate", "vacation", "include"} & s.uses for s in found):
            seen = await asyncio.to_thread(SeenRecord, account.maildir, self.clock.time())
        else:  # nothing in these scripts reads or writes the record: leave the file alone
            seen = SeenRecord(account.maildir, self.clock.time(), load=False)
        msg = SieveMessage.parse(content)
        original_fields = msg.fields
        ctx = Context(
            Envelope(sender, recipient), now=datetime.fromtimestamp(self.clock.time(), UTC),
            zone=datetime.now().astimezone().tzinfo or UTC, delimiter=self.delimiter,
            mailbox_exists=lambda n: folders is not None and n in folders,
            duplicate_seen=seen.seen, include=lambda loc, name: self._include(account, loc, name),
            max_actions=self.max_actions, max_redirects=self.max_redirects,
            vacation_period=self.vacation_period, duplicate_period=self.duplicate_period,
        )
        try:
            result = run_scripts(found, msg, ctx)
        except Exception:  # a bug of ours must not lose or hold up the mail: keep it
            log.exception("sieve: <%s>: internal error, message kept", recipient)
            result = Result([Action("keep", "INBOX", implicit=True)], error="internal error")
        if result.error is not None:
            log.warning("sieve: <%s>: script failed, message kept: %s", recipient, result.error)
        for key, seconds, last in result.duplicates:
            seen.mark(key, seconds, extend=last)
        plan = Plan(result=result)
        for action in result.actions:
            await self._act(plan, action, account, sender, recipient, msg, original_fields, seen)
        if seen.changed:
            await asyncio.to_thread(seen.save)
        if not plan.stores and plan.reject is None:
            log.info("sieve: <%s>: not stored (discard, or only redirected)", recipient)
        return plan

    def _include(self, account: Account, location: str, name: str) -> Script | None:
        path = include_path(account.maildir, self.global_dir, location, name)
        loaded = self.cache.load(path) if path else None
        return loaded.script if loaded is not None else None

    async def _act(self, plan: Plan, a: Action, account: Account, sender: str, recipient: str,
                   msg: SieveMessage, original: list[tuple[str, str]], seen: SeenRecord) -> None:
        edited = None if a.fields is None or a.fields is original else _render(msg, a.fields)
        if a.stores:
            plan.stores.append((a.target, a.flags, a.create, edited))
            log.info("sieve: <%s>: %s", recipient, "implicit keep" if a.implicit else f"{a.kind} {a.target!r}")
        elif a.kind in ("reject", "ereject"):
            plan.reject = a.reason.strip() or "rejected by the recipient's filter"
            log.info("sieve: <%s>: %s %r", recipient, a.kind, plan.reject[:80])
        elif a.kind == "redirect":  # the message as it was when the script redirected it
            await self._redirect(a.target, sender, recipient, msg.content if edited is None else edited)
        elif a.kind == "vacation" and a.vacation is not None:
            await self._vacation(a.vacation, account, sender, recipient, msg, seen)
        elif a.kind == "notify" and a.notify is not None:
            await self._notify(a.notify, sender, recipient, msg)

    async def _submit(self, sender: str, rcpts: list[str], data: bytes, what: str, recipient: str) -> None:
        if self.outbox is None:
            raise TemporaryFailure("the queue is not ready for generated mail")
        qid = await self.outbox.submit_generated(sender, rcpts, data)
        log.info("sieve: <%s>: %s to <%s>%s", recipient, what, ">, <".join(rcpts),
                 f" queued as {qid}" if qid else " stopped by the pipeline")

    async def _redirect(self, to: str, sender: str, recipient: str, content: bytes) -> None:
        env_from = recipient if self.redirect_from == "recipient" else sender
        body = _strip_return_path(content)
        await self._submit(env_from, [to], body, "redirect", recipient)

    async def _vacation(self, v: Vacation, account: Account, sender: str, recipient: str, msg: SieveMessage,
                        seen: SeenRecord) -> None:
        headers = parse_headers(msg.render())
        own = [recipient, account.username, *v.addresses]
        why = header_refusal(headers) or sender_refusal(sender, own)
        mine = {a.lower() for a in own}
        if why is None and not mine & set(recipients_in_headers(headers, RESENT)):
            why = "not among the To/Cc/Bcc recipients"  # RFC 5230 §4.5
        key = "vacation:" + hashlib.sha256(f"{v.handle}\0{sender.lower()}".encode(
            "utf-8", "surrogateescape")).hexdigest()
        if why is None and seen.seen(key):
            why = "already answered"
        if why is not None:
            log.info("sieve: <%s>: no vacation reply to <%s>: %s", recipient, sender, why)
            return
        if v.seconds:
            seen.mark(key, v.seconds)
        original_subject = msg.values("subject")
        subject = v.subject or "Auto: " + (original_subject[0] if original_subject else "")
        name, from_ = email.utils.parseaddr(v.from_) if v.from_ else ("", recipient)
        msgid = email.utils.make_msgid("sieve", domain=self.hostname or None).strip("<>")
        reply = Reply(sender=from_ or recipient, to=sender, subject=subject, body="" if v.mime else v.reason,
                      from_name=name)
        data = compose_reply(reply, headers, hostname=self.hostname, now=self.clock.time(), message_id=msgid)
        if v.mime:
            data = _with_mime_body(data, v.reason)
        await self._submit("", [sender], data, "vacation reply", recipient)

    async def _notify(self, n: Notify, sender: str, recipient: str, msg: SieveMessage) -> None:
        auto = [v for v in msg.values("auto-submitted") if v.strip().lower() != "no"]
        to = mailto_recipients(n.method) or []
        if auto or not to:
            log.info("sieve: <%s>: no notification: %s", recipient, "automatic mail" if auto else "no recipient")
            return
        subject = printable(n.message or f"[SIEVE] New mail from {sender or 'MAILER-DAEMON'}")
        head = (f"From: {n.from_ or recipient}\nTo: {', '.join(to)}\nSubject: {' '.join(subject.split())}\n"
                f"Date: {email.utils.formatdate(self.clock.time(), localtime=True)}\n"
                f"Message-ID: {email.utils.make_msgid('sieve', domain=self.hostname or None)}\n"
                "Auto-Submitted: auto-notified\nPrecedence: bulk\nMIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
        original_subject = (msg.values("subject") or [""])[0]
        body = f"New mail for {recipient} from {sender or '<>'}: {original_subject}\n"
        await self._submit("", to, (head + body).encode("utf-8", "replace"), "notification", recipient)


def _render(msg: SieveMessage, fields: list[tuple[str, str]]) -> bytes:
    return SieveMessage(msg.content, fields, msg.body_offset).render()


def _strip_return_path(content: bytes) -> bytes:
    """A redirected message leaves without our Return-Path (the next delivery adds its own)."""
    if content[:12].lower() == b"return-path:":
        return content[content.find(b"\n") + 1:]
    return content


def _with_mime_body(reply: bytes, entity: str) -> bytes:
    """RFC 5230 §5.8 ``:mime``: the reason is a MIME entity (its own header and body)."""
    end = reply.find(b"\n\n")
    head = [line for line in reply[:end].split(b"\n")
            if not line.lower().startswith((b"content-type:", b"content-transfer-encoding:", b"mime-version:"))]
    entity = entity.replace("\r\n", "\n")
    return b"\n".join(head) + b"\nMIME-Version: 1.0\n" + entity.encode("utf-8") + (
        b"" if entity.endswith("\n") else b"\n")

