"""The commands, tests and tags the compiler accepts, and the extension each needs (one table).

Pure module. ``EXTENSIONS`` is what the ManageSieve SIEVE capability advertises: every name in it
has a row below, and nothing below needs an extension that is not in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ArgKind = Literal["str", "strlist", "num"]

# RFC 5228 + the extensions of issue 15, in the order Pigeonhole lists them.
EXTENSIONS: tuple[str, ...] = (
    "fileinto", "reject", "envelope", "encoded-character", "vacation", "subaddress",
    "comparator-i;ascii-numeric", "relational", "regex", "imap4flags", "copy", "include", "body",
    "variables", "enotify", "mailbox", "date", "index", "ereject", "duplicate", "editheader",
    "vacation-seconds",
)

COMPARATORS = ("i;octet", "i;ascii-casemap", "i;ascii-numeric")
RELATIONS = ("gt", "ge", "lt", "le", "eq", "ne")
DATE_PARTS = ("year", "month", "day", "date", "julian", "hour", "minute", "second", "time",
              "iso8601", "std11", "zone", "weekday")
SET_MODIFIERS: dict[str, int] = {  # RFC 5229 §4.1: name -> precedence (one of each at most)
    "lower": 40, "upper": 40, "lowerfirst": 30, "upperfirst": 30, "quotewildcard": 20,
    "length": 10, "encodeurl": 15,
}


@dataclass(frozen=True, slots=True)
class TagSpec:
    arg: ArgKind | None = None
    ext: str | None = None
    group: str | None = None  # tags of one group exclude each other; the group name is the key


@dataclass(frozen=True, slots=True)
class Spec:
    ext: str | None
    pos: tuple[ArgKind, ...] = ()
    tags: dict[str, TagSpec] = field(default_factory=dict)
    optional_first: int = 0  # that many leading positionals may be absent (setflag's variable)
    optional_last: int = 0  # that many trailing positionals may be absent (deleteheader's values)
    tests: Literal["none", "one", "list"] = "none"
    block: bool = False
    action: bool = False  # cancels the implicit keep or is an action for the limits


def _t(arg: ArgKind | None = None, ext: str | None = None, group: str | None = None) -> TagSpec:
    return TagSpec(arg, ext, group)


COMPARATOR = {"comparator": _t("str", None, "comparator")}
MATCH = {
    "is": _t(None, None, "match"), "contains": _t(None, None, "match"), "matches": _t(None, None, "match"),
    "regex": _t(None, "regex", "match"),
    "count": _t("str", "relational", "match"), "value": _t("str", "relational", "match"),
}
ADDRESS_PART = {
    "all": _t(None, None, "addrpart"), "localpart": _t(None, None, "addrpart"),
    "domain": _t(None, None, "addrpart"),
    "user": _t(None, "subaddress", "addrpart"), "detail": _t(None, "subaddress", "addrpart"),
}
INDEX = {"index": _t("num", "index"), "last": _t(None, "index")}
FLAGS = {"flags": _t("strlist", "imap4flags")}
CMP_MATCH = {**COMPARATOR, **MATCH}

COMMANDS: dict[str, Spec] = {
    # RFC 5228 §3 control commands
    "require": Spec(None, ("strlist",)),
    "if": Spec(None, tests="one", block=True),
    "elsif": Spec(None, tests="one", block=True),
    "else": Spec(None, block=True),
    "stop": Spec(None),
    # RFC 5228 §4 actions and the extensions' ones
    "keep": Spec(None, tags=FLAGS, action=True),
    "discard": Spec(None, action=True),
    "redirect": Spec(None, ("str",), {"copy": _t(None, "copy")}, action=True),
    "fileinto": Spec("fileinto", ("str",), {"copy": _t(None, "copy"), "create": _t(None, "mailbox"), **FLAGS},
                     action=True),
    "reject": Spec("reject", ("str",), action=True),
    "ereject": Spec("ereject", ("str",), action=True),
    "vacation": Spec("vacation", ("str",), {
        "days": _t("num", None, "period"), "seconds": _t("num", "vacation-seconds", "period"),
        "subject": _t("str"), "from": _t("str"), "addresses": _t("strlist"), "mime": _t(), "handle": _t("str"),
    }, action=True),
    "notify": Spec("enotify", ("str",), {
        "from": _t("str"), "importance": _t("str"), "options": _t("strlist"), "message": _t("str"),
    }, action=True),
    # RFC 5232 imap4flags
    "setflag": Spec("imap4flags", ("str", "strlist"), optional_first=1),
    "addflag": Spec("imap4flags", ("str", "strlist"), optional_first=1),
    "removeflag": Spec("imap4flags", ("str", "strlist"), optional_first=1),
    # RFC 5229 variables
    "set": Spec("variables", ("str", "str"), {m: _t(None, "enotify" if m == "encodeurl" else None)
                                              for m in SET_MODIFIERS}),
    # RFC 6609 include
    "include": Spec("include", ("str",), {
        "personal": _t(None, None, "location"), "global": _t(None, None, "location"),
        "once": _t(), "optional": _t(),
    }),
    "return": Spec("include"),
    "global": Spec("include", ("strlist",)),
    # RFC 5293 editheader
    "addheader": Spec("editheader", ("str", "str"), {"last": _t()}),
    "deleteheader": Spec("editheader", ("str", "strlist"), {**INDEX, **CMP_MATCH}, optional_last=1),
}

TESTS: dict[str, Spec] = {
    "address": Spec(None, ("strlist", "strlist"), {**COMPARATOR, **ADDRESS_PART, **MATCH, **INDEX}),
    "allof": Spec(None, tests="list"),
    "anyof": Spec(None, tests="list"),
    "envelope": Spec("envelope", ("strlist", "strlist"), {**COMPARATOR, **ADDRESS_PART, **MATCH}),
    "exists": Spec(None, ("strlist",)),
    "false": Spec(None),
    "true": Spec(None),
    "header": Spec(None, ("strlist", "strlist"), {**CMP_MATCH, **INDEX}),
    "not": Spec(None, tests="one"),
    "size": Spec(None, ("num",), {"over": _t(None, None, "size"), "under": _t(None, None, "size")}),
    "body": Spec("body", ("strlist",), {
        **CMP_MATCH, "raw": _t(None, None, "transform"), "content": _t("strlist", None, "transform"),
        "text": _t(None, None, "transform"),
    }),
    "string": Spec("variables", ("strlist", "strlist"), CMP_MATCH),
    "hasflag": Spec("imap4flags", ("strlist", "strlist"), CMP_MATCH, optional_first=1),
    "date": Spec("date", ("str", "str", "strlist"), {
        **CMP_MATCH, **INDEX, "zone": _t("str", None, "zonekind"), "originalzone": _t(None, None, "zonekind"),
    }),
    "currentdate": Spec("date", ("str", "strlist"), {**CMP_MATCH, "zone": _t("str")}),
    "mailboxexists": Spec("mailbox", ("strlist",)),
    "duplicate": Spec("duplicate", (), {
        "handle": _t("str"), "header": _t("str", None, "id"), "uniqueid": _t("str", None, "id"),
        "seconds": _t("num"), "last": _t(),
    }),
    "valid_notify_method": Spec("enotify", ("strlist",)),
    "notify_method_capability": Spec("enotify", ("str", "str", "strlist"), CMP_MATCH),
}
