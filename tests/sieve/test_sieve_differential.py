"""The Pigeonhole differential corpus: each case of corpus.py gives the actions recorded in
corpus_expected.json through our interpreter, and (when Debian's dovecot-sieve is installed) the
same actions through Pigeonhole's sieve-test — or, for the cases listed as differences in
docs/sieve.md, the ones recorded under "pigeonhole". ``--update-golden`` rewrites the file from
both implementations (then review the diff)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sieve.corpus import CASES, MESSAGES, Case
from tests.sieve.pigeonhole import SIEVE_TEST, ours, pigeonhole

GOLDEN = Path(__file__).with_name("corpus_expected.json")


def _load() -> dict[str, dict[str, list[str]]]:
    return json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}


EXPECTED = _load()


def _ours(c: Case) -> list[str]:
    return ours(c.script, MESSAGES[c.message], c.sender, c.recipient, c.mailboxes, c.includes)


def _pigeonhole(c: Case) -> list[str]:
    return pigeonhole(c.script, MESSAGES[c.message], c.sender, c.recipient, c.mailboxes, c.includes)


def test_corpus_is_large_and_golden_complete(request: pytest.FixtureRequest) -> None:
    assert len(CASES) >= 150
    if request.config.getoption("--update-golden"):
        return
    assert sorted(EXPECTED) == sorted(c.name for c in CASES), "run with --update-golden"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ours(case: Case, request: pytest.FixtureRequest) -> None:
    got = _ours(case)
    if request.config.getoption("--update-golden"):
        entry = {"expected": got}
        if SIEVE_TEST is not None:
            theirs = _pigeonhole(case)
            if theirs != got:
                entry["pigeonhole"] = theirs
        EXPECTED[case.name] = entry
        GOLDEN.write_text(json.dumps(dict(sorted(EXPECTED.items())), indent=1, ensure_ascii=False) + "\n")
        return
    assert got == EXPECTED[case.name]["expected"]


@pytest.mark.skipif(SIEVE_TEST is None, reason="sieve-test (Debian dovecot-sieve) is not installed")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_pigeonhole(case: Case, request: pytest.FixtureRequest) -> None:
    if request.config.getoption("--update-golden"):
        pytest.skip("rewriting the golden file")
    entry = EXPECTED[case.name]
    assert _pigeonhole(case) == entry.get("pigeonhole", entry["expected"])


def test_every_difference_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "sieve.md").read_text()
    for name, entry in EXPECTED.items():
        if "pigeonhole" in entry:
            assert f"`{name}`" in doc, f"difference {name} is not in docs/sieve.md"
