"""Client-shaped sessions: CONDSTORE, a Thunderbird-like sequence, imapclient, app wiring."""

from __future__ import annotations

import asyncio
import imaplib

from tests.imap.conftest import PASSWORD, USERS, MemoryAuthenticator, RawClient, msg


def test_condstore(imap, raw) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        imap.deliver(msg(f"m{i}"))
    c = raw()
    c.login()
    c.send("s SELECT INBOX (CONDSTORE)")
    lines = c.until("s")
    hms = [x for x in lines if "HIGHESTMODSEQ" in x]
    assert hms
    base = int(hms[0].split("HIGHESTMODSEQ ")[1].split("]")[0])
    c.send("a STORE 2 +FLAGS (\\Seen)")
    line = c.until("a")[0]
    assert "MODSEQ (" in line
    modseq2 = int(line.split("MODSEQ (")[1].split(")")[0])
    assert modseq2 > base - 1
    c.send(f"b FETCH 1:* (FLAGS) (CHANGEDSINCE {modseq2 - 1})")
    lines = c.until("b")
    assert len(lines) == 2 and lines[0].startswith("* 2 FETCH (FLAGS (\\Seen") and "MODSEQ (" in lines[0]
    c.send(f"c STORE 1:2 (UNCHANGEDSINCE {modseq2 - 1}) +FLAGS (\\Flagged)")
    lines = c.until("c")
    assert lines[-1].startswith("c OK [MODIFIED 2]")
    c.send(f"d SEARCH MODSEQ {modseq2}")
    assert c.until("d")[0].startswith("* SEARCH 1 2 (MODSEQ ")
    c.send("e STATUS INBOX (HIGHESTMODSEQ)")
    assert "HIGHESTMODSEQ" in c.until("e")[0]


def test_thunderbird_like_session(imap) -> None:  # type: ignore[no-untyped-def]
    big = msg("big", body="x" * 200_000 + "\n")
    imap.deliver(big)
    imap.deliver(msg("small"))
    c = imap.client(None)
    c.xatom("ID", '("name" "Thunderbird" "version" "115.0")')
    c.login(USERS[0], PASSWORD)
    c.select("INBOX")
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK" and len(data) == 2
    chunks = []
    offset = 0
    while True:
        typ, data = c.uid("FETCH", "1", f"(UID RFC822.SIZE BODY.PEEK[]<{offset}.65536>)")
        part = data[0][1]
        chunks.append(part)
        offset += len(part)
        if len(part) < 65536:
            break
    assert len(chunks) == 4
    whole = b"".join(chunks)
    assert whole == big.replace(b"\n", b"\r\n")
    typ, data = c.uid("FETCH", "1", "(FLAGS)")
    assert b"\\Seen" not in data[0]
    c.logout()


def test_two_sessions_flags_reach_each_other(imap) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("shared"))
    a = imap.client()
    b = imap.client()
    a.select("INBOX")
    b.select("INBOX")
    a.store("1", "+FLAGS", "(\\Answered $Forwarded)")
    _typ, _data = b.noop()
    assert any(b"$Forwarded" in (x or b"") for x in b.untagged_responses.get("FETCH", [b""])) or \
        b"$Forwarded" in b.fetch("1", "(FLAGS)")[1][0]
    a.logout()
    b.logout()


def test_imapclient_if_installed(imap) -> None:  # type: ignore[no-untyped-def]
    try:
        from imapclient import IMAPClient
    except ImportError:
        import pytest

        pytest.skip("imapclient not installed")
    imap.deliver(msg("ic"))
    c = IMAPClient("127.0.0.1", port=imap.port, ssl=False)
    c.login(USERS[0], PASSWORD)
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 1
    env = c.fetch([1], ["ENVELOPE", "BODYSTRUCTURE"])[1]
    assert env[b"ENVELOPE"].subject == b"ic"
    assert c.append("Drafts", b"Subject: d\r\n\r\nx\r\n", flags=["\\Draft"])
    assert c.move([1], "Archive") is None
    assert c.folder_status("Archive")[b"MESSAGES"] == 1
    c.logout()


def test_start_imap_wiring(settings_factory) -> None:  # type: ignore[no-untyped-def]
    from pymailsrv.app import start_imap
    from pymailsrv.clock import SystemClock
    from pymailsrv.store.memory import MemoryStore
    from pymailsrv.types import Account

    async def scenario() -> None:
        settings = settings_factory(imap_listen="127.0.0.1:0", imaps_listen="127.0.0.1:0")
        acct = Account(USERS[0], "/nonexistent/")
        auth = MemoryAuthenticator({USERS[0]: (PASSWORD, acct)})
        servers: list = []  # type: ignore[type-arg]
        await start_imap(settings, auth, MemoryStore(SystemClock()), servers)
        assert len(servers) == 2
        port = servers[0].port

        def talk() -> str:
            c = imaplib.IMAP4("127.0.0.1", port, timeout=5)
            typ, _ = c.login(USERS[0], PASSWORD)
            c.logout()
            return typ

        assert await asyncio.to_thread(talk) == "OK"
        for s in servers:
            await s.close(grace=1)

    asyncio.run(scenario())


def test_idle_timeout_closes(imap_factory) -> None:  # type: ignore[no-untyped-def]
    h = imap_factory()
    from pymailsrv.net import start_server
    from pymailsrv.net.server import ConnectionRegistry

    reg = ConnectionRegistry(idle_timeout=0.3, sweep_interval=0.1)
    srv = h.run(start_server(h.server.handle, "127.0.0.1", 0, registry=reg))
    c = RawClient(srv.port)
    c.expect("* OK *")
    c.expect("* BYE Disconnected for inactivity.")
    assert c.closed()
    h.run(srv.close(grace=1))


def test_fetch_many_bodies_in_order(imap) -> None:  # type: ignore[no-untyped-def]
    """Read-ahead must not mix messages up: every body comes with its own header."""
    for i in range(30):
        imap.deliver(msg(f"n{i}", body=f"body number {i}\n"))
    c = imap.client()
    c.select("INBOX")
    _typ, data = c.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT] BODY.PEEK[1.MIME])")
    parts = [d[1] for d in data if isinstance(d, tuple)]
    pairs = [(parts[i], parts[i + 1]) for i in range(0, len(parts), 3)]
    assert len(pairs) == 30
    for subject, body in pairs:
        n = subject.split(b"n")[-1].strip()
        assert body == b"body number " + n + b"\r\n"
    c.logout()


def test_shutdown_says_bye(imap_factory) -> None:  # type: ignore[no-untyped-def]
    h = imap_factory()
    c = RawClient(h.port)
    c.expect("* OK *")
    c.login()
    for srv in h.listeners:
        h.run(srv.close(grace=1))
    c.expect("* BYE Server shutting down.")
    assert c.closed()
