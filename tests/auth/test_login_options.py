"""auth.login.LoginOptions: the settings POP3 and ManageSieve read alike, each with its own
line length and timeout, and each service's own fields beside them."""

from __future__ import annotations

from pymailsrv.auth.login import LoginOptions
from pymailsrv.auth.plaintext import PlaintextRule
from pymailsrv.config.settings import Settings
from pymailsrv.managesieve.options import SieveOptions
from pymailsrv.net.networks import parse_network
from pymailsrv.pop3.options import Pop3Options

SETTINGS = Settings({
    "mail_name": "Example",
    "protocol_error_limit": "3",
    "login_max_ip_connections": "7",
    "login_ip_limit_exceptions": "192.0.2.0/24",
    "disable_plaintext_auth": "no",
    "pop3_max_line_length": "4k",
    "pop3_timeout": "90s",
    "managesieve_max_line_length": "16k",
    "managesieve_timeout": "2m",
    "pop3_hide_deleted": "no",
    "mail_max_userip_connections": "5",
    "sieve_max_redirects": "4",
})


def test_shared_fields_from_each_services_parameters() -> None:
    pop3 = Pop3Options.from_settings(SETTINGS, None)
    sieve = SieveOptions.from_settings(SETTINGS, None)
    for options in (pop3, sieve):
        assert isinstance(options, LoginOptions)
        assert options.mail_name == "Example"
        assert options.error_limit == 3
        assert options.max_ip_connections == 7
        assert options.ip_limit_exceptions == (parse_network("192.0.2.0/24"),)
        assert options.plaintext == PlaintextRule(disable_plaintext_auth=False)
        assert options.tls_context is None
    assert (pop3.max_line_length, pop3.timeout) == (4096, 90.0)
    assert (sieve.max_line_length, sieve.timeout) == (16384, 120.0)


def test_each_services_own_fields() -> None:
    pop3 = Pop3Options.from_settings(SETTINGS, None)
    assert (pop3.hide_deleted, pop3.userip_limit) == (False, 5)
    assert SieveOptions.from_settings(SETTINGS, None).max_redirects == 4


def test_defaults_as_before() -> None:
    assert Pop3Options().max_line_length == 8192
    assert SieveOptions().max_line_length == 65536
    assert Pop3Options().timeout == SieveOptions().timeout == 600.0
