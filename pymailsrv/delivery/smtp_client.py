"""The outbound SMTP/LMTP client (Postfix's smtp(8)): MX lookup, relayhost, STARTTLS, AUTH,
PIPELINING, connection reuse, per-recipient results.

Implementation notes:
- Next hop ``[host]:port`` (relayhost, transport_maps, content_filter) skips the MX lookup. A
  next hop that is just the recipients' domain never connects to an address in
  smtp_deny_networks (default: loopback and private ranges), so a mis-route cannot loop to us;
  one the configuration names (bracketed, or a host other than the recipients' domain) may.
- 4xx → deferred, 5xx → bounced, per recipient; a failure before RCPT applies to all of them.
  Connection-level failures try the next MX host and end in "deferred".
- TLS: ``may`` upgrades when STARTTLS is offered (no certificate verification, as Postfix);
  ``encrypt`` defers unless the upgrade succeeds.
- An idle session is kept per (address, port) for reuse and closed after a few seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from pymailsrv.config.settings import Settings
from pymailsrv.config.tls import client_context
from pymailsrv.delivery.base import DeliveryResult, DsnOptions, Outcome
from pymailsrv.delivery.dns import MxResolver, NoSuchDomain, NullMX
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.log import get_logger
from pymailsrv.message.lines import dot_stuff, to_crlf
from pymailsrv.net.networks import in_networks, parse_networks

log = get_logger("smtp")

PasswordLookup = Callable[[str], Awaitable[str | None]]
_ENH = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_MAX_LINE = 8192
IDLE_SECONDS = 5.0


class SessionError(Exception):
    """The session broke (connect, timeout, lost connection, bad greeting): try the next host."""

    def __init__(self, text: str, dsn: str = "4.4.2", permanent: bool = False) -> None:
        super().__init__(text)
        self.text = text
        self.dsn = dsn
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    def dsn(self) -> str:
        m = _ENH.match(self.lines[0] if self.lines else "")
        if m and m.group(1) == str(self.code)[0]:
            return m.group(0)
        return f"{str(self.code)[0]}.0.0"

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


@dataclass(slots=True)
class Session:
    host: str
    ip: str
    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    features: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    last_used: float = 0.0
    reused: bool = False
    greeting_name: str = ""  # the first word of the EHLO reply: the peer's own name
    dirty: bool = False  # a transaction was left open (needs RSET before the next one)

    @property
    def relay(self) -> str:
        if self.port == 0:
            return f"{self.host}[{self.ip}]"
        return f"{self.host}[{self.ip}]:{self.port}"

    async def read_reply(self, timeout: float) -> Reply:
        lines: list[str] = []
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), timeout)
            except TimeoutError:
                raise SessionError(f"conversation with {self.host}[{self.ip}] timed out") from None
            except (OSError, ValueError) as exc:
                raise SessionError(f"lost connection with {self.host}[{self.ip}]: {exc}") from None
            if not raw:
                raise SessionError(f"lost connection with {self.host}[{self.ip}]")
            line = raw[:_MAX_LINE].decode("utf-8", "replace").rstrip("\r\n")
            if len(line) < 3 or not line[:3].isdigit():
                raise SessionError(f"malformed reply from {self.host}[{self.ip}]: {line[:60]}")
            lines.append(line[4:])
            if len(line) == 3 or line[3] != "-":
                return Reply(int(line[:3]), tuple(lines))

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def flush(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.writer.drain(), timeout)
        except TimeoutError:
            raise SessionError(f"conversation with {self.host}[{self.ip}] timed out while sending") from None
        except OSError as exc:
            raise SessionError(f"lost connection with {self.host}[{self.ip}]: {exc}") from None

    async def command(self, line: str, timeout: float) -> Reply:
        self.send(line.encode("utf-8") + b"\r\n")
        await self.flush(timeout)
        return await self.read_reply(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


def data_payload(content: bytes) -> bytes:
    """What follows DATA's 354: CRLF line ends, leading dots doubled, then ``.`` CRLF
    (RFC 5321 §4.5.2). A lone CR is sent as it is, never as a line end (message/lines.py)."""
    return dot_stuff(to_crlf(content)) + b".\r\n"


def parse_nexthop(nexthop: str, default_port: int) -> tuple[str, int, bool]:
    """``[host]:port`` → (host, port, no MX); ``host:port`` / ``host`` → MX lookup."""
    text = nexthop.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default_port
        return host, port, True
    host, sep, port_text = text.rpartition(":")
    if sep and port_text.isdigit() and ":" not in host:
        return host, int(port_text), False
    return text, default_port, False


def xtext(text: str) -> str:
    """RFC 3461 §4: "+" followed by two hex digits for "+", "=", controls and non-ASCII."""
    out = []
    for b in text.encode("utf-8"):
        out.append(f"+{b:02X}" if b < 33 or b > 126 or b in (0x2B, 0x3D) else chr(b))
    return "".join(out)


def _rcpt_params(s: Session, dsn: DsnOptions | None, i: int) -> str:
    if not dsn or "DSN" not in s.features:
        return ""
    params = ""
    if i < len(dsn.notify) and dsn.notify[i]:
        params += " NOTIFY=" + ",".join(dsn.notify[i])  # RFC 3461 §4.1
    if i < len(dsn.orcpt) and dsn.orcpt[i]:
        kind, _, addr = dsn.orcpt[i].partition(";")
        params += f" ORCPT={kind.strip() or 'rfc822'};{xtext(addr.strip())}"  # RFC 3461 §4.2
    return params


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class SmtpClient:
    """Implements the ``deliver_to`` the AgentTable calls for ``smtp:`` and ``lmtp:`` routes."""

    def __init__(self, settings: Settings, mx: MxResolver, *, hostname: str | None = None,
                 passwords: PasswordLookup | None = None, tls_context: ssl.SSLContext | None = None) -> None:
        self.mx = mx
        self.hostname = hostname or settings.expanded("myhostname")
        self.passwords = passwords
        self.port = settings.get_int("smtp_port")
        self.connect_timeout = settings.get_seconds("smtp_connect_timeout")
        self.helo_timeout = settings.get_seconds("smtp_helo_timeout")
        self.data_timeout = settings.get_seconds("smtp_data_done_timeout")
        self.tls_level = settings.get_str("smtp_tls_security_level")
        self.tls_context = tls_context or client_context()
        self.deny, bad = parse_networks(settings.get_list("smtp_deny_networks"))
        if bad:  # a deny list with a hole in it is worse than no start
            raise ConfigError(f'smtp_deny_networks: "{bad[0]}" is not a network or address')
        self._idle: dict[tuple[str, str, int], list[Session]] = {}
        self._reaper: asyncio.Task[None] | None = None

    # --- public ---------------------------------------------------------------------------------
    async def deliver_to(self, nexthop: str, sender: str, recipients: Sequence[str], content: bytes,
                         *, lmtp: bool = False, dsn: DsnOptions | None = None) -> list[DeliveryResult]:
        if nexthop.startswith("unix:"):  # lmtp:unix:/path (Dovecot's LMTP socket)
            path = nexthop[5:]
            try:
                return await self._deliver_via("localhost", path, 0, sender, recipients, content, lmtp, dsn)
            except SessionError as exc:
                return self._all(recipients, "bounced" if exc.permanent else "deferred", exc.dsn, exc.text)
        host, port, bracketed = parse_nexthop(nexthop, 24 if lmtp else self.port)
        # a next hop the configuration names (relayhost, transport) may be a private address;
        # one that is just the recipients' domain may not
        named = bracketed or all(r.rpartition("@")[2].lower() != host.lower() for r in recipients)
        try:
            targets = await self._targets(host, port, bracketed, named)
        except NullMX:
            return self._all(recipients, "bounced", "5.1.10",
                             f"Host or domain name not found. Domain {host} does not accept mail (nullMX)")
        except NoSuchDomain:
            return self._all(recipients, "bounced", "5.4.4",
                             f"Host or domain name not found. Name service error for name={host} type=MX: "
                             "Host not found")
        except TemporaryFailure as exc:
            return self._all(recipients, "deferred", "4.4.3", f"Host or domain name not found. {exc}")
        if not targets:
            return self._all(recipients, "deferred", "4.4.1",
                             f"delivery to {host} refused: every address is in smtp_deny_networks")
        last = SessionError(f"connect to {host}: no usable address", "4.4.1")
        for mxhost, ip in targets:
            try:
                return await self._deliver_via(mxhost, ip, port, sender, recipients, content, lmtp, dsn)
            except SessionError as exc:
                last = exc
                log.debug("%s", exc.text)
        outcome: Outcome = "bounced" if last.permanent else "deferred"
        return self._all(recipients, outcome, last.dsn, last.text)

    async def close(self) -> None:
        for sessions in self._idle.values():
            for s in sessions:
                with contextlib.suppress(Exception):
                    s.send(b"QUIT\r\n")
                s.close()
        self._idle.clear()
        if self._reaper:
            self._reaper.cancel()

    # --- targets --------------------------------------------------------------------------------
    async def _targets(self, host: str, port: int, explicit: bool, named: bool) -> list[tuple[str, str]]:
        hosts = [host] if explicit else await self.mx.mx_hosts(host)
        out: list[tuple[str, str]] = []
        found = 0
        for h in hosts:
            ips = [h] if _is_ip(h) else await self.mx.addresses(h)
            found += len(ips)
            out += [(h, ip) for ip in ips if named or not self._denied(ip)]
        if not found:
            if hosts == [host]:  # implicit MX without addresses: the name has no mail host
                raise NoSuchDomain(host)
            raise TemporaryFailure(f"no address records for the MX hosts of {host}")
        return out

    def _denied(self, ip: str) -> bool:
        return in_networks(ip, self.deny)

    @staticmethod
    def _all(recipients: Sequence[str], outcome: Outcome, dsn: str, text: str,
             relay: str = "none") -> list[DeliveryResult]:
        return [DeliveryResult(r, outcome, dsn, text, relay) for r in recipients]

    # --- sessions -------------------------------------------------------------------------------
    async def _session(self, host: str, ip: str, port: int, lmtp: bool) -> Session:
        pool = self._idle.get((host, ip, port))
        while pool:
            s = pool.pop()
            if time.monotonic() - s.last_used < IDLE_SECONDS and not s.reader.at_eof():
                s.reused = True
                if not s.dirty:  # after a completed transaction the server is ready for MAIL
                    return s
                try:
                    reply = await s.command("RSET", self.helo_timeout)
                    if reply.code == 250:
                        s.dirty = False
                        return s
                except SessionError:
                    pass
            s.close()
        return await self._connect(host, ip, port, lmtp)

    async def _connect(self, host: str, ip: str, port: int, lmtp: bool) -> Session:
        try:
            opening = (asyncio.open_unix_connection(ip, limit=65536) if port == 0
                       else asyncio.open_connection(ip, port, limit=65536))
            reader, writer = await asyncio.wait_for(opening, self.connect_timeout)
        except TimeoutError:
            raise SessionError(f"connect to {host}[{ip}]:{port}: Connection timed out", "4.4.1") from None
        except OSError as exc:
            raise SessionError(f"connect to {host}[{ip}]:{port}: {exc.strerror or exc}", "4.4.1") from None
        s = Session(host, ip, port, reader, writer)
        try:
            greeting = await s.read_reply(self.helo_timeout)
            if greeting.code != 220:
                raise SessionError(f"host {s.relay} refused to talk to me: {greeting}", greeting.dsn(),
                                   permanent=greeting.code >= 500)
            await self._hello(s, lmtp)
            if not lmtp and s.greeting_name.lower() == self.hostname.lower():
                # Postfix: the peer calls itself by our name, so this is us (a mis-routed MX)
                raise SessionError(f"mail for {host} loops back to myself", "5.4.6", permanent=True)
            if "STARTTLS" in s.features and self.tls_level != "none":
                await self._starttls(s, lmtp)
            elif self.tls_level == "encrypt":
                raise SessionError(f"TLS is required, but was not offered by host {s.relay}", "4.7.4")
        except BaseException:
            s.close()
            raise
        return s

    async def _hello(self, s: Session, lmtp: bool) -> None:
        verb = "LHLO" if lmtp else "EHLO"
        reply = await s.command(f"{verb} {self.hostname}", self.helo_timeout)
        if reply.code != 250 and not lmtp:
            reply = await s.command(f"HELO {self.hostname}", self.helo_timeout)
        if reply.code != 250:
            raise SessionError(f"host {s.relay} refused to talk to me: {reply} (in reply to {verb} command)",
                               reply.dsn(), permanent=reply.code >= 500)
        s.features = {}
        s.greeting_name = reply.lines[0].split(" ", 1)[0] if reply.lines else ""
        for line in reply.lines[1:]:
            word, _, arg = line.partition(" ")
            s.features[word.upper()] = arg

    async def _starttls(self, s: Session, lmtp: bool) -> None:
        reply = await s.command("STARTTLS", self.helo_timeout)
        if reply.code != 220:
            if self.tls_level == "encrypt":
                raise SessionError(f"TLS is required, but host {s.relay} refused STARTTLS: {reply}", "4.7.4")
            return
        try:
            await asyncio.wait_for(s.writer.start_tls(self.tls_context, server_hostname=s.host),
                                   self.helo_timeout)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise SessionError(f"Cannot start TLS: handshake failure with {s.relay}: {exc}", "4.7.5") from None
        s.tls = True
        await self._hello(s, lmtp)  # RFC 3207 §4.2: forget what was learned before TLS

    async def _auth(self, s: Session, nexthop_host: str) -> None:
        if self.passwords is None or "AUTH" not in s.features:
            return
        cred = None
        for key in (f"[{nexthop_host}]:{s.port}", f"[{nexthop_host}]", f"{nexthop_host}:{s.port}", nexthop_host):
            cred = await self.passwords(key)
            if cred:
                break
        if not cred:
            return
        user, _, password = cred.partition(":")
        mechanisms = s.features.get("AUTH", "").upper().split()
        if "PLAIN" not in mechanisms and "LOGIN" in mechanisms:
            reply = await s.command("AUTH LOGIN", self.helo_timeout)
            for value in (user, password):
                if reply.code != 334:
                    break
                reply = await s.command(base64.b64encode(value.encode()).decode(), self.helo_timeout)
        else:  # RFC 4616
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            reply = await s.command(f"AUTH PLAIN {token}", self.helo_timeout)
        if reply.code != 235:
            raise SessionError(f"SASL authentication failed; server {s.relay} said: {reply}", reply.dsn(),
                               permanent=False)

    def _release(self, s: Session) -> None:
        s.last_used = time.monotonic()
        self._idle.setdefault((s.host, s.ip, s.port), []).append(s)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        while self._idle:
            await asyncio.sleep(IDLE_SECONDS)
            now = time.monotonic()
            for key, sessions in list(self._idle.items()):
                keep = []
                for s in sessions:
                    if now - s.last_used >= IDLE_SECONDS:
                        with contextlib.suppress(Exception):
                            s.send(b"QUIT\r\n")
                        s.close()
                    else:
                        keep.append(s)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]

    # --- one transaction ------------------------------------------------------------------------
    async def _deliver_via(self, host: str, ip: str, port: int, sender: str, recipients: Sequence[str],
                           content: bytes, lmtp: bool, dsn: DsnOptions | None = None) -> list[DeliveryResult]:
        s = await self._session(host, ip, port, lmtp)
        try:
            if not s.reused:
                await self._auth(s, host)
            results = await self._transaction(s, sender, recipients, content, lmtp, dsn)
        except SessionError:
            s.close()
            if not s.reused:
                raise
            # a cached connection the server had already dropped: once more on a fresh one
            s = await self._connect(host, ip, port, lmtp)
            try:
                await self._auth(s, host)
                results = await self._transaction(s, sender, recipients, content, lmtp, dsn)
            except BaseException:
                s.close()
                raise
        except BaseException:
            s.close()
            raise
        self._release(s)
        return results

    def _mail_params(self, s: Session, sender: str, recipients: Sequence[str], content: bytes,
                     dsn: DsnOptions | None) -> str:
        params = ""
        if dsn and "DSN" in s.features:  # RFC 3461 §4.3, §4.4
            if dsn.ret:
                params += f" RET={dsn.ret}"
            if dsn.envid:
                params += f" ENVID={xtext(dsn.envid)}"
        if "SIZE" in s.features:
            params += f" SIZE={len(content)}"
        if not content.isascii() and "8BITMIME" in s.features:
            params += " BODY=8BITMIME"
        if (not sender.isascii() or any(not r.isascii() for r in recipients)) and "SMTPUTF8" in s.features:
            params += " SMTPUTF8"
        return params

    async def _transaction(self, s: Session, sender: str, recipients: Sequence[str], content: bytes,
                           lmtp: bool, dsn: DsnOptions | None = None) -> list[DeliveryResult]:
        if (not sender.isascii() or any(not r.isascii() for r in recipients)) and "SMTPUTF8" not in s.features:
            return self._all(recipients, "bounced", "5.6.7",
                             f"SMTPUTF8 is required, but was not offered by host {s.relay}", s.relay)
        limit = s.features.get("SIZE", "")
        if limit.isdigit() and 0 < int(limit) < len(content):  # RFC 1870 §4
            return self._all(recipients, "bounced", "5.3.4",
                             f"message size {len(content)} exceeds size limit {limit} of server {s.relay}",
                             s.relay)
        t = self.helo_timeout
        s.dirty = True
        mail = f"MAIL FROM:<{sender}>{self._mail_params(s, sender, recipients, content, dsn)}"
        rcpts = [f"RCPT TO:<{r}>{_rcpt_params(s, dsn, i)}" for i, r in enumerate(recipients)]
        if "PIPELINING" in s.features:  # RFC 2920 §3.1: DATA ends the group
            s.send("\r\n".join([mail, *rcpts, "DATA"]).encode() + b"\r\n")
            await s.flush(t)
            mail_reply = await s.read_reply(t)
            rcpt_replies = [await s.read_reply(t) for _ in rcpts]
            data_reply: Reply | None = await s.read_reply(t)
        else:
            mail_reply = await s.command(mail, t)
            rcpt_replies = []
            data_reply = None
            if mail_reply.code == 250:
                rcpt_replies = [await s.command(line, t) for line in rcpts]
                if any(r.code == 250 or r.code == 251 for r in rcpt_replies):
                    data_reply = await s.command("DATA", t)
        if mail_reply.code != 250:
            if data_reply is not None and data_reply.code == 354:
                await self._abort_data(s)
            return self._refused(s, recipients, mail_reply, "MAIL FROM")
        results: dict[int, DeliveryResult] = {}
        accepted: list[int] = []
        for i, (r, reply) in enumerate(zip(recipients, rcpt_replies, strict=True)):
            if reply.code in (250, 251):
                accepted.append(i)
            else:
                results[i] = self._refused(s, [r], reply, "RCPT TO")[0]
        if not accepted:
            if data_reply is not None and data_reply.code == 354:
                await self._abort_data(s)
            return [results[i] for i in range(len(recipients))]
        assert data_reply is not None
        if data_reply.code != 354:
            for i in accepted:
                results[i] = self._refused(s, [recipients[i]], data_reply, "DATA")[0]
            return [results[i] for i in range(len(recipients))]
        s.send(data_payload(content))
        await s.flush(self.data_timeout)
        finals = [await s.read_reply(self.data_timeout) for _ in (accepted if lmtp else [0])]
        s.dirty = False
        for n, i in enumerate(accepted):
            reply = finals[n if lmtp else 0]
            if reply.code == 250:
                results[i] = DeliveryResult(recipients[i], "sent", reply.dsn(), str(reply), s.relay)
            else:
                results[i] = self._refused(s, [recipients[i]], reply, "end of DATA")[0]
        return [results[i] for i in range(len(recipients))]

    async def _abort_data(self, s: Session) -> None:
        s.send(b".\r\n")
        await s.flush(self.helo_timeout)
        await s.read_reply(self.data_timeout)

    def _refused(self, s: Session, recipients: Sequence[str], reply: Reply, stage: str) -> list[DeliveryResult]:
        outcome: Outcome = "bounced" if reply.code >= 500 else "deferred"
        text = f"host {s.relay} said: {reply} (in reply to {stage} command)"
        return self._all(recipients, outcome, reply.dsn(), text, s.relay)
