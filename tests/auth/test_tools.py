"""``pymailsrv pw`` and ``pymailsrv auth test``, run in-process through pymailsrv.cli.main."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from pymailsrv import cli
from pymailsrv.auth import tools
from pymailsrv.auth.schemes import hash_password, verify_password
from pymailsrv.config.settings import Settings
from tests.auth.memory_directory import MemoryDirectory


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYMAILSRV_CONFIG", raising=False)
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", "/nonexistent/pymailsrv.conf")


class Terminal(io.StringIO):
    """Standard input that is a terminal (the password is then asked with getpass)."""

    def isatty(self) -> bool:
        return True


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_pw_hash_default_is_postfixadmin_default(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "pw", "hash", "-p", "pässwörd")
    assert rc == 0 and out.startswith("$1$") and out.endswith("\n")  # postfixadmin_encrypt = md5crypt
    assert verify_password("pässwörd", out.strip())


@pytest.mark.parametrize("scheme", ["SSHA512", "blf-crypt", "PLAIN-MD5", "ARGON2ID", "CRAM-MD5"])
def test_pw_hash_schemes(capsys: pytest.CaptureFixture[str], scheme: str) -> None:
    rc, out, _ = run(capsys, "pw", "hash", "--scheme", scheme, "--password", "s3cret")
    assert rc == 0 and out.startswith("{" + scheme.upper() + "}")
    assert verify_password("s3cret", out.strip())


def test_pw_hash_rounds_and_config_scheme(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, _ = run(capsys, "pw", "hash", "-s", "SHA256-CRYPT", "-r", "7000", "-p", "x")
    assert rc == 0 and out.startswith("{SHA256-CRYPT}$5$rounds=7000$")
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text("postfixadmin_encrypt = dovecot:SSHA256\n")
    rc, out, _ = run(capsys, "--config", str(conf), "pw", "hash", "-p", "x")
    assert rc == 0 and out.startswith("{SSHA256}")
    rc, out, _ = run(capsys, "--config", str(conf), "pw", "hash", "--encrypt", "php_crypt:BLOWFISH:5", "-p", "x")
    assert rc == 0 and out.startswith("$2y$05$")


def test_pw_hash_unknown_scheme_and_empty(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "pw", "hash", "-s", "NOSUCH", "-p", "x")
    assert rc == 1 and out == "" and err == "pymailsrv: fatal: Unknown scheme: NOSUCH\n"
    rc, out, err = run(capsys, "pw", "hash", "-p", "")
    assert rc == 1 and "Empty passwords" in err


def test_pw_hash_prompts(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["typed", "typed", "one", "two"])
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    monkeypatch.setattr("sys.stdin", Terminal())
    rc, out, _ = run(capsys, "pw", "hash", "-s", "SSHA")
    assert rc == 0 and verify_password("typed", out.strip())
    assert prompts == ["Enter new password: ", "Retype new password: "]
    rc, out, err = run(capsys, "pw", "hash")
    assert rc == 1 and out == "" and "Passwords don't match" in err


def test_pw_verify(capsys: pytest.CaptureFixture[str]) -> None:
    stored = hash_password("pässwörd", "SHA512-CRYPT")
    rc, out, _ = run(capsys, "pw", "verify", stored, "-p", "pässwörd")
    assert rc == 0 and out == f"{stored} (verified)\n"
    rc, out, err = run(capsys, "pw", "verify", stored, "-p", "wrong")
    assert rc == 1 and out == "" and "Password mismatch" in err
    rc, _, err = run(capsys, "pw", "verify", "{NOSUCH}abc", "-p", "x")
    assert rc == 1 and err == "pymailsrv: fatal: Unknown scheme: NOSUCH\n"
    # unprefixed crypt string under the default CRYPT
    rc, _, _ = run(capsys, "pw", "verify", stored.removeprefix("{SHA512-CRYPT}"), "-p", "pässwörd")
    assert rc == 0


async def _auth_test(directory: MemoryDirectory, address: str, password: str) -> tuple[int, str]:
    out = io.StringIO()
    args = argparse.Namespace(action="test", address=address, password=password)
    rc = await tools.cli_auth(Settings(), args, out=out, directory=directory)
    return rc, out.getvalue()


async def test_auth_test_against_a_directory() -> None:
    d = MemoryDirectory()
    d.add("alice@example.com", hash_password("pässwörd", "BLF-CRYPT"))
    rc, out = await _auth_test(d, "Alice@Example.com", "pässwörd")
    assert rc == 0
    assert out == "passdb: Alice@Example.com auth succeeded\nextra fields:\n  user=alice@example.com\n"
    rc, out = await _auth_test(d, "alice@example.com", "wrong")
    assert rc == 1 and out.startswith("passdb: alice@example.com auth failed\n")
    d.down = True
    rc, out = await _auth_test(d, "alice@example.com", "pässwörd")
    assert rc == tools.EX_TEMPFAIL
    assert out == ("passdb: alice@example.com auth temporarily failed: authentication database unavailable "
                   "(database connection lost)\n")


def test_pw_verify_prompts(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "typed"

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    monkeypatch.setattr("sys.stdin", Terminal())
    rc, out, _ = run(capsys, "pw", "verify", "{PLAIN}typed")
    assert rc == 0 and out == "{PLAIN}typed (verified)\n" and prompts == ["Enter password to verify: "]


def test_pw_list(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "pw", "list")
    names = out.split()
    assert rc == 0 and {"SHA512-CRYPT", "BLF-CRYPT", "ARGON2ID", "PLAIN-MD5", "CRAM-MD5", "PBKDF2"} <= set(names)
