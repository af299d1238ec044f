"""Typed settings: defaults, lazy expansion, validation with file:line, unknown names, postconf."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from pymailsrv.cli import main
from pymailsrv.config.params import PARAMETERS
from pymailsrv.config.postconf import postconf
from pymailsrv.config.settings import Listen, Settings, parse_size, parse_time
from pymailsrv.errors import ConfigError, ConfigErrors


def test_defaults_follow_postfix() -> None:
    s = Settings({"myhostname": "mx.example.com"})
    assert s.get_int("message_size_limit") == 10240000
    assert s.get_int("smtpd_recipient_limit") == 1000
    assert s.expanded("myorigin") == "mx.example.com"
    assert s.get_str("mydomain") == "example.com"
    assert s.get_list("mydestination") == ["mx.example.com", "localhost.example.com", "localhost"]
    assert s.get_seconds("maximal_queue_lifetime") == 5 * 86400
    assert s.get_seconds("minimal_backoff_time") == 300
    assert s.get_bool("smtpd_delay_reject") is True
    assert s.get_list("smtpd_relay_restrictions") == [
        "permit_mynetworks", "permit_sasl_authenticated", "defer_unauth_destination"]
    assert s.get_int("quota_multiplier") == 1024000


def test_lazy_expansion_follows_later_changes() -> None:
    s = Settings.from_text("myorigin = $mydomain\nmyhostname = host.sub.example.org\n")
    assert s.expanded("myorigin") == "sub.example.org"
    assert s.expanded("queue_directory") == "/var/lib/pymailsrv/spool"
    s2 = s.replace(data_directory="/srv/mail")
    assert s2.expanded("queue_directory") == "/srv/mail/spool"
    assert s2.expanded("database_url") == "sqlite+aiosqlite:////srv/mail/pymailsrv.db"


def test_typed_values() -> None:
    s = Settings.from_text(
        "smtpd_listen = 127.0.0.1:2525, [::1]:25, 587\n"
        "message_size_limit = 20m\n"
        "smtpd_timeout = 5m\n"
        "smtpd_helo_required = yes\n"
    )
    assert s.get_listen("smtpd_listen") == [Listen("127.0.0.1", 2525), Listen("::1", 25), Listen("", 587)]
    assert s.get_size("message_size_limit") == 20 * 1024 * 1024
    assert s.get_seconds("smtpd_timeout") == 300
    assert s.get_bool("smtpd_helo_required") is True


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("smtpd_listen = 127.0.0.1:70000", "bad port 70000"),
        ("smtpd_listen = what:ever:x", "bad listen address"),
        ("message_size_limit = ten megabytes", "bad size value"),
        ("smtpd_timeout = soon", "bad time value"),
        ("smtpd_helo_required = maybe", "bad boolean value"),
        ("smtpd_recipient_limit = many", "bad number"),
        ("smtpd_recipient_limit = 0", "below the minimum"),
        ("mynetworks_style = everything", "one of: host, subnet, class"),
        ("tls_cert_file = /nonexistent/cert.pem", 'file "/nonexistent/cert.pem" does not exist'),
        ("myorigin = $a\na = $myorigin", "parameter reference loop"),
    ],
)
def test_bad_values_stop_with_file_and_line(tmp_path: Path, line: str, fragment: str) -> None:
    conf = tmp_path / "pymailsrv.conf"
    conf.write_text("# sample\n" + line + "\n")
    with pytest.raises(ConfigError) as info:
        Settings.load(str(conf))
    message = str(info.value)
    assert message.startswith(f"{conf}:2: "), message
    assert fragment in message


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("smtpd_timeout = x\nmessage_size_limit = y\n")
    with pytest.raises(ConfigErrors) as info:
        Settings.load(str(conf))
    assert [e.line for e in info.value.errors] == [1, 2]


def test_unknown_parameter_warns_with_closest_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("mesage_size_limit = 10\n")
    with caplog.at_level(logging.WARNING, logger="pymailsrv.config"):
        Settings.load(str(conf))
    assert f'{conf}:1: unknown parameter "mesage_size_limit"; did you mean "message_size_limit"?' in caplog.text


def test_restriction_classes_are_not_unknown(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pymailsrv.config"):
        s = Settings.from_text("smtpd_restriction_classes = strict\nstrict = reject_unknown_sender_domain, permit\n")
    assert "unknown parameter" not in caplog.text
    assert s.user_list("strict") == ["reject_unknown_sender_domain", "permit"]


def test_missing_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        Settings.load(str(tmp_path / "missing.conf"))


def test_mynetworks_style_host_is_loopback_only() -> None:
    nets = Settings({"mynetworks_style": "host"}).mynetworks()
    assert [str(n) for n in nets] == ["127.0.0.0/8", "::1/128"]
    nets = Settings({"mynetworks": "192.0.2.0/24 [2001:db8::]/32 10.1.2.3"}).mynetworks()
    assert [str(n) for n in nets] == ["192.0.2.0/24", "2001:db8::/32", "10.1.2.3/32"]


def test_units() -> None:
    assert parse_time("2", "d") == 172800
    assert parse_time("90s") == 90
    assert parse_size("1k") == 1024
    with pytest.raises(ValueError):
        parse_size("-1")


def test_every_parameter_has_doc_and_valid_default() -> None:
    s = Settings({"myhostname": "mx.example.com"})
    for name, param in PARAMETERS.items():
        assert param.doc, name
        if param.type != "file":
            s._typed(name)  # every default parses


def test_postconf_prints_like_postfix(tmp_path: Path) -> None:
    s = Settings.from_text("myhostname = mx.example.com\nmyorigin = $mydomain\n")
    out = io.StringIO()
    postconf(s, [], non_default=True, out=out)
    assert out.getvalue() == "myhostname = mx.example.com\nmyorigin = $mydomain\n"
    out = io.StringIO()
    postconf(s, ["myorigin", "relayhost"], expand=True, out=out)
    assert out.getvalue() == "myorigin = example.com\nrelayhost =\n"
    out = io.StringIO()
    postconf(s, ["myorigin"], defaults=True, out=out)
    assert out.getvalue() == "myorigin = $myhostname\n"


def test_postconf_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("message_size_limit = 1000\n")
    assert main(["--config", str(conf), "postconf", "-n"]) == 0
    assert capsys.readouterr().out == "message_size_limit = 1000\n"
    assert main(["--config", str(conf), "postconf", "-d", "message_size_limit"]) == 0
    assert capsys.readouterr().out == "message_size_limit = 10240000\n"
    assert main(["--config", str(conf), "postconf", "no_such_thing"]) == 1


def test_cli_reports_bad_config_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("smtpd_listen = 127.0.0.1:70000\n")
    assert main(["--config", str(conf), "postconf"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"pymailsrv: fatal: {conf}:1: smtpd_listen: bad port 70000 in \"127.0.0.1:70000\" (0-65535)"


def test_an_int_parameter_may_be_auto() -> None:
    from pymailsrv.config.params.core import _one_per_core

    assert Settings().get_int("worker_processes") == _one_per_core()
    assert Settings({"worker_processes": "AUTO"}).get_int("worker_processes") == _one_per_core()
    assert Settings({"worker_processes": "3"}).get_int("worker_processes") == 3
    with pytest.raises(ConfigError, match="worker_processes: bad number"):
        Settings({"worker_processes": "many"}).get_int("worker_processes")
    with pytest.raises(ConfigError, match="bad number"):
        Settings({"smtpd_recipient_limit": "auto"}).get_int("smtpd_recipient_limit")  # not every int


def test_every_parameter_is_declared_once() -> None:
    import importlib
    import pkgutil

    import pymailsrv.config.params as params

    modules = [importlib.import_module(f"{params.__name__}.{m.name}") for m in pkgutil.iter_modules(params.__path__)]
    names = [p.name for module in modules for p in getattr(module, "PARAMS", ())]
    assert len(PARAMETERS) == len(names), sorted({n for n in names if names.count(n) > 1})
