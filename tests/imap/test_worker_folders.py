"""Two sessions of one user in different worker processes of a real ``pymailsrv serve``. One
deletes a folder and creates it again under the same name (imaptest's scripts start that way).

The kernel hands a freed inode number out again at once (ext4 does, almost every time), so the
new directory and its new ``dovecot-uidlist`` can carry the old ones' inode numbers: the other
process must still see another folder — a greater UIDVALIDITY and the new UIDs, never the picture
it kept of the old one — and a session that had the old folder selected must end (``* BYE``).
And a new message is \\Recent in one of them only."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, write_config
from tests.imap.conftest import RawClient

USER = "alice@example.test"
READY = re.compile(r"worker process (\d+) serving")
LOGIN = re.compile(r"imap-login\[(\d+)\]: Login: user=<" + re.escape(USER) + ">")
pytestmark = pytest.mark.slow  # a real server with workers


@pytest.fixture
def server(tmp_path: Path, tls_files: tuple[str, str]) -> Iterator[ServerProcess]:
    conf = write_config(tmp_path, *tls_files, worker_processes="2", mail_max_userip_connections="100",
                        login_max_ip_connections="0")
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", USER, "--password", "pw"]) == 0
    proc = ServerProcess(conf).start()
    deadline = time.monotonic() + 30
    while len(set(READY.findall(proc.text()))) < 2:  # both workers accept connections
        assert time.monotonic() < deadline, proc.text()
        time.sleep(0.05)
    yield proc
    assert proc.stop() == 0


def _login(server: ServerProcess) -> tuple[RawClient, int]:
    """A logged-in session and the pid of the worker serving it (the newest Login line)."""
    before = len(LOGIN.findall(server.text()))
    c = RawClient(server.ports["imap"])
    c.expect("* OK *")
    c.send(f'l LOGIN {USER} "pw"')
    assert c.until("l")[-1].startswith("l OK")
    deadline = time.monotonic() + 10
    while len(pids := LOGIN.findall(server.text())) <= before:
        assert time.monotonic() < deadline, "no Login line logged"
        time.sleep(0.02)
    return c, int(pids[-1])


def _two_workers(server: ServerProcess) -> tuple[RawClient, RawClient, list[RawClient]]:
    """Sessions until two are served by different workers; the others are handed back to close."""
    first, pid = _login(server)
    spare: list[RawClient] = []
    for _ in range(60):
        other, other_pid = _login(server)
        if other_pid != pid:
            return first, other, spare
        spare.append(other)
    raise AssertionError("every session landed in the same worker")


def _ok(c: RawClient, tag: str, command: str) -> list[str]:
    c.send(f"{tag} {command}")
    lines = c.until(tag)
    assert lines[-1].startswith(f"{tag} OK"), lines
    return lines


def _code(lines: list[str], name: str) -> int:
    (value,) = [int(m.group(1)) for x in lines if (m := re.search(rf"\[{name} (\d+)\]", x))]
    return value


def _append(c: RawClient, tag: str, subject: str) -> int:
    body = f"Subject: {subject}\r\n\r\n{subject}\r\n".encode()
    c.send(f"{tag} APPEND box {{{len(body)}+}}")
    c.sendraw(body + b"\r\n")
    line = c.until(tag)[-1]
    m = re.match(rf"{tag} OK \[APPENDUID \d+ (\d+)\]", line)
    assert m, line
    return int(m.group(1))


def _fill(c: RawClient, rnd: int) -> list[int]:
    _ok(c, f"c{rnd}", "CREATE box")
    return [_append(c, f"a{rnd}{i}", f"round {rnd} message {i}") for i in range(3)]


def test_a_folder_created_again_is_another_folder_in_every_worker(server: ServerProcess, tmp_path: Path) -> None:
    a, b, spare = _two_workers(server)
    box = tmp_path / "data" / "vmail" / "example.test" / "alice" / ".box"
    uids = _fill(a, 0)
    lines = _ok(b, "s0", "SELECT box")  # b's worker keeps a picture of the folder (idle after CLOSE)
    validity = _code(lines, "UIDVALIDITY")
    _ok(b, "f0", "FETCH 1:* (UID)")
    _ok(b, "x0", "CLOSE")
    reused = 0
    for rnd in range(1, 6):
        inodes = os.stat(box).st_ino, os.stat(box / "dovecot-uidlist").st_ino
        _ok(a, f"d{rnd}", "DELETE box")
        uids = _fill(a, rnd)
        reused += inodes == (os.stat(box).st_ino, os.stat(box / "dovecot-uidlist").st_ino)
        lines = _ok(b, f"s{rnd}", "SELECT box")
        assert _code(lines, "UIDVALIDITY") > validity, lines
        validity = _code(lines, "UIDVALIDITY")
        assert "* 3 EXISTS" in lines
        fetched = _ok(b, f"f{rnd}", "FETCH 1:* (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        got = [int(m.group(1)) for x in fetched if (m := re.match(r"\* \d+ FETCH \(UID (\d+)", x))]
        assert got == uids
        assert sum(f"Subject: round {rnd} message" in x for x in fetched) == 3, fetched
        _ok(b, f"x{rnd}", "CLOSE")
    # a session with the old folder selected ends when it is created again under the name
    _ok(b, "s9", "SELECT box")
    _ok(a, "d9", "DELETE box")
    uids = _fill(a, 9)
    b.send("n NOOP")
    assert b.until("n") == ["n OK NOOP completed."]  # nothing of the new folder as if the old one's
    b.expect("* BYE *")
    with open(box / "dovecot-uidlist") as f:  # nothing of the old picture was written into the new list
        records = [line.split()[0] for line in f.readlines()[1:]]
    assert [int(r) for r in records] == uids
    print(f"directory and uidlist inodes handed out again in {reused} of 5 rounds")
    for c in (a, b, *spare):
        c.close()


def _recent(c: RawClient, tag: str) -> set[int]:
    """The UIDs the session reports \\Recent (after a NOOP has told it of new messages)."""
    _ok(c, f"n{tag}", "NOOP")
    lines = _ok(c, f"r{tag}", "FETCH 1:* (UID FLAGS)")
    return {int(m.group(1)) for x in lines if (m := re.match(r"\* \d+ FETCH \(UID (\d+) FLAGS \(.*\\Recent", x))}


def test_recent_goes_to_one_session_across_workers(server: ServerProcess) -> None:
    """RFC 3501 §2.3.2: a new message is \\Recent in one session only, though the two sessions
    that see it are in different processes (imaptest: "has \\Recent flag in multiple sessions")."""
    a, b, spare = _two_workers(server)
    writer = spare[0] if spare else _login(server)[0]
    _ok(writer, "c", "CREATE box")
    _ok(a, "s", "SELECT box")
    _ok(b, "s", "SELECT box")
    sessions = {"a": a, "b": b}
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    appended: list[int] = []
    for rnd in range(4):
        appended += [_append(writer, f"w{rnd}{i}", f"new {rnd} {i}") for i in range(2)]
        for name in "ab" if rnd % 2 else "ba":  # either may be the first to look
            seen[name] |= _recent(sessions[name], f"{rnd}{name}")
    assert not seen["a"] & seen["b"]
    assert seen["a"] | seen["b"] == set(appended)
    for c in (a, b, *spare):
        c.close()
