"""``pymailsrv sieve check|test``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymailsrv.cli import main


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("PYMAILSRV_CONFIG", raising=False)
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text(f"data_directory = {tmp_path}\n")
    (tmp_path / "good.sieve").write_text('require ["fileinto", "vacation"];\n'
                                         'if header :contains "subject" "report" { fileinto "Work"; }\n'
                                         'vacation :days 2 "away";\n')
    (tmp_path / "bad.sieve").write_text('require "fileinto";\nfileinto "x"\n')
    (tmp_path / "m.eml").write_bytes(b"From: a@example.com\r\nSubject: the report\r\n\r\nbody\r\n")
    return tmp_path


def test_check(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = str(files / "pymailsrv.conf")
    assert main(["--config", conf, "sieve", "check", str(files / "good.sieve")]) == 0
    assert main(["--config", conf, "sieve", "check", str(files / "bad.sieve")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("good.sieve: ok")
    assert out[1].endswith("bad.sieve:3:1: expected ';' or '{' after command 'fileinto' but found end of script")


def test_test_prints_the_actions(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = str(files / "pymailsrv.conf")
    assert main(["--config", conf, "sieve", "test", str(files / "good.sieve"), str(files / "m.eml"),
                 "-f", "a@example.com", "-a", "u@example.net"]) == 0
    assert capsys.readouterr().out.splitlines() == ["store Work", "vacation seconds=172800"]


def test_extensions_follow_the_configuration(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = files / "pymailsrv.conf"
    conf.write_text(conf.read_text() + "sieve_extensions = fileinto\n")
    assert main(["--config", str(conf), "sieve", "check", str(files / "good.sieve")]) == 1
    assert "unknown extension 'vacation'" in capsys.readouterr().out
