"""The interpreter's own rules: limits, errors that keep the message, what Pigeonhole cannot be
asked (the null sender), editheader's effect on stored messages, and a fuzzed compiler."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from pymailsrv.sieve import Script, SieveError, compile_script
from pymailsrv.sieve.interpreter import Context, run_script, run_scripts
from pymailsrv.sieve.message import Envelope, SieveMessage
from pymailsrv.sieve.variables import MAX_VARIABLE_SIZE

MSG = b"From: a@example.com\nTo: u@example.net\nSubject: hi there\nMessage-ID: <1@x>\n\nbody\n"


def run(script: str, sender: str = "s@example.com", **ctx: object) -> tuple[list[str], str | None]:
    result = run_script(compile_script(script), SieveMessage.parse(MSG),
                        Context(Envelope(sender, "u+x@example.net"), **ctx))  # type: ignore[arg-type]
    return result.describe(), result.error


def test_too_many_actions_fail_and_keep() -> None:
    script = 'require "fileinto";' + "".join(f'fileinto "F{i}";' for i in range(33))
    assert run(script) == (["store INBOX"], "line 1: too many actions")
    assert run(script, max_actions=40)[1] is None


def test_too_many_redirects_fail_and_keep() -> None:
    script = "".join(f'redirect "r{i}@example.org";' for i in range(3))
    actions, error = run(script, max_redirects=2)
    assert actions == ["store INBOX"] and error is not None and "redirect" in error


def test_redirect_never_goes_back_to_the_sender() -> None:
    assert run('redirect "S@example.com";', sender="S@example.com") == (["store INBOX"], None)


def test_null_sender_matches_the_empty_string_only_with_all() -> None:
    script = 'require ["envelope", "fileinto"]; if envelope :is "from" "" { fileinto "Null"; }'
    assert run(script, sender="") == (["store Null"], None)
    script = 'require ["envelope", "fileinto"]; if envelope :localpart :is "from" "" { fileinto "Null"; }'
    assert run(script, sender="") == (["store INBOX"], None)


def test_include_recursion_is_bounded() -> None:
    me: dict[str, Script] = {}
    me["loop"] = compile_script('require "include"; include "loop";')
    actions, error = run('require "include"; include "loop";', include=lambda loc, name: me.get(name))
    assert actions == ["store INBOX"] and error is not None and "nested" in error


def test_missing_include_fails_unless_optional() -> None:
    assert run('require "include"; include "nope";')[1] is not None
    assert run('require "include"; include :optional "nope";') == (["store INBOX"], None)


def test_variables_are_cut_at_their_limit() -> None:
    script = ('require ["variables", "fileinto"]; set "a" "' + "x" * 10000 + '";'
              'set :length "n" "${a}"; fileinto "${n}";')
    assert run(script) == ([f"store {MAX_VARIABLE_SIZE}"], None)


def test_editheader_changes_what_is_stored_after_it() -> None:
    script = 'require ["editheader", "fileinto"]; fileinto "Before"; addheader "X-Tag" "yes"; keep;'
    result = run_script(compile_script(script), SieveMessage.parse(MSG), Context(Envelope("s@x.y", "u@x.y")))
    before, keep = result.actions
    assert before.fields is not None and all(k != "X-Tag" for k, _ in before.fields)
    assert keep.fields is not None and keep.fields[0] == ("X-Tag", " yes")


def test_duplicate_asks_the_context_and_records_on_success() -> None:
    script = 'require ["duplicate", "fileinto"]; if duplicate :seconds 60 { fileinto "Dup"; }'
    seen: set[str] = set()
    msg = SieveMessage.parse(MSG)
    ctx = Context(Envelope("s@x.y", "u@x.y"), duplicate_seen=seen.__contains__)
    first = run_script(compile_script(script), msg, ctx)
    assert first.describe() == ["store INBOX"] and len(first.duplicates) == 1
    seen.add(first.duplicates[0][0])
    again = run_script(compile_script(script), msg, ctx)
    assert again.describe() == ["store Dup"]


def test_vacation_periods_follow_the_site_limits() -> None:
    script = 'require "vacation-seconds"; vacation :seconds 0 "x";'
    assert run(script, vacation_period=(0, 7 * 86400, 30 * 86400))[0][0] == "vacation seconds=0"
    assert run(script)[0][0] == "vacation seconds=86400"


def test_currentdate_uses_the_clock() -> None:
    script = 'require ["date", "fileinto"]; if currentdate :zone "+0000" "date" "2030-01-02" { fileinto "Y"; }'
    assert run(script, now=datetime(2030, 1, 2, 12, tzinfo=UTC))[0] == ["store Y"]


def test_runtime_regex_error_keeps_the_message() -> None:
    script = 'require ["regex", "variables", "fileinto"]; set "p" "(("; if header :regex "subject" "${p}" { discard; }'
    actions, error = run(script)
    assert actions == ["store INBOX"] and error is not None and "regular expression" in error


ALPHABET = st.sampled_from(list('ifelsrequiretfilntoheader:is:contains"[](){},;# \n\\*$x0123K'))


@settings(max_examples=300, deadline=None)
@given(st.text(ALPHABET, max_size=80))
def test_any_text_compiles_or_raises_sieve_error(text: str) -> None:
    try:
        compile_script(text)
    except SieveError as exc:
        assert exc.line >= 1 and exc.column >= 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_any_unicode_compiles_or_raises_sieve_error(text: str) -> None:
    try:
        compile_script(text)
    except SieveError:
        pass


def test_a_catastrophic_regex_runs_in_linear_time() -> None:
    script = 'require ["regex", "fileinto"]; if header :regex "subject" "^(a|aa)+$" { fileinto "A"; }'
    msg = SieveMessage.parse(b"Subject: " + b"a" * 30000 + b"b\n\nx\n")
    t0 = time.process_time()
    result = run_script(compile_script(script), msg, Context(Envelope("s@x.y", "u@x.y")))
    assert result.describe() == ["store INBOX"]
    assert time.process_time() - t0 < 2.0  # a backtracking engine needs longer than the universe has


def test_a_pathological_wildcard_pattern_runs_in_linear_time() -> None:
    script = 'require "fileinto"; if header :matches "subject" "*a*a*a*a*a*a*a*a*b" { fileinto "A"; }'
    msg = SieveMessage.parse(b"Subject: " + b"a" * 30000 + b"\n\nx\n")
    t0 = time.process_time()
    assert run_script(compile_script(script), msg, Context(Envelope("s@x.y", "u@x.y"))).describe() == ["store INBOX"]
    assert time.process_time() - t0 < 2.0


def test_a_failing_user_script_leaves_what_sieve_before_decided() -> None:
    before = compile_script('require "fileinto"; if header :contains "subject" "hi" { fileinto "Junk"; }')
    broken = compile_script('require "include"; redirect "a@example.org"; include "missing";')
    msg = SieveMessage.parse(MSG)
    result = run_scripts([before, broken], msg, Context(Envelope("s@x.y", "u@x.y")))
    assert result.describe() == ["store Junk"] and result.error is not None
    result = run_scripts([compile_script("keep;"), broken], msg, Context(Envelope("s@x.y", "u@x.y")))
    assert result.describe() == ["store INBOX"]
    result = run_scripts([broken], msg, Context(Envelope("s@x.y", "u@x.y")))
    assert result.describe() == ["store INBOX"]  # nothing decided: the implicit keep
