"""The pure readers of import-config: Dovecot's configuration syntax, master.cf, SQL connections
and queries, the Maildir check's path expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymailsrv.errors import ConfigError
from pymailsrv.migrate import dovecot_conf as dc
from pymailsrv.migrate import master_cf, sql
from pymailsrv.migrate.verify import expand


def test_tokenize_comments_quotes_continuation() -> None:
    text = ('# comment\nkey = value # trailing comment\nquoted = "a # b"\n  spaced =  x y  \n'
            "query = SELECT a \\\n  FROM b \\\n  WHERE c = '%u'\nsection name {\n}\n")
    lines = list(dc.tokenize(text))
    assert [(ln.kind, ln.key, ln.value, ln.line) for ln in lines] == [
        ("set", "key", "value", 2),
        ("set", "quoted", "a # b", 3),
        ("set", "spaced", "x y", 4),
        ("set", "query", "SELECT a FROM b WHERE c = '%u'", 5),
        ("open", "section", "name", 8),
        ("close", "", "", 9),
    ]


def test_tokenize_bad_line() -> None:
    with pytest.raises(ConfigError, match=r"x\.conf:2"):
        list(dc.tokenize("a = b\nthis is not a setting\n", "x.conf"))


def test_load_includes_sections_and_variables(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "dovecot.conf").write_text(
        "protocols = imap\n!include conf.d/*.conf\n!include_try missing.conf\n!include_try conf.d/none-*.x\n"
        'mail_plugins = $mail_plugins zlib\nmailbox "Sent Messages" {\n  special_use = \\Sent\n}\n')
    (tmp_path / "conf.d" / "10-a.conf").write_text(
        "protocols = $protocols pop3\nmail_plugins = quota\nprotocol imap {\n"
        "  mail_plugins = $mail_plugins imap_quota\n}\nservice imap-login {\n  inet_listener imap {\n"
        "    port = 1143\n  }\n}\n")
    (tmp_path / "conf.d" / "20-b.conf").write_text("service imap-login {\n  process_limit = 5\n}\n")
    root = dc.load(str(tmp_path / "dovecot.conf"))
    assert root.value("protocols") == "imap pop3"
    assert root.value("mail_plugins") == "quota zlib"
    assert root.find("protocol", "imap")[0].value("mail_plugins") == "quota imap_quota"
    login = root.merged("service", "imap-login")
    assert login.value("process_limit") == "5"
    assert login.merged("inet_listener", "imap").value("port") == "1143"
    assert root.find("mailbox", "Sent Messages")[0].value("special_use") == "\\Sent"
    assert root.get("protocols") is not None and root.get("protocols").file.endswith("10-a.conf")  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "error"), [
    ("!include nope.conf\n", "nope.conf"),
    ("section {\n", "not closed"),
    ("}\n", "without an open section"),
])
def test_load_errors(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "dovecot.conf").write_text(text)
    with pytest.raises(ConfigError, match=error):
        dc.load(str(tmp_path / "dovecot.conf"))


def test_include_loop_is_bounded(tmp_path: Path) -> None:
    (tmp_path / "dovecot.conf").write_text("!include dovecot.conf\n")
    with pytest.raises(ConfigError, match="nested too deeply"):
        dc.load(str(tmp_path / "dovecot.conf"))


def test_connect_args() -> None:
    assert dc.connect_args('host=db1 host=db2 dbname=pfa user=dovecot password="p w#x" port=3307') == {
        "host": ["db1", "db2"], "dbname": ["pfa"], "user": ["dovecot"], "password": ["p w#x"], "port": ["3307"]}
    assert dc.connect_args("/var/lib/pfa.db") == {"": ["/var/lib/pfa.db"]}


def test_master_cf_services_and_overrides() -> None:
    text = ("# comment\nsmtp      inet  n       -       y       -       -       smtpd\n"
            "submission inet n       -       y       -       -       smtpd\n"
            "  -o syslog_name=postfix/submission\n"
            "  -o { smtpd_client_restrictions = permit_sasl_authenticated, reject }\n"
            "dovecot   unix  -       n       n       -       -       pipe\n"
            "  flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}\n")
    services = master_cf.parse(text)
    assert [(s.name, s.type, s.command, s.line) for s in services] == [
        ("smtp", "inet", "smtpd", 2), ("submission", "inet", "smtpd", 3), ("dovecot", "unix", "pipe", 6)]
    assert services[1].overrides == {"syslog_name": "postfix/submission",
                                     "smtpd_client_restrictions": "permit_sasl_authenticated, reject"}
    assert services[2].argv() == "/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}"
    with pytest.raises(ConfigError, match="8 fields"):
        master_cf.parse("smtp inet n - y\n")


@pytest.mark.parametrize(("kind", "values", "url"), [
    ("mysql", {"hosts": "127.0.0.1", "user": "postfix", "password": "p@ss/w", "dbname": "pfa"},
     "mysql://postfix:p%40ss%2Fw@127.0.0.1:3306/pfa"),
    ("mysql", {"hosts": "unix:/run/mysqld/mysqld.sock inet:db2:3307", "user": "postfix", "dbname": "pfa"},
     "mysql://postfix@localhost/pfa?unix_socket=/run/mysqld/mysqld.sock"),
    ("pgsql", {"hosts": "[2001:db8::1]:5433", "user": "pf", "dbname": "pfa"}, "postgresql://pf@[2001:db8::1]:5433/pfa"),
    ("sqlite", {"dbpath": "/var/lib/pfa.db"}, "sqlite:////var/lib/pfa.db"),
])
def test_postfix_cf_database(kind: str, values: dict[str, str], url: str) -> None:
    assert sql.from_postfix_cf(kind, values).url() == url


def test_dovecot_database_and_hidden_password() -> None:
    db = sql.from_dovecot("mysql", "host=/run/mysqld/mysqld.sock dbname=pfa user=dovecot password=secret")
    assert db is not None and db.url(hide_password=True) == \
        "mysql://dovecot:***@localhost/pfa?unix_socket=/run/mysqld/mysqld.sock"
    pg = sql.from_dovecot("pgsql", "host=db port=6432 dbname=pfa user=d")
    assert pg is not None and pg.url() == "postgresql://d@db:6432/pfa"
    assert sql.from_dovecot("ldap", "x") is None


def test_query_tables_and_prefix() -> None:
    t = sql.tables("SELECT goto FROM pfa_alias,pfa_alias_domain WHERE pfa_alias_domain.alias_domain = '%d'")
    assert t.pfa == {"alias", "alias_domain"} and t.prefix == "pfa_" and not t.others
    t = sql.tables("SELECT password FROM users JOIN `mailbox` ON 1")
    assert t.pfa == {"mailbox"} and t.others == {"users"} and t.prefix == ""


def test_maildir_expansion() -> None:
    assert expand("/var/vmail/%d/%n", "alice@example.com", "example.com/alice/") == "/var/vmail/example.com/alice"
    assert expand("/var/vmail/{maildir}", "alice@example.com", "example.com/al/") == "/var/vmail/example.com/al"
    assert expand("/srv/%u/", "a@b.c", "x") == "/srv/a@b.c"
