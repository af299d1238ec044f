"""Unit tests for RFC 5256 base subjects and THREAD=REFERENCES subject gathering."""

from __future__ import annotations

import pytest

from pymailsrv.imap.threads import ThreadMsg, base_subject, references


@pytest.mark.parametrize(("subject", "base", "reply"), [
    ("a", "A", False),
    ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "B", True),
    ("Re: [FWD: c]", "C", True),
    ("[xyz]", "[XYZ]", False),  # a blob that would leave nothing stays
    ("[list] topic", "TOPIC", False),
    ("topic (fwd)", "TOPIC", True),
    ("topic   ", "TOPIC", False),
    ("Ad: Re: x", "AD: RE: X", False),
    ("re: [fwd: [fwd: re: [fwd: babylon]]]", "BABYLON", True),
    ("Re: Re[2]:  two  spaces", "TWO SPACES", True),
])
def test_base_subject(subject: str, base: str, reply: bool) -> None:
    assert base_subject(subject) == (base, reply)


def _msg(num: int, subject: str, msgid: str = "", refs: tuple[str, ...] = ()) -> ThreadMsg:
    base, reply = base_subject(subject)
    return ThreadMsg(num, float(num), base, msgid or f"<{num}@x>", list(refs), reply)


def test_subject_gathering() -> None:
    # a reply joins the original; two originals become siblings under a dummy; a dummy thread
    # (missing parent) takes in a later thread of its subject
    msgs = [_msg(1, "foo"), _msg(2, "Re: foo", msgid="<1@x>"), _msg(3, "bar"), _msg(4, "bar"),
            _msg(5, "Re: baz", refs=("<gone@x>",)), _msg(6, "Re: baz", refs=("<gone@x>",)), _msg(7, "baz")]
    assert references(msgs) == "(1 2)((3)(4))((5)(6)(7))"
