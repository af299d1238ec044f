"""QRESYNC across a restart of a real ``pymailsrv serve`` with worker processes: a client that
resyncs with the UIDVALIDITY and HIGHESTMODSEQ it had gets exactly the UIDs expunged since and
the messages whose flags changed — by another session (likely in another worker), and by another
Maildir writer while the server was down."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, write_config
from tests.imap.conftest import RawClient

USER = "alice@example.test"
pytestmark = pytest.mark.slow  # two starts of a real server with workers


def _configure(tmp_path: Path, tls_files: tuple[str, str]) -> Path:
    conf = write_config(tmp_path, *tls_files, worker_processes="2")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", USER, "--password", "pw"]) == 0
    return conf


def _client(server: ServerProcess, qresync: bool = True) -> RawClient:
    c = RawClient(server.ports["imap"])
    c.expect("* OK *")
    c.send(f'l LOGIN {USER} "pw"')
    assert c.until("l")[-1].startswith("l OK")
    if qresync:
        c.send("e ENABLE QRESYNC")
        assert c.until("e") == ["* ENABLED QRESYNC", "e OK Enabled."]
    return c


def _code(lines: list[str], name: str) -> int:
    (value,) = [int(m.group(1)) for x in lines if (m := re.search(rf"\[{name} (\d+)\]", x))]
    return value


def _done(c: RawClient) -> None:
    c.send("z LOGOUT")
    c.until("z")
    c.close()


def test_resync_after_a_restart(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    conf = _configure(tmp_path, tls_files)
    server = ServerProcess(conf).start()
    try:
        a = _client(server)
        for i in range(6):
            body = f"Subject: m{i}\r\n\r\nbody {i}\r\n".encode()
            a.send(f"a{i} APPEND INBOX {{{len(body)}+}}")
            a.sendraw(body + b"\r\n")
            assert a.until(f"a{i}")[-1].startswith(f"a{i} OK [APPENDUID")
        a.send("s SELECT INBOX")
        lines = a.until("s")
        validity, known = _code(lines, "UIDVALIDITY"), _code(lines, "HIGHESTMODSEQ")
        _done(a)

        b = _client(server, qresync=False)
        b.send("s SELECT INBOX")
        b.until("s")
        b.send("f STORE 2 +FLAGS (\\Seen)")
        b.until("f")
        b.send("d STORE 4:5 +FLAGS (\\Deleted)")
        b.until("d")
        b.send("x EXPUNGE")
        assert b.until("x")[:2] == ["* 5 EXPUNGE", "* 4 EXPUNGE"]
        _done(b)
    finally:
        assert server.stop() == 0
    server.log_path.rename(server.log_path.with_suffix(".first"))  # the next start logs its own ports

    # while the server is down another Maildir writer flags message 3 (a rename, as mutt does)
    cur = tmp_path / "data" / "vmail" / "example.test" / "alice" / "cur"
    (third,) = [n for n in os.listdir(cur) if "m2" in (cur / n).read_text()]
    os.rename(cur / third, cur / (third.partition(":2,")[0] + ":2,F"))

    server = ServerProcess(conf).start()
    try:
        c = _client(server)
        c.send(f"q SELECT INBOX (QRESYNC ({validity} {known}))")
        lines = c.until("q")
        assert _code(lines, "UIDVALIDITY") == validity
        assert "* VANISHED (EARLIER) 4:5" in lines
        changed = sorted(x for x in lines if " FETCH " in x)
        assert [re.sub(r"MODSEQ \(\d+\)", "MODSEQ", x) for x in changed] == [
            "* 2 FETCH (UID 2 FLAGS (\\Seen) MODSEQ)", "* 3 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ)"]
        now = _code(lines, "HIGHESTMODSEQ")
        assert all(known < int(re.search(r"MODSEQ \((\d+)\)", x).group(1)) <= now for x in changed)  # type: ignore[union-attr]
        c.send("f STORE 1 +FLAGS (\\Answered)")
        c.until("f")
        _done(c)

        d = _client(server)  # another session, maybe in the other worker
        d.send(f"s SELECT INBOX (QRESYNC ({validity} {now}))")
        lines = d.until("s")
        assert not any("VANISHED" in x for x in lines)
        assert [x.split(" FLAGS")[0] for x in lines if " FETCH " in x] == ["* 1 FETCH (UID 1"]
        d.send(f"v UID FETCH 1:* (FLAGS) (CHANGEDSINCE {known} VANISHED)")
        lines = d.until("v")
        assert lines[0] == "* VANISHED (EARLIER) 4:5" and len(lines) == 5  # 1, 2, 3 changed
        _done(d)
    finally:
        assert server.stop() == 0
