"""The credential layer seen from SMTP, IMAP and POP3 alike, over real sockets: one authzid rule,
one plaintext rule, one escaping of user names in the log, one throttle that slows the guessing
address and lets the owner in. The servers are started as ``pymailsrv serve`` starts them
(app.start_smtp / start_imap / start_pop3) around the real Authenticator over a dict of users."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pymailsrv.app import start_imap, start_pop3, start_smtp
from pymailsrv.auth.memory import MemoryAuthenticator
from pymailsrv.clock import SystemClock
from pymailsrv.store.memory import MemoryStore
from tests.fakes import LineClient
from tests.smtp.conftest import MemoryQueue, TinyRestrictions

T = TypeVar("T")
PROTOCOLS = ("smtp", "imap", "pop3")
ALICE, BOB = "alice@example.test", "bob@example.test"
PASSWORDS = {ALICE: "alice-pw", BOB: "bob-pw"}
FORGED = "nobody\r\nDec  3 04:15:02 mx pymailsrv/imap-login[1]: Login: user=<alice@example.test>, rip=192.0.2.7"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    return b64(f"{authzid}\0{user}\0{password}")


def other_local_address() -> str:
    """An address of this machine that is not loopback: a client connecting from it to a server
    on 127.0.0.1 is neither loopback nor the address it connected to (not "the same host")."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            pytest.skip("no route off this machine")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("this machine has no address besides loopback")
    return address


class RecordingClock(SystemClock):
    """The real clock, remembering every wait the Authenticator asks of it."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        await super().sleep(seconds)


# --- one client dialogue per protocol: offered mechanisms, AUTH PLAIN, the plaintext login --------
Outcome = str  # "ok", "failed", "unavailable" (try later) or "privacy" (plaintext refused here)


class Dialogue:
    def __init__(self, port: int, source: str) -> None:
        self.c = LineClient(port, source=source)

    def text(self) -> str:
        return self.c.line().decode("utf-8", "replace")

    def close(self) -> None:
        self.c.close()


class SmtpDialogue(Dialogue):
    OUTCOMES = {"235": "ok", "535": "failed", "454": "unavailable", "503": "privacy"}

    def __init__(self, port: int, source: str) -> None:
        super().__init__(port, source)
        assert self.text().startswith("220 ")
        self.ehlo = self.command("EHLO client.test")

    def command(self, line: str) -> list[str]:
        self.c.send(line)
        lines = [self.text()]
        while lines[-1][3:4] == "-":
            lines.append(self.text())
        return lines

    def mechanisms(self) -> list[str]:
        return next((line[9:].split() for line in self.ehlo if line[4:9] == "AUTH "), [])

    def starttls(self, ctx: ssl.SSLContext) -> None:
        assert self.command("STARTTLS")[0].startswith("220 ")
        self.c.starttls(ctx)
        self.ehlo = self.command("EHLO client.test")

    def plain(self, response: str) -> Outcome:
        return self.OUTCOMES[self.command(f"AUTH PLAIN {response}")[-1][:3]]

    def login(self, user: str, password: str) -> Outcome:
        reply = self.command(f"AUTH LOGIN {b64(user)}")[-1]
        if reply.startswith("334 "):
            reply = self.command(b64(password))[-1]
        return self.OUTCOMES[reply[:3]]


class ImapDialogue(Dialogue):
    def __init__(self, port: int, source: str) -> None:
        super().__init__(port, source)
        greeting = self.text()
        assert greeting.startswith("* OK [CAPABILITY ")
        self.caps = greeting.split("]")[0].split()[3:]

    def tagged(self, tag: str) -> str:
        while not (line := self.text()).startswith(tag + " "):
            pass
        return line

    def outcome(self, tag: str) -> Outcome:
        line = self.tagged(tag)
        if line.startswith(f"{tag} OK"):
            return "ok"
        codes = {"[AUTHENTICATIONFAILED]": "failed", "[UNAVAILABLE]": "unavailable",
                 "[PRIVACYREQUIRED]": "privacy"}
        return codes[line.split()[2]]

    def mechanisms(self) -> list[str]:
        return [cap[5:] for cap in self.caps if cap.startswith("AUTH=")]

    def starttls(self, ctx: ssl.SSLContext) -> None:
        self.c.send("s STARTTLS")
        assert self.tagged("s").startswith("s OK")
        self.c.starttls(ctx)
        self.c.send("c CAPABILITY")
        self.caps = self.text().split()[2:]
        self.tagged("c")

    def plain(self, response: str) -> Outcome:
        self.c.send(f"p AUTHENTICATE PLAIN {response}")
        return self.outcome("p")

    def login(self, user: str, password: str) -> Outcome:
        """LOGIN with literals (LITERAL+): a user name may hold any byte, CR LF included."""
        name, secret = user.encode(), password.encode()
        self.c.send(b"l LOGIN {%d+}\r\n%s {%d+}\r\n%s" % (len(name), name, len(secret), secret))
        return self.outcome("l")


class Pop3Dialogue(Dialogue):
    def __init__(self, port: int, source: str) -> None:
        super().__init__(port, source)
        assert self.text().startswith("+OK")

    OUTCOMES = (("+OK", "ok"), ("-ERR [AUTH] Plaintext", "privacy"), ("-ERR [AUTH]", "failed"),
                ("-ERR [SYS/TEMP]", "unavailable"))

    def outcome(self) -> Outcome:
        line = self.text()
        return next(outcome for prefix, outcome in self.OUTCOMES if line.startswith(prefix))

    def mechanisms(self) -> list[str]:
        self.c.send("CAPA")
        assert self.text().startswith("+OK")
        caps = []
        while (line := self.text()) != ".":
            caps.append(line)
        return next((line.split()[1:] for line in caps if line.startswith("SASL ")), [])

    def starttls(self, ctx: ssl.SSLContext) -> None:
        self.c.send("STLS")
        assert self.text().startswith("+OK")
        self.c.starttls(ctx)

    def plain(self, response: str) -> Outcome:
        self.c.send(f"AUTH PLAIN {response}")
        return self.outcome()

    def login(self, user: str, password: str) -> Outcome:
        self.c.send(f"USER {user}")
        if (first := self.outcome()) != "ok":
            return first
        self.c.send(f"PASS {password}")
        return self.outcome()


DIALOGUES: dict[str, type[SmtpDialogue | ImapDialogue | Pop3Dialogue]] = {
    "smtp": SmtpDialogue, "imap": ImapDialogue, "pop3": Pop3Dialogue}


# --- the three servers around one Authenticator ------------------------------------------------------
class Servers:
    def __init__(self, loop: asyncio.AbstractEventLoop, auth: MemoryAuthenticator, clock: RecordingClock) -> None:
        self.loop, self.auth, self.clock = loop, auth, clock
        self.ports: dict[str, int] = {}
        self.stops: list[Callable[[], Coroutine[Any, Any, None]]] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def connect(self, protocol: str, source: str = "127.0.0.1") -> SmtpDialogue | ImapDialogue | Pop3Dialogue:
        return DIALOGUES[protocol](self.ports[protocol], source)


@pytest.fixture
def servers_factory(settings_factory: Callable[..., Any], tmp_path: Path) -> Iterator[Callable[..., Servers]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    made: list[Servers] = []

    def make(**params: str) -> Servers:
        settings = settings_factory(**{
            "smtpd_listen": "127.0.0.1:0", "smtpd_sasl_auth_enable": "yes", "smtpd_error_sleep_time": "0",
            "imap_listen": "127.0.0.1:0", "pop3_listen": "127.0.0.1:0", "auth_failure_delay": "0", **params})
        clock = RecordingClock()
        auth = MemoryAuthenticator({user: "{PLAIN}" + pw for user, pw in PASSWORDS.items()}, settings=settings,
                                   clock=clock)
        servers = Servers(loop, auth, clock)
        made.append(servers)
        (tmp_path / "queue").mkdir(exist_ok=True)

        async def start() -> None:
            store = MemoryStore(SystemClock())
            smtp = await start_smtp(settings, authenticator=auth, restrictions=TinyRestrictions(),
                                    queue=MemoryQueue(tmp_path / "queue"), directory=None)
            servers.ports["smtp"] = smtp[0].port
            for server in smtp:
                servers.stops.append(lambda s=server: _close_smtp(s))
            imap: list[Any] = []
            await start_imap(settings, auth, store, imap)
            servers.ports["imap"] = imap[0].port
            servers.stops.extend(s.close for s in imap)
            pop3 = await start_pop3(settings, auth, store)
            assert pop3 is not None
            servers.ports["pop3"] = pop3.ports[0]
            servers.stops.append(pop3.close)

        servers.run(start())
        return servers

    yield make
    for servers in made:
        for stop in servers.stops:
            servers.run(stop())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


async def _close_smtp(server: Any) -> None:
    server.close()
    await server.wait_closed()


@pytest.fixture
def servers(servers_factory: Callable[..., Servers]) -> Servers:
    return servers_factory()


@pytest.fixture
def auth_lines(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    return lambda: [r.getMessage() for r in caplog.records]


# --- log forging ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("protocol", "how"), [
    ("imap", "login"), ("imap", "plain"), ("pop3", "plain"), ("smtp", "plain"), ("smtp", "login")])
def test_a_user_name_with_cr_lf_is_logged_escaped_on_one_line(servers: Servers, auth_lines: Callable[[], list[str]],
                                                             protocol: str, how: str) -> None:
    c = servers.connect(protocol)
    outcome = c.login(FORGED, "wrong") if how == "login" else c.plain(plain(FORGED, "wrong"))
    assert outcome == "failed"
    c.close()
    lines = [line for line in auth_lines() if "nobody" in line]
    assert len(lines) == 2  # the protocol's "login failed" line and the Authenticator's
    for line in lines:
        assert "\r" not in line and "\n" not in line
        assert "nobody\\015\\012" in line
        assert "<alice@example.test>" not in line and ", rip=192.0.2.7" not in line  # no forged field
    assert any("nobody\\015\\012Dec\\040\\0403\\04004:15:02\\040mx" in line for line in lines)  # as sent


# --- one authzid rule ----------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_authzid_naming_the_login_itself_is_accepted(servers: Servers, protocol: str) -> None:
    c = servers.connect(protocol)
    assert c.plain(plain(ALICE, PASSWORDS[ALICE], authzid=" Alice@EXAMPLE.test")) == "ok"
    c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_any_other_authzid_is_refused(servers: Servers, auth_lines: Callable[[], list[str]], protocol: str) -> None:
    c = servers.connect(protocol)
    assert c.plain(plain(ALICE, PASSWORDS[ALICE], authzid=BOB)) == "failed"  # no master users
    assert c.plain(plain(ALICE, PASSWORDS[ALICE])) == "ok"
    c.close()
    refused = [line for line in auth_lines() if "authorization identity refused" in line]
    assert len(refused) == 1 and ALICE in refused[0] and BOB not in refused[0]


# --- one plaintext rule --------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plaintext_from_the_same_host_is_allowed(servers: Servers, protocol: str) -> None:
    for source in ("127.0.0.1", "127.0.0.2"):
        c = servers.connect(protocol, source)
        assert c.mechanisms() == ["PLAIN", "LOGIN"]
        assert c.login(ALICE, PASSWORDS[ALICE]) == "ok"
        c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plaintext_from_elsewhere_needs_tls(servers: Servers, client_tls: ssl.SSLContext, protocol: str) -> None:
    remote = other_local_address()  # to a server on 127.0.0.1: neither loopback nor the same address
    c = servers.connect(protocol, remote)
    assert c.mechanisms() == []
    assert c.plain(plain(ALICE, PASSWORDS[ALICE])) == "privacy"
    assert c.login(ALICE, PASSWORDS[ALICE]) == "privacy"
    c.starttls(client_tls)
    assert c.mechanisms() == ["PLAIN", "LOGIN"]
    assert c.plain(plain(ALICE, PASSWORDS[ALICE])) == "ok"
    c.close()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plaintext_from_login_trusted_networks(servers_factory: Callable[..., Servers], protocol: str) -> None:
    remote = other_local_address()
    servers = servers_factory(login_trusted_networks=f"{remote}/32")
    c = servers.connect(protocol, remote)
    assert c.mechanisms() == ["PLAIN", "LOGIN"]
    assert c.login(ALICE, PASSWORDS[ALICE]) == "ok"
    c.close()


# --- throttling: the guessing address is slowed, the owner gets in ----------------------------------------
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_many_failures_for_a_user_slow_the_guesser_not_the_owner(servers_factory: Callable[..., Servers],
                                                                 protocol: str) -> None:
    servers = servers_factory(auth_failure_delay="0.05s", auth_failure_limit="3")
    attacker = servers.connect(protocol, "127.0.0.2")
    assert [attacker.plain(plain(ALICE, f"guess{i}")) for i in range(3)] == ["failed"] * 3
    # each failure answered after 0.05 s; each later guess first waited its address's penalty
    assert servers.clock.waits == [0.05, 0.05, 0.05, 0.1, 0.05]
    assert attacker.plain(plain(ALICE, PASSWORDS[ALICE])) == "unavailable"  # no more guesses for alice
    servers.clock.waits.clear()
    owner = servers.connect(protocol, "127.0.0.3")
    assert owner.plain(plain(ALICE, PASSWORDS[ALICE])) == "ok"
    assert servers.clock.waits == []  # at once
    colleague = servers.connect(protocol, "127.0.0.2")  # behind the guesser's address
    assert colleague.plain(plain(BOB, PASSWORDS[BOB])) == "ok"
    assert servers.clock.waits == [0.2]  # slowed by the address's penalty, not refused
    for c in (attacker, owner, colleague):
        c.close()
