"""End to end: a Postfix + Dovecot site on a PostfixAdmin database (SQLite, MariaDB) whose
Maildirs a real Dovecot wrote → ``pymailsrv import-config`` → ``pymailsrv serve`` with the written
file → the user logs in over IMAP with the same password and sees the same UIDs and UIDVALIDITY.

Needs dovecot with its SQL drivers (dovecot-sqlite, dovecot-mysql) and root (Dovecot hands the
Maildirs to the ``mail`` user, as tests/store/test_dovecot_compat.py does)."""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.app.server_process import ServerProcess, cli
from tests.migrate.classic_site import Db, write_dovecot, write_postfix

MAIL_UID = 8  # Debian's "mail" user
PASSWORD = "Corr3ct-horse"
BOB_PASSWORD = "b@ttery-St4ple"
_DRIVERS = "/usr/lib/dovecot/modules/auth"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("doveadm") is None or os.geteuid() != 0, reason="needs dovecot and root"),
]


def _chown(path: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), MAIL_UID, MAIL_UID)
    os.chown(path, MAIL_UID, MAIL_UID)


class SiteDovecot:
    """The site's own Dovecot, run on the site's configuration (plus a file that keeps it off the
    network), used to write the Maildirs as the site had them."""

    def __init__(self, base: Path, site_conf: Path, vmail: Path) -> None:
        self.vmail = vmail
        self.conf = base / "runner.conf"
        for d in ("run", "state"):
            (base / d).mkdir(parents=True)
        self.conf.write_text(f"!include {site_conf}\nbase_dir = {base}/run\nstate_dir = {base}/state\n"
                             f"log_path = {base}/dovecot.log\nprotocols =\nssl = no\n")
        _chown(vmail)
        subprocess.run(["dovecot", "-c", str(self.conf)], check=True, timeout=30)
        deadline = time.monotonic() + 20
        while not (base / "run" / "auth-userdb").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def adm(self, *args: str, stdin: bytes | None = None) -> str:
        _chown(self.vmail)
        out = subprocess.run(["doveadm", "-c", str(self.conf), *args], input=stdin, capture_output=True,
                             timeout=60, check=False)
        assert out.returncode == 0, out.stderr.decode()
        return out.stdout.decode()

    def status(self, user: str, folder: str) -> dict[str, int]:
        out = self.adm("-f", "flow", "mailbox", "status", "-u", user, "uidvalidity uidnext messages", folder)
        return {k: int(v) for k, v in (p.split("=") for p in out.split() if "=" in p)}

    def uids(self, user: str, folder: str) -> list[int]:
        out = self.adm("-f", "flow", "fetch", "-u", user, "uid", "mailbox", folder, "all")
        return [int(m) for m in re.findall(r"uid=(\d+)", out)]

    def stop(self) -> None:
        subprocess.run(["doveadm", "-c", str(self.conf), "stop"], capture_output=True, timeout=30, check=False)


@pytest.fixture
def base() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pymailsrv-ic-"))  # readable by Dovecot's auth user
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["sqlite", "mariadb"])
def database(request: pytest.FixtureRequest, base: Path) -> tuple[str, Db]:
    """(database_url for pymailsrv's own commands, the site's view of it)."""
    driver = "sqlite" if request.param == "sqlite" else "mysql"
    if not os.path.exists(f"{_DRIVERS}/libdriver_{driver}.so"):
        pytest.skip(f"needs Dovecot's {driver} driver (dovecot-{request.param.replace('mariadb', 'mysql')})")
    if request.param == "sqlite":
        (base / "db").mkdir(mode=0o777)
        os.chmod(base / "db", 0o777)  # Dovecot's auth worker reads it (and its WAL) as its own user
        path = base / "db" / "postfixadmin.db"
        return f"sqlite+aiosqlite:///{path}", Db("sqlite", name=str(path))
    url = str(request.getfixturevalue("mariadb_url"))
    return url, Db.from_url(url)


def _seed(base: Path, url: str, vmail: Path, cert: str, key: str) -> None:
    """A PostfixAdmin database made by pymailsrv's admin commands: alice's password as PostfixAdmin
    3.3 stores it by default (md5crypt, no prefix), bob's as with $CONF['encrypt'] =
    'dovecot:SHA512-CRYPT' ({SHA512-CRYPT} prefix)."""
    conf = base / "admin.conf"
    conf.write_text(f"data_directory = {base}/admin\ndatabase_url = {url}\nvirtual_mailbox_base = {vmail}\n"
                    f"tls_cert_file = {cert}\ntls_key_file = {key}\n")
    for args, stdin in ((("db", "upgrade"), None), (("domain", "add", "example.test"), None),
                        (("mailbox", "add", "alice@example.test", "--password-stdin"), PASSWORD + "\n")):
        r = cli(conf, *args, stdin=stdin)
        assert r.returncode == 0, r.stderr
    with conf.open("a") as fh:
        fh.write("postfixadmin_encrypt = dovecot:SHA512-CRYPT\n")
    r = cli(conf, "mailbox", "add", "bob@example.test", "--password-stdin", stdin=BOB_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    for p in (base / "db").glob("*"):
        os.chmod(p, 0o666)


def _same_routing(postfix_dir: Path, db: Db, conf: Path, vmail: Path) -> None:
    """Postfix's own map lookups (postmap over the site's PostfixAdmin maps, where Postfix has the
    driver) and pymailsrv's resolution on the written file agree on the domain and the Maildir."""
    r = cli(conf, "resolve", "alice@example.test")
    assert r.returncode == 0, r.stderr
    assert f"maildir {vmail}/example.test/alice/" in r.stdout
    maps = postfix_dir / "sql"
    if db.kind != "mysql" or shutil.which("postmap") is None:
        return  # Debian's postfix-sqlite is not among the suite's packages
    for key, table, expected in (("example.test", "virtual_domains_maps", "example.test"),
                                 ("alice@example.test", "virtual_mailbox_maps", "example.test/alice/")):
        q = subprocess.run(["postmap", "-q", key, f"mysql:{maps}/mysql_{table}.cf"], capture_output=True,
                           text=True, timeout=60, check=False)
        assert q.stdout.strip() == expected, q.stderr


@dataclass
class Before:
    """What the site's users saw under Dovecot."""

    inbox: dict[str, int]
    sent: dict[str, int]
    uids: list[int]
    uidls: list[str]


def _history(dovecot: SiteDovecot, user: str) -> Before:
    """A mailbox with a past, written by Dovecot: a folder, a gap in the UIDs (an expunge)."""
    assert f"passdb: {user} auth succeeded" in dovecot.adm("auth", "test", user, PASSWORD)
    assert "auth succeeded" in dovecot.adm("auth", "test", "bob@example.test", BOB_PASSWORD)
    dovecot.adm("mailbox", "create", "-u", user, "Sent")
    for i in range(4):
        dovecot.adm("save", "-u", user, stdin=f"From: bob@example.test\nSubject: m{i}\n\nbody {i}\n".encode())
    dovecot.adm("save", "-u", user, "-m", "Sent", stdin=b"From: alice@example.test\nSubject: s\n\nsent\n")
    dovecot.adm("expunge", "-u", user, "mailbox", "INBOX", "uid", "2")
    # Dovecot's own POP3 server, run pre-authenticated, as a POP3 client saw the mailbox
    raw = dovecot.adm("exec", "pop3", "-u", user, stdin=b"UIDL\r\nQUIT\r\n")
    uidls = re.findall(r"^\d+ (\S+)\r?$", raw, re.M)
    assert len(uidls) == 3, raw
    return Before(dovecot.status(user, "INBOX"), dovecot.status(user, "Sent"), dovecot.uids(user, "INBOX"), uidls)


def _inbox_uids(imap: imaplib.IMAP4) -> list[int]:
    typ, data = imap.uid("FETCH", "1:*", "(UID)")
    assert typ == "OK"
    return [int(m) for m in re.findall(rb"UID (\d+)", b" ".join(d for d in data if isinstance(d, bytes)))]


def _after(server: ServerProcess, user: str, before: Before) -> None:
    """The same logins, UIDs, UIDVALIDITY and UIDLs from pymailsrv; new mail continues the UIDs."""
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    imap.login(user, PASSWORD)  # loopback counts as secured (disable_plaintext_auth)
    typ, data = imap.select("INBOX")
    assert typ == "OK" and int(data[0]) == 3
    assert int(imap.response("UIDVALIDITY")[1][0]) == before.inbox["uidvalidity"]
    assert _inbox_uids(imap) == before.uids
    typ, data = imap.status("Sent", "(UIDVALIDITY UIDNEXT MESSAGES)")
    assert f"UIDVALIDITY {before.sent['uidvalidity']}".encode() in data[0]
    assert f"UIDNEXT {before.sent['uidnext']}".encode() in data[0]
    with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=30) as smtp:
        smtp.sendmail("bob@example.test", [user], b"From: bob@example.test\r\nSubject: after\r\n\r\nhello\r\n")
    deadline = time.monotonic() + 30  # delivered before the 250; a loaded machine may still lag the poll
    while len(_inbox_uids(imap)) < 4 and time.monotonic() < deadline:
        imap.noop()
        time.sleep(0.1)
    assert _inbox_uids(imap) == [*before.uids, before.inbox["uidnext"]]
    imap.logout()
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    imap.login("Bob@Example.TEST", BOB_PASSWORD)  # logins are looked up lower-cased
    imap.logout()
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    pop.user(user)
    pop.pass_(PASSWORD)
    assert [line.split()[1].decode() for line in pop.uidl()[1]][:3] == before.uidls  # nothing fetched twice
    pop.quit()
    bad = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        bad.login(user, "wrong password")
    bad.shutdown()


@pytest.mark.parametrize("home_in_query", [True, False], ids=["home-from-user_query", "mail_location-%d/%n"])
def test_same_password_same_uids_after_switch(base: Path, database: tuple[str, Db], home_in_query: bool,
                                              tls_files: tuple[str, str]) -> None:
    url, db = database
    vmail = base / "vmail"
    vmail.mkdir()
    cert, key = tls_files
    _seed(base, url, vmail, cert, key)
    write_postfix(base / "site", db, vmail=vmail, cert=cert, key=key, delivery="virtual")
    (base / "spool" / "private").mkdir(parents=True)
    site_dc = write_dovecot(base / "site", db, vmail=vmail, cert=cert, key=key, home_in_query=home_in_query,
                            postfix_spool=str(base / "spool"))
    user = "alice@example.test"
    dovecot = SiteDovecot(base / "dovecot-run", site_dc / "dovecot.conf", vmail)
    try:
        before = _history(dovecot, user)
    finally:
        dovecot.stop()
    assert before.uids == [1, 3, 4]
    assert (vmail / "example.test" / "alice" / "dovecot-uidlist").exists()

    out = base / "pymailsrv.conf"
    r = cli(base / "none.conf", "import-config", "--postfix", str(base / "site" / "postfix"),
            "--dovecot", str(site_dc), "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr  # nothing marked !! for this site
    assert "check of 2 active mailboxes: each at virtual_mailbox_base/mailbox.maildir" in r.stdout
    assert f"virtual_mailbox_base = {vmail}" in out.read_text()
    _same_routing(base / "site" / "postfix", db, out, vmail)
    with out.open("a") as fh:  # this test's own ports and state; no amavis or OpenDKIM here to filter through
        fh.write(f"data_directory = {base}/data\nworker_processes = 0\ncontent_filter =\n"
                 "smtpd_milters =\nnon_smtpd_milters =\n"
                 + "".join(f"{n}_listen = 127.0.0.1:0\n" for n in ("smtpd", "submission", "smtps", "imap",
                                                                   "imaps", "pop3", "pop3s", "reinject")))
    server = ServerProcess(out).start(expect=("smtpd", "imap", "pop3"))
    try:
        _after(server, user, before)
    finally:
        server.stop()
