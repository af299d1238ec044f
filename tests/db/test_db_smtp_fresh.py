"""Nothing stale, over a real SMTP socket: ``pymailsrv serve`` with two worker processes on a
MariaDB directory (``mysql://``, the default driver), each worker with its own cache.

A mailbox disabled with the admin CLI, or by PostfixAdmin (a direct SQL update plus its log row),
is refused with 550 5.1.1 by every worker within seconds although directory_cache_ttl is a
minute; one changed by a direct SQL update that leaves no log row is refused once the TTL has
passed."""

from __future__ import annotations

import re
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, cli, write_config
from tests.conftest import _mariadb_admin

pytestmark = pytest.mark.mariadb

WORKER = re.compile(r"worker process \d+ serving")
DISCONNECT = re.compile(r"pymailsrv/smtpd\[(\d+)\]: disconnect from .* rcpt=(\S+)")


@pytest.fixture
def mariadb_db(mariadb_url: str) -> Iterator[tuple[str, Callable[[str], None]]]:
    """(the scratch database as ``mysql://``, the default driver's URL; a function running SQL in it)."""
    admin = _mariadb_admin()
    name = mariadb_url.rsplit("/", 1)[1].split("?")[0]

    def run(sql: str) -> None:
        with admin.cursor() as cur:
            cur.execute(f"USE `{name}`")
            cur.execute(sql)

    try:
        yield mariadb_url.replace("mysql+aiomysql://", "mysql://"), run
    finally:
        admin.close()


def start(tmp_path: Path, tls_files: tuple[str, str], url: str, ttl: str) -> ServerProcess:
    conf = write_config(tmp_path, *tls_files, database_url=url, worker_processes="2",
                        directory_cache_ttl=ttl)
    for argv in (("db", "upgrade"), ("domain", "add", "example.test"),
                 *(("mailbox", "add", f"{u}@example.test", "--password", "pw") for u in ("alice", "bob", "carol"))):
        assert main(["--config", str(conf), *argv]) == 0, argv
    server = ServerProcess(conf).start()
    deadline = time.monotonic() + 30
    while len(WORKER.findall(server.text())) < 2:
        assert time.monotonic() < deadline, server.text()[-3000:]
        time.sleep(0.05)
    return server


def rcpt_round(server: ServerProcess, address: str, sessions: int = 6) -> list[tuple[int, bool]]:
    """RCPT TO in ``sessions`` sessions at once (sequential ones tend to land on the one worker
    that served the last): [(pid of the worker, accepted)], read from each session's "disconnect"
    line (``rcpt=1`` accepted, ``rcpt=0/1`` refused with 550 5.1.1, checked on the client too)."""
    before = len(DISCONNECT.findall(server.text()))
    codes: list[tuple[int, bytes]] = []

    def one() -> None:
        with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=10) as s:
            s.ehlo("client.example.org")
            s.mail("someone@example.org")
            codes.append(s.rcpt(address))

    threads = [threading.Thread(target=one) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for code, text in codes:
        assert code == 250 or (code == 550 and b"5.1.1" in text and b"User unknown" in text), (code, text)
    deadline = time.monotonic() + 10
    while len(found := DISCONNECT.findall(server.text())) < before + sessions:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return [(int(pid), counts == "1") for pid, counts in found[before:]]


def answers_from_both_workers(server: ServerProcess, address: str) -> dict[int, set[int]]:
    """RCPT until both workers have answered it twice: {pid: {codes}}."""
    seen: dict[int, list[int]] = {}
    for _ in range(20):
        for pid, accepted in rcpt_round(server, address):
            seen.setdefault(pid, []).append(250 if accepted else 550)
        if len(seen) == 2 and all(len(codes) >= 2 for codes in seen.values()):
            break
    assert len(seen) == 2, seen
    return {pid: set(codes) for pid, codes in seen.items()}


def refused_by_both_workers_within(server: ServerProcess, address: str, seconds: float) -> float:
    """Seconds from now until the latest RCPT answer of each worker is 550 5.1.1."""
    start = time.monotonic()
    refusing: set[int] = set()
    while len(refusing) < 2:
        for pid, accepted in rcpt_round(server, address):
            if accepted:
                refusing.discard(pid)
            else:
                refusing.add(pid)
        assert time.monotonic() - start < seconds, f"{address} still accepted after {seconds} s"
    return time.monotonic() - start


def test_admin_cli_and_postfixadmin_changes_reach_every_worker_before_the_ttl(
        tmp_path: Path, tls_files: tuple[str, str], mariadb_db: tuple[str, Callable[[str], None]]) -> None:
    url, run_sql = mariadb_db
    server = start(tmp_path, tls_files, url, ttl="60s")
    try:
        for address in ("alice@example.test", "bob@example.test"):
            assert all(codes == {250} for codes in answers_from_both_workers(server, address).values())
        assert all(codes == {550} for codes in answers_from_both_workers(server, "nobody@example.test").values())

        done = cli(server.config, "mailbox", "disable", "alice@example.test")
        assert done.returncode == 0, done.stderr
        refused_by_both_workers_within(server, "alice@example.test", 15)

        # PostfixAdmin's edit: the rows, then its log row
        run_sql("UPDATE mailbox SET active = 0 WHERE username = 'bob@example.test'")
        run_sql("UPDATE alias SET active = 0 WHERE address = 'bob@example.test'")
        run_sql("INSERT INTO log (timestamp, username, domain, action, data) VALUES "
                "(NOW(), 'admin@example.test', 'example.test', 'edit_mailbox_state', 'bob@example.test')")
        refused_by_both_workers_within(server, "bob@example.test", 15)

        # and a new mailbox is not held back by the negative entries
        assert main(["--config", str(server.config), "mailbox", "add", "nobody@example.test", "--password", "pw"]) == 0
        deadline = time.monotonic() + 15
        while not all(accepted for _, accepted in rcpt_round(server, "nobody@example.test")):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.stop()


def test_a_direct_sql_change_is_seen_after_the_ttl(
        tmp_path: Path, tls_files: tuple[str, str], mariadb_db: tuple[str, Callable[[str], None]]) -> None:
    url, run_sql = mariadb_db
    server = start(tmp_path, tls_files, url, ttl="2s")
    try:
        assert all(codes == {250} for codes in answers_from_both_workers(server, "carol@example.test").values())
        run_sql("DELETE FROM alias WHERE address = 'carol@example.test'")
        run_sql("DELETE FROM mailbox WHERE username = 'carol@example.test'")
        refused_by_both_workers_within(server, "carol@example.test", 2 + 8)  # + a loaded machine's delays
    finally:
        server.stop()
