"""import-config on classic Postfix + Dovecot + PostfixAdmin layouts the tests write, and on
Debian's own /etc/dovecot: what is written, what the report says, that the result loads."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pymailsrv.config.settings import Settings
from pymailsrv.migrate import import_site
from pymailsrv.migrate.report import Item
from tests.app.server_process import ROOT, cli
from tests.migrate.classic_site import Db, write_dovecot, write_postfix

MYSQL = Db("mysql", "db.example.test", 3306, "postfixadmin", "postfix")


def _site(tmp_path: Path, tls_files: tuple[str, str], db: Db = MYSQL, **kw: str) -> tuple[Path, Path]:
    cert, key = tls_files
    pf = write_postfix(tmp_path, db, vmail=Path("/var/vmail"), cert=cert, key=key, **kw)
    dc = write_dovecot(tmp_path, db, vmail=Path("/var/vmail"), cert=cert, key=key)
    return pf, dc


def _values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip()
    return out


def _find(items: list[Item], source: str) -> Item:
    found = [i for i in items if source in i.source]
    assert found, f"no report line for {source!r}"
    return found[0]


def test_classic_mysql_site_with_dovecot_lmtp(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files)
    result = import_site(str(pf), str(dc))
    v = _values(result.text)
    report = result.report
    assert not report.blocking, report.render()
    # the same database (Dovecot's connection), the same Maildirs
    assert v["database_url"] == "mysql://postfix@db.example.test:3306/postfixadmin"
    assert v["virtual_mailbox_base"] == "/var/vmail"
    assert v["default_pass_scheme"] == "MD5-CRYPT"
    # listeners: master.cf's smtpd services, Dovecot's protocols; the amavis return path
    assert (v["smtpd_listen"], v["submission_listen"], v["smtps_listen"]) == ("25", "587", "465")
    assert (v["imap_listen"], v["imaps_listen"], v["pop3_listen"], v["pop3s_listen"]) == ("143", "993", "110", "995")
    assert v["reinject_listen"] == "127.0.0.1:10025"
    assert v["content_filter"] == "smtp:[127.0.0.1]:10024"
    # PostfixAdmin maps are the Directory's job; postgrey becomes check_greylist with its options
    for name in ("virtual_mailbox_domains", "virtual_alias_maps", "virtual_mailbox_maps", "smtpd_sender_login_maps"):
        assert name not in v
    assert v["smtpd_recipient_restrictions"].endswith("reject_rbl_client zen.spamhaus.org, check_greylist")
    assert v["greylist_delay"] == "120s" and v["greylist_max_age"] == "30d"
    assert v["tls_cert_file"] == tls_files[0] and v["smtpd_tls_cert_file"] == tls_files[0]
    assert v["mail_max_userip_connections"] == "25" and v["pop3_uidl_format"] == "%08Xu%08Xv"
    assert v["smtpd_banner"] == "$myhostname ESMTP $mail_name (Debian/GNU)"
    # Postfix's own paths never become pymailsrv's
    assert "data_directory" not in v and "queue_directory" not in v
    # the report explains what is lossy
    items = report.items
    assert _find(items, "mail_plugins sieve").status == "translated"  # Sieve: pymailsrv runs the scripts
    assert _find(items, "smtpd_milters").status == "carried"  # the site's OpenDKIM goes on signing
    assert "quota-status" in _find(items, "inet:127.0.0.1:12340").text
    assert _find(items, "plugin quota_rule2").status == "not carried"
    assert _find(items, "virtual_transport").status == "translated"
    assert "Dovecot" in _find(items, "virtual_mailbox_base").text  # LMTP: Dovecot decided where mail went
    assert _find(items, "submission -o smtpd_tls_security_level=encrypt").status == "translated"
    assert "mailbox table" in _find(items, "virtual_mailbox_maps mysql:mysql_virtual_mailbox_maps.cf").text
    assert _find(items, "password_query").status == "translated"
    # the result loads as it is
    Settings.from_text(result.text)


def test_maildrop_delivery_is_lossy_and_said_so(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files, delivery="maildrop")
    report = import_site(str(pf), str(dc)).report
    item = _find(report.items, "main.cf:44 virtual_transport")
    assert item.status == "translated" and "mailfilter rules are NOT applied" in item.text
    assert not report.blocking


def test_virtual_delivery_and_cyrus_sasl(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files, delivery="virtual", sasl="cyrus")
    result = import_site(str(pf), str(dc))
    assert "virtual(8)" in _find(result.report.items, "virtual_transport").text
    assert _find(result.report.items, "smtpd_sasl_type").status == "not carried"
    item = _find(result.report.items, "pwcheck_method: saslauthd")
    assert item.status == "not carried" and "saslauthd" in item.text
    (pf / "sasl" / "smtpd.conf").write_text(
        "pwcheck_method: auxprop\nauxprop_plugin: sql\nmech_list: PLAIN LOGIN CRAM-MD5\nsql_engine: mysql\n"
        "sql_select: SELECT password FROM mailbox WHERE username = '%u@%r' AND active = '1'\n")
    items = import_site(str(pf), str(dc)).report.items
    assert _find(items, "pwcheck_method: auxprop").status == "translated"
    assert "CRAM-MD5" in _find(items, "smtpd.conf mech_list").text
    assert _values(result.text)["smtpd_sasl_auth_enable"] == "yes"
    assert not result.report.blocking


def test_sqlite_site_and_postfix_alone(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    db = Db("sqlite", name="/var/lib/postfixadmin/postfixadmin.db")
    pf, _ = _site(tmp_path, tls_files, db=db, delivery="virtual")
    result = import_site(str(pf), None)
    v = _values(result.text)
    assert v["database_url"] == "sqlite:////var/lib/postfixadmin/postfixadmin.db"
    assert v["virtual_mailbox_base"] == "/var/vmail"  # Postfix's virtual(8) delivered there
    Settings.from_text(result.text)


def test_table_prefix_and_other_database(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files)
    for f in (pf / "sql").glob("*.cf"):
        f.write_text(f.read_text().replace("FROM mailbox", "FROM pfa_mailbox").replace("dbname = postfixadmin",
                                                                                         "dbname = other"))
    sql = dc / "dovecot-sql.conf.ext"
    sql.write_text(sql.read_text().replace("FROM mailbox", "FROM pfa_mailbox"))
    report = import_site(str(pf), str(dc)).report
    assert _values(import_site(str(pf), str(dc)).text)["database_table_prefix"] == "pfa_"
    assert "read another database" in _find(report.of("not carried"), "mysql_virtual_mailbox_maps.cf").text


def test_foreign_schema_and_mail_layout_are_blocking(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files)
    sql = dc / "dovecot-sql.conf.ext"
    sql.write_text(sql.read_text().replace("FROM mailbox", "FROM users"))
    (dc / "conf.d" / "10-mail.conf").write_text("mail_location = maildir:~/Maildir:LAYOUT=fs\n")
    report = import_site(str(pf), str(dc)).report
    blocking = {i.source.split(" ", 1)[-1] for i in report.blocking}
    assert {"password_query", "user_query"} <= blocking
    assert any("LAYOUT=fs" in i.source for i in report.blocking)


@pytest.mark.parametrize("db", [MYSQL, Db("sqlite", name="/var/lib/postfixadmin/postfixadmin.db")],
                         ids=["mysql", "sqlite"])
@pytest.mark.skipif(shutil.which("postconf") is None or shutil.which("doveconf") is None,
                    reason="needs Postfix's postconf and Dovecot's doveconf")
def test_the_classic_files_are_what_postfix_and_dovecot_accept(tmp_path: Path, tls_files: tuple[str, str],
                                                               db: Db) -> None:
    """The layouts these tests translate are real configurations: Postfix's postconf and Dovecot's
    doveconf read them without an error or a warning."""
    pf, dc = _site(tmp_path, tls_files, db=db, delivery="maildrop")
    for cmd in (["postconf", "-c", str(pf), "-n"], ["postconf", "-c", str(pf), "-M"],
                ["doveconf", "-c", str(dc / "dovecot.conf"), "-n"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0 and not r.stderr.strip(), (cmd, r.stderr)
    services = subprocess.run(["postconf", "-c", str(pf), "-M"], capture_output=True, text=True, timeout=60).stdout
    assert "amavis" in services and "127.0.0.1:10025" in services


def test_debian_default_dovecot(tmp_path: Path) -> None:
    """Debian's own /etc/dovecot (dovecot-core's files): system users and mbox, which pymailsrv
    does not serve — said so, marked !!, and the rest still translated."""
    if not os.path.exists("/etc/dovecot/dovecot.conf"):
        pytest.skip("needs dovecot-core's /etc/dovecot")
    result = import_site(None, "/etc/dovecot")
    report = result.report
    blocking = " ".join(f"{i.source} {i.text}" for i in report.blocking)
    assert "passdb pam" in blocking and "mbox" in blocking and "database" in blocking
    v = _values(result.text)
    assert v["imap_listen"] == "143" and v["pop3_listen"] == "110"
    assert any(i.source.endswith("protocols lmtp") for i in report.items)


def test_command_writes_file_and_report(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files)
    out = tmp_path / "out.conf"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "pymailsrv", "import-config", "--postfix", str(pf), "--dovecot",
                        str(dc), "--out", str(out), "--no-check"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "not carried (" in r.stdout and f"wrote {out}" in r.stdout
    assert out.stat().st_mode & 0o077 == 0  # it holds the database password
    r = subprocess.run([sys.executable, "-m", "pymailsrv", "import-config", "--dovecot", str(tmp_path / "nope")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and "not a directory" in r.stderr and "Traceback" not in r.stderr
    # without --out: the configuration on standard output, the report on standard error; a site
    # with something to deal with first (here: no database at all) exits 2
    (dc / "dovecot-sql.conf.ext").write_text("driver = ldap\n")
    r = subprocess.run([sys.executable, "-m", "pymailsrv", "import-config", "--dovecot", str(dc)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stdout.startswith("# Written by pymailsrv import-config") and "imap_listen = 143" in r.stdout
    assert "!! " in r.stderr and "'ldap' databases are not supported" in r.stderr


def test_prefetch_userdb_fields_in_password_query(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    """PostfixAdmin's DOVECOT.TXT variant: the passdb query returns userdb_home (userdb prefetch)."""
    pf, dc = _site(tmp_path, tls_files, delivery="virtual")
    (dc / "conf.d" / "auth-sql.conf.ext").write_text(
        f"passdb {{\n  driver = sql\n  args = {dc}/dovecot-sql.conf.ext\n}}\nuserdb {{\n  driver = prefetch\n}}\n")
    (dc / "conf.d" / "10-mail.conf").write_text("mail_location = maildir:~/\n")
    (dc / "dovecot-sql.conf.ext").write_text(
        "driver = mysql\nconnect = host=db.example.test dbname=pfa user=dovecot password=pw\n"
        "password_query = SELECT username AS user, password, CONCAT('/srv/mail/', maildir) AS userdb_home, "
        "5000 AS userdb_uid FROM mailbox WHERE username = '%u' AND active = '1'\n")
    result = import_site(str(pf), str(dc))
    v = _values(result.text)
    assert v["virtual_mailbox_base"] == "/srv/mail"
    assert v["database_url"] == "mysql://dovecot:pw@db.example.test:3306/pfa"
    assert "differs from where Dovecot reads" in _find(result.report.of("not carried"), "virtual_mailbox_base").text
    assert not result.report.blocking


@pytest.mark.parametrize("home_in_query", [False, True], ids=["mail_location-%d/%n", "home-from-user_query"])
def test_check_finds_a_maildir_elsewhere(tmp_path: Path, tls_files: tuple[str, str], home_in_query: bool) -> None:
    """A renamed mailbox keeps its old maildir column (POSTFIXADMIN-SCHEMA §3): with Dovecot reading
    %d/%n it lived elsewhere than virtual_mailbox_base/maildir, and the check says so (!!); with
    home from the maildir column it is where pymailsrv looks."""
    cert, key = tls_files
    path = tmp_path / "pfa.db"
    vmail = tmp_path / "vmail"
    admin = tmp_path / "admin.conf"
    admin.write_text(f"data_directory = {tmp_path}/data\ndatabase_url = sqlite:///{path}\n"
                     f"virtual_mailbox_base = {vmail}\n")
    for args in (("db", "upgrade"), ("domain", "add", "example.test"),
                 ("mailbox", "add", "alice@example.test", "--password", "x"),
                 ("mailbox", "add", "bob@example.test", "--password", "x")):
        r = cli(admin, *args)
        assert r.returncode == 0, r.stderr
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE mailbox SET maildir = 'example.test/alice.old/' WHERE username = 'alice@example.test'")
    db = Db("sqlite", name=str(path))
    pf = write_postfix(tmp_path, db, vmail=vmail, cert=cert, key=key)
    dc = write_dovecot(tmp_path, db, vmail=vmail, cert=cert, key=key, home_in_query=home_in_query)
    report = import_site(str(pf), str(dc), check=True).report
    item = _find(report.items, "check of 2 active mailboxes")
    if home_in_query:
        assert item.status == "translated" and "1 have no Maildir yet" in item.text
        assert not report.blocking
    else:
        assert item.blocking and f"alice@example.test: {vmail}/example.test/alice" in item.text
        assert "bob" not in item.text


def test_postscreen_classes_and_unsupported_tables(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    pf, dc = _site(tmp_path, tls_files)
    master = (pf / "master.cf").read_text().replace(
        "smtp      inet  n       -       y       -       -       smtpd\n",
        "smtp      inet  n       -       y       -       1       postscreen\n"
        "smtpd     pass  -       -       y       -       -       smtpd\n")
    (pf / "master.cf").write_text(master)
    with (pf / "main.cf").open("a") as fh:
        fh.write("smtpd_restriction_classes = from_partners\n"
                 "from_partners = check_sender_access ldap:/etc/postfix/partners.cf, permit_mynetworks\n"
                 "smtpd_sender_restrictions = check_sender_access hash:/etc/postfix/sender_access,\n"
                 "    reject_sender_login_mismatch, no_such_thing, from_partners\n"
                 "postscreen_dnsbl_sites = zen.spamhaus.org*3\n")
    result = import_site(str(pf), str(dc))
    v = _values(result.text)
    assert v["smtpd_listen"] == "25"
    assert "postscreen" in _find(result.report.of("not carried"), "master.cf:7 smtp").text
    assert v["from_partners"] == "permit_mynetworks"
    assert v["smtpd_sender_restrictions"] == ("check_sender_access hash:/etc/postfix/sender_access, "
                                              "reject_sender_login_mismatch, from_partners")
    assert "ldap" in _find(result.report.items, "check_sender_access ldap:").text
    assert _find(result.report.items, "no_such_thing").status == "not carried"
    assert _find(result.report.items, "postscreen_dnsbl_sites").status == "not carried"
    Settings.from_text(result.text)


def test_a_maildir_name_hook_layout_is_checked_against_the_rows(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    """mail_location = maildir:BASE/%d/%n/Maildir is no PostfixAdmin default, but serves when each
    mailbox.maildir is domain/local/Maildir/ (a maildir_name_hook): the check decides."""
    cert, key = tls_files
    path, vmail, admin = tmp_path / "pfa.db", tmp_path / "vmail", tmp_path / "admin.conf"
    admin.write_text(f"data_directory = {tmp_path}/data\ndatabase_url = sqlite:///{path}\n"
                     f"virtual_mailbox_base = {vmail}\n")
    for args in (("db", "upgrade"), ("domain", "add", "example.test"),
                 ("mailbox", "add", "alice@example.test", "--password", "x")):
        assert cli(admin, *args).returncode == 0
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE mailbox SET maildir = maildir || 'Maildir/'")
    db = Db("sqlite", name=str(path))
    pf = write_postfix(tmp_path, db, vmail=vmail, cert=cert, key=key)
    dc = write_dovecot(tmp_path, db, vmail=vmail, cert=cert, key=key, home_in_query=False)
    (dc / "conf.d" / "10-mail.conf").write_text(f"mail_location = maildir:{vmail}/%d/%n/Maildir\n")
    checked = import_site(str(pf), str(dc), check=True)
    assert not checked.report.blocking, checked.report.render()
    assert _values(checked.text)["virtual_mailbox_base"] == str(vmail)
    unchecked = import_site(str(pf), str(dc))
    assert [i.source for i in unchecked.report.blocking] == ["Maildir layout"]


GOLDEN = Path(__file__).parent / "golden"


def _golden(name: str, actual: str, request: pytest.FixtureRequest) -> None:
    path = GOLDEN / name
    if request.config.getoption("--update-golden", default=False) or not path.exists():
        path.write_text(actual)
    expected = path.read_text()
    if actual != expected:
        path.with_suffix(path.suffix + ".failed").write_text(actual)
    assert actual == expected


def test_classic_site_golden(tmp_path: Path, tls_files: tuple[str, str], request: pytest.FixtureRequest) -> None:
    """The whole written file and report for the classic MySQL site (STYLE rule 10): a change in
    what is carried, translated or dropped shows as a diff (--update-golden rewrites)."""
    pf, dc = _site(tmp_path, tls_files)
    result = import_site(str(pf), str(dc))

    def neutral(text: str) -> str:
        return text.replace(tls_files[0], "CERT").replace(tls_files[1], "KEY").replace(str(tmp_path), "SITE")

    _golden("classic-mysql.conf", neutral(result.text), request)
    _golden("classic-mysql.report", neutral(result.report.render()), request)


def test_postgresql_site(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    db = Db("pgsql", "pg.example.test", 5432, "postfixadmin", "dovecot")
    pf, dc = _site(tmp_path, tls_files, db=db)
    sql = dc / "dovecot-sql.conf.ext"
    sql.write_text(sql.read_text() + "iterate_query = SELECT username AS user FROM mailbox WHERE active = '1'\n")
    result = import_site(str(pf), str(dc))
    assert _values(result.text)["database_url"] == "postgresql://dovecot@pg.example.test:5432/postfixadmin"
    assert "virtual_alias_maps" not in _values(result.text)
    assert "mailbox table itself" in _find(result.report.items, "iterate_query").text
    assert not result.report.blocking, result.report.render()


def test_listen_addresses(tmp_path: Path, tls_files: tuple[str, str]) -> None:
    """inet_interfaces and host:port services for SMTP; Dovecot's listen, inet_listener ports
    (0 = off) and ssl = no for IMAP/POP3."""
    pf, dc = _site(tmp_path, tls_files)
    with (pf / "main.cf").open("a") as fh:
        fh.write("inet_interfaces = 192.0.2.10, 2001:db8::10\n")
    with (pf / "master.cf").open("a") as fh:
        fh.write("2525      inet  n       -       y       -       -       smtpd\n"
                 "192.0.2.11:submission inet n - y - - smtpd\n")
    (dc / "conf.d" / "10-master.conf").write_text(
        "service imap-login {\n  inet_listener imap {\n    port = 1143\n  }\n}\n"
        "service pop3-login {\n  inet_listener pop3 {\n    port = 0\n  }\n}\n")
    with (dc / "conf.d" / "10-ssl.conf").open("a") as fh:
        fh.write("ssl = no\n")
    with (dc / "dovecot.conf").open("a") as fh:
        fh.write("listen = 192.0.2.10, 2001:db8::10\n")
    v = _values(import_site(str(pf), str(dc)).text)
    assert v["smtpd_listen"] == "192.0.2.10:25, [2001:db8::10]:25, 192.0.2.10:2525, [2001:db8::10]:2525"
    assert v["submission_listen"] == "192.0.2.10:587, [2001:db8::10]:587, 192.0.2.11:587"
    assert v["imap_listen"] == "192.0.2.10:1143, [2001:db8::10]:1143"
    assert "imaps_listen" not in v and "pop3_listen" not in v and "pop3s_listen" not in v
