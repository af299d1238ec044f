"""main.cf syntax: continuation, comments, expansion, lists, and every error path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pymailsrv.config.parser import ExpansionCycle, expand, parse_text, split_list
from pymailsrv.errors import ConfigError, ConfigErrors


def test_basic_entries_and_continuation() -> None:
    text = "# comment\nmyhostname = mx.example.com\nmydestination = a,\n    b\n\tc\n\n  # indented comment\nx=1\n"
    entries = parse_text(text, "main.cf")
    assert [(e.name, e.value, e.line) for e in entries] == [
        ("myhostname", "mx.example.com", 2),
        ("mydestination", "a, b c", 3),
        ("x", "1", 8),
    ]
    assert entries[0].file == "main.cf"


def test_hash_after_value_is_part_of_value() -> None:
    (e,) = parse_text("smtpd_banner = $myhostname # not a comment\n")
    assert e.value == "$myhostname # not a comment"


def test_quotes_are_kept() -> None:
    (e,) = parse_text('mail_name = "quoted"\n')
    assert e.value == '"quoted"'


def test_empty_value() -> None:
    (e,) = parse_text("relayhost =\n")
    assert e.value == ""


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("  orphan continuation\n", 1, "continuation line"),
        ("a = 1\nno equals sign here\n", 2, 'missing "="'),
        ("bad-name = 1\n", 1, "bad parameter name"),
        ("= value\n", 1, "bad parameter name"),
    ],
)
def test_syntax_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "/etc/pymailsrv/pymailsrv.conf")
    assert str(info.value).startswith(f"/etc/pymailsrv/pymailsrv.conf:{line}: ")
    assert fragment in str(info.value)


def test_several_errors_reported_together() -> None:
    with pytest.raises(ConfigErrors) as info:
        parse_text("oops\n  x\nalso bad\n", "f")
    assert [e.line for e in info.value.errors] == [1, 3]


VALUES = {"a": "A", "b": "$a-b", "c": "${b}.${a}", "d": "$(a)", "loop1": "$loop2", "loop2": "x $loop1"}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("$a", "A"),
        ("${a}", "A"),
        ("$(a)", "A"),
        ("$b", "A-b"),
        ("$c", "A-b.A"),
        ("x$$y", "x$y"),
        ("$unset", ""),
        ("${a?yes}", "yes"),
        ("${unset?yes}", ""),
        ("${a:no}", ""),
        ("${unset:no}", "no"),
        ("trailing $", "trailing $"),
        ("no refs", "no refs"),
    ],
)
def test_expansion(text: str, result: str) -> None:
    assert expand(text, VALUES.get) == result


def test_expansion_cycle_is_reported_with_chain() -> None:
    with pytest.raises(ExpansionCycle) as info:
        expand("$loop1", VALUES.get)
    assert "loop1 -> loop2 -> loop1" in str(info.value)


def test_self_reference_cycle() -> None:
    with pytest.raises(ExpansionCycle):
        expand("$x", {"x": "$x"}.get)


def test_unbalanced_brace() -> None:
    with pytest.raises(ConfigError):
        expand("${a", VALUES.get)


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("a, b c,,d", ["a", "b", "c", "d"]),
        ("  ", []),
        ("check_client_access inline:{ 1.2.3.4=REJECT, 5.6.7.8=OK }, permit",
         ["check_client_access", "inline:{ 1.2.3.4=REJECT, 5.6.7.8=OK }", "permit"]),
        ("x{a b}y z", ["x{a b}y", "z"]),
    ],
)
def test_split_list(text: str, items: list[str]) -> None:
    assert split_list(text) == items


@given(st.lists(st.from_regex(r"[a-z0-9_.:/]{1,12}", fullmatch=True), max_size=8), st.sampled_from([",", " ", ", "]))
def test_split_list_round_trip(items: list[str], sep: str) -> None:
    assert split_list(sep.join(items)) == items


@given(st.text(alphabet="ab$\n {}#=\t", max_size=60))
def test_parser_never_raises_anything_but_config_error(text: str) -> None:
    try:
        parse_text(text)
    except ConfigError:
        pass
