"""``pymailsrv init``, ``db upgrade``, the admin commands and ``serve`` as a real process: every
listener answers, mail goes in by SMTP and comes out by IMAP and POP3, SIGTERM stops it cleanly,
a taken port is one clear line."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import ssl
import time
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, cli, write_config


@pytest.fixture
def configured(tmp_path: Path, tls_files: tuple[str, str]) -> Path:
    conf = write_config(tmp_path, *tls_files)
    # in-process for speed; test_init_writes_config_database_and_certificate runs the real command
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    assert main(["--config", str(conf), "mailbox", "add", "alice@example.test", "--password", "s3cret-pass",
                 "--name", "Alice"]) == 0
    return conf


@pytest.fixture
def server(configured: Path):  # type: ignore[no-untyped-def]
    proc = ServerProcess(configured).start()
    yield proc
    if proc.proc and proc.proc.poll() is None:
        proc.stop()


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_auth_test_accepts_the_user(configured: Path) -> None:
    ok = cli(configured, "auth", "test", "alice@example.test", "s3cret-pass")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = cli(configured, "auth", "test", "alice@example.test", "wrong")
    assert bad.returncode != 0


def test_mail_in_by_smtp_out_by_imap_and_pop3(server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=10) as s:
        s.ehlo("client.example.org")
        s.sendmail("bob@example.org", ["alice@example.test"], b"Subject: hello\r\n\r\nhi alice\r\n")
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=10) as s:
        s.starttls(context=_tls())
        s.login("alice@example.test", "s3cret-pass")
        s.sendmail("alice@example.test", ["alice@example.test"], b"Subject: to myself\r\n\r\nnote\r\n")
    deadline = time.monotonic() + 10
    while True:
        imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=_tls())
        imap.login("alice@example.test", "s3cret-pass")
        _, data = imap.select("INBOX")
        if int(data[0] or 0) >= 2 or time.monotonic() > deadline:
            break
        imap.logout()
        time.sleep(0.1)
    assert int(data[0] or 0) == 2
    _, msg = imap.fetch("1:2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    subjects = b"".join(part[1] for part in msg if isinstance(part, tuple))
    assert b"Subject: hello" in subjects and b"Subject: to myself" in subjects
    imap.logout()
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    pop.stls(context=_tls())
    pop.user("alice@example.test")
    pop.pass_("s3cret-pass")
    assert pop.stat()[0] == 2
    pop.quit()
    # STARTTLS on IMAP and implicit TLS on SMTPS and POP3S answer too
    imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"])
    imap.starttls(ssl_context=_tls())
    imap.login("alice@example.test", "s3cret-pass")
    imap.logout()
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["smtps"], context=_tls(), timeout=10) as s:
        assert s.ehlo()[0] == 250
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=_tls())
    assert pop.getwelcome().startswith(b"+OK")
    pop.quit()
    assert server.stop() == 0
    log = server.text()
    assert "terminating on signal" in log and "daemon stopped" in log
    assert "status=sent (delivered to maildir)" in log
    assert "s3cret" not in log


def test_port_taken_is_one_clear_line(configured: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    text = configured.read_text().replace("imap_listen = 127.0.0.1:0", f"imap_listen = 127.0.0.1:{port}")
    configured.write_text(text)
    r = cli(configured, "serve")
    busy.close()
    assert r.returncode == 1
    fatal = [line for line in (r.stdout + r.stderr).splitlines() if "fatal" in line]
    assert len(fatal) == 1 and "address already in use" in fatal[0], r.stderr
    assert "Traceback" not in r.stderr


def test_bad_config_stops_startup_with_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f"data_directory = {tmp_path}\nsmtpd_listen = 127.0.0.1:70000\n")
    r = cli(conf, "serve")
    assert r.returncode == 1
    assert r.stderr.strip() == (f'pymailsrv: fatal: {conf}:2: smtpd_listen: bad port 70000 in '
                                f'"127.0.0.1:70000" (0-65535)')


def test_init_writes_config_database_and_certificate(tmp_path: Path) -> None:
    conf = tmp_path / "etc" / "pymailsrv.conf"
    r = cli(conf, "init", "--data-dir", str(tmp_path / "d"), "--hostname", "mail.example.test")
    assert r.returncode == 0, r.stderr
    text = conf.read_text()
    assert "myhostname = mail.example.test" in text and "smtpd_listen = 0.0.0.0:25" in text
    assert (tmp_path / "d" / "tls" / "cert.pem").exists() and (tmp_path / "d" / "pymailsrv.db").exists()
    assert (tmp_path / "d" / "tls" / "key.pem").stat().st_mode & 0o077 == 0
    assert (tmp_path / "d" / "pymailsrv.db").stat().st_mode & 0o077 == 0  # the password hashes
    again = cli(conf, "init", "--data-dir", str(tmp_path / "d"))
    assert again.returncode == 1 and "exists" in again.stderr
    assert cli(conf, "domain", "add", "example.test").returncode == 0
    r = cli(conf, "postconf", "-n", "myhostname")
    assert r.stdout == "myhostname = mail.example.test\n"


def test_shipped_sample_config_is_what_init_writes() -> None:
    from pymailsrv.config import sample

    shipped = (Path(__file__).resolve().parents[2] / "config" / "pymailsrv.conf").read_text()
    assert shipped == sample.render(hostname="mail.example.com", data_dir="/var/lib/pymailsrv",
                                    cert_file="/etc/pymailsrv/cert.pem", key_file="/etc/pymailsrv/key.pem",
                                    demo=False)


def test_demo_setup_creates_a_working_mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """What the README's first command prepares before serving: ./data, demo domain and mailbox."""
    from pymailsrv import app

    monkeypatch.chdir(tmp_path)
    path, password = app.prepare_demo()
    assert path == str(tmp_path / "data" / "pymailsrv.conf")
    assert app.prepare_demo() == (path, password)  # a second start reuses it
    text = Path(path).read_text()
    assert "smtpd_listen = 127.0.0.1:2525" in text and "imaps_listen = 127.0.0.1:1993" in text
    assert (tmp_path / "data" / "vmail" / "example.test" / "demo" / "new").is_dir()
    assert main(["--config", path, "auth", "test", app.DEMO_USER, password]) == 0
    assert main(["--config", path, "resolve", f"postmaster@{app.DEMO_DOMAIN}"]) == 0
    assert app.DEMO_USER in capsys.readouterr().out
