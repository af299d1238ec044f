"""What Dovecot's imaptest found in its stress mode with state tracking (many sessions of a few
users doing random commands), each reproduced here without imaptest."""

from __future__ import annotations

from tests.imap.conftest import RawClient, msg


def _ok(c: RawClient, tag: str, command: str) -> list[str]:
    c.send(f"{tag} {command}")
    lines = c.until(tag)
    assert lines[-1].startswith(f"{tag} OK"), lines
    return lines


def _announced_before_use(lines: list[str], keyword: str) -> bool:
    """Every response that uses ``keyword`` comes after a FLAGS response that lists it."""
    announced = False
    for line in lines:
        if line.startswith("* FLAGS ") and keyword in line:
            announced = True
        elif " FETCH " in line and keyword in line and not announced:
            return False
    return True


def test_a_keyword_another_session_set_is_announced_before_a_store_reports_it(imap, raw) -> None:  # type: ignore[no-untyped-def]
    """Session B changes a message's flags right after session A gave it a keyword B was never
    told of: B's STORE reports the message's flags, so a FLAGS response must list the keyword
    first (imaptest: "Keyword used without being in FLAGS")."""
    imap.deliver(msg("one"))
    imap.deliver(msg("two"))
    a, b = raw(), raw()
    a.login()
    b.login()
    _ok(a, "s", "SELECT INBOX")
    assert not any("$Label2" in x for x in _ok(b, "s", "SELECT INBOX"))
    _ok(a, "k", "STORE 1 +FLAGS ($Label2)")
    lines = _ok(b, "t", "STORE 1 +FLAGS ($Label1)")
    assert any(" FETCH " in x and "$Label2" in x for x in lines), lines
    assert _announced_before_use(lines, "$Label2"), lines


def test_a_keyword_another_session_set_is_announced_before_a_fetch_that_sets_seen_reports_it(imap, raw) -> None:  # type: ignore[no-untyped-def]
    imap.deliver(msg("one"))
    a, b = raw(), raw()
    a.login()
    b.login()
    _ok(a, "s", "SELECT INBOX")
    _ok(b, "s", "SELECT INBOX")
    _ok(a, "k", "STORE 1 +FLAGS ($Label3)")
    lines = _ok(b, "f", "FETCH 1 (BODY[TEXT])")  # not .PEEK: sets \Seen and reports FLAGS
    assert any(" FETCH " in x and "$Label3" in x for x in lines), lines
    assert _announced_before_use(lines, "$Label3"), lines
