"""The real restriction engine over the wire: POSTFIX-SEMANTICS §4 transcripts byte for byte,
and the open-relay suite (every relay trick refused over SMTP, nothing queued)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.smtp.conftest import RawClient

pytest.importorskip("pymailsrv.policy.restrictions", reason="the policy engine is not on this branch yet")

HERE = Path(__file__).parent
TRANSCRIPTS = sorted((HERE / "transcripts").glob("*.txt"))
RELAY_CASES_FILE = HERE.parent / "policy" / "open_relay_cases.txt"

BASE = {"myhostname": "mx.example.test", "mydomain": "example.test", "mynetworks": "192.168.1.0/24",
        "recipient_delimiter": "+"}


def directory() -> Any:
    from pymailsrv.db.memory import MemoryDirectory

    d = MemoryDirectory("/vmail", recipient_delimiter="+")
    for domain in ("example.com", "alias.example", "mx.example.test"):
        d.add_domain(domain)
    d.add_domain("backup.example", backupmx=True)
    for address in ("alice@example.com", "bob@example.com", "carol@mx.example.test"):
        d.add_mailbox(address)
    d.add_alias("info@example.com", "alice@example.com")
    return d


def engine(settings: Any, d: Any) -> Any:
    from pymailsrv.policy.dns import Resolver
    from pymailsrv.policy.restrictions import RestrictionEngine

    return RestrictionEngine(settings, d, resolver=Resolver(["127.0.0.1:9"], timeout=1.0),
                             table_check_interval=0)


def parse(path: Path) -> tuple[dict[str, str], list[tuple[str, str]]]:
    params: dict[str, str] = {}
    steps: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        kind, _, text = line.partition(":")
        text = text[1:] if text.startswith(" ") else text
        if kind == "P":
            name, _, value = text.partition("=")
            params[name.strip()] = value.strip()
        else:
            steps.append((kind, text))
    return params, steps


async def start(smtp_factory: Any, settings_factory: Any, **params: str) -> Any:
    values = {**BASE, **params}
    d = directory()
    return await smtp_factory(restrictions=engine(settings_factory(**values), d), **values)


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
async def test_transcript(smtp_factory, settings_factory, path: Path) -> None:
    params, steps = parse(path)
    h = await start(smtp_factory, settings_factory, **params)
    c = await RawClient.connect(h.port())
    try:
        pending: list[str] = []
        for kind, text in steps:
            if kind == "C":
                pending.append(text)
                continue
            if pending:
                await c.send("".join(p + "\r\n" for p in pending))
                pending.clear()
            got = await c.line()
            assert got == text, f"{path.name}: expected {text!r}, got {got!r}"
    finally:
        await c.close()


def relay_cases() -> list[str]:
    if not RELAY_CASES_FILE.exists():
        return []
    return [ln for ln in RELAY_CASES_FILE.read_text().splitlines() if ln and not ln.startswith("#")]


@pytest.mark.parametrize("relay_restrictions", [
    "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
    "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
])
async def test_open_relay_suite_over_the_wire(smtp_factory, settings_factory, relay_restrictions):
    cases = relay_cases()
    assert len(cases) >= 30
    h = await start(smtp_factory, settings_factory, smtpd_relay_restrictions=relay_restrictions,
                    smtpd_hard_error_limit="1000", smtpd_soft_error_limit="1000")
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO relay.test", "250 *")
    await c.cmd("MAIL FROM:<spammer@remote.example>", "250 2.1.0 Ok")
    accepted = []
    for rcpt in cases:
        await c.send(f"RCPT TO:<{rcpt}>\r\n")
        reply = (await c.reply())[-1]
        if not reply.startswith(("4", "5")):
            accepted.append((rcpt, reply))
    assert accepted == []
    await c.cmd("DATA", "554 5.5.1 Error: no valid recipients")
    await c.cmd("QUIT", "221 2.0.0 Bye")
    assert h.queue.messages == []


async def test_authenticated_and_trusted_clients_may_relay(smtp_factory, settings_factory, client_tls):
    import base64

    h = await start(smtp_factory, settings_factory, mynetworks="127.0.0.0/8")
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    await c.cmd("MAIL FROM:<a@example.com>", "250 2.1.0 Ok")
    await c.cmd("RCPT TO:<x@remote.example>", "250 2.1.5 Ok")
    h2 = await start(smtp_factory, settings_factory)
    c = await RawClient.connect(h2.port("smtps"), tls=client_tls)
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    token = base64.b64encode(b"\0alice@example.test\0wonderland").decode()
    await c.cmd(f"AUTH PLAIN {token}", "235 2.7.0 Authentication successful")
    await c.cmd("MAIL FROM:<alice@example.test>", "250 2.1.0 Ok")
    await c.cmd("RCPT TO:<x@remote.example>", "250 2.1.5 Ok")


async def test_reject_unauth_pipelining(smtp_factory, settings_factory):
    h = await start(smtp_factory, settings_factory, smtpd_data_restrictions="reject_unauth_pipelining")
    rude = await RawClient.connect(h.port())
    await rude.expect("220 *")
    await rude.send("HELO spam.test\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    for pattern in ("250 mx.example.test", "250 2.1.0 Ok", "250 2.1.5 Ok"):
        await rude.expect(pattern)
    refused = await rude.expect("5* 5.5.* <DATA>: Data command rejected: Improper use of SMTP command pipelining")
    assert refused.startswith("503") or refused.startswith("554")
    polite = await RawClient.connect(h.port())
    await polite.expect("220 *")
    await polite.cmd("EHLO good.test", "250 *")
    await polite.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n")
    for pattern in ("250 2.1.0 Ok", "250 2.1.5 Ok", "354 *"):
        await polite.expect(pattern)


async def test_engine_effects_reach_the_envelope(smtp_factory, settings_factory, tmp_path):
    rcpt_map, sender_map = tmp_path / "rcpt_access", tmp_path / "sender_access"
    rcpt_map.write_text("alice@example.com HOLD\nbob@example.com PREPEND X-Checked: yes\n")
    sender_map.write_text("watched@remote.example BCC info@example.com\n")
    h = await start(smtp_factory, settings_factory, smtpd_recipient_restrictions=(
        f"check_recipient_access texthash:{rcpt_map}, check_sender_access texthash:{sender_map}"))
    c = await RawClient.connect(h.port())
    await c.expect("220 *")
    await c.cmd("EHLO c", "250 *")
    for rcpt in ("alice@example.com", "bob@example.com"):
        await c.cmd("MAIL FROM:<watched@remote.example>", "250 2.1.0 Ok")
        await c.cmd(f"RCPT TO:<{rcpt}>", "250 2.1.5 Ok")
        await c.cmd("DATA", "354 *")
        await c.send("Subject: s\r\n\r\nx\r\n.\r\n")
        await c.expect("250 2.0.0 Ok: queued as *")
    (held, _), (prepended, content) = h.queue.messages
    assert held.hold and not prepended.hold
    assert b"\r\nX-Checked: yes\r\nSubject: s\r\n" in content
    assert [r.address for r in held.recipients] == ["alice@example.com", "info@example.com"]
