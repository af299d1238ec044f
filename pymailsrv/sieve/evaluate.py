"""The tests of Sieve and its extensions (RFC 5228 §5, 5173, 5229, 5232, 5260, 5435, 5490, 7352).

Pure module: everything outside the message comes through the run's Context.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from pymailsrv.sieve import dates
from pymailsrv.sieve.compiler import Node, Value
from pymailsrv.sieve.errors import SieveRuntimeError
from pymailsrv.sieve.match import match_any
from pymailsrv.sieve.message import body_texts
from pymailsrv.sieve.notify import mailto_capability, valid_method
from pymailsrv.sieve.spec import DATE_PARTS

if TYPE_CHECKING:
    from pymailsrv.sieve.interpreter import Run


def strs(run: Run, v: Value | None) -> list[str]:
    if v is None:
        return []
    if isinstance(v, list):
        return [run.expand(x) for x in v]
    return [run.expand(str(v))]


def text(run: Run, v: Value | None) -> str:
    return run.expand(str(v)) if v is not None else ""


def _match(run: Run, node: Node, values: list[str], keys: list[str]) -> bool:
    match = str(node.tags.get("match", "is"))
    comparator = str(node.tags.get("comparator", "i;ascii-casemap"))
    rel = str(node.tags.get(match, "")) if match in ("count", "value") else ""
    ok, groups = match_any(values, keys, match, comparator, rel)
    if ok and groups is not None and match in ("matches", "regex"):
        run.scope.groups = groups  # RFC 5229 §3.2: only a successful match sets them
    return ok


def _pick(node: Node, values: list[str]) -> list[str]:
    """RFC 5260 §6: ``:index N`` (``:last`` counts from the end) picks one occurrence."""
    if "index" not in node.tags:
        return values
    i = int(node.tags["index"])  # type: ignore[arg-type]
    if i > len(values):
        return []
    return [values[-i] if node.tags.get("last") else values[i - 1]]


def test_header(run: Run, node: Node) -> bool:
    values: list[str] = []
    for name in strs(run, node.args[0]):
        values += _pick(node, run.msg.values(name))
    return _match(run, node, values, strs(run, node.args[1]))


def address_part(addr: str, part: str, delimiter: str) -> str | None:
    local, at, domain = addr.rpartition("@")
    if not at:
        local, domain = addr, ""
    if part == "localpart":
        return local
    if part == "domain":
        return domain
    if part in ("user", "detail"):  # RFC 5233 §4
        if not delimiter:
            return local if part == "user" else None
        cut = min((i for i in (local.find(d) for d in delimiter) if i >= 0), default=-1)
        if part == "user":
            return local if cut < 0 else local[:cut]
        return None if cut < 0 else local[cut + 1:]
    return addr


def test_address(run: Run, node: Node) -> bool:
    part = str(node.tags.get("addrpart", "all"))
    values: list[str] = []
    for name in strs(run, node.args[0]):
        occurrences = run.msg.raw_values(name)
        picked = _pick(node, [str(i) for i in range(len(occurrences))])
        for idx in picked:
            for addr, valid in run.msg.addresses_of(occurrences[int(idx)]):
                v = address_part(addr, part, run.ctx.delimiter) if valid else addr if part == "all" else None
                if v is not None:
                    values.append(v)
    return _match(run, node, values, strs(run, node.args[1]))


def test_envelope(run: Run, node: Node) -> bool:
    part = str(node.tags.get("addrpart", "all"))
    env = run.ctx.envelope
    values: list[str] = []
    for name in strs(run, node.args[0]):
        n = name.lower()
        addr = env.sender if n == "from" else env.recipient if n == "to" else env.auth if n == "auth" else None
        if addr is None or (n == "auth" and not addr):
            continue
        if addr == "":  # RFC 5228 §5.4: the null reverse-path matches "" with :all only
            if part == "all":
                values.append("")
            continue
        v = address_part(addr, part, run.ctx.delimiter)
        if v is not None:
            values.append(v)
    return _match(run, node, values, strs(run, node.args[1]))


def test_exists(run: Run, node: Node) -> bool:
    return all(run.msg.exists(n) for n in strs(run, node.args[0]))


def test_size(run: Run, node: Node) -> bool:
    limit = int(node.args[0])  # type: ignore[arg-type]
    return run.msg.size > limit if node.tags["size"] == "over" else run.msg.size < limit


def test_body(run: Run, node: Node) -> bool:
    transform = str(node.tags.get("transform", "text"))
    types = strs(run, node.tags.get("content")) if transform == "content" else []
    return _match(run, node, body_texts(run.msg, transform, types), strs(run, node.args[0]))


def test_string(run: Run, node: Node) -> bool:
    values = strs(run, node.args[0])
    if node.tags.get("match") == "count":  # RFC 5229 §5: empty strings are not counted
        values = [v for v in values if v]
    return _match(run, node, values, strs(run, node.args[1]))


def test_hasflag(run: Run, node: Node) -> bool:
    names = strs(run, node.args[0]) if node.args[0] is not None else [""]
    flags: list[str] = []
    for name in names:
        flags += run.flags_of(name)
    return _match(run, node, flags, strs(run, node.args[1]))


def test_date(run: Run, node: Node) -> bool:
    header, part = text(run, node.args[0]), text(run, node.args[1])
    if part.lower() not in DATE_PARTS:
        return False  # an unknown part fails the test (as Pigeonhole; RFC 5260 §4.2)
    values: list[str] = []
    found = run.msg.values(header)
    # one occurrence: the first, or the one :index picks (RFC 5260 §4 and §6, as Pigeonhole)
    for raw in _pick(node, found) if "index" in node.tags else found[:1]:
        d = dates.header_date(raw)
        if d is None:
            continue
        if node.tags.get("zonekind") == "zone":
            tz = dates.parse_zone(text(run, node.tags["zone"]))
            if tz is None:
                continue
            d = d.astimezone(tz)
        elif node.tags.get("zonekind") != "originalzone":
            d = d.astimezone(run.ctx.zone)
        values.append(dates.date_part(d, part))
    return _match(run, node, values, strs(run, node.args[2]))


def test_currentdate(run: Run, node: Node) -> bool:
    d = run.ctx.now
    if text(run, node.args[0]).lower() not in DATE_PARTS:
        return False
    if "zone" in node.tags:
        tz = dates.parse_zone(text(run, node.tags["zone"]))
        if tz is None:
            return False
        d = d.astimezone(tz)
    else:
        d = d.astimezone(run.ctx.zone)
    return _match(run, node, [dates.date_part(d, text(run, node.args[0]))], strs(run, node.args[1]))


def test_mailboxexists(run: Run, node: Node) -> bool:
    return all(run.ctx.mailbox_exists(n) for n in strs(run, node.args[0]))


def test_duplicate(run: Run, node: Node) -> bool:
    """RFC 7352: seen before within the period? The id is recorded only if the script succeeds."""
    if "uniqueid" in node.tags:
        value = text(run, node.tags["uniqueid"])
    else:
        name = text(run, node.tags["header"]) if "header" in node.tags else "message-id"
        found = run.msg.values(name)
        if not found:
            return False
        value = found[0]
    handle = text(run, node.tags.get("handle")) if "handle" in node.tags else ""
    key = hashlib.sha256(f"{handle}\0{value}".encode("utf-8", "surrogateescape")).hexdigest()
    default, top = run.ctx.duplicate_period
    seconds = int(node.tags["seconds"]) if "seconds" in node.tags else default  # type: ignore[arg-type]
    run.duplicates.append((key, min(seconds, top), bool(node.tags.get("last"))))
    return run.ctx.duplicate_seen(key)


def test_valid_notify_method(run: Run, node: Node) -> bool:
    return all(valid_method(run.expand(u)) for u in strs(run, node.args[0]))


def test_notify_method_capability(run: Run, node: Node) -> bool:
    uri, cap = text(run, node.args[0]), text(run, node.args[1])
    value = mailto_capability(uri, cap)
    if value is None:
        return False
    return _match(run, node, [value], strs(run, node.args[2]))


TESTS: dict[str, Callable[[Run, Node], bool]] = {
    "header": test_header, "address": test_address, "envelope": test_envelope, "exists": test_exists,
    "size": test_size, "body": test_body, "string": test_string, "hasflag": test_hasflag,
    "date": test_date, "currentdate": test_currentdate, "mailboxexists": test_mailboxexists,
    "duplicate": test_duplicate, "valid_notify_method": test_valid_notify_method,
    "notify_method_capability": test_notify_method_capability,
}


def evaluate(run: Run, node: Node) -> bool:
    run.step()
    name = node.name
    if name == "true":
        return True
    if name == "false":
        return False
    if name == "not":
        return not evaluate(run, node.tests[0])
    if name == "allof":
        return all(evaluate(run, t) for t in node.tests)
    if name == "anyof":
        return any(evaluate(run, t) for t in node.tests)
    fn = TESTS.get(name)
    if fn is None:
        raise SieveRuntimeError(f"test '{name}' is not implemented", node.line)
    return fn(run, node)
