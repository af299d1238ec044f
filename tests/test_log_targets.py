"""log_target syslog and journald: what a syslog daemon's socket (unix datagram, UDP) and
journald's native socket receive, each a real socket the test binds."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator

import pytest

from pymailsrv.log import TRACE, LogTarget, get_logger, session_id, setup_logging, syslog_address
from tests.log_receivers import journal, udp_syslog, unix_syslog


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    root = logging.getLogger("pymailsrv")
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)


RFC3164_LOCAL = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d pymailsrv/(\w+)\[(\d+)\]: (.*)$", re.S)
RFC3164_REMOTE = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx pymailsrv/(\w+)\[(\d+)\]: (.*)$")
RFC5424 = re.compile(r"^<(\d+)>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00) mx pymailsrv/(\w+) (\d+) - - (.*)$")


def _send_lines() -> None:
    get_logger("smtpd").info("connect from unknown[192.0.2.7]")
    get_logger("qmgr").warning("queue file size limit exceeded")
    get_logger("smtpd").log(TRACE, "a trace line")


def test_syslog_to_a_unix_socket_writes_what_syslog3_writes() -> None:
    with unix_syslog() as (path, received):
        setup_logging(level="trace", hostname="mx.example.test", target=LogTarget("syslog", syslog_address=path))
        _send_lines()
        lines = [d.decode() for d in received.wait_for(lambda items: len(items) == 3)]
    m = [RFC3164_LOCAL.match(line) for line in lines]
    assert all(m), lines
    got = [(int(x.group(1)), x.group(2), int(x.group(3)), x.group(4)) for x in m if x]
    pid = os.getpid()
    # facility mail (2): <2*8 + severity>; info 6, warning 4, trace is debug 7
    assert got == [(22, "smtpd", pid, "connect from unknown[192.0.2.7]"),
                   (20, "qmgr", pid, "warning: queue file size limit exceeded"),
                   (23, "smtpd", pid, "a trace line")]
    assert not any(line.endswith("\x00") for line in lines)


def test_syslog_facility_and_rfc5424_over_udp_with_the_host_name() -> None:
    with udp_syslog() as (address, received):
        setup_logging(hostname="mx.example.test",
                      target=LogTarget("syslog", facility="local3", syslog_address=address, syslog_format="rfc5424"))
        get_logger("smtpd").error("cannot open table")
        (line,) = (d.decode() for d in received.wait_for(lambda items: len(items) == 1))
    m = RFC5424.match(line)
    assert m, line
    assert (int(m.group(1)), m.group(3), int(m.group(4)), m.group(5)) == (
        19 * 8 + 3, "smtpd", os.getpid(), "error: cannot open table")


def test_rfc3164_over_udp_carries_the_host_name() -> None:
    with udp_syslog() as (address, received):
        setup_logging(hostname="mx.example.test", target=LogTarget("syslog", syslog_address=address))
        get_logger("smtpd").info("disconnect from unknown[192.0.2.7]")
        (line,) = (d.decode() for d in received.wait_for(lambda items: len(items) == 1))
    assert RFC3164_REMOTE.match(line), line


def test_syslog_without_a_daemon_writes_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    setup_logging(target=LogTarget("syslog", syslog_address="/nonexistent/log"))
    get_logger("smtpd").info("nobody listens")  # no exception, no "Logging error" traceback
    err = capfd.readouterr().err
    assert re.fullmatch(r"<6>[A-Z][a-z]{2} [ \d]\d [\d:]{8} pymailsrv/smtpd\[\d+\]: nobody listens\n", err), err


@pytest.mark.parametrize(("text", "address"), [
    ("/dev/log", "/dev/log"), ("127.0.0.1", ("127.0.0.1", 514)), ("loghost:5140", ("loghost", 5140)),
    ("[::1]:5140", ("::1", 5140)), ("[::1]", ("::1", 514)),
])
def test_syslog_address(text: str, address: object) -> None:
    assert syslog_address(text) == address


@pytest.mark.parametrize("text", ["", "host:port", "[::1]:x"])
def test_bad_syslog_address(text: str) -> None:
    with pytest.raises(ValueError, match="syslog address"):
        syslog_address(text)


def test_journald_native_protocol_fields() -> None:
    with journal() as (path, received):
        setup_logging(level="debug", target=LogTarget("journald", journal_socket=path))
        get_logger("smtpd").info("connect from unknown[192.0.2.7]")
        token = session_id.set("4F3A2B")
        try:
            get_logger("imap").debug("a debug line")
        finally:
            session_id.reset(token)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            get_logger("qmgr").exception("delivery agent failed")
        records = received.wait_for(lambda items: len(items) == 3)
    pid = str(os.getpid())
    assert records[0] == {"MESSAGE": "connect from unknown[192.0.2.7]", "PRIORITY": "6", "SYSLOG_FACILITY": "2",
                          "SYSLOG_IDENTIFIER": "pymailsrv/smtpd", "SYSLOG_PID": pid}
    assert records[1]["MESSAGE"] == "[4F3A2B] a debug line" and records[1]["PRIORITY"] == "7"
    assert records[1]["PYMAILSRV_SESSION"] == "4F3A2B" and records[1]["SYSLOG_IDENTIFIER"] == "pymailsrv/imap"
    # a traceback holds newlines: the field goes in the binary form
    message = records[2]["MESSAGE"]
    assert message.startswith("error: delivery agent failed\nTraceback") and "RuntimeError: boom" in message
    assert records[2]["PRIORITY"] == "3"


def test_journald_record_larger_than_a_datagram_goes_in_a_memfd() -> None:
    big = "x" * 400_000  # above the default socket send buffer (net.core.wmem_default, 208 KiB)
    with journal() as (path, received):
        setup_logging(target=LogTarget("journald", journal_socket=path))
        get_logger("smtpd").info("%s", big)
        (record,) = received.wait_for(lambda items: len(items) == 1)
    assert len(record["MESSAGE"]) == len(big) and record["MESSAGE"] == big  # (no 400 KB diff on failure)
    assert record["SYSLOG_IDENTIFIER"] == "pymailsrv/smtpd"


def test_journald_without_its_socket_writes_prefixed_lines_to_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    setup_logging(hostname="mx.example.test", target=LogTarget("journald", journal_socket="/nonexistent/socket"))
    get_logger("smtpd").warning("no journal here")
    err = capfd.readouterr().err
    assert re.search(r"^<4>[A-Z][a-z]{2} [ \d]\d [\d:]{8} mx pymailsrv/smtpd\[\d+\]: warning: no journal here$",
                     err, re.M), err
