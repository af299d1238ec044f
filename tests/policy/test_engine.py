"""The restriction engine: stages, evaluation rules, every access action and the non-DNS
built-ins, against the in-memory Directory. Replies are compared with Postfix's texts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pymailsrv.db.memory import MemoryDirectory
from pymailsrv.errors import ConfigError, TemporaryFailure
from pymailsrv.policy.base import Decision
from pymailsrv.policy.context import format_reject
from pymailsrv.policy.restrictions import RestrictionEngine

from .conftest import EngineFactory, smtp_state

OUTSIDE = "192.0.2.10"
INSIDE = "192.168.1.5"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def rcpt(engine: RestrictionEngine, recipient: str, **kw: object) -> Decision:
    return await engine.check("rcpt", smtp_state(recipient=recipient, **kw))


# --- relay control and the §4 transcripts --------------------------------------------------------------

async def test_default_relay_restrictions_defer_relaying(make_engine: EngineFactory,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine()
    caplog.set_level(logging.INFO, logger="pymailsrv.smtpd")
    d = await rcpt(engine, "obama@whitehouse.com", helo_name="bad.helo")
    assert d.refused and d.action == "defer"
    assert d.reply() == "454 4.7.1 <obama@whitehouse.com>: Relay access denied"
    assert ("NOQUEUE: reject: RCPT from unknown[192.0.2.10]: 454 4.7.1 <obama@whitehouse.com>: Relay access "
            "denied; from=<sender@sender.example> to=<obama@whitehouse.com> proto=ESMTP helo=<bad.helo>"
            ) in caplog.messages


async def test_reject_unauth_destination_554(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_relay_restrictions="",
                         smtpd_recipient_restrictions="permit_mynetworks, reject_unauth_destination")
    d = await rcpt(engine, "someone@remote.example")
    assert d.reply() == "554 5.7.1 <someone@remote.example>: Relay access denied"
    assert (await rcpt(engine, "someone@remote.example", client_address=INSIDE)).action == "permit"
    engine = make_engine(smtpd_relay_restrictions="reject_unauth_destination", relay_domains_reject_code="550")
    assert (await rcpt(engine, "x@remote.example")).reply() == "550 5.7.1 <x@remote.example>: Relay access denied"


async def test_our_domains_and_trusted_clients(make_engine: EngineFactory) -> None:
    engine = make_engine(relay_domains="relay.example", virtual_alias_domains="valias.example",
                         virtual_alias_maps="inline:{ a@valias.example=alice@example.com }")
    for recipient in ("alice@example.com", "ALICE@Example.COM", "alice+tag@example.com", "info@example.com",
                      "anyone@alias.example", "carol@mx.example.test", "postmaster@mx.example.test",
                      "who@relay.example", "who@sub.relay.example", "x@backup.example", "a@valias.example",
                      "postmaster", "alice@example.com."):
        d = await rcpt(engine, recipient)
        assert not d.refused, (recipient, d.reply())
    assert (await rcpt(engine, "x@remote.example", client_address=INSIDE)).action == "permit"
    assert (await rcpt(engine, "x@remote.example", client_address="2001:db8:1::7")).action == "permit"
    assert (await rcpt(engine, "x@remote.example", client_address="::ffff:192.168.1.9")).action == "permit"
    assert not (await rcpt(engine, "x@remote.example", sasl_username="alice@example.com")).refused
    assert (await rcpt(engine, "x@remote.example", client_address="2001:db8:2::7")).refused


async def test_unlisted_recipient_even_from_mynetworks(make_engine: EngineFactory) -> None:
    engine = make_engine(relay_domains="relay.example", virtual_alias_domains="valias.example")
    expected = {
        "nobody@example.com": "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in "
                              "virtual mailbox table",
        "nobody@valias.example": "550 5.1.1 <nobody@valias.example>: Recipient address rejected: User unknown "
                                 "in virtual alias table",
        "nobody@mx.example.test": "550 5.1.1 <nobody@mx.example.test>: Recipient address rejected: User "
                                  "unknown in local recipient table",
    }
    for recipient, reply in expected.items():
        for client in (OUTSIDE, INSIDE):
            assert (await rcpt(engine, recipient, client_address=client)).reply() == reply
    engine = make_engine(smtpd_reject_unlisted_recipient="no")
    assert not (await rcpt(engine, "nobody@example.com")).refused
    engine = make_engine(smtpd_reject_unlisted_recipient="no",
                         smtpd_recipient_restrictions="reject_unlisted_recipient",
                         unknown_virtual_mailbox_reject_code="450")
    assert (await rcpt(engine, "nobody@example.com")).reply().startswith("450 4.1.1 <nobody@example.com>")


async def test_unlisted_sender(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_reject_unlisted_sender="yes")
    d = await rcpt(engine, "alice@example.com", sender="ghost@example.com")
    assert d.reply() == ("550 5.1.0 <ghost@example.com>: Sender address rejected: User unknown in virtual "
                         "mailbox table")
    assert not (await rcpt(engine, "alice@example.com", sender="bob@example.com")).refused
    assert not (await rcpt(engine, "alice@example.com", sender="")).refused


async def test_temporary_directory_failure_is_451(make_engine: EngineFactory, directory: MemoryDirectory,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine()

    async def down(*args: object) -> None:
        raise TemporaryFailure("database down")

    monkeypatch.setattr(directory.data, "domain", down)
    d = await rcpt(engine, "alice@example.com")
    assert d.reply() == "451 4.3.0 <alice@example.com>: Temporary lookup failure"


# --- access maps and actions ----------------------------------------------------------------------------

async def test_client_sender_recipient_access_denied_texts(make_engine: EngineFactory, tmp_path: Path) -> None:
    access = write(tmp_path, "access", "192.168.3.87 REJECT\nobama@whitehouse.com REJECT\n"
                                       "openstack@yuliang.com REJECT\n")
    engine = make_engine(smtpd_client_restrictions=f"check_client_access hash:{access}",
                         smtpd_sender_restrictions=f"check_sender_access hash:{access}",
                         smtpd_recipient_restrictions=f"check_recipient_access hash:{access}")
    d = await rcpt(engine, "alice@example.com", client_address="192.168.3.87")
    assert d.reply() == "554 5.7.1 <unknown[192.168.3.87]>: Client host rejected: Access denied"
    d = await rcpt(engine, "alice@example.com", sender="obama@whitehouse.com")
    assert d.reply() == "554 5.7.1 <obama@whitehouse.com>: Sender address rejected: Access denied"
    d = await rcpt(engine, "openstack@yuliang.com", client_address=INSIDE)
    assert d.reply() == "554 5.7.1 <openstack@yuliang.com>: Recipient address rejected: Access denied"


async def test_delay_reject_no_checks_at_each_stage(make_engine: EngineFactory, tmp_path: Path) -> None:
    access = write(tmp_path, "access", "192.168.3 REJECT\nbad.helo REJECT\nspam.example REJECT\n")
    engine = make_engine(smtpd_delay_reject="no",
                         smtpd_client_restrictions=f"check_client_access hash:{access}",
                         smtpd_helo_restrictions=f"check_helo_access hash:{access}",
                         smtpd_sender_restrictions=f"check_sender_access hash:{access}")
    assert (await engine.check("connect", smtp_state(client_address="192.168.3.87"))).reply() == \
        "554 5.7.1 <unknown[192.168.3.87]>: Client host rejected: Access denied"
    assert (await engine.check("helo", smtp_state(helo_name="x.bad.helo"))).reply() == \
        "554 5.7.1 <x.bad.helo>: Helo command rejected: Access denied"
    assert (await engine.check("mail", smtp_state(sender="x@spam.example"))).reply() == \
        "554 5.7.1 <x@spam.example>: Sender address rejected: Access denied"
    # the client list is not run again at RCPT
    assert not (await rcpt(engine, "alice@example.com", client_address="192.168.3.87")).refused
    # with smtpd_delay_reject = yes nothing is refused before RCPT
    engine = make_engine(smtpd_client_restrictions=f"check_client_access hash:{access}")
    assert not (await engine.check("connect", smtp_state(client_address="192.168.3.87"))).refused
    assert (await rcpt(engine, "alice@example.com", client_address="192.168.3.87")).refused


ACTIONS: list[tuple[str, str | None, tuple[tuple[str, str], ...]]] = [
    ("OK", None, ()),
    ("12345", None, ()),
    ("REJECT", "554 5.7.1 <x@spam.example>: Sender address rejected: Access denied", ()),
    ("REJECT go away", "554 5.7.1 <x@spam.example>: Sender address rejected: go away", ()),
    ("DEFER", "450 4.7.1 <x@spam.example>: Sender address rejected: Access denied", ()),
    ("DEFER later", "450 4.7.1 <x@spam.example>: Sender address rejected: later", ()),
    ("REJECT 5.7.0 go away", "554 5.7.0 <x@spam.example>: Sender address rejected: go away", ()),
    ("DEFER 4.2.0 full", "450 4.2.0 <x@spam.example>: Sender address rejected: full", ()),
    ("DEFER_IF_PERMIT 4.2.0 Greylisted", "450 4.2.0 <x@spam.example>: Sender address rejected: Greylisted", ()),
    ("421 busy", "421 4.7.1 <x@spam.example>: Sender address rejected: busy", ()),
    ("550 5.7.0 you are blocked", "550 5.7.0 <x@spam.example>: Sender address rejected: you are blocked", ()),
    ("DUNNO", None, ()),
    ("DEFER_IF_PERMIT maybe", "450 4.7.1 <x@spam.example>: Sender address rejected: maybe", ()),
    ("DEFER_IF_REJECT hmm", None, ()),
    ("HOLD", None, (("hold", ""),)),
    ("HOLD check me", None, (("hold", "check me"),)),
    ("DISCARD", None, (("discard", ""),)),
    ("REDIRECT jail@example.com", None, (("redirect", "jail@example.com"),)),
    ("FILTER smtp:[127.0.0.1]:10024", None, (("filter", "smtp:[127.0.0.1]:10024"),)),
    ("PREPEND X-Seen: yes", None, (("prepend", "X-Seen: yes"),)),
    ("BCC audit@example.com", None, (("bcc", "audit@example.com"),)),
    ("WARN odd sender", None, ()),
    ("reject_non_fqdn_recipient", None, ()),
    ("permit_mynetworks, reject", "554 5.7.1 <x@spam.example>: Sender address rejected: Access denied", ()),
    ("PREPEND no-colon", "451 4.3.5 Server configuration error", ()),
    ("REDIRECT", "451 4.3.5 Server configuration error", ()),
    ("no_such_restriction", "451 4.3.5 Server configuration error", ()),
]


@pytest.mark.parametrize(("value", "reply", "effects"), ACTIONS)
async def test_every_access_action(make_engine: EngineFactory, value: str, reply: str | None,
                                   effects: tuple[tuple[str, str], ...]) -> None:
    engine = make_engine(smtpd_sender_restrictions=f"check_sender_access inline:{{ {{ spam.example = {value} }} }}")
    d = await rcpt(engine, "alice@example.com", sender="x@spam.example")
    if reply is None:
        assert not d.refused, d.reply()
        assert d.effects == effects
    else:
        assert d.reply() == reply


async def test_discard_permits_and_ok_decides_only_its_list(make_engine: EngineFactory) -> None:
    engine = make_engine(
        smtpd_sender_restrictions="check_sender_access inline:{ spam.example=DISCARD }, reject",
        smtpd_client_restrictions="check_client_access inline:{ 192.0.2.10=OK }, reject",
        smtpd_recipient_restrictions="check_recipient_access inline:{ bob@example.com=REJECT }")
    d = await rcpt(engine, "alice@example.com", sender="x@spam.example")
    assert d.action == "permit" and d.effects == (("discard", ""),)
    # OK in the client list does not skip the recipient list
    assert (await rcpt(engine, "bob@example.com", sender="x@spam.example")).reply().startswith("554 5.7.1 <bob@")


async def test_defer_if_reject_softens_a_later_reject(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions=(
        "check_sender_access inline:{ { spam.example = DEFER_IF_REJECT not sure } }, "
        "check_sender_access inline:{ x@spam.example=REJECT }"))
    assert (await rcpt(engine, "alice@example.com", sender="x@spam.example")).reply() == \
        "450 4.7.1 <x@spam.example>: Sender address rejected: not sure"
    assert not (await rcpt(engine, "alice@example.com", sender="y@spam.example")).refused


async def test_defer_if_permit_but_reject_wins(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_client_restrictions="defer_if_permit",
                         smtpd_recipient_restrictions="check_recipient_access inline:{ bob@example.com=REJECT }")
    assert (await rcpt(engine, "alice@example.com")).reply() == \
        "450 4.7.1 <unknown[192.0.2.10]>: Client host rejected: defer_if_permit requested"
    assert (await rcpt(engine, "bob@example.com")).reply().startswith("554 5.7.1 <bob@example.com>")


async def test_key_order_and_subdomain_forms(make_engine: EngineFactory, tmp_path: Path) -> None:
    access = write(tmp_path, "access", (
        "user+tag@example.org  REJECT ext\n"
        "user@example.org      REJECT full\n"
        "example.org           REJECT domain\n"
        ".sub.example.net      REJECT subdomains only\n"
        "user@                 REJECT localpart\n"
        "<>                    REJECT null\n"))
    engine = make_engine(smtpd_sender_restrictions=f"check_sender_access texthash:{access}")

    async def text(sender: str) -> str:
        return (await rcpt(engine, "alice@example.com", sender=sender)).text.rpartition(": ")[2]

    assert await text("user+tag@example.org") == "ext"
    assert await text("user+other@example.org") == "full"
    assert await text("other@example.org") == "domain"
    assert await text("other@deep.down.example.org") == "domain"
    # .domain keys match subdomains only (POSTFIX-SEMANTICS §4)
    assert await text("x@a.sub.example.net") == "subdomains only"
    assert not (await rcpt(engine, "alice@example.com", sender="x@sub.example.net")).refused
    # without smtpd_access_maps in parent_domain_matches_subdomains: only .domain keys, as Postfix
    dotted = make_engine(smtpd_sender_restrictions=f"check_sender_access texthash:{access}",
                         parent_domain_matches_subdomains="relay_domains")
    assert (await rcpt(dotted, "alice@example.com", sender="x@a.sub.example.net")).text.endswith("subdomains only")
    assert not (await rcpt(dotted, "alice@example.com", sender="x@sub.example.net")).refused
    assert not (await rcpt(dotted, "alice@example.com", sender="other@deep.down.example.org")).refused
    assert await text("user@elsewhere.test") == "localpart"
    assert await text("") == "null"


async def test_client_keys_hostname_parents_and_prefixes(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_client_restrictions="check_client_access inline:{ "
                         "{ example.org = REJECT by name }, { 10.1 = REJECT by net }, "
                         "{ 2001:db8:5 = REJECT by v6 net } }")
    d = await rcpt(engine, "alice@example.com", client_name="mail.example.org", client_address="192.0.2.1")
    assert d.reply() == "554 5.7.1 <mail.example.org[192.0.2.1]>: Client host rejected: by name"
    assert (await rcpt(engine, "alice@example.com", client_address="10.1.200.3")).text.endswith("by net")
    assert (await rcpt(engine, "alice@example.com", client_address="2001:db8:5:1::9")).text.endswith("by v6 net")


async def test_pattern_tables_get_whole_strings(make_engine: EngineFactory, tmp_path: Path) -> None:
    regexp = write(tmp_path, "senders.re", "/^example\\.org$/ REJECT domain-only key\n/@example\\.org$/ REJECT whole\n")
    cidr = write(tmp_path, "clients.cidr", "10.0.0.0/8 REJECT cidr\n")
    engine = make_engine(smtpd_sender_restrictions=f"check_sender_access regexp:{regexp}",
                         smtpd_client_restrictions=f"check_client_access cidr:{cidr}")
    assert (await rcpt(engine, "alice@example.com", sender="u@example.org")).text.endswith("whole")
    assert (await rcpt(engine, "alice@example.com", client_address="10.9.8.7")).text.endswith("cidr")


async def test_restriction_classes(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_restriction_classes="strict, friendly",
                         strict="reject_non_fqdn_sender, friendly",
                         friendly="check_sender_access inline:{ bad@example.org=REJECT }",
                         smtpd_recipient_restrictions="check_recipient_access inline:{ bob@example.com=strict }")
    assert (await rcpt(engine, "bob@example.com", sender="nofqdn")).reply() == \
        "504 5.5.2 <nofqdn>: Sender address rejected: need fully-qualified address"
    assert (await rcpt(engine, "bob@example.com", sender="bad@example.org")).refused
    assert not (await rcpt(engine, "alice@example.com", sender="nofqdn")).refused


async def test_warn_if_reject(make_engine: EngineFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv.smtpd")
    engine = make_engine(smtpd_sender_restrictions="warn_if_reject reject_non_fqdn_sender")
    assert not (await rcpt(engine, "alice@example.com", sender="nofqdn")).refused
    assert any("NOQUEUE: reject_warning: RCPT from unknown[192.0.2.10]: 504 5.5.2 <nofqdn>" in m
               for m in caplog.messages)


async def test_actions_are_logged(make_engine: EngineFactory, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pymailsrv.smtpd")
    engine = make_engine(smtpd_recipient_restrictions="check_recipient_access inline:{ alice@example.com=HOLD, "
                         "{ bob@example.com = WARN odd one } }")
    await rcpt(engine, "alice@example.com")
    await rcpt(engine, "bob@example.com")
    assert ("NOQUEUE: hold: RCPT from unknown[192.0.2.10]: <alice@example.com>: Recipient address triggers "
            "HOLD action; from=<sender@sender.example> to=<alice@example.com> proto=ESMTP "
            "helo=<client.example.net>") in caplog.messages
    assert any("warn: RCPT from unknown[192.0.2.10]: odd one; from=<sender@sender.example> to=<bob@example.com>" in m
               for m in caplog.messages)


# --- syntax built-ins ------------------------------------------------------------------------------------

async def test_helo_syntax_checks(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_helo_restrictions="reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname")
    cases = {
        "mail.example.org": None, "[192.0.2.1]": None, "[IPv6:2001:db8::1]": None, "under_score.example": None,
        "192.0.2.1": "504 5.5.2 <192.0.2.1>: Helo command rejected: need fully-qualified hostname",
        "localhost": "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
        "bad!name.example": "501 5.5.2 <bad!name.example>: Helo command rejected: Invalid name",
        "-x.example": "501 5.5.2 <-x.example>: Helo command rejected: Invalid name",
        "[300.1.1.1]": "501 5.5.2 <[300.1.1.1]>: Helo command rejected: Invalid name",
        "a..b": "501 5.5.2 <a..b>: Helo command rejected: Invalid name",
    }
    for helo, reply in cases.items():
        d = await rcpt(engine, "alice@example.com", helo_name=helo)
        assert (d.reply() if d.refused else None) == reply, helo
    # no HELO at all: the helo list is skipped
    assert not (await rcpt(engine, "alice@example.com", helo_name="")).refused


async def test_non_fqdn_addresses(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions="reject_non_fqdn_sender",
                         smtpd_recipient_restrictions="reject_non_fqdn_recipient")
    assert (await rcpt(engine, "alice@example.com", sender="joe@localhost")).reply() == \
        "504 5.5.2 <joe@localhost>: Sender address rejected: need fully-qualified address"
    assert not (await rcpt(engine, "alice@example.com", sender="")).refused
    assert (await rcpt(engine, "nofqdn", client_address=INSIDE)).reply() == \
        "504 5.5.2 <nofqdn>: Recipient address rejected: need fully-qualified address"
    # RFC 5321 §4.5.1: <postmaster> is accepted before any restriction
    assert not (await rcpt(engine, "Postmaster")).refused


async def test_unauth_pipelining_at_rcpt_and_data(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_data_restrictions="reject_unauth_pipelining",
                         smtpd_client_restrictions="reject_unauth_pipelining")
    state = smtp_state(recipient="alice@example.com", pipelining_violation=True)
    assert (await engine.check("data", state)).reply() == \
        "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"
    assert (await engine.check("rcpt", state)).reply() == \
        ("503 5.5.0 <unknown[192.0.2.10]>: Client host rejected: Improper use of SMTP command pipelining")
    assert not (await engine.check("data", smtp_state(recipient="alice@example.com"))).refused


async def test_multi_recipient_bounce(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_data_restrictions="reject_multi_recipient_bounce")
    assert (await engine.check("data", smtp_state(sender="", recipient_count=2))).reply() == \
        "550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce"
    assert not (await engine.check("data", smtp_state(sender="", recipient_count=1))).refused


async def test_reject_and_defer_builtins_use_the_list_class(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_helo_restrictions="reject")
    assert (await rcpt(engine, "alice@example.com")).reply() == \
        "554 5.7.1 <client.example.net>: Helo command rejected: Access denied"
    engine = make_engine(smtpd_end_of_data_restrictions="defer")
    assert (await engine.check("end_of_data", smtp_state())).reply() == \
        "450 4.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied"


# --- sender login mismatch --------------------------------------------------------------------------

async def test_sender_login_mismatch_with_directory(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions="reject_sender_login_mismatch")
    ok = [("alice@example.com", "alice@example.com"), ("alice@example.com", "info@example.com"),
          ("alice@example.com", "ALICE+x@example.com"), ("alice@example.com", "")]
    for login, sender in ok:
        d = await rcpt(engine, "bob@example.com", sasl_username=login, sender=sender)
        assert not d.refused, (login, sender, d.reply())
    d = await rcpt(engine, "bob@example.com", sasl_username="alice@example.com", sender="bob@example.com")
    assert d.reply() == "553 5.7.1 <bob@example.com>: Sender address rejected: not owned by user alice@example.com"
    d = await rcpt(engine, "bob@example.com", sender="bob@example.com")
    assert d.reply() == "553 5.7.1 <bob@example.com>: Sender address rejected: not logged in"
    assert not (await rcpt(engine, "bob@example.com", sender="x@elsewhere.example")).refused


async def test_sender_login_maps_table(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_sender_restrictions="reject_authenticated_sender_login_mismatch",
                         smtpd_sender_login_maps="inline:{ { shared@example.com = alice, bob }, @team.example=carol }")
    assert not (await rcpt(engine, "bob@example.com", sasl_username="bob", sender="shared@example.com")).refused
    assert not (await rcpt(engine, "bob@example.com", sasl_username="carol", sender="x@team.example")).refused
    assert (await rcpt(engine, "bob@example.com", sasl_username="carol", sender="shared@example.com")).refused
    # unauthenticated clients are not checked by the authenticated-only variant
    assert not (await rcpt(engine, "bob@example.com", sender="shared@example.com")).refused


# --- configuration errors ---------------------------------------------------------------------------

def test_configuration_errors(make_engine: EngineFactory, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='smtpd_sender_restrictions: unknown restriction "reject_evil"'):
        make_engine(smtpd_sender_restrictions="reject_evil")
    with pytest.raises(ConfigError, match='smtpd_client_restrictions: missing argument after "check_client_access"'):
        make_engine(smtpd_client_restrictions="permit_mynetworks, check_client_access")
    with pytest.raises(ConfigError, match="smtpd_helo_restrictions: check_helo_access"):
        make_engine(smtpd_helo_restrictions=f"check_helo_access hash:{tmp_path}/missing")
    with pytest.raises(ConfigError, match="at least one working instance"):
        make_engine(smtpd_relay_restrictions="permit_mynetworks", smtpd_recipient_restrictions="permit")
    with pytest.raises(ConfigError, match="DNSBL"):
        make_engine(smtpd_client_restrictions="reject_rbl_client nodots")
    # a relay guard inside a restriction class counts
    make_engine(smtpd_restriction_classes="guard", guard="reject_unauth_destination",
                smtpd_relay_restrictions="permit_mynetworks, guard")


def test_format_reject_helper() -> None:
    from pymailsrv.policy.context import refuse

    state = smtp_state(recipient="a@b.example", queue_id="4F3A2B1C0D")
    line = format_reject("rcpt", state, refuse(552, "5.3.4", "Message size exceeds fixed limit"))
    assert line == ("4F3A2B1C0D: reject: RCPT from unknown[192.0.2.10]: 552 5.3.4 Message size exceeds fixed "
                    "limit; from=<sender@sender.example> to=<a@b.example> proto=ESMTP helo=<client.example.net>")
    helo = format_reject("helo", smtp_state(sender=None), refuse(501, "5.5.2", "x"))
    assert helo.startswith("NOQUEUE: reject: EHLO from unknown[192.0.2.10]: 501 5.5.2 x; proto=ESMTP")


async def test_plaintext_session_and_sasl_access(make_engine: EngineFactory) -> None:
    engine = make_engine(smtpd_client_restrictions="reject_plaintext_session",
                         smtpd_sender_restrictions="check_sasl_access inline:{ { mallory@x.example = REJECT stolen } }")
    assert (await rcpt(engine, "alice@example.com")).reply() == "450 4.7.1 Session encryption is required"
    assert not (await rcpt(engine, "alice@example.com", tls=True)).refused
    d = await rcpt(engine, "alice@example.com", tls=True, sasl_username="mallory@x.example")
    assert d.reply() == "554 5.7.1 <mallory@x.example>: Client host rejected: stolen"


async def test_permit_inet_interfaces_and_sleep(directory: MemoryDirectory) -> None:
    import asyncio

    from pymailsrv.clock import FakeClock
    from pymailsrv.config.settings import Settings
    from pymailsrv.policy.dns import Resolver

    from .conftest import BASE

    clock = FakeClock()
    settings = Settings({**BASE, "smtpd_client_restrictions": "permit_inet_interfaces, sleep 5s, reject"})
    engine = RestrictionEngine(settings, directory, resolver=Resolver(["127.0.0.1:9"]), clock=clock)
    assert not (await rcpt(engine, "alice@example.com", client_address="127.0.0.1")).refused
    task = asyncio.ensure_future(rcpt(engine, "alice@example.com"))
    await asyncio.sleep(0.01)
    assert not task.done()
    await clock.advance(5)
    assert (await asyncio.wait_for(task, 2)).refused
