"""The vacation agent over in-memory seams: what it tells the queue, what it queues."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Sequence

from pymailsrv.db.base import Vacation
from pymailsrv.delivery.vacation import DELIVERED, VacationAgent
from pymailsrv.errors import TemporaryFailure

PSEUDO = "alice#example.test@autoreply.example.test"
MSG = (b"From: carol@remote.test\r\nTo: alice@example.test\r\nSubject: hi\r\nMessage-ID: <m1@remote.test>\r\n"
       b"\r\nHello\r\n")


class Vacations:
    def __init__(self, away: bool = True, down: bool = False) -> None:
        self.is_away, self.down = away, down
        self.answered: set[str] = set()

    async def away(self, email: str) -> Vacation | None:
        if self.down:
            raise TemporaryFailure("database unavailable")
        return Vacation(email, "Away: $SUBJECT", "Back soon.", 0) if self.is_away else None

    async def due(self, vacation: Vacation, sender: str) -> bool:
        if sender in self.answered:
            return False
        self.answered.add(sender)
        return True

    async def close(self) -> None:
        return None


class Queue:
    def __init__(self) -> None:
        self.queued: list[tuple[str, list[str], bytes]] = []

    async def submit_generated(self, sender: str, recipients: Sequence[str], content: bytes) -> str | None:
        self.queued.append((sender, list(recipients), content))
        return "QID"


def agent(vacations: Vacations) -> tuple[VacationAgent, Queue]:
    a, q = VacationAgent(vacations, hostname="mx.example.test"), Queue()
    a.attach(q)
    return a, q


async def test_one_reply_per_sender_and_always_delivered() -> None:
    a, q = agent(Vacations())
    for _ in range(2):
        [result] = await a.deliver("carol@remote.test", [PSEUDO], MSG)
        assert (result.outcome, result.text, result.relay) == ("sent", DELIVERED, "vacation")
    [(sender, rcpts, data)] = q.queued
    assert sender == "" and rcpts == ["carol@remote.test"]
    reply = email.message_from_bytes(data, policy=email.policy.default)
    assert reply["Subject"] == "Away: hi" and reply["From"] == "alice@example.test"


async def test_nothing_queued_without_an_active_vacation_or_for_a_bounce() -> None:
    a, q = agent(Vacations(away=False))
    assert (await a.deliver("carol@remote.test", [PSEUDO], MSG))[0].outcome == "sent"
    a, q2 = agent(Vacations())
    assert (await a.deliver("", [PSEUDO], MSG))[0].outcome == "sent"
    assert q.queued == q2.queued == []


async def test_a_database_outage_defers_the_pseudo_recipient() -> None:
    a, q = agent(Vacations(down=True))
    [result] = await a.deliver("carol@remote.test", [PSEUDO], MSG)
    assert (result.outcome, result.dsn) == ("deferred", "4.3.0") and q.queued == []


async def test_router_sends_pseudo_targets_to_the_vacation_agent() -> None:
    from pymailsrv.config.settings import Settings
    from pymailsrv.db.memory import MemoryDirectory
    from pymailsrv.delivery.base import Route
    from pymailsrv.delivery.router import DirectoryRouter

    d = MemoryDirectory("/vmail")
    d.add_domain("example.test")
    d.add_mailbox("alice@example.test", identity_alias=False)
    d.data.load({"alias": [{"address": "alice@example.test", "active": True,
                            "goto": f"alice@example.test,{PSEUDO},odd#name@far.test"}]})
    any_domain = DirectoryRouter(Settings({}), d)
    assert await any_domain.route("alice@example.test") == [
        ("alice@example.test", Route("virtual", "")), (PSEUDO, Route("vacation", "")),
        ("odd#name@far.test", Route("vacation", ""))]
    exact = DirectoryRouter(Settings({"postfixadmin_vacation_domain": "autoreply.example.test"}), d)
    assert await exact.route("alice@example.test") == [
        ("alice@example.test", Route("virtual", "")), (PSEUDO, Route("vacation", "")),
        ("odd#name@far.test", Route("smtp", "far.test"))]  # an ordinary address with a '#'
    assert await d.resolve("alice@example.test") == ["alice@example.test"]  # others never see them
