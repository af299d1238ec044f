"""Golden ENVELOPE / BODYSTRUCTURE / BODY / section files for a corpus of tricky messages.

On mismatch the actual output is written beside the golden file as ``*.failed``;
``pytest --update-golden`` rewrites the golden files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pymailsrv.imap import mime
from pymailsrv.imap.grammar import Section
from pymailsrv.imap.parser import CommandParser
from pymailsrv.message.lines import to_crlf

CORPUS = Path(__file__).parent / "corpus"
MESSAGES = sorted(CORPUS.glob("*.eml"))
SECTIONS = ["HEADER", "TEXT", "1", "1.MIME", "2", "2.MIME", "2.HEADER", "2.TEXT", "2.1", "2.2", "1.1",
            "1.2", "1.2.1", "1.2.2", "1.2.2.MIME", "3", "HEADER.FIELDS (SUBJECT FROM)",
            "HEADER.FIELDS.NOT (RECEIVED RETURN-PATH)"]


def _section(spec: str) -> Section:
    p = CommandParser()
    p.feed(f"a FETCH 1 BODY[{spec}]\r\n".encode())
    cmd = p.next()
    return cmd.args.atts[0].section  # type: ignore[union-attr]


def render(data: bytes) -> str:
    whole = to_crlf(data)
    root = mime.parse(whole)
    out = [f"RFC822.SIZE {len(whole)}",
           "ENVELOPE " + mime.envelope(root).decode("utf-8", "replace"),
           "BODYSTRUCTURE " + mime.bodystructure(root).decode("utf-8", "replace"),
           "BODY " + mime.bodystructure(root, extended=False).decode("utf-8", "replace")]
    for spec in SECTIONS:
        got = mime.section(root, whole, _section(spec))
        shown = "NIL" if got is None else f"{len(got)} {got[:60]!r}"
        out.append(f"BODY[{spec}] {shown}")
    out.append("SENT " + str(mime.sent_date(root)))
    out.append("TEXT " + repr(mime.body_text(root)[:200]))
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("path", MESSAGES, ids=[p.stem for p in MESSAGES])
def test_golden(path: Path, request: pytest.FixtureRequest) -> None:
    actual = render(path.read_bytes())
    golden = path.with_suffix(".golden")
    failed = path.with_suffix(".golden.failed")
    if request.config.getoption("--update-golden") or not golden.exists():
        golden.write_bytes(actual.encode())
        failed.unlink(missing_ok=True)
        return
    expected = golden.read_bytes().decode()
    if actual != expected:
        failed.write_bytes(actual.encode())
        pytest.fail(f"{path.name}: output differs from {golden.name}; see {failed.name}")
    failed.unlink(missing_ok=True)


def test_sizes_agree_with_lf_and_crlf_storage() -> None:
    lf = (CORPUS / "simple.eml").read_bytes()
    crlf = lf.replace(b"\n", b"\r\n")
    assert render(lf) == render(crlf)


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.stem)
def test_single_part_body_is_section_1(path: Path) -> None:
    """FETCH answers BODY[1] of a single-part message without a MIME parse: the same bytes."""
    whole = to_crlf(path.read_bytes())
    got = mime.single_part_body(whole)
    root = mime.parse(whole)
    if got is None:
        assert root.is_multipart
    else:
        assert got == mime.section(root, whole, _section("1"))


def test_split_multipart_delimiters() -> None:
    """A delimiter begins the body or follows a CRLF no earlier delimiter's line end took; a
    boundary inside a line (or a long attachment line) is content."""
    body = b"--b\r\nA\r\n--b\r\n--b\r\nx --b\r\n--bz\r\nB\r\n--b-- \r\ntail"
    assert mime.split_multipart(body, b"b") == [(b"A", True), (b"--b\r\nx --b\r\n--bz\r\nB", True)]
    big = b"--b\r\n" + b"QUJD--b" * 100_000 + b"\r\n--b--"
    assert mime.split_multipart(big, b"b") == [(b"QUJD--b" * 100_000, True)]
