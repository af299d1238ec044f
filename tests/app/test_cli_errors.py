"""Every input problem of the ``pymailsrv`` command is one ``pymailsrv: …`` line on standard error
and a non-zero exit (2 for usage, 1 otherwise), never a traceback: the command run as a real
process, without a terminal."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ROOT


def pymailsrv(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """The command as a process whose standard input is a pipe (no terminal) holding ``stdin``."""
    env = {k: v for k, v in os.environ.items() if k != "PYMAILSRV_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "pymailsrv", *argv], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60, start_new_session=True)


def one_error_line(r: subprocess.CompletedProcess[str], rc: int, text: str, prefix: str = "pymailsrv: ") -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == rc, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(prefix) and text in r.stderr, r.stderr


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    """A configuration with a database, example.com and bob@example.com (set up in-process)."""
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(f"data_directory = {tmp_path / 'data'}\n")
    for argv in (("db", "upgrade"), ("domain", "add", "example.com"),
                 ("mailbox", "add", "bob@example.com", "--password", "bobpw")):
        assert main(["--config", str(conf), *argv]) == 0
    yield conf


NO_TERMINAL = [  # (argv, standard input, the one line): a pipe, not a terminal
    (("pw", "hash"), "", "no password on standard input"),
    (("auth", "test", "bob@example.com"), "", "no password on standard input"),
    (("mailbox", "add", "carol@example.com", "--password-stdin"), "", "no password on standard input"),
    (("mailbox", "add", "carol@example.com"), "carol's password\n", "a password is required"),
    (("mailbox", "add", "x@nosuch.example", "--password", "x"), "", "domain nosuch.example does not exist"),
    (("mailbox", "add", "bob@example.com", "--password", "x"), "", "mailbox bob@example.com already exists"),
    (("mailbox", "add", "not an address", "--password", "x"), "", "invalid address"),
    (("pw", "hash", "-s", "SHA512-CRYPT", "-r", "5", "-p", "x"), "", "Invalid rounds 5 for SHA512-CRYPT"),
]


@pytest.mark.parametrize(("argv", "stdin", "text"), NO_TERMINAL, ids=[" ".join(c[0])[:40] for c in NO_TERMINAL])
def test_input_problems_are_one_line(site: Path, argv: tuple[str, ...], stdin: str, text: str) -> None:
    one_error_line(pymailsrv("--config", str(site), *argv, stdin=stdin), 1, text)


# the same checks in-process (the process-level ones above cover stdin, exit codes, shutdown)
IN_PROCESS = [  # (argv, the one line)
    (("pw", "hash", "-p", ""), "Empty passwords are not allowed"),
    (("pw", "hash", "-s", "BLF-CRYPT", "-r", "99", "-p", "x"), "Invalid rounds 99 for BLF-CRYPT (allowed: from 4"),
    (("pw", "hash", "-s", "PBKDF2", "-r", "2000000000", "-p", "x"), "Invalid rounds"),
    (("pw", "hash", "-r", "5000", "-p", "x"), "Invalid rounds 5000 for MD5-CRYPT (allowed: none)"),
    (("pw", "hash", "--encrypt", "nosuch", "-p", "x"), 'unknown value "nosuch"'),
    (("pw", "hash", "-s", "NOSUCH", "-p", "x"), "Unknown scheme: NOSUCH"),
    (("pw", "verify", "{NOSUCH}x", "-p", "x"), "Unknown scheme: NOSUCH"),
    (("mailbox", "passwd", "nobody@example.com", "--password", "x"), "mailbox nobody@example.com does not exist"),
    (("mailbox", "add", "carol@example.com", "--password", "\udcff"), "the password is not UTF-8 text"),
    (("pw", "hash", "--encrypt", "cleartext", "-p", "latin-1 \udce4"), "the password is not UTF-8 text"),
    (("mailbox", "add", "x@example.com", "--password", "x", "--quota", "-1"), "quota must be"),
    (("domain", "add", "example.com"), "domain example.com already exists"),
    (("domain", "add", "bad_domain.example"), "invalid domain name"),
    (("alias", "add", "info@example.com", ","), "an alias needs at least one target"),
    (("alias", "del", "bob@example.com"), "is a mailbox"),
    (("alias-domain", "add", "example.com", "example.com"), "cannot point to itself"),
    (("resolve", "not-an-address"), "invalid address"),
    (("resolve", "@example.com"), "invalid address"),
    (("queue", "delete", "NOSUCH"), "no queue at"),
]


@pytest.mark.parametrize(("argv", "text"), IN_PROCESS, ids=[" ".join(c[0])[:40] for c in IN_PROCESS])
def test_more_input_problems_are_one_line(site: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                          text: str) -> None:
    capsys.readouterr()
    assert main(["--config", str(site), *argv]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pymailsrv: ") and text in err, err


def test_passwords_from_a_pipe(site: Path) -> None:
    r = pymailsrv("--config", str(site), "pw", "hash", stdin="s3cret\n")
    assert r.returncode == 0 and r.stdout.startswith("$1$"), r.stderr
    r = pymailsrv("--config", str(site), "auth", "test", "bob@example.com", stdin="bobpw\n")
    assert r.returncode == 0 and "auth succeeded" in r.stdout, r.stderr


def in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_usage_errors_exit_2(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = pymailsrv("--config", str(site), "mailbox", "add", "x@example.com", "--quota", "ten")
    assert r.returncode == 2 and "invalid int value" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(SystemExit) as exited:
        main(["--config", str(site), "pw", "hash", "--scheme", "SSHA", "--encrypt", "md5"])
    assert exited.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_queue_message_that_does_not_exist(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site.parent / "data" / "spool" / "active").mkdir(parents=True)
    assert in_process(capsys, "--config", str(site), "queue", "delete", "NOSUCH") == \
        (1, "pymailsrv: NOSUCH: no such message\n")


def test_bad_postfixadmin_encrypt_before_any_prompt(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site.write_text(site.read_text() + "postfixadmin_encrypt = php_crypt:SHA512:10\n")
    rc, err = in_process(capsys, "--config", str(site), "mailbox", "add", "carol@example.com")
    assert rc == 1 and err == ('pymailsrv: fatal: postfixadmin_encrypt: bad difficulty "10" for SHA512 '
                               "(from 1000 to 999999999)\n")


# --- the configuration and the database ---------------------------------------------------------
def test_missing_unreadable_or_broken_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one_error_line(pymailsrv("--config", str(tmp_path / "none.conf"), "domain", "list"), 1,
                   "cannot read configuration: No such file or directory", prefix="pymailsrv: fatal: ")
    assert in_process(capsys, "--config", str(tmp_path), "domain", "list") == \
        (1, f"pymailsrv: fatal: {tmp_path}: cannot read configuration: Is a directory\n")
    latin1 = tmp_path / "latin1.conf"
    latin1.write_bytes(b"mail_name = Post\xe4mt\n")
    assert in_process(capsys, "--config", str(latin1), "domain", "list") == \
        (1, f"pymailsrv: fatal: {latin1}: cannot read configuration: not UTF-8 text (byte 16)\n")
    broken = tmp_path / "broken.conf"
    broken.write_text("smtpd_listen = 127.0.0.1:70000\nquota_multiplier = many\n")
    rc, err = in_process(capsys, "--config", str(broken), "domain", "list")
    lines = err.splitlines()
    assert rc == 1 and len(lines) == 2 and all(line.startswith(f"pymailsrv: fatal: {broken}:") for line in lines)


def test_database_down_missing_or_unloadable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connection refused
        down = tmp_path / "down.conf"
        down.write_text(f"data_directory = {tmp_path}\ndatabase_url = mysql+aiomysql://root@127.0.0.1:"
                        f"{s.getsockname()[1]}/x\n")
        one_error_line(pymailsrv("--config", str(down), "mailbox", "add", "a@example.com", "--password", "x"), 1,
                       "pymailsrv: database unavailable: (2003")
    empty = tmp_path / "empty.conf"
    empty.write_text(f"data_directory = {tmp_path / 'empty'}\n")  # SQLite, never upgraded
    one_error_line(pymailsrv("--config", str(empty), "mailbox", "list"), 1, "run pymailsrv db upgrade")
    driver = tmp_path / "driver.conf"
    driver.write_text(f"data_directory = {tmp_path}\ndatabase_url = mysql+nosuchdriver://x@127.0.0.1/x\n")
    rc, err = in_process(capsys, "--config", str(driver), "domain", "list")
    assert rc == 1 and err.startswith("pymailsrv: fatal: database_url: cannot load the driver 'mysql+nosuchdriver'")
    assert err.count("\n") == 1


@pytest.mark.mariadb
def test_mariadb_database_without_the_schema(tmp_path: Path, mariadb_url: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(f"data_directory = {tmp_path}\ndatabase_url = {mariadb_url}\n")
    one_error_line(pymailsrv("--config", str(conf), "domain", "add", "example.com"), 1, "no PostfixAdmin tables")
    for argv in (("mailbox", "list"), ("resolve", "a@example.com")):
        rc, err = in_process(capsys, "--config", str(conf), *argv)
        assert rc == 1 and err.count("\n") == 1 and "doesn't exist\") (no PostfixAdmin tables" in err, err
    r = pymailsrv("--config", str(conf), "auth", "test", "a@example.com", "x")
    assert r.returncode == 75 and "auth temporarily failed" in r.stdout and "Traceback" not in r.stderr


def test_init_where_no_directory_can_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    r = pymailsrv("--config", str(tmp_path / "etc" / "p.conf"), "init", "--data-dir", str(blocker / "data"),
                  "--hostname", "mail.example.test")
    one_error_line(r, 1, f"{blocker / 'data'}: Not a directory", prefix="pymailsrv: fatal: ")
