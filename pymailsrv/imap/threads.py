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


def base_subject(subject: str) -> tuple[str, bool]:
    """RFC 5256 §2.1 base subject of a subject already decoded to Unicode, upper-cased for
    comparison (its collation maps case), and whether the subject was a reply or forward (a
    ``Re:``/``Fwd:`` leader, a ``(fwd)`` trailer or a ``[fwd: …]`` wrapper was removed)."""
    s = _WS.sub(" ", subject).strip()
    reply = False
    while True:
        prev = s
        trailer = _TRAILER.search(s)
        if trailer:
            reply = reply or "(fwd)" in trailer.group().lower()
            s = s[: trailer.start()]
        while True:
            before = s
            s, leaders = _LEADER.subn("", s)
            reply = reply or leaders > 0
            m = _BLOB_LEADER.match(s)
            if m and s[m.end():].strip():
                s = s[m.end():]
            if s == before:
                break
        m = _FWD.match(s)
        if m:
            s = m.group(1).strip()
            reply = True
        if s == prev:
            break
    return s.upper(), reply


def message_ids(value: str | None) -> list[str]:
    return _MSGID.findall(value or "")


@dataclass
class ThreadMsg:
    num: int  # sequence number or UID, as the response uses
    date: float
    subject: str  # base subject
    msgid: str
    refs: list[str]
    reply: bool = False  # the subject was a reply or forward (base_subject)


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


def _thread_subject(n: _Node) -> str:
    """The subject of a thread: its message's, or its first child's for a dummy (§2.2 step 5)."""
    if n.msg is not None:
        return n.msg.subject
    kids = sorted(n.children, key=lambda c: (c.date(), c.first_num()))
    return kids[0].msg.subject if kids and kids[0].msg else ""


def _group_subjects(roots: list[_Node]) -> list[_Node]:
    """RFC 5256 §2.2 step 5: gather the threads with the same base subject."""
    roots = sorted(roots, key=lambda n: (n.date(), n.first_num()))
    table: dict[str, _Node] = {}
    for r in roots:  # 5.B: one thread per subject, preferring a dummy, then a non-reply
        subj = _thread_subject(r)
        held = table.get(subj)
        if subj and (held is None or (held.msg is not None and (
                r.msg is None or (held.msg.reply and not r.msg.reply)))):
            table[subj] = r
    out: list[_Node] = []
    for r in roots:  # 5.C: merge the others into it
        held = table.get(_thread_subject(r))
        if r.parent is not None:
            continue  # merged into a dummy already
        if held is None or held is r:
            out.append(r)
        elif held.msg is None and r.msg is None:
            for c in r.children:
                c.parent = held
            held.children.extend(r.children)
        elif held.msg is None or (r.msg is not None and r.msg.reply and not held.msg.reply):
            r.parent = held
            held.children.append(r)
        else:
            dummy = _Node(children=[held, r])
            held.parent = r.parent = dummy
            table[_thread_subject(r)] = dummy
            if held in out:
                out[out.index(held)] = dummy
            else:
                out.append(dummy)
    return out
