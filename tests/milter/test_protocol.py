"""The milter codec (pymailsrv.milter.protocol), the socket and option syntax, the macros: pure
unit tests, and the reader fed a reply stream in every split."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from pymailsrv.config.settings import Settings
from pymailsrv.errors import ConfigError
from pymailsrv.milter import macros as M
from pymailsrv.milter import protocol as P
from pymailsrv.milter.client import parse_socket
from pymailsrv.milter.stage import _header_for_milter, _header_value, milter_specs, require_milter_stage
from pymailsrv.pipeline.base import LocalSession, Transaction
from pymailsrv.pipeline.runner import Pipeline


def test_packets_as_libmilter_reads_them() -> None:
    assert P.optneg(6, 0x1FF, 0x1FFFFF) == b"\x00\x00\x00\x0dO" + struct.pack("!III", 6, 0x1FF, 0x1FFFFF)
    assert P.macros(P.CONNECT, [("j", "mx"), ("{daemon_name}", "d")]) == \
        b"\x00\x00\x00\x17DCj\x00mx\x00{daemon_name}\x00d\x00"
    assert P.connect("host.example", "4", 25, "192.0.2.1") == \
        b"\x00\x00\x00\x1bChost.example\x004\x00\x19192.0.2.1\x00"
    assert P.connect("h", "U", 0, "") == b"\x00\x00\x00\x04Ch\x00U"
    assert P.mail("a@b", ["BODY=8BITMIME"]) == b"\x00\x00\x00\x15M<a@b>\x00BODY=8BITMIME\x00"
    assert P.mail("", []) == b"\x00\x00\x00\x04M<>\x00"
    assert P.rcpt("c@d", []) == b"\x00\x00\x00\x07R<c@d>\x00"
    assert P.header("Subject", "hi") == b"\x00\x00\x00\x0cLSubject\x00hi\x00"
    assert P.simple(P.BODYEOB) == b"\x00\x00\x00\x01E"
    assert P.helo("a\0b") == b"\x00\x00\x00\x04Hab\x00"  # a NUL never splits a string


def test_body_is_sent_in_chunks_of_at_most_65535_bytes() -> None:
    chunks = P.body_chunks(b"x" * 140_000)
    assert [len(c) - 5 for c in chunks] == [65535, 65535, 140_000 - 2 * 65535]
    assert all(c[4:5] == P.BODY for c in chunks)
    assert P.body_chunks(b"") == []


REPLIES = (P.packet(P.R_PROGRESS) + P.packet(P.R_ADDHEADER, b"X-A\0one\0")
           + P.packet(P.R_CHGHEADER, struct.pack("!I", 2) + b"Subject\0new\0")
           + P.packet(P.R_REPLBODY, b"x" * 300) + P.packet(P.R_CONTINUE))


@hypothesis_settings(deadline=None)  # a busy shared machine, not a slow parser
@given(st.lists(st.integers(min_value=1, max_value=len(REPLIES)), max_size=20))
def test_any_split_of_the_reply_stream_gives_the_same_packets(cuts: list[int]) -> None:
    reader = P.PacketReader()
    got: list[tuple[bytes, bytes]] = []
    at = 0
    for cut in sorted(set(cuts)):
        got += reader.feed(REPLIES[at:cut])
        at = cut
    got += reader.feed(REPLIES[at:])
    assert [code for code, _ in got] == [P.R_PROGRESS, P.R_ADDHEADER, P.R_CHGHEADER, P.R_REPLBODY, P.R_CONTINUE]
    assert reader.pending == 0


@pytest.mark.parametrize("length", [0, P.MAX_PACKET + 1])
def test_a_bad_length_is_a_protocol_error_before_buffering(length: int) -> None:
    with pytest.raises(P.ProtocolError, match="bad packet length"):
        P.PacketReader().feed(struct.pack("!I", length) + b"c")


def test_option_negotiation_reply() -> None:
    plain = struct.pack("!III", 6, P.F_ADDHDRS | P.F_CHGBODY, P.P_NOHELO | P.P_NR_HDR)
    got = P.parse_optneg(plain, P.ACTIONS_V6, P.STEPS_OFFERED[6])
    assert (got.version, got.actions, got.steps, got.macros) == (6, 0x03, P.P_NOHELO | P.P_NR_HDR, {})
    symlist = plain + struct.pack("!I", P.M_EOH) + b"{client_addr} i\0" + struct.pack("!I", P.M_CONNECT) + b"j\0"
    assert P.parse_optneg(symlist, P.ACTIONS_V6, P.STEPS_OFFERED[6]).macros == {
        P.M_EOH: ("{client_addr}", "i"), P.M_CONNECT: ("j",)}
    with pytest.raises(P.ProtocolError, match="short"):
        P.parse_optneg(b"\0\0\0\6", P.ACTIONS_V6, P.STEPS_OFFERED[6])
    with pytest.raises(P.ProtocolError, match="actions"):  # more than offered
        P.parse_optneg(struct.pack("!III", 2, 0x1FF, 0), P.ACTIONS_V2, P.STEPS_OFFERED[2])
    with pytest.raises(P.ProtocolError, match="steps"):
        P.parse_optneg(struct.pack("!III", 2, 0, P.P_SKIP), P.ACTIONS_V2, P.STEPS_OFFERED[2])
    with pytest.raises(P.ProtocolError, match="version 1"):
        P.parse_optneg(struct.pack("!III", 1, 0, 0), P.ACTIONS_V2, P.STEPS_OFFERED[2])


@pytest.mark.parametrize(("code", "data", "expected"), [
    (P.R_ADDHEADER, b"X-Spam\0Yes\0", P.Modification("add_header", "X-Spam", "Yes")),
    (P.R_INSHEADER, struct.pack("!I", 0) + b"X-Top\0v\0", P.Modification("insert_header", "X-Top", "v", 0)),
    (P.R_CHGHEADER, struct.pack("!I", 2) + b"Subject\0\0", P.Modification("change_header", "Subject", "", 2)),
    (P.R_REPLBODY, b"new body", P.Modification("replace_body", data=b"new body")),
    (P.R_ADDRCPT, b"<x@y>\0", P.Modification("add_rcpt", value="<x@y>")),
    (P.R_ADDRCPT_PAR, b"<x@y>\0NOTIFY=NEVER\0", P.Modification("add_rcpt", value="<x@y>", args="NOTIFY=NEVER")),
    (P.R_DELRCPT, b"<x@y>\0", P.Modification("delete_rcpt", value="<x@y>")),
    (P.R_CHGFROM, b"<s@t>\0", P.Modification("change_from", value="<s@t>")),
    (P.R_CHGFROM, b"<s@t>\0SIZE=10\0", P.Modification("change_from", value="<s@t>", args="SIZE=10")),
    (P.R_QUARANTINE, b"why\0", P.Modification("quarantine", value="why")),
    (P.R_ADDHEADER, b"X-No-Nul\0value", P.Modification("add_header", "X-No-Nul", "value")),  # lenient
])
def test_modifications(code: bytes, data: bytes, expected: P.Modification) -> None:
    assert P.parse_modification(code, data) == expected


@pytest.mark.parametrize(("code", "data"), [
    (P.R_ADDHEADER, b"X-Only-Name\0"), (P.R_INSHEADER, b"\0\0"), (P.R_CHGHEADER, b"\0\0\0\1Name\0"),
    (P.R_ADDRCPT, b""), (P.R_CONTINUE, b""),
])
def test_broken_modifications_are_protocol_errors(code: bytes, data: bytes) -> None:
    with pytest.raises(P.ProtocolError):
        P.parse_modification(code, data)


def test_reply_code_text() -> None:
    assert P.reply_text(b"550 5.7.1 no\0") == "550 5.7.1 no"
    assert P.reply_text(b"550-5.7.1 one\r\n550 5.7.1 two\0") == "550-5.7.1 one\r\n550 5.7.1 two"
    assert P.strip_brackets(" <a@b> ") == "a@b" and P.strip_brackets("a@b") == "a@b"


@pytest.mark.parametrize(("spec", "expected"), [
    ("inet:127.0.0.1:8891", ("127.0.0.1", 8891)), ("inet:localhost:11332", ("localhost", 11332)),
    ("inet:8891@127.0.0.1", ("127.0.0.1", 8891)), ("inet6:[::1]:8891", ("::1", 8891)),
    ("inet:[2001:db8::1]:25", ("2001:db8::1", 25)), ("unix:/run/milter.sock", ("/run/milter.sock", 0)),
    ("local:/run/m.sock", ("/run/m.sock", 0)),
])
def test_milter_sockets(spec: str, expected: tuple[str, int]) -> None:
    assert parse_socket(spec) == expected


@pytest.mark.parametrize("spec", ["inet:host", "inet:host:0", "inet:host:99999", "tcp:h:1", "unix:", "127.0.0.1:25"])
def test_bad_milter_sockets(spec: str) -> None:
    with pytest.raises(ValueError, match="bad milter socket"):
        parse_socket(spec)


def test_milter_parameters_and_per_milter_options() -> None:
    settings = Settings({"smtpd_milters": "inet:127.0.0.1:1, { unix:/m.sock, default_action = accept, "
                                          "command_timeout = 5s, protocol = 2 }",
                         "milter_default_action": "reject", "milter_content_timeout": "60s"})
    first, second = milter_specs(settings, "smtpd_milters")
    assert (first.socket, first.default_action, first.command_timeout, first.content_timeout, first.protocol) == \
        ("inet:127.0.0.1:1", "reject", 30.0, 60.0, 6)
    assert (second.socket, second.default_action, second.command_timeout, second.protocol) == \
        ("unix:/m.sock", "accept", 5.0, 2)
    assert milter_specs(Settings(), "non_smtpd_milters") == []


@pytest.mark.parametrize(("value", "error"), [
    ("inet:nohost", "smtpd_milters: bad milter socket"),
    ("{ inet:h:1, colour = red }", 'smtpd_milters: inet:h:1: unknown option "colour = red"'),
    ("{ inet:h:1, default_action = maybe }", "smtpd_milters: inet:h:1: bad default_action"),
    ("{ inet:h:1, protocol = 7 }", "smtpd_milters: inet:h:1: bad protocol"),
    ("{ inet:h:1, connect_timeout = soon }", "smtpd_milters: inet:h:1:"),
])
def test_bad_milter_parameters(value: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        milter_specs(Settings({"smtpd_milters": value}), "smtpd_milters")


def test_milters_without_the_stage_refuse_to_start() -> None:
    with pytest.raises(ConfigError, match="smtpd_milters is set, but smtpd_pipeline does not name the milters"):
        require_milter_stage(Pipeline(), Settings({"smtpd_milters": "inet:h:1"}), "smtpd_pipeline", "smtpd_milters")
    require_milter_stage(Pipeline(), Settings(), "smtpd_pipeline", "smtpd_milters")  # none configured: fine


def test_macro_values_and_choice() -> None:
    session = LocalSession()
    txn = Transaction(sender="a@example.com", queue_id="ABC123")
    known = M.values(M.Host("mx.example", "mx.example", "pymailsrv"), session, txn, "b@example.org")
    assert M.pick(known, ["j", "{daemon_name}", "i", "{mail_addr}", "{rcpt_addr}", "rcpt_host", "{auth_authen}"]) == [
        ("j", "mx.example"), ("{daemon_name}", "mx.example"), ("i", "ABC123"), ("{mail_addr}", "a@example.com"),
        ("{rcpt_addr}", "b@example.org"), ("rcpt_host", "example.org")]  # no login: no {auth_authen}
    assert known["_"] == "localhost [127.0.0.1]" and known["{client_addr}"] == "127.0.0.1"


def test_header_values_both_ways() -> None:
    assert _header_for_milter(b"Subject:  two blanks\r\n", leading_space=False) == ("Subject", "two blanks")
    assert _header_for_milter(b"Subject: x\r\n\tfolded\r\n", leading_space=False) == ("Subject", "x\n\tfolded")
    assert _header_for_milter(b"Subject: x\r\n", leading_space=True) == ("Subject", " x")
    assert _header_value("a\r\n\tb\r\n", leading_space=False) == "a\n\tb"
    assert _header_value("a\nb", leading_space=False) == "a\n\tb"  # a bare line break becomes folding
    assert _header_value(" x", leading_space=True) == "x"


def test_macros_of_a_logged_in_client_over_tls() -> None:
    from pymailsrv.policy.base import SmtpState

    state = SmtpState(client_address="2001:db8::5", client_name="mua.example", reverse_client_name="mua.example",
                      client_port=50123, sasl_username="alice@example.com", sasl_method="PLAIN",
                      server_address="2001:db8::1", server_port=587)
    session = LocalSession(state=state, origin="submission", tls_active=True, tls_version="TLSv1.3",
                           tls_cipher="TLS_AES_256_GCM_SHA384", tls_bits=256)
    known = M.values(M.Host("mx.example", "ORIGINATING", "pymailsrv"), session)
    assert M.pick(known, ["{auth_type}", "{auth_authen}", "{tls_version}", "{cipher}", "{cipher_bits}",
                          "{daemon_addr}", "{daemon_port}", "{client_port}", "{daemon_name}", "i"]) == [
        ("{auth_type}", "PLAIN"), ("{auth_authen}", "alice@example.com"), ("{tls_version}", "TLSv1.3"),
        ("{cipher}", "TLS_AES_256_GCM_SHA384"), ("{cipher_bits}", "256"), ("{daemon_addr}", "2001:db8::1"),
        ("{daemon_port}", "587"), ("{client_port}", "50123"), ("{daemon_name}", "ORIGINATING")]  # no queue id yet


@pytest.mark.parametrize("reply", ["REJECTED", "TEMPFAILED", "DEFAULT_TEMPFAIL", "DEFAULT_REJECT"])
def test_reply_constants_agree_with_themselves(reply: str) -> None:
    from pymailsrv.milter import stage

    code, dsn, text = getattr(stage, reply).split(" ", 2)
    assert code[0] == dsn[0] and code[0] in "45" and dsn.count(".") == 2 and text


def test_milter_maps_without_the_stage_refuse_to_start() -> None:
    with pytest.raises(ConfigError, match="smtpd_milter_maps is set, but smtpd_pipeline does not name"):
        require_milter_stage(Pipeline(), Settings({"smtpd_milter_maps": "inline:{ 1.2.3.4=DISABLE }"}),
                             "smtpd_pipeline", "smtpd_milters")
