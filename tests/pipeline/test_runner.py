"""The runner and the pipeline parameters, below the socket: which hooks run, in which order, what
each decision does, a failing stage's default action, and the start-up checks."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest

from pymailsrv.config.postconf import postconf
from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.pipeline.base import ACCEPT, BaseStage, Event, LocalSession, Session, Transaction, Verdict
from pymailsrv.pipeline.build import build_pipeline, parse_item
from pymailsrv.pipeline.message import Message
from pymailsrv.pipeline.runner import Pipeline, Slot
from pymailsrv.types import Recipient


class Scripted(BaseStage):
    """Answers ``verdict`` (or raises ``error``) at the message event; counts every call."""

    def __init__(self, name: str, verdict: Verdict = ACCEPT, error: Exception | None = None,
                 events: frozenset[Event] = frozenset({"message"}), delay: float = 0.0) -> None:
        self.name = name
        self.events = events
        self.verdict = verdict
        self.error = error
        self.delay = delay
        self.calls: list[str] = []

    async def rcpt(self, session: Session, txn: Transaction, rcpt: Recipient) -> Verdict:
        self.calls.append("rcpt")
        return ACCEPT

    async def message(self, session: Session, txn: Transaction, msg: Message) -> Verdict:
        self.calls.append("message")
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        msg.add_header("X-Seen-By", self.name)
        return self.verdict

    async def abort(self, session: Session, txn: Transaction) -> None:
        raise RuntimeError("abort hook broke")


async def run_message(*slots: Slot) -> tuple[Verdict, Transaction, bytes]:
    txn = Transaction(sender="s@example.test", recipients=[Recipient("r@example.test")], queue_id="QID1")
    msg = Message(b"Subject: x\r\n\r\nbody\r\n")
    verdict = await Pipeline(slots).run("message", LocalSession(), txn, msg=msg)
    return verdict, txn, msg.as_bytes()


async def test_stages_run_in_order_only_at_their_events() -> None:
    first, second = Scripted("first"), Scripted("second", events=frozenset({"rcpt"}))
    pipeline = Pipeline([Slot(first), Slot(second)])
    assert pipeline.wants("message") and pipeline.wants("rcpt") and not pipeline.wants("connect")
    verdict, _, data = await run_message(Slot(first), Slot(second), Slot(Scripted("third")))
    assert verdict == ACCEPT
    assert data == b"Subject: x\r\nX-Seen-By: first\r\nX-Seen-By: third\r\n\r\nbody\r\n"
    assert second.calls == []


async def test_refusal_stops_and_names_the_stage() -> None:
    later = Scripted("later")
    verdict, _, _ = await run_message(Slot(Scripted("no", Verdict("reject", "550 5.7.1 No"))), Slot(later))
    assert (verdict.action, verdict.reply(), verdict.stage) == ("reject", "550 5.7.1 No", "no")
    assert later.calls == []


async def test_refusal_is_logged_on_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    two_lines = Verdict("reject", "550-5.7.1 first\r\n550 5.7.1 second\nFrom: forged")
    await run_message(Slot(Scripted("no", two_lines)))
    await run_message(Slot(Scripted("broken", error=RuntimeError("a\r\nb"))))
    first, second = [r.getMessage() for r in caplog.records if "milter-reject" in r.getMessage()]
    assert "\n" not in first and "550-5.7.1 first 550 5.7.1 second From: forged" in first
    assert "451 4.3.5 Server configuration error" in second  # the failure's decision, logged too
    [failure] = [r.getMessage() for r in caplog.records if "stage broken failed" in r.getMessage()]
    assert "RuntimeError: a b; default action tempfail" in failure


async def test_discard_stops_quarantine_goes_on() -> None:
    verdict, txn, _ = await run_message(Slot(Scripted("hold", Verdict("quarantine", reason="look at it"))),
                                        Slot(Scripted("drop", Verdict("discard"))), Slot(Scripted("never")))
    assert verdict.action == "discard" and verdict.stage == "drop"
    assert txn.hold and txn.discard


@pytest.mark.parametrize(("action", "error", "expected"), [
    ("tempfail", RuntimeError("x"), ("defer", "451 4.3.5 Server configuration error")),
    ("tempfail", TemporaryFailure("db down"), ("defer", "451 4.3.0 Temporary lookup failure")),
    ("reject", RuntimeError("x"), ("reject", "550 5.7.1 Command rejected")),
    ("accept", RuntimeError("x"), ("accept", "")),
    ("quarantine", RuntimeError("x"), ("accept", "")),
])
async def test_failure_follows_the_default_action(caplog: pytest.LogCaptureFixture, action: str,
                                                  error: Exception, expected: tuple[str, str]) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    after = Scripted("after")
    verdict, txn, _ = await run_message(Slot(Scripted("broken", error=error), default_action=action),  # type: ignore[arg-type]
                                        Slot(after))
    assert (verdict.action, verdict.reply()) == expected
    assert txn.hold == (action == "quarantine")
    assert after.calls == ([] if verdict.refused else ["message"])
    [warning] = [r for r in caplog.records if "pipeline stage broken failed" in r.getMessage()]
    assert warning.getMessage().startswith("pipeline stage broken failed at END-OF-MESSAGE from localhost[127.0.0.1]")
    assert warning.getMessage().endswith(f"; default action {action}")


async def test_time_limit() -> None:
    verdict, _, _ = await run_message(Slot(Scripted("slow", delay=5), timeout=0.05))
    assert verdict.reply() == "451 4.3.5 Server configuration error"


async def test_informing_hooks_never_fail_the_session(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv")
    pipeline = Pipeline([Slot(Scripted("a", events=frozenset({"abort"})))])
    await pipeline.abort(LocalSession(), Transaction(sender=""))
    assert any("pipeline stage a failed at ABORT" in r.getMessage() for r in caplog.records)


# --- the parameters ---------------------------------------------------------------------------

BUILTINS = {"one": lambda: Scripted("one"), "two": lambda: Scripted("two")}


def test_parse_items() -> None:
    assert parse_item("one", "p") == ("one", {})
    assert parse_item("{ python:m:f, default_action = accept, timeout=5s }", "p") == \
        ("python:m:f", {"default_action": "accept", "timeout": "5s"})


def test_build_from_settings() -> None:
    settings = Settings({"smtpd_pipeline": "two, { one, default_action=reject, timeout=2s }",
                         "pipeline_stage_timeout": "7s"})
    pipeline = build_pipeline("smtpd_pipeline", settings, BUILTINS)
    assert [(s.stage.name, s.timeout, s.default_action) for s in pipeline.slots] == \
        [("two", 7.0, "tempfail"), ("one", 2.0, "reject")]
    stages = build_pipeline("smtpd_pipeline", Settings({"smtpd_pipeline": "python:tests.pipeline.stages:recorder"}),
                            {})
    assert stages.slots[0].stage.name == "recorder"


@pytest.mark.parametrize(("value", "error"), [
    ("one, three", 'smtpd_pipeline: unknown stage "three" (built-in: one, two; or python:MODULE:FACTORY)'),
    ("one, one", 'smtpd_pipeline: stage "one" is listed twice'),
    ("{ one, colour=red }", 'smtpd_pipeline: one: unknown option "colour=red" (default_action, timeout)'),
    ("{ one, default_action=maybe }", 'smtpd_pipeline: one: bad default_action "maybe"'),
    ("{ one, timeout=soon }", "smtpd_pipeline: one: timeout: bad time value"),
    ("python:tests.pipeline.nosuch:f", "smtpd_pipeline: cannot load python:tests.pipeline.nosuch:f"),
    ("python:tests.pipeline.stages:TagSubject.name", "smtpd_pipeline: cannot load"),
    ("python:builtins:repr", "smtpd_pipeline: python:builtins:repr is not a stage"),
])
def test_bad_configuration_is_refused_at_start(value: str, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build_pipeline("smtpd_pipeline", Settings({"smtpd_pipeline": value}), BUILTINS)
    assert str(exc.value).startswith(error)


def test_postconf_documents_the_parameters() -> None:
    out = io.StringIO()
    postconf(Settings(), ["smtpd_pipeline", "non_smtpd_pipeline", "pipeline_default_action",
                          "pipeline_stage_timeout"], defaults=True, out=out)
    assert out.getvalue().splitlines() == [
        "smtpd_pipeline = restrictions, header_checks, cleanup, milters, content_filter",
        "non_smtpd_pipeline = milters, content_filter", "pipeline_default_action = tempfail",
        "pipeline_stage_timeout = 30s"]
    assert "milter" in Settings().param("pipeline_default_action").doc
