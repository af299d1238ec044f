"""ManageSieve over a real socket: sievelib's client for the whole workflow, raw transcripts for
the edges (literals, bad commands, STARTTLS, quotas), and the files left as Dovecot keeps them."""

from __future__ import annotations

import base64
import os
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from sievelib.managesieve import Client

from tests.managesieve.conftest import PASSWORD, USER, Harness, RawClient

pytestmark = pytest.mark.filterwarnings("ignore:Credentials are sent over an unencrypted connection")

SCRIPT = 'require ["fileinto"];\r\nif header :contains "subject" "[list]" {\r\n  fileinto "Lists";\r\n}\r\n'


def connect(h: Harness) -> Client:
    client = Client("127.0.0.1", h.port)
    assert client.connect(USER, PASSWORD, authmech="PLAIN")  # plaintext from loopback: allowed
    return client


def test_sievelib_workflow_and_dovecot_layout(sieve: Harness) -> None:
    c = connect(sieve)
    assert c.get_implementation() == "pymailsrv"
    assert "fileinto" in c.get_sieve_capabilities()
    assert c.havespace("filters", len(SCRIPT))
    assert c.checkscript(SCRIPT)
    assert c.putscript("filters", SCRIPT)
    assert c.putscript("other", "keep;\r\n")
    assert c.setactive("filters")
    assert c.listscripts() == ("filters", ["other"])
    assert c.getscript("filters").split() == SCRIPT.split()  # sievelib joins the lines its own way
    assert os.readlink(sieve.home / ".dovecot.sieve") == "sieve/filters.sieve"
    assert (sieve.home / "sieve" / "filters.sieve").read_bytes() == SCRIPT.encode()
    assert not c.deletescript("filters")  # the active script cannot be deleted (RFC 5804 §2.10)
    assert c.renamescript("filters", "main")
    assert os.readlink(sieve.home / ".dovecot.sieve") == "sieve/main.sieve"
    assert c.setactive("")
    assert not os.path.lexists(sieve.home / ".dovecot.sieve")
    assert c.deletescript("main")
    assert c.listscripts() == (None, ["other"])
    c.logout()


def test_invalid_script_is_refused_with_its_line(sieve: Harness) -> None:
    c = connect(sieve)
    assert not c.putscript("bad", 'require "fileinto";\r\nfileinto "x"\r\nkeep;\r\n')
    assert b"line 3" in c.errmsg
    assert not c.checkscript("frobnicate;")
    assert c.listscripts() == (None, [])


def raw(h: Harness) -> RawClient:
    return RawClient(h.port, timeout=30)


def test_greeting_capabilities_and_auth_gating(sieve: Harness) -> None:
    r = raw(sieve)
    status, caps = r.response()
    assert status.startswith('OK "')
    names = [line.split(b" ")[0] for line in caps]
    for cap in (b'"IMPLEMENTATION"', b'"SASL"', b'"SIEVE"', b'"STARTTLS"', b'"VERSION"', b'"UNAUTHENTICATE"'):
        assert cap in names
    assert b'"SASL" "PLAIN LOGIN"' in caps
    r.send("LISTSCRIPTS")
    assert r.response()[0] == 'NO "Authenticate first."'
    r.send("FROB")
    assert r.response()[0] == 'NO "Unknown command."'
    r.send('AUTHENTICATE "PLAIN" "' + base64.b64encode(f"\0{USER}\0wrong".encode()).decode() + '"')
    assert r.response()[0] == 'NO "Authentication failed."'
    r.send('AUTHENTICATE "CRAM-MD5"')
    assert r.response()[0].startswith("NO")


def test_sasl_login_with_literal_responses_and_cancel(sieve: Harness) -> None:
    r = raw(sieve)
    r.response()
    r.send('AUTHENTICATE "LOGIN"')
    assert r.line() == b'"' + base64.b64encode(b"Username:") + b'"'
    r.send('"*"')
    assert r.response()[0] == 'NO "Authentication aborted by client."'
    r.send('AUTHENTICATE "LOGIN"')
    r.line()
    user = base64.b64encode(USER.encode())
    r.sendraw(b"{%d+}\r\n%s\r\n" % (len(user), user))
    assert r.line() == b'"' + base64.b64encode(b"Password:") + b'"'
    r.send('"' + base64.b64encode(PASSWORD.encode()).decode() + '"')
    assert r.response()[0] == 'OK "Logged in."'
    r.send("CAPABILITY")
    _status, caps = r.response()
    assert b'"OWNER" "alice@example.test"' in caps
    assert not any(c.startswith((b'"STARTTLS"', b'"SASL"')) for c in caps)  # nothing more to log in with
    r.send("AUTHENTICATE \"PLAIN\"")
    assert r.response()[0] == 'NO "Already authenticated."'
    r.send("UNAUTHENTICATE")
    assert r.response()[0].startswith("OK")
    r.send("LISTSCRIPTS")
    assert r.response()[0] == 'NO "Authenticate first."'


def test_literals_getscript_noop_tag_and_errors(sieve: Harness) -> None:
    r = raw(sieve)
    r.login()
    body = b"keep;\r\n"
    r.sendraw(b'PUTSCRIPT "a" {%d+}\r\n%s\r\nPUTSCRIPT {1+}\r\nb {%d}\r\n%s\r\n' % (len(body), body, len(body), body))
    assert r.response()[0] == 'OK "PUTSCRIPT completed."'
    assert r.response()[0] == 'OK "PUTSCRIPT completed."'
    r.send('GETSCRIPT "b"')
    status, lines = r.response()
    assert status.startswith("OK") and lines == [b"{7}\r\n" + body]
    r.send('NOOP "t1"')
    assert r.response()[0] == 'OK (TAG "t1") "Done."'
    r.send('GETSCRIPT "missing"')
    assert r.response()[0] == 'NO (NONEXISTENT) "Script does not exist."'
    r.send('SETACTIVE "missing"')
    assert r.response()[0].startswith("NO (NONEXISTENT)")
    r.send('RENAMESCRIPT "a" "b"')
    assert r.response()[0].startswith("NO (ALREADYEXISTS)")
    r.send('PUTSCRIPT "../x" "keep;"')
    assert r.response()[0].startswith("NO")
    r.send('PUTSCRIPT "a"')
    assert r.response()[0] == 'NO "Invalid arguments."'
    r.send('SETACTIVE "a"')
    r.response()
    r.send('DELETESCRIPT "a"')
    assert r.response()[0].startswith("NO (ACTIVE)")
    r.send("LISTSCRIPTS")
    assert r.response()[1] == [b'"a" ACTIVE', b'"b"']
    r.send("LOGOUT")
    assert r.response()[0] == 'OK "Logout completed."'
    assert r.closed()


def test_quota_on_count_and_size(small_quota: Harness) -> None:
    r = raw(small_quota)
    r.login()
    r.send('HAVESPACE "a" 500')
    assert r.response()[0].startswith("NO (QUOTA/MAXSIZE)")
    for name in ("a", "b"):
        r.send(f'PUTSCRIPT "{name}" "keep;"')
        assert r.response()[0].startswith("OK")
    r.send('PUTSCRIPT "c" "keep;"')
    assert r.response()[0].startswith("NO (QUOTA/MAXSCRIPTS)")
    r.send('HAVESPACE "a" 150')  # replacing a script counts its new size only
    assert r.response()[0].startswith("OK")
    r.send('HAVESPACE "b" 196')
    assert r.response()[0].startswith("NO (QUOTA/MAXSIZE)")
    big = b"#" + b"x" * 300 + b"\r\n"
    r.sendraw(b'PUTSCRIPT "a" {%d+}\r\n%s\r\nNOOP\r\n' % (len(big), big))
    assert r.response()[0].startswith("NO")
    assert r.response()[0].startswith("OK")  # the literal was skipped, the next command read


def test_too_many_errors_end_with_bye(sieve_factory) -> None:  # type: ignore[no-untyped-def]
    r = RawClient(sieve_factory(error_limit=3).port)
    r.response()
    for _ in range(2):
        r.send("BOGUS")
        assert r.response()[0].startswith("NO")
    r.send("BOGUS")
    assert r.response()[0].startswith("BYE")
    assert r.closed()


def test_starttls_then_capabilities_again(sieve: Harness, client_tls: ssl.SSLContext) -> None:
    r = raw(sieve)
    r.response()
    r.send("STARTTLS")
    assert r.response()[0].startswith("OK")
    r.starttls(client_tls)
    status, caps = r.response()  # RFC 5804 §2.2: the capabilities again after the handshake
    assert status.startswith("OK") and not any(c.startswith(b'"STARTTLS"') for c in caps)
    r.send('AUTHENTICATE "PLAIN" "' + base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode() + '"')
    assert r.response()[0] == 'OK "Logged in."'


def test_starttls_with_pipelined_plaintext_closes(sieve: Harness) -> None:
    r = raw(sieve)
    r.response()
    r.sendraw(b"STARTTLS\r\nLISTSCRIPTS\r\n")
    assert r.response()[0].startswith("OK")
    assert r.closed()



def test_sievelib_over_starttls(sieve: Harness, tls_files: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", tls_files[0])  # sievelib verifies: trust the test certificate
    c = Client("localhost", sieve.port)
    assert c.connect(USER, PASSWORD, starttls=True, authmech="LOGIN")
    assert c.putscript("tls", "keep;\r\n")
    assert c.listscripts() == (None, ["tls"])
    c.logout()


@pytest.mark.skipif(shutil.which("sieve-connect") is None, reason="sieve-connect (Debian) not installed")
def test_sieve_connect_over_starttls(sieve: Harness, tmp_path: Path) -> None:
    """Debian's sieve-connect: STARTTLS (it insists on TLS), SASL, upload, activate, list, check."""
    local = tmp_path / "f.sieve"
    local.write_text(SCRIPT)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sieve-connect", "--server", "127.0.0.1", "--port", str(sieve.port), "--user", USER,
                               "--passwordfd", "0", "--notlsverify", *args],
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)

    for args in (("--upload", "--localsieve", str(local), "--remotesieve", "f"), ("--activate", "--remotesieve", "f"),
                 ("--checkscript", "--localsieve", str(local))):
        done = run(*args)
        assert done.returncode == 0, (args, done.stderr)
    listing = run("--list")
    assert listing.stdout.split() == ['"f"', "ACTIVE"]
    local.write_text("frobnicate;\n")
    refused = run("--upload", "--localsieve", str(local), "--remotesieve", "g")
    assert refused.returncode != 0 and "line 1" in refused.stderr + refused.stdout


def test_idle_session_is_told_and_closed(sieve_factory) -> None:  # type: ignore[no-untyped-def]
    r = RawClient(sieve_factory(timeout=0.2).port)  # the sweep runs about once a second
    r.response()
    assert r.line() == b'BYE "Disconnected for inactivity."'
    assert r.closed()


def test_no_password_or_script_in_logs_even_in_traces(sieve: Harness, caplog: pytest.LogCaptureFixture) -> None:
    from pymailsrv.log import TRACE

    caplog.set_level(TRACE, logger="pymailsrv")
    r = raw(sieve)
    r.response()
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    r.send('AUTHENTICATE "PLAIN" "' + base64.b64encode(f"\0{USER}\0wrong-{PASSWORD}".encode()).decode() + '"')
    r.response()
    r.send('AUTHENTICATE "LOGIN"')
    r.line()
    r.send('"' + base64.b64encode(USER.encode()).decode() + '"')
    r.line()
    secret = base64.b64encode(PASSWORD.encode()).decode()
    r.send('"' + secret + '"')
    assert r.response()[0].startswith("OK")
    script = b"# the-secret-rule\r\nkeep;\r\n"
    r.sendraw(b'PUTSCRIPT "s" {%d+}\r\n%s\r\n' % (len(script), script))
    assert r.response()[0].startswith("OK")
    r.sendraw(b"CHECKSCRIPT {%d+}\r\n%s\r\n" % (len(script), script))
    assert r.response()[0].startswith("OK")
    r.send("LOGOUT")
    r.response()
    text = caplog.text
    assert "Login: user=<alice@example.test>, method=LOGIN" in text
    assert "Aborted login (auth failed)" in text
    assert "C: AUTHENTICATE" in text and "C: PUTSCRIPT" in text
    for leak in (PASSWORD, plain, secret, "the-secret-rule"):
        assert leak not in text, leak
