"""The quota-status policy service (Dovecot's ``quota-status -p postfix``): Postfix's
``check_policy_service`` asks whether a recipient's mailbox has room and gets an action.

Implementation notes
- Postfix's policy delegation protocol (SMTPD_POLICY_README): ``name=value`` lines ended by an
  empty line; the answer is ``action=…`` and an empty line. One connection carries many requests.
- A recipient in a domain that is not ours gets ``DUNNO`` (Dovecot answers "no user", so a
  policy check placed after permit_sasl_authenticated would refuse what users send out).
- The recipient is looked up as a mailbox; when it is none, its aliases are resolved and one
  that ends in exactly one local mailbox is checked as that mailbox (Dovecot answers "no user"
  for every alias; the alias list stays the delivery's to check when it fans out).
- "Full" is the store's rule (``QuotaUsage.has_room``): the message's ``size`` (0 at RCPT unless
  the client sent SIZE=) does not fit, or the mailbox is at its limit already. A message larger
  than the whole quota gets ``quota_status_toolarge``.
- Over TCP only mynetworks may ask (the answers tell which users exist).
- A lookup that fails is answered with ``DEFER_IF_PERMIT`` (a temporary failure, never a
  rejection), bad input closes the connection (Postfix then applies its default action).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymailsrv.config.settings import Settings
from pymailsrv.db.base import Directory
from pymailsrv.dovecot import client_allowed
from pymailsrv.errors import TemporaryFailure
from pymailsrv.log import escape_for_log, get_logger
from pymailsrv.net.conn import Connection, ConnectionClosed, LineTooLong
from pymailsrv.net.networks import Network
from pymailsrv.store.base import MailStore
from pymailsrv.types import Account

log = get_logger("quota-status")

MAX_LINE = 8192
MAX_ATTRIBUTES = 100
LOOKUP_FAILED = "DEFER_IF_PERMIT Temporary lookup failure"


@dataclass(frozen=True, slots=True)
class QuotaStatusOptions:
    success: str = "DUNNO"
    nouser: str = "REJECT Unknown user"
    overquota: str = "552 5.2.2 Mailbox is full"
    toolarge: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> QuotaStatusOptions:
        return cls(settings.get_str("quota_status_success"), settings.get_str("quota_status_nouser"),
                   settings.get_str("quota_status_overquota"), settings.get_str("quota_status_toolarge"))


class BadRequest(ValueError):
    pass


def parse_request(lines: list[bytes]) -> dict[str, str]:
    """The attribute lines of one request (without the empty line) → name → value."""
    attrs: dict[str, str] = {}
    for raw in lines:
        text = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        name, eq, value = text.partition("=")
        if not eq or not name:
            raise BadRequest("not a name=value line")
        attrs[name] = value
    return attrs


class QuotaStatusServer:
    def __init__(self, directory: Directory, store: MailStore, options: QuotaStatusOptions,
                 clients: Sequence[Network] = ()) -> None:
        self.directory = directory
        self.store = store
        self.options = options
        self.clients = tuple(clients)  # who may connect over TCP (mynetworks)

    async def handle(self, conn: Connection) -> None:
        if not client_allowed(conn, self.clients, "quota-status"):
            return
        try:
            while True:
                lines: list[bytes] = []
                while (line := await conn.read_line(MAX_LINE)).strip(b"\r\n"):
                    lines.append(line)
                    if len(lines) > MAX_ATTRIBUTES:
                        raise BadRequest("too many attributes")
                action = await self.decide(parse_request(lines))
                conn.write(f"action={action}\n\n".encode())
                await conn.drain()
        except (ConnectionClosed, ConnectionError):
            return
        except (LineTooLong, BadRequest) as exc:
            log.warning("disconnecting client: bad request: %s", exc)

    async def decide(self, attrs: dict[str, str]) -> str:
        """The action for one request."""
        recipient = attrs.get("recipient", "")
        if attrs.get("request") != "smtpd_access_policy" or not recipient:
            return "DUNNO"
        size_text = attrs.get("size", "0")
        size = int(size_text) if size_text.isdigit() and len(size_text) < 20 else 0
        try:
            if not await self.directory.is_local_domain(recipient.rpartition("@")[2]):
                return "DUNNO"  # mail relayed for a client allowed to: no mailbox of ours to judge
            account = await self._account(recipient)
            if account is None:
                action = self.options.nouser
            elif not account.quota_bytes:
                action = self.options.success
            else:
                action = await self._quota_action(account, size)
        except (TemporaryFailure, OSError):
            log.warning("recipient=<%s>: lookup failed", escape_for_log(recipient))
            return LOOKUP_FAILED
        log.info("recipient=<%s>, size=%d: %s", escape_for_log(recipient), size, action)
        return action

    async def _account(self, recipient: str) -> Account | None:
        account = await self.directory.mailbox(recipient)
        if account is not None:
            return account
        finals = await self.directory.resolve(recipient)
        if not finals or [f.lower() for f in finals] == [recipient.lower()]:
            return None
        if len(finals) == 1:
            account = await self.directory.mailbox(finals[0])
            if account is not None:
                return account
        # an alias to several addresses, or to one elsewhere: not ours to judge here (no quota)
        return Account(recipient, "")

    async def _quota_action(self, account: Account, size: int) -> str:
        usage = await self.store.quota(account)
        if usage.has_room(size):
            return self.options.success
        if size > usage.bytes_limit > 0:
            return self.options.toolarge or self.options.overquota
        return self.options.overquota
