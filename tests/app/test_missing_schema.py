"""A MariaDB database without the PostfixAdmin tables (no ``db upgrade`` yet, a wrong database or
table prefix) is a temporary failure for clients, as on SQLite: IMAP ``NO [UNAVAILABLE]``, SMTP
451 4.3.0, and a log line that says what is missing; not ``[SERVERBUG]``."""

from __future__ import annotations

import imaplib
import smtplib
from pathlib import Path

import pytest

from tests.app.server_process import ServerProcess, write_config


@pytest.mark.mariadb
def test_no_postfixadmin_tables_is_temporary(tmp_path: Path, tls_files: tuple[str, str], mariadb_url: str) -> None:
    conf = write_config(tmp_path, *tls_files, database_url=mariadb_url, worker_processes="0")
    server = ServerProcess(conf).start(expect=("imap", "smtpd"))
    try:
        imap = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match=r"\[UNAVAILABLE\]"):
            imap.login("alice@example.com", "secret")
        imap.shutdown()
        with smtplib.SMTP("127.0.0.1", server.ports["smtpd"], timeout=10) as smtp:
            smtp.ehlo("client.example.org")
            smtp.mail("someone@example.org")
            code, text = smtp.rcpt("alice@example.com")
        assert (code, text) == (451, b"4.3.0 <alice@example.com>: Temporary lookup failure")
    finally:
        server.stop()
    assert "Table" in server.text() and "no PostfixAdmin tables" in server.text()
