"""Scale-out over real processes: two backends and one IMAP/POP3 front node, each a
``pymailsrv serve`` with its own data directory on loopback ports, on one MariaDB database
(IMAP, POP3 and ManageSieve proxied; SMTP queued on the front and sent over LMTP).

The backends are told apart by a row per user and service in a table the site owns
(``proxy_host``), read through proxy_host_query; a user without a row goes to proxy_backends by
consistent hashing. Mail is delivered by SMTP to each backend, so each backend's Maildirs hold
what only it has; the front node must show each user their own backend's. Mail sent to the
front node (lmtp_proxy) is queued there and delivered over LMTP to each user's backend.
"""

from __future__ import annotations

import imaplib
import poplib
import signal
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import SERVICES, ServerProcess, write_config

PASSWORD = "s3cret-pass"
USERS = ("alice@example.test", "bob@example.test", "carol@example.test")
QUERY = "SELECT host, port FROM proxy_host WHERE username = '%u' AND service = '%s'"
START = 90.0  # a loaded 2-core machine starts three servers slowly
BACKEND_SERVICES = (*SERVICES, "lmtp", "managesieve")
FRONT_SERVICES = (*SERVICES, "managesieve")
USERIP_LIMIT = 3  # the front's mail_max_userip_connections, counted across nodes (connection_limits_shared)
# the front node retries a backend that was down within seconds, not Postfix's 300s
FAST_RETRY = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s", "queue_run_delay": "1s"}


def _admin(url: str, sql: str, args: tuple[object, ...] = ()) -> None:
    import pymysql

    rest = url.split("@", 1)[1]
    hostport, _, tail = rest.partition("/")
    host, _, port = hostport.partition(":")
    conn = pymysql.connect(host=host, port=int(port or 3306), user="root", password="",
                           database=tail.partition("?")[0], autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
    finally:
        conn.close()


@dataclass
class Node:
    name: str
    proc: ServerProcess

    @property
    def ports(self) -> dict[str, int]:
        return self.proc.ports


@dataclass
class Cluster:
    url: str
    tmp: Path
    tls: tuple[str, str]
    b1: Node
    b2: Node
    front: Node
    started: list[ServerProcess]

    def send(self, rcpts: list[str], subject: str) -> None:
        _deliver(self.front, rcpts, subject)

    def restart(self, node: Node) -> None:
        """Start ``node`` again on the ports it had (the directory names them)."""
        conf = node.proc.config
        listens = {f"{svc}_listen": f"127.0.0.1:{port}" for svc, port in node.ports.items()}
        text = "".join(line + "\n" for line in conf.read_text().splitlines()
                       if line.split(" = ", 1)[0] not in listens)
        conf.write_text(text + "".join(f"{k} = {v}\n" for k, v in listens.items()))
        old = node.proc.log_path
        old.rename(old.with_suffix(".log.1"))  # start() reads "daemon started" from a fresh log
        node.proc = ServerProcess(conf).start(timeout=START, expect=BACKEND_SERVICES)
        self.started.append(node.proc)


def _deliver(node: Node, rcpts: str | list[str], subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", node.ports["smtpd"], timeout=30) as s:
        s.sendmail("sender@example.org", rcpts, f"Subject: {subject}\r\n\r\nbody\r\n".encode())


def _wait(cond: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _inbox_subjects(port: int, user: str) -> list[str]:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=30)
    try:
        imap.login(user, PASSWORD)
        _, data = imap.select("INBOX")
        if int(data[0] or 0) == 0:
            return []
        _, msg = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return sorted(part[1].decode().strip().removeprefix("Subject: ") for part in msg if isinstance(part, tuple))
    finally:
        imap.logout()


def _unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _delivered(node: Node, user: str, count: int) -> bool:
    return len(_inbox_subjects(node.ports["imap"], user)) >= count


@pytest.fixture
def cluster(tmp_path: Path, tls_files: tuple[str, str], mariadb_url: str) -> Iterator[Cluster]:
    for name in ("b1", "b2", "front"):
        (tmp_path / name).mkdir()
    common = {"database_url": mariadb_url, "worker_processes": "0", "disable_plaintext_auth": "no"}
    backend = {**common, "login_trusted_networks": "127.0.0.0/8", "lmtp_listen": "127.0.0.1:0",
               "managesieve_listen": "127.0.0.1:0"}
    first = write_config(tmp_path / "b1", *tls_files, **backend)
    assert main(["--config", str(first), "db", "upgrade"]) == 0
    assert main(["--config", str(first), "domain", "add", "example.test"]) == 0
    for user in USERS:
        assert main(["--config", str(first), "mailbox", "add", user, "--password", PASSWORD]) == 0
    _admin(mariadb_url, "CREATE TABLE proxy_host (username VARCHAR(255) NOT NULL, service VARCHAR(8) NOT NULL, "
                        "host VARCHAR(64), port INT, PRIMARY KEY (username, service))")
    procs: list[ServerProcess] = []

    def start(conf: Path, expect: tuple[str, ...] = SERVICES) -> Node:
        proc = ServerProcess(conf).start(timeout=START, expect=expect)
        procs.append(proc)
        return Node(conf.parent.name, proc)

    try:
        b1 = start(first, BACKEND_SERVICES)
        b2 = start(write_config(tmp_path / "b2", *tls_files, **backend), BACKEND_SERVICES)
        for user, node in (("alice@example.test", b1), ("bob@example.test", b2)):
            for service, listener in (("imap", "imap"), ("pop3", "pop3"), ("lmtp", "lmtp"),
                                      ("sieve", "managesieve")):
                _admin(mariadb_url, "INSERT INTO proxy_host VALUES (%s, %s, %s, %s)",
                       (user, service, "127.0.0.1", node.ports[listener]))
        # carol has no row: consistent hashing over proxy_backends (one backend here: b1)
        # the front node serves from a worker process (connections passed by the main process),
        # the backends from their main process: both ways of serving are on the path
        front = start(write_config(tmp_path / "front", *tls_files, **{**common, "worker_processes": "1"},
                                   proxy_host_query=QUERY,
                                   proxy_backends="127.0.0.1", proxy_imap_port=str(b1.ports["imap"]),
                                   proxy_pop3_port=str(b1.ports["pop3"]), proxy_lmtp_port=str(b1.ports["lmtp"]),
                                   proxy_sieve_port=str(b1.ports["managesieve"]), managesieve_listen="127.0.0.1:0",
                                   connection_limits_shared="yes", mail_max_userip_connections=str(USERIP_LIMIT),
                                   proxy_connect_timeout="10s", lmtp_proxy="yes", **FAST_RETRY), FRONT_SERVICES)
        cluster = Cluster(mariadb_url, tmp_path, tls_files, b1, b2, front, procs)
        # each backend holds mail the other has not: alice's and carol's on b1, bob's on b2, and a
        # decoy for alice on b2 that the front must never show her
        _deliver(b1, "alice@example.test", "alice on b1")
        _deliver(b1, "carol@example.test", "carol on b1")
        _deliver(b2, "bob@example.test", "bob on b2")
        _deliver(b2, "alice@example.test", "decoy on b2")
        for node, user in ((b1, "alice@example.test"), (b1, "carol@example.test"), (b2, "bob@example.test"),
                           (b2, "alice@example.test")):
            _wait(lambda node=node, user=user: _delivered(node, user, 1), f"delivery to {user} on {node.name}")
        yield cluster
    finally:
        for proc in procs:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.stop(signal.SIGTERM, timeout=30)


def test_imap_through_the_front_reaches_each_users_backend(cluster: Cluster) -> None:
    port = cluster.front.ports["imap"]
    assert _inbox_subjects(port, "alice@example.test") == ["alice on b1"]
    assert _inbox_subjects(port, "bob@example.test") == ["bob on b2"]
    assert _inbox_subjects(port, "carol@example.test") == ["carol on b1"]  # no row: proxy_backends
    # over TLS to the front (the splice then runs on the TLS transport), plain to the backend
    imaps = imaplib.IMAP4_SSL("127.0.0.1", cluster.front.ports["imaps"], ssl_context=_unverified(), timeout=30)
    try:
        imaps.login("bob@example.test", PASSWORD)
        imaps.select("INBOX")
        _, msg = imaps.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: bob on b2" in msg[0][1]  # type: ignore[index]
    finally:
        imaps.logout()
    log = cluster.front.proc.text()
    assert f"proxy(alice@example.test): started proxying to 127.0.0.1:{cluster.b1.ports['imap']}" in log
    assert f"proxy(bob@example.test): started proxying to 127.0.0.1:{cluster.b2.ports['imap']}" in log


def test_mail_sent_to_the_front_lands_on_each_users_backend(cluster: Cluster) -> None:
    cluster.send(["alice@example.test", "bob@example.test", "carol@example.test"], "via the front")
    for node, user in ((cluster.b1, "alice@example.test"), (cluster.b2, "bob@example.test"),
                       (cluster.b1, "carol@example.test")):
        _wait(lambda node=node, user=user: "via the front" in _inbox_subjects(node.ports["imap"], user),
              f"LMTP delivery to {user} on {node.name}")
    assert "via the front" not in _inbox_subjects(cluster.b2.ports["imap"], "alice@example.test")
    assert "via the front" not in _inbox_subjects(cluster.b1.ports["imap"], "bob@example.test")
    assert not list((cluster.tmp / "front" / "data" / "vmail").glob("*/*/new/*"))  # the front keeps none
    log = cluster.front.proc.text()
    assert f"relay=127.0.0.1[127.0.0.1]:{cluster.b2.ports['lmtp']}" in log, log[-3000:]


def test_pop3_through_the_front(cluster: Cluster) -> None:
    pop = poplib.POP3("127.0.0.1", cluster.front.ports["pop3"], timeout=30)
    pop.user("bob@example.test")
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    assert pop.stat()[0] == 1
    assert b"Subject: bob on b2" in b"\r\n".join(pop.retr(1)[1])
    pop.quit()


def test_wrong_password_is_refused_at_the_front(cluster: Cluster) -> None:
    imap = imaplib.IMAP4("127.0.0.1", cluster.front.ports["imap"], timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        imap.login("alice@example.test", "wrong")
    imap.logout()
    assert "proxy(alice@example.test)" not in cluster.front.proc.text()


def test_backend_sees_the_client_address_the_front_forwards(cluster: Cluster) -> None:
    """ID x-originating-ip from login_trusted_networks: the backend logs the client, not the proxy."""
    with socket.create_connection(("127.0.0.1", cluster.front.ports["imap"]), timeout=30,
                                  source_address=("127.0.0.5", 0)) as sock:
        f = sock.makefile("rwb")
        assert f.readline().startswith(b"* OK")
        f.write(b"a LOGIN alice@example.test " + PASSWORD.encode() + b"\r\n")
        f.flush()
        reply = f.readline()
        assert reply.startswith(b"a OK"), reply
        f.write(b"b LOGOUT\r\n")
        f.flush()
        assert f.readline().startswith(b"* BYE")
    _wait(lambda: "Login: user=<alice@example.test>, method=PLAIN, rip=127.0.0.5" in cluster.b1.proc.text(),
          "the backend's login line with the client's address")
    assert "proxied client: rip=127.0.0.5, proxy=127.0.0.1" in cluster.b1.proc.text()


def test_backend_killed_mid_session_then_restarted(cluster: Cluster) -> None:
    front = cluster.front.ports
    imap = imaplib.IMAP4("127.0.0.1", front["imap"], timeout=30)
    imap.login("alice@example.test", PASSWORD)
    assert imap.select("INBOX")[1] == [b"1"]
    pop = poplib.POP3("127.0.0.1", front["pop3"], timeout=30)
    pop.user("alice@example.test")
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1

    assert cluster.b1.proc.proc is not None
    cluster.b1.proc.proc.kill()  # SIGKILL: no goodbye from the backend
    cluster.b1.proc.proc.wait(30)
    cluster.b1.proc.log.close()

    # the sessions in progress get a temporary failure, not a silent close
    with pytest.raises(imaplib.IMAP4.abort, match="UNAVAILABLE"):
        imap.noop()
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
        pop.stat()
    # a new login is refused as temporary, not as a wrong password; bob's backend still serves
    again = imaplib.IMAP4("127.0.0.1", front["imap"], timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
        again.login("alice@example.test", PASSWORD)
    again.logout()
    pop = poplib.POP3("127.0.0.1", front["pop3"], timeout=30)
    pop.user("alice@example.test")
    with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
        pop.pass_(PASSWORD)
    pop.quit()
    assert _inbox_subjects(front["imap"], "bob@example.test") == ["bob on b2"]

    cluster.send(["alice@example.test"], "while b1 was down")  # the front queues it

    cluster.restart(cluster.b1)
    _wait(lambda: len(_inbox_subjects(front["imap"], "alice@example.test")) == 2, "the queued mail", timeout=60)
    assert _inbox_subjects(front["imap"], "alice@example.test") == ["alice on b1", "while b1 was down"]


SCRIPT = 'require "fileinto";\r\nif header :contains "subject" "x" { fileinto "X"; }\r\n'


def _scripts(node: Node, tmp: Path, user: str) -> list[str]:
    local, _, domain = user.partition("@")
    return sorted(p.name for p in (tmp / node.name / "data" / "vmail" / domain / local).glob("**/*.sieve")
                  if not p.name.startswith("."))  # not the active-script link


@pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")
def test_managesieve_through_the_front_lands_on_each_users_backend(cluster: Cluster) -> None:
    from sievelib.managesieve import Client

    for user in ("alice@example.test", "bob@example.test", "carol@example.test"):
        client = Client("127.0.0.1", cluster.front.ports["managesieve"])
        client.read_timeout = 60
        assert client.connect(user, PASSWORD, authmech="PLAIN")
        name = user.split("@")[0] + "-rules"
        assert client.putscript(name, SCRIPT) and client.setactive(name)
        assert client.getscript(name).split() == SCRIPT.split()
        client.logout()
    b1, b2, tmp = cluster.b1, cluster.b2, cluster.tmp
    assert _scripts(b1, tmp, "alice@example.test") == ["alice-rules.sieve"]
    assert _scripts(b2, tmp, "bob@example.test") == ["bob-rules.sieve"]
    assert _scripts(b1, tmp, "carol@example.test") == ["carol-rules.sieve"]  # no row: proxy_backends
    assert _scripts(b2, tmp, "alice@example.test") == _scripts(b1, tmp, "bob@example.test") == []
    assert "proxied client: rip=127.0.0.1, proxy=127.0.0.1" in b1.proc.text()  # XCLIENT


def test_the_per_user_limit_counts_the_sessions_of_other_nodes(cluster: Cluster) -> None:
    """Another front node holds carol's sessions up to the limit, then dies: its rows expire."""
    expires = int(time.time()) + 10  # time enough for the logins below on a loaded machine
    for _ in range(USERIP_LIMIT):
        _admin(cluster.url, "INSERT INTO pymailsrv_session (node, service, username, client, expires_at) "
                            "VALUES ('front2/1/dead', 'imap', 'carol@example.test', '127.0.0.1', %s)", (expires,))
    imap = imaplib.IMAP4("127.0.0.1", cluster.front.ports["imap"], timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
        imap.login("carol@example.test", PASSWORD)
    imap.logout()
    pop = poplib.POP3("127.0.0.1", cluster.front.ports["pop3"], timeout=30)  # POP3 is counted apart
    pop.user("carol@example.test")
    assert pop.pass_(PASSWORD).startswith(b"+OK")
    pop.quit()
    time.sleep(max(0.0, expires + 1.2 - time.time()))  # the dead node's rows expire (whole seconds)
    assert _inbox_subjects(cluster.front.ports["imap"], "carol@example.test") == ["carol on b1"]
