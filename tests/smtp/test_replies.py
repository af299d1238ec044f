"""The reply constants themselves (STYLE.md rule 4)."""

from __future__ import annotations

import re

import pytest

from pymailsrv.smtp import replies as R

# Postfix sends these without an enhanced status code; everything else must carry one.
WITHOUT_ENHANCED = {"GREETING", "HELO_OK", "HELO_SYNTAX", "EHLO_SYNTAX", "DATA_GO",
                    "CONTENT_REJECTED_DEFAULT"}


@pytest.mark.parametrize("name", sorted(R.ALL))
def test_enhanced_code_class_matches(name: str) -> None:
    text = R.ALL[name]
    if name in WITHOUT_ENHANCED:
        return
    m = re.match(r"([2-5])\d\d ([2-5])\.\d{1,3}\.\d{1,3} \S", text)
    assert m, f"{name}: {text!r} has no enhanced status code"
    assert m.group(1) == m.group(2), f"{name}: class digit differs in {text!r}"


def test_postfix_texts_verbatim() -> None:
    # POSTFIX-SEMANTICS §4
    assert R.HELO_SYNTAX == "501 Syntax: HELO hostname"
    assert R.UNKNOWN_COMMAND == "502 5.5.2 Error: command not recognized"
    assert R.NEED_HELO == "503 5.5.1 Error: send HELO/EHLO first"
    assert R.VRFY_DISABLED == "502 5.5.1 VRFY command is disabled"
    assert R.SIZE_EXCEEDED == "552 5.3.4 Message size exceeds fixed limit"
    assert R.TOO_MANY_RECIPIENTS == "452 4.5.3 Error: too many recipients"
    assert R.TOO_MANY_ERRORS.format(host="h") == "421 4.7.0 h Error: too many errors"
    assert R.AUTH_FAILED == "535 5.7.8 Error: authentication failed: authentication failure"
