"""Mailboxes whose passwords the CLI stored under each ``postfixadmin_encrypt`` value (the forms
PostfixAdmin writes, prefixed or not) log in over IMAP to a real ``pymailsrv serve``."""

from __future__ import annotations

import imaplib
from pathlib import Path

import pytest

from pymailsrv.cli import main
from tests.app.server_process import ServerProcess, cli, write_config

# (the server's own setting, the settings the CLI stored mailboxes under). Unprefixed values are
# read as the server's setting says (md5: MD5, cleartext: PLAIN, otherwise CRYPT), as Dovecot's
# default_pass_scheme reads them; $1$ is MD5-crypt whatever it says.
SITES = [
    ("md5crypt", ["md5crypt", "system", "mysql_encrypt", "authlib", "sha512.b64", "php_crypt",
                  "php_crypt:BLOWFISH:5", "php_crypt:SHA256:1000:{SHA256-CRYPT}", "php_crypt:DES", "courier:md5",
                  "dovecot:SHA512-CRYPT", "dovecot:BLF-CRYPT", "SHA256"]),
    ("md5", ["md5", "md5crypt"]),
    ("cleartext", ["cleartext", "md5crypt"]),
]


def _site(tmp_path: Path, tls_files: tuple[str, str], encrypt: str) -> Path:
    conf = write_config(tmp_path, *tls_files, postfixadmin_encrypt=encrypt, worker_processes="0",
                        auth_failure_delay="0", auth_failure_limit="1000")  # a wrong password each
    assert main(["--config", str(conf), "db", "upgrade"]) == 0
    assert main(["--config", str(conf), "domain", "add", "example.test"]) == 0
    return conf


def _add(tmp_path: Path, tls_files: tuple[str, str], i: int, encrypt: str, password: str) -> str:
    """``mailbox add`` through a configuration that differs only in postfixadmin_encrypt."""
    (tmp_path / f"v{i}").mkdir()
    variant = write_config(tmp_path / f"v{i}", *tls_files, data_directory=str(tmp_path / "data"),
                           postfixadmin_encrypt=encrypt)
    address = f"user{i}@example.test"
    assert main(["--config", str(variant), "mailbox", "add", address, "--password", password]) == 0
    return address


def _imap_login(port: int, address: str, password: str) -> bool:
    imap = imaplib.IMAP4("127.0.0.1", port, timeout=10)  # plaintext LOGIN: a loopback client
    try:
        imap.login(address, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        imap.shutdown()
    return True


@pytest.mark.parametrize(("site", "settings"), SITES, ids=[s for s, _ in SITES])
def test_mailboxes_added_by_the_cli_log_in_over_imap(tmp_path: Path, tls_files: tuple[str, str], site: str,
                                                     settings: list[str]) -> None:
    conf = _site(tmp_path, tls_files, site)
    users = {_add(tmp_path, tls_files, i, encrypt, f"pw {encrypt}"): f"pw {encrypt}"  # imaplib: ASCII
             for i, encrypt in enumerate(settings)}
    # and one through the real command, under the site's own setting, the password on standard input
    piped = cli(conf, "mailbox", "add", "piped@example.test", "--password-stdin", stdin="piped password\n")
    assert piped.returncode == 0, piped.stderr
    users["piped@example.test"] = "piped password"
    server = ServerProcess(conf).start(expect=("imap",))
    try:
        for address, password in users.items():
            assert _imap_login(server.ports["imap"], address, password), address
            assert not _imap_login(server.ports["imap"], address, "X" + password[1:]), address  # DES reads 8
    finally:
        server.stop()
