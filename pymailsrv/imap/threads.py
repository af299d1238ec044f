"""SORT and THREAD helpers (RFC 5256): base subject, sort keys, ORDEREDSUBJECT, REFERENCES. Pure."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_WS = re.compile(r"\s+")
_TRAILER = re.compile(r"(?:\s|\(fwd\))+\Z", re.I)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(r"\A(?:\s*(?:" + _BLOB + r")*(?:re|fwd?)\s*(?:" + _BLOB + r")?:\s*)", re.I)
_BLOB_LEADER = re.compile(r"\A" + _BLOB, re.I)
_FWD = re.compile(r"\A\[fwd:(.*)\]\Z", re.I)
_MSGID = re.compile(r"<[^<>\s]+>")


def base_subject(subject: str) -> str:
    """RFC 5256 §2.1 base subject (subject already decoded to Unicode)."""
    s = _WS.sub(" ", subject).strip()
    while True:
        prev = s
        s = _TRAILER.sub("", s)
        while True:
            before = s
            s = _LEADER.sub("", s)
            m = _BLOB_LEADER.match(s)
            if m and s[m.end():].strip():
                s = s[m.end():]
            if s == before:
                break
        m = _FWD.match(s)
        if m:
            s = m.group(1).strip()
        if s == prev:
            break
    return s.casefold()


def message_ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")


@dataclass
class ThreadMsg:
    num: int  # sequence number or UID, as the response uses
    date: float
    subject: str  # base subject
    msgid: str
    refs: list[str]


@dataclass(eq=False)
class _Node:
    msg: ThreadMsg | None = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def date(self) -> float:
        if self.msg is not None:
            return self.msg.date
        return min((c.date() for c in self.children), default=0.0)

    def first_num(self) -> int:
        if self.msg is not None:
            return self.msg.num
        return min((c.first_num() for c in self.children), default=0)


def _sort(nodes: list[_Node]) -> None:
    nodes.sort(key=lambda n: (n.date(), n.first_num()))
    for n in nodes:
        _sort(n.children)


def _fmt(node: _Node) -> str:
    parts: list[str] = []
    cur = node
    while True:
        if cur.msg is not None:
            parts.append(str(cur.msg.num))
            if len(cur.children) == 1:
                cur = cur.children[0]
                continue
        if cur.children:
            parts.append("".join("(" + _fmt(c) + ")" for c in cur.children))
        break
    return " ".join(parts)


def format_threads(roots: Sequence[_Node]) -> str:
    return "".join("(" + _fmt(r) + ")" for r in roots)


def ordered_subject(msgs: Sequence[ThreadMsg]) -> str:
    """THREAD=ORDEREDSUBJECT: one thread per base subject, the oldest message its parent."""
    groups: dict[str, list[ThreadMsg]] = {}
    for m in msgs:
        groups.setdefault(m.subject, []).append(m)
    roots = []
    for items in groups.values():
        items.sort(key=lambda m: (m.date, m.num))
        root = _Node(items[0])
        root.children = [_Node(m, root) for m in items[1:]]
        roots.append(root)
    roots.sort(key=lambda n: (n.date(), n.first_num()))
    return format_threads(roots)


def _is_ancestor(a: _Node, b: _Node) -> bool:
    cur: _Node | None = b
    while cur is not None:
        if cur is a:
            return True
        cur = cur.parent
    return False


def _link(parent: _Node, child: _Node) -> None:
    if child.parent is not None or parent is child or _is_ancestor(child, parent):
        return
    child.parent = parent
    parent.children.append(child)


def references(msgs: Sequence[ThreadMsg]) -> str:
    """THREAD=REFERENCES (RFC 5256 §2.2): reference links, pruned dummies, subject grouping."""
    table: dict[str, _Node] = {}
    for i, m in enumerate(msgs):
        known = table.get(m.msgid)
        mid = m.msgid if m.msgid and (known is None or known.msg is None) else f"<dup-{i}@pymailsrv>"
        node = table.setdefault(mid, _Node())
        node.msg = m
        prev: _Node | None = None
        for ref in m.refs[-50:]:
            cur = table.setdefault(ref, _Node())
            if prev is not None:
                _link(prev, cur)
            prev = cur
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if prev is not None:
            _link(prev, node)
    roots = [n for n in table.values() if n.parent is None]
    roots = _prune(roots, top=True)
    roots = _group_subjects(roots)
    _sort(roots)
    return format_threads(roots)


def _prune(nodes: list[_Node], top: bool) -> list[_Node]:
    out: list[_Node] = []
    for n in nodes:
        n.children = _prune(n.children, top=False)
        for c in n.children:
            c.parent = n
        if n.msg is None:
            if not n.children:
                continue
            if not top or len(n.children) == 1:
                for c in n.children:
                    c.parent = n.parent
                out.extend(n.children)
                continue
        out.append(n)
    return out


def _subject_of(n: _Node) -> tuple[str, bool]:
    if n.msg is not None:
        return n.msg.subject, False
    kids = sorted(n.children, key=lambda c: (c.date(), c.first_num()))
    return (kids[0].msg.subject if kids and kids[0].msg else ""), False


def _group_subjects(roots: list[_Node]) -> list[_Node]:
    by_subject: dict[str, _Node] = {}
    out: list[_Node] = []
    for r in sorted(roots, key=lambda n: (n.date(), n.first_num())):
        subj, _ = _subject_of(r)
        if not subj:
            out.append(r)
            continue
        first = by_subject.get(subj)
        if first is None:
            by_subject[subj] = r
            out.append(r)
            continue
        if first.msg is None:
            first.children.append(r)
            r.parent = first
        else:
            dummy = _Node()
            idx = out.index(first)
            out[idx] = dummy
            for c in (first, r):
                c.parent = dummy
                dummy.children.append(c)
            by_subject[subj] = dummy
    return out
