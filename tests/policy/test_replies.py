"""The reply constants themselves (STYLE rule 4): enhanced codes agree with the basic code."""

from __future__ import annotations

import pytest

from pymailsrv.policy import replies


@pytest.mark.parametrize("name", sorted(replies.ALL))
def test_enhanced_code_class_matches_basic_code(name: str) -> None:
    reply = replies.ALL[name]
    assert 400 <= reply.code < 600
    assert reply.dsn[0] == str(reply.code)[0], name
    major, subject, detail = reply.dsn.split(".")
    assert major in "45" and subject.isdigit() and detail.isdigit()


def test_dsn_for_follows_a_configured_code() -> None:
    assert replies.dsn_for(450, "5.7.1") == "4.7.1"
    assert replies.dsn_for(554, "4.7.1") == "5.7.1"
    assert replies.dsn_for(554, "5.7.1") == "5.7.1"


def test_postfix_texts() -> None:
    assert replies.REJECTED.format(name="unknown[192.168.3.87]", klass=replies.CLIENT,
                                   text=replies.ACCESS_DENIED) == \
        "<unknown[192.168.3.87]>: Client host rejected: Access denied"
    assert replies.RELAY_DEFERRED.format(name="obama@whitehouse.com") == \
        "<obama@whitehouse.com>: Relay access denied"


def test_decision_reply_keeps_the_text() -> None:
    from pymailsrv.policy.base import Decision

    assert Decision("reject", 554, "5.7.1", "<a@b>: Sender address rejected: go  away").reply() == \
        "554 5.7.1 <a@b>: Sender address rejected: go  away"
    assert Decision("reject", 501, "", "Syntax error").reply() == "501 Syntax error"
    assert Decision().reply() == ""
