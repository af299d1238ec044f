"""The Sieve parser and compiler: every construct of RFC 5228 §8 and each error with its position."""

from __future__ import annotations

import pytest

from pymailsrv.sieve import EXTENSIONS, SieveError, compile_script
from pymailsrv.sieve.parser import parse
from pymailsrv.sieve.spec import COMMANDS, TESTS

ALL = "require " + "[" + ", ".join(f'"{e}"' for e in EXTENSIONS) + "];\n"


def test_every_extension_has_a_row_and_every_row_an_advertised_extension() -> None:
    needed = {s.ext for s in [*COMMANDS.values(), *TESTS.values()] if s.ext}
    needed |= {t.ext for s in [*COMMANDS.values(), *TESTS.values()] for t in s.tags.values() if t.ext}
    assert needed <= set(EXTENSIONS)
    assert set(EXTENSIONS) - needed <= {"encoded-character", "comparator-i;ascii-numeric"}


def test_lexical_forms() -> None:
    cmds = parse('# hash\n/* bracket\n comment */ keep ;\nfileinto "a\\"b\\\\c\\d";\n'
                 "vacation text: # comment\nline 1\n..dot\n.\n;\nredirect 10K;")
    assert [c.name for c in cmds] == ["keep", "fileinto", "vacation", "redirect"]
    assert cmds[1].args[0].value == 'a"b\\cd'  # type: ignore[union-attr]
    assert cmds[2].args[0].value == "line 1\n.dot\n"  # type: ignore[union-attr]
    assert cmds[3].args[0].value == 10240  # type: ignore[union-attr]
    assert (cmds[1].pos.line, cmds[1].pos.column) == (4, 1)


def test_crlf_script_and_multiline_with_crlf() -> None:
    cmds = parse('require "vacation";\r\nvacation text:\r\nhi\r\n.\r\n;\r\n')
    assert cmds[1].args[0].value == "hi\n"  # type: ignore[union-attr]


def test_structure_if_elsif_else_and_tests() -> None:
    s = compile_script(ALL + """
if allof (header :contains ["subject", "x-s"] "win", not exists "x-ok") { discard; stop; }
elsif anyof (size :over 1M, address :domain :is "from" "example.com") { fileinto :create "Ex"; }
else { keep :flags "\\\\Seen"; }
""")
    assert [n.name for n in s.commands] == ["if", "elsif", "else"]
    h = s.commands[0].tests[0].tests[0]
    assert h.tags == {"match": "contains"} and h.args == [["subject", "x-s"], ["win"]]
    assert s.commands[1].tests[0].tests[0].args == [1 << 20]
    assert s.commands[1].block[0].tags == {"create": True}  # type: ignore[index]
    assert s.commands[2].block[0].tags == {"flags": ["\\Seen"]}  # type: ignore[index]


def test_optional_leading_and_trailing_positionals() -> None:
    s = compile_script(ALL + 'setflag "\\\\Seen"; setflag "v" ["a", "b"];'
                       'deleteheader "x"; deleteheader :contains "x" "y";')
    assert s.commands[0].args == [None, ["\\Seen"]]
    assert s.commands[1].args == ["v", ["a", "b"]]
    assert s.commands[2].args == ["x", None]
    assert s.commands[3].args == ["x", ["y"]]


def test_encoded_character() -> None:
    s = compile_script('require ["encoded-character", "fileinto"];\n'
                       'fileinto "${hex: 49 4e}${unicode:42 4f}X${hex:zz}";')
    assert s.commands[0].args == ["INBOX${hex:zz}"]
    s = compile_script('require "fileinto"; fileinto "${hex:41}";')
    assert s.commands[0].args == ["${hex:41}"]  # not required: left alone


@pytest.mark.parametrize(("script", "line", "column", "text"), [
    ('fileinto "x";', 1, 1, 'needs require "fileinto"'),
    ("if true { keep; ", 1, 17, "missing '}'"),
    ("keep", 1, 5, "expected ';'"),
    ('require "nope";', 1, 1, "unknown extension"),
    ("elsif true {}", 1, 1, "without a preceding if"),
    ("keep :foo;", 1, 6, "unknown tag"),
    ('if header "a" {}', 1, 4, "positional"),
    ('x "unterminated', 1, 3, "unterminated"),
    ('keep;\nrequire "fileinto";', 2, 1, "before any other"),
    ("if true keep;", 1, 9, "takes no test"),
    ("if true {} elsif;", 1, 12, "exactly one test"),
    ("frobnicate;", 1, 1, "unknown command"),
    ("if frob {}", 1, 4, "unknown test"),
    ('if header :is :contains "a" "b" {}', 1, 15, "conflicts"),
    ('if header :comparator "i;foo" "a" "b" {}', 1, 4, "unknown comparator"),
    ('require "relational"; if header :count "xx" "a" "b" {}', 1, 26, "unknown relation"),
    ('require "regex"; if header :regex "a" "(" {}', 1, 21, "regular expression"),
    ('if size 10 {}', 1, 4, ":over or :under"),
    ("keep; }", 1, 7, "expected a command"),
    ('redirect ["a", "b"];', 1, 10, "must be a string"),
    ('if header "a" ["b" "c"] {}', 1, 20, "',' or ']'"),
    ("if allof true {}", 1, 4, "test list"),
    ('require "variables"; set "1x" "y";', 1, 22, "invalid variable name"),
    ('redirect "nobody";', 1, 1, "invalid address"),
    ("/* open", 1, 1, "unterminated comment"),
    ('require "vacation"; vacation text:\nno end\n', 1, 30, "multi-line"),
    ("keep @;", 1, 6, "unexpected character"),
    ('if header :contains "a" "b" :is {}', 1, 29, "after a positional"),
    ('require ["editheader"]; addheader "bad:name" "v";', 1, 25, "header field name"),
    ("if true { " * 40 + "}" * 40, 1, 314, "nested too deeply"),
    ("stop {}", 1, 1, "takes no block"),
    ("if true;", 1, 1, "needs a block"),
    ('require "include"; include "../x";', 1, 20, "invalid script name"),
])
def test_errors_carry_line_and_column(script: str, line: int, column: int, text: str) -> None:
    with pytest.raises(SieveError) as info:
        compile_script(script)
    assert text in info.value.message
    assert (info.value.line, info.value.column) == (line, column), str(info.value)
    assert str(info.value).startswith(f"line {line}, column {column}: ")


def test_extensions_can_be_limited() -> None:
    with pytest.raises(SieveError, match="unknown extension 'vacation'"):
        compile_script('require "vacation";', extensions=["fileinto"])
    compile_script('require "fileinto";', extensions=["fileinto"])


def test_every_extension_compiles_in_one_script() -> None:
    compile_script(ALL + """
if envelope :detail "to" "list" { fileinto :copy :create :flags "a" "Lists"; }
if body :text :contains "x" { ereject "no"; }
if body :raw :contains "x" { reject "no"; }
if body :content "text" :contains "x" { redirect :copy "a@b.c"; }
if string :regex "${a}" "^b$" { set :upperfirst :length "n" "${1}"; }
if hasflag :is "\\\\Seen" { removeflag "\\\\Seen"; addflag "x" "y"; }
if date :zone "+0100" :value "ge" "date" "date" "2020-01-01" {}
if date :originalzone :index 1 :last "received" "year" "2020" {}
if currentdate :zone "+0000" :matches "weekday" "*" {}
if mailboxexists "Lists" {}
if duplicate :header "message-id" :seconds 60 :handle "h" { discard; }
if valid_notify_method "mailto:a@b.c" { notify :importance "1" :message "m" "mailto:a@b.c"; }
if notify_method_capability "mailto:a@b.c" "online" "yes" {}
if header :comparator "i;ascii-numeric" :value "gt" "x-n" "5" {}
if address :user :index 2 "to" "u" {}
vacation :seconds 10 :subject "s" :from "a@b.c" :addresses ["x@y.z"] :mime :handle "h" "r";
vacation :days 1 "r";
include :global :once :optional "common";
global ["a", "b"];
addheader :last "X-A" "b"; deleteheader :index 1 :last :is "X-A" "b";
return;
""")
