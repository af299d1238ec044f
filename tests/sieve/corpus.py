# ruff: noqa: E501  (one case per line reads better than wrapped scripts)
"""The differential corpus: (script, message, envelope) cases run through our interpreter and
through Pigeonhole's sieve-test (tests/sieve/test_sieve_differential.py). Written for this
project; every extension of issue 15 has cases. The expected actions are in corpus_expected.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SENDER = "snd@example.com"
RCPT = "u+tag@example.net"

PLAIN = b"""\
Return-Path: <snd@example.com>
Received: from mx.example.com (mx.example.com [192.0.2.1])
\tby mail.example.net with ESMTP id 4A; Fri, 04 Dec 2026 09:00:00 +0100
Received: from client (client [198.51.100.7])
\tby mx.example.com with ESMTP id 99; Fri, 04 Dec 2026 07:59:00 +0000
From: "Alice Example" <alice@example.com>
To: u@example.net, "Team" <team@example.net>
Cc: "Bob" <bob+list@lists.example.org>
Subject: Hello World
Date: Fri, 04 Dec 2026 08:58:59 +0100
Message-ID: <plain-1@example.com>
X-Spam: Yes
X-Spam-Score: 12
X-Priority: 3
X-Priority: 5
List-Id: <dev.lists.example.org>
Content-Type: text/plain; charset=us-ascii

The quick brown fox jumps over the lazy dog.
Order number 4711 is ready.
"""

MIME = b"""\
From: Carol <carol@shop.example>
To: u@example.net
Subject: Your invoice
Date: Sat, 05 Dec 2026 23:30:00 -0500
Message-ID: <mime-2@shop.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

This is the preamble.
--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Invoice total: 42 EUR. Caf=C3=A9 included.
--inner
Content-Type: text/html; charset=utf-8

<html><body><p>Invoice <b>total</b>: 42 EUR</p></body></html>
--inner--
--outer
Content-Type: application/pdf; name="invoice.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKc2VjcmV0IHBkZgo=
--outer--
"""

ENCODED = b"""\
From: =?utf-8?q?Jos=C3=A9_Mart=C3=ADnez?= <jose@example.es>
To: undisclosed-recipients:;
Subject: =?utf-8?q?Caf=C3=A9_men=C3=BA?=
Date: Mon, 30 Nov 2026 14:05:09 +0000
Message-ID: <enc-3@example.es>
Auto-Submitted: auto-generated
Precedence: bulk
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hola, el men\xc3\xba de hoy.
"""

BARE = b"""\
From: bare@example.org
Subject: no id
Sender: list-bounces@lists.example.org

x
"""

BIG = b"From: big@example.org\nTo: u@example.net\nSubject: big\nMessage-ID: <big-5@example.org>\n\n" + (
    b"0123456789abcdef" * 63 + b"\n") * 5

ADDRESSES = b"""\
From: "Last, First" <first.last@example.com>
To: a@example.org (comment), "B" <b@EXAMPLE.org>, group: c@example.org, d@example.org;, e@example.org
Cc: <>
Reply-To: broken address
Sender: <bounce+tag+more@example.net>
Subject: test
Message-ID: <x@y>

x
"""

HEADERS = b"""\
From: x@example.com
Subject:    spaced out   \n\
X-Empty:
X-Multi: first
X-Multi: second
X-Bad-Enc: =?unknown-charset?q?abc?=
X-Q: =?iso-8859-1?q?caf=E9?= and =?utf-8?b?w6k=?=
X-Tab: a\tb
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

caf=E9 cr=C3=A8me
line two=
 joined
"""

MESSAGES = {"plain": PLAIN, "mime": MIME, "encoded": ENCODED, "bare": BARE, "big": BIG, "addresses": ADDRESSES,
            "headers": HEADERS}


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    message: str = "plain"
    sender: str = SENDER
    recipient: str = RCPT
    mailboxes: tuple[str, ...] = ()
    includes: dict[str, str] = field(default_factory=dict)


CASES: list[Case] = []


def case(name: str, script: str, message: str = "plain", **kw: object) -> None:
    CASES.append(Case(name, script, message, **kw))  # type: ignore[arg-type]


def req(*exts: str) -> str:
    return "require [" + ", ".join(f'"{e}"' for e in exts) + "];\n"


F = req("fileinto")

# --- RFC 5228 core ------------------------------------------------------------------------------
case("core-empty", "")
case("core-keep", "keep;")
case("core-discard", "discard;")
case("core-stop-before-discard", "stop; discard;")
case("core-keep-discard", "keep; discard;")
case("core-if-true", "if true { discard; }")
case("core-if-false-else", "if false { discard; } else { keep; }")
case("core-elsif", F + 'if false { discard; } elsif true { fileinto "A"; } else { fileinto "B"; }')
case("core-elsif-chain-first", F + 'if true { fileinto "A"; } elsif true { fileinto "B"; } else { fileinto "C"; }')
case("core-not", "if not true { discard; }")
case("core-allof", F + 'if allof (true, exists "subject") { fileinto "A"; }')
case("core-allof-false", F + 'if allof (true, false) { fileinto "A"; }')
case("core-anyof", F + 'if anyof (false, exists "x-spam") { fileinto "A"; }')
case("core-anyof-none", F + 'if anyof (false, exists "x-nope") { fileinto "A"; }')
case("core-nested-blocks", F + 'if true { if true { if not false { fileinto "Deep"; stop; } } } discard;')
case("core-comments", "# hash\n/* bracket\n comment */ if /* inline */ true { discard; } # end")
case("core-multiline-string", F + req("variables") + 'set "x" text:\nTexty\n.\n; '
     'if string :matches "${x}" "Texty?*" { fileinto "M"; }')

# --- header test --------------------------------------------------------------------------------
case("header-is", F + 'if header :is "subject" "Hello World" { fileinto "H"; }')
case("header-is-case", F + 'if header :is "SUBJECT" "hello world" { fileinto "H"; }')
case("header-octet-case", F + 'if header :is :comparator "i;octet" "subject" "hello world" { fileinto "H"; }')
case("header-octet-exact", F + 'if header :is :comparator "i;octet" "subject" "Hello World" { fileinto "H"; }')
case("header-contains", F + 'if header :contains "subject" "lo Wo" { fileinto "H"; }')
case("header-contains-empty", F + 'if header :contains "subject" "" { fileinto "H"; }')
case("header-contains-missing", F + 'if header :contains "x-missing" "" { fileinto "H"; }')
case("header-matches-star", F + 'if header :matches "subject" "Hello*" { fileinto "H"; }')
case("header-matches-question", F + 'if header :matches "subject" "Hell? World" { fileinto "H"; }')
case("header-matches-whole", F + 'if header :matches "subject" "Hello" { fileinto "H"; }')
case("header-matches-escape", F + 'if header :matches "subject" "Hello\\\\*" { fileinto "H"; }')
case("header-multi-names", F + 'if header :contains ["x-nope", "list-id"] "dev.lists" { fileinto "L"; }')
case("header-multi-keys", F + 'if header :is "x-spam" ["No", "yes"] { fileinto "Junk"; }')
case("header-second-occurrence", F + 'if header :is "x-priority" "5" { fileinto "P"; }')
case("header-rfc2047", F + 'if header :is "subject" "Café menú" { fileinto "E"; }', "encoded")
case("header-rfc2047-from", F + 'if header :contains "from" "José" { fileinto "E"; }', "encoded")
case("header-folded-received", F + 'if header :contains "received" "mail.example.net with" { fileinto "R"; }')
case("header-matches-folded", F + 'if header :matches "received" "from mx.example.com*by mail*" { fileinto "R"; }')

# --- address test -------------------------------------------------------------------------------
case("address-all", F + 'if address :is "from" "alice@example.com" { fileinto "A"; }')
case("address-default-all", F + 'if address "from" "ALICE@example.com" { fileinto "A"; }')
case("address-localpart", F + 'if address :localpart :is "from" "alice" { fileinto "A"; }')
case("address-domain", F + 'if address :domain :is "from" "EXAMPLE.com" { fileinto "A"; }')
case("address-domain-contains", F + 'if address :domain :contains "cc" "lists" { fileinto "A"; }')
case("address-second-to", F + 'if address :is "to" "team@example.net" { fileinto "A"; }')
case("address-display-not-matched", F + 'if address :contains "from" "Alice" { fileinto "A"; }')
case("address-multi-headers", F + 'if address :domain :is ["to", "cc"] "lists.example.org" { fileinto "A"; }')
case("address-matches", F + 'if address :matches "cc" "bob+*@*" { fileinto "A"; }')
case("address-group-empty", F + 'if address :contains "to" "undisclosed" { fileinto "A"; }', "encoded")
case("address-encoded-name", F + 'if address :is "from" "jose@example.es" { fileinto "A"; }', "encoded")
case("address-sender", F + 'if address :domain :is "sender" "lists.example.org" { fileinto "A"; }', "bare")
case("address-octet", F + 'if address :comparator "i;octet" :is "from" "Alice@example.com" { fileinto "A"; }')
case("address-missing", F + 'if address :is "reply-to" "alice@example.com" { fileinto "A"; }')

# --- subaddress (RFC 5233) ----------------------------------------------------------------------
SA = req("fileinto", "subaddress")
case("subaddress-user", SA + 'if address :user :is "cc" "bob" { fileinto "S"; }')
case("subaddress-detail", SA + 'if address :detail :is "cc" "list" { fileinto "S"; }')
case("subaddress-detail-none", SA + 'if address :detail :is "from" "" { fileinto "S"; }')
case("subaddress-user-no-detail", SA + 'if address :user :is "from" "alice" { fileinto "S"; }')
case("subaddress-envelope-detail", SA + req("envelope") + 'if envelope :detail "to" "tag" { fileinto "S"; }')
case("subaddress-envelope-user", SA + req("envelope") + 'if envelope :user "to" "u" { fileinto "S"; }')
case("subaddress-needs-require", F + 'if address :detail "cc" "list" { fileinto "S"; }')

# --- envelope -----------------------------------------------------------------------------------
E = req("fileinto", "envelope")
case("envelope-from", E + 'if envelope :is "from" "snd@example.com" { fileinto "E"; }')
case("envelope-to-all", E + 'if envelope :is "to" "u+tag@example.net" { fileinto "E"; }')
case("envelope-to-domain", E + 'if envelope :domain "to" "example.net" { fileinto "E"; }')
case("envelope-from-localpart", E + 'if envelope :localpart :matches "from" "s*" { fileinto "E"; }')
case("envelope-null-sender-not-other", E + 'if envelope :is "from" "" { fileinto "Null"; }')
case("envelope-needs-require", F + 'if envelope "from" "x" { fileinto "E"; }')
case("envelope-bad-part", E + 'if envelope "subject" "x" { fileinto "E"; }')

# --- exists and size ----------------------------------------------------------------------------
case("exists-one", F + 'if exists "x-spam" { fileinto "X"; }')
case("exists-all", F + 'if exists ["x-spam", "list-id"] { fileinto "X"; }')
case("exists-not-all", F + 'if exists ["x-spam", "x-nope"] { fileinto "X"; }')
case("exists-case", F + 'if exists "X-SPAM" { fileinto "X"; }')
case("size-over-small", F + 'if size :over 100 { fileinto "Big"; }')
case("size-under", F + 'if size :under 1K { fileinto "Small"; }', "bare")
case("size-over-k", F + 'if size :over 5K { fileinto "Big"; }', "big")
case("size-over-not", F + 'if size :over 1M { fileinto "Big"; }', "big")
case("size-needs-tag", "if size 100 { discard; }")

# --- fileinto, mailbox (RFC 5490) -----------------------------------------------------------------
case("fileinto-simple", F + 'fileinto "Work";')
case("fileinto-hierarchy", F + 'fileinto "Lists.dev";')
case("fileinto-inbox", F + 'fileinto "INBOX";')
case("fileinto-twice", F + 'fileinto "A"; fileinto "A";')
case("fileinto-two-folders", F + 'fileinto "A"; fileinto "B";')
case("fileinto-and-keep", F + 'fileinto "A"; keep;')
case("fileinto-inbox-and-keep", F + 'fileinto "INBOX"; keep;')
case("fileinto-needs-require", 'fileinto "A";')
case("fileinto-number-arg", F + "fileinto 3;")
case("fileinto-utf8-name", F + 'fileinto "Café";')
MB = req("fileinto", "mailbox")
case("mailbox-create", MB + 'fileinto :create "New";')
case("mailboxexists-yes", MB + 'if mailboxexists "Work" { fileinto "Work"; }', mailboxes=("Work",))
case("mailboxexists-no", MB + 'if mailboxexists "Work" { fileinto "Work"; }')
case("mailboxexists-all", MB + 'if mailboxexists ["Work", "INBOX"] { fileinto "Work"; }', mailboxes=("Work",))
case("mailbox-create-needs-require", F + 'fileinto :create "New";')

# --- copy (RFC 3894) ---------------------------------------------------------------------------
C = req("fileinto", "copy")
case("copy-fileinto", C + 'fileinto :copy "Archive";')
case("copy-redirect", C + 'redirect :copy "boss@example.org";')
case("copy-then-discard", C + 'fileinto :copy "Archive"; discard;')
case("copy-needs-require", F + 'fileinto :copy "A";')

# --- redirect -----------------------------------------------------------------------------------
case("redirect-one", 'redirect "fwd@example.org";')
case("redirect-two", 'redirect "a@example.org"; redirect "b@example.org";')
case("redirect-same-twice", 'redirect "a@example.org"; redirect "A@example.org";')
case("redirect-and-keep", 'redirect "a@example.org"; keep;')
case("redirect-limit-four", "".join(f'redirect "r{i}@example.org";' for i in range(4)))
case("redirect-limit-exceeded", "".join(f'redirect "r{i}@example.org";' for i in range(5)))
case("redirect-angle", 'redirect "<fwd@example.org>";')
case("redirect-bad-address", 'redirect "not an address";')

# --- reject (RFC 5429) -------------------------------------------------------------------------
R = req("reject")
case("reject-simple", R + 'reject "Go away";')
case("reject-multiline", R + 'reject text:\nNot here.\nReally.\n.\n;')
case("reject-then-keep", R + 'reject "x"; keep;')
case("reject-after-fileinto", R + F + 'fileinto "A"; reject "x";')
case("reject-with-discard", R + 'discard; reject "x";')
case("reject-conditional", R + 'if header :contains "subject" "Hello" { reject "no hello"; }')
case("reject-twice", R + 'reject "x"; reject "y";')
case("reject-needs-require", 'reject "x";')

# --- imap4flags (RFC 5232) ---------------------------------------------------------------------
I4 = req("fileinto", "imap4flags")
case("flags-addflag-implicit", I4 + 'addflag "\\\\Seen";')
case("flags-setflag-replaces", I4 + 'addflag "\\\\Seen"; setflag "\\\\Flagged";')
case("flags-removeflag", I4 + 'addflag ["\\\\Seen", "\\\\Flagged"]; removeflag "\\\\Seen";')
case("flags-space-separated", I4 + 'addflag "\\\\Seen \\\\Answered custom";')
case("flags-dedup", I4 + 'addflag ["\\\\Seen", "\\\\seen", "a", "A"];')
case("flags-keep-tag", I4 + 'keep :flags "\\\\Draft";')
case("flags-fileinto-tag", I4 + 'fileinto :flags ["\\\\Seen", "junk"] "Junk";')
case("flags-fileinto-current", I4 + 'addflag "\\\\Seen"; fileinto "A"; removeflag "\\\\Seen"; fileinto "B";')
case("flags-hasflag", I4 + 'addflag "urgent"; if hasflag "urgent" { fileinto "U"; }')
case("flags-hasflag-contains", I4 + 'addflag "\\\\Seen"; if hasflag :contains "seen" { fileinto "U"; }')
case("flags-hasflag-none", I4 + 'if hasflag :contains "a" { fileinto "U"; }')
case("flags-variable", I4 + req("variables") + 'addflag "v" "x"; if hasflag "v" "x" { fileinto "V"; }')
case("flags-spam-rule", I4 + 'if header :is "x-spam" "yes" { addflag "\\\\Seen"; fileinto "Junk"; }')
case("flags-needs-require", 'addflag "x";')
case("flags-recent-and-unknown-system", I4 + 'addflag ["\\\\Recent", "\\\\Bogus", "\\\\Answered", "ok"];')

# --- variables (RFC 5229) ----------------------------------------------------------------------
V = req("fileinto", "variables")
case("vars-set-use", V + 'set "f" "Folder"; fileinto "${f}";')
case("vars-case-insensitive", V + 'set "Name" "X"; fileinto "${NAME}";')
case("vars-unknown-empty", V + 'fileinto "A${nope}B";')
case("vars-match-star", V + 'if header :matches "subject" "* *" { fileinto "${2}.${1}"; }')
case("vars-match-zero", V + 'if header :matches "subject" "Hello*" { fileinto "S${0}"; }')
case("vars-lower", V + 'set :lower "x" "MiXeD"; fileinto "${x}";')
case("vars-upper", V + 'set :upper "x" "MiXeD"; fileinto "${x}";')
case("vars-upperfirst", V + 'set :upperfirst "x" "word"; fileinto "${x}";')
case("vars-lowerfirst-upper", V + 'set :lowerfirst :upper "x" "word"; fileinto "${x}";')
case("vars-length", V + 'set :length "x" "hello"; fileinto "L${x}";')
case("vars-quotewildcard", V + 'set :quotewildcard "x" "a*b"; if string :is "${x}" "a\\\\*b" { fileinto "Q"; }')
case("vars-string-is", V + 'set "a" "x"; if string :is "${a}" "x" { fileinto "S"; }')
case("vars-string-count", V + req("relational") + 'if string :count "eq" ["a", "", "b"] "2" { fileinto "C"; }')
case("vars-from-header", V + 'if address :localpart :matches "from" "*" { set "who" "${1}"; } fileinto "From.${who}";')
case("vars-not-required", F + 'fileinto "${x}";')
case("vars-bad-name", V + 'set "a-b" "x";')
case("vars-nested-reference", V + 'set "a" "b"; set "b" "c"; fileinto "${${a}}";')
case("vars-numbered-match-after-fail", V + 'if header :matches "subject" "* *" {} '
     'if header :matches "x-nope" "*" {} fileinto "${1}";')
case("vars-subaddress", V + req("envelope", "subaddress") + 'if envelope :detail :matches "to" "*" { fileinto "Tag.${1}"; }')

# --- relational (RFC 5231), i;ascii-numeric ------------------------------------------------------
RL = req("fileinto", "relational", "comparator-i;ascii-numeric")
case("rel-value-gt", RL + 'if header :value "gt" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "J"; }')
case("rel-value-lt", RL + 'if header :value "lt" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "J"; }')
case("rel-value-string", RL + 'if header :value "gt" "subject" "Goodbye" { fileinto "J"; }')
case("rel-value-numeric-vs-string", RL + 'if header :value "lt" "x-spam-score" "5" { fileinto "J"; }')
case("rel-count-ge", RL + 'if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "M"; }')
case("rel-count-eq-header", RL + 'if header :count "eq" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto "M"; }')
case("rel-count-zero", RL + 'if header :count "eq" :comparator "i;ascii-numeric" "x-nope" "0" { fileinto "M"; }')
case("rel-value-ne", RL + 'if header :value "ne" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "M"; }')
case("rel-numeric-is", RL + 'if header :is :comparator "i;ascii-numeric" "x-spam-score" "012" { fileinto "M"; }')
case("rel-numeric-nondigit", RL + 'if header :value "gt" :comparator "i;ascii-numeric" "subject" "99999" { fileinto "M"; }')
case("rel-bad-relation", RL + 'if header :value "xx" "a" "b" { discard; }')
case("rel-numeric-needs-require", F + 'if header :is :comparator "i;ascii-numeric" "a" "1" { discard; }')

# --- regex --------------------------------------------------------------------------------------
RX = req("fileinto", "regex", "variables")
case("regex-simple", RX + 'if header :regex "subject" "^Hello [A-Z]" { fileinto "R"; }')
case("regex-case", RX + 'if header :regex "subject" "^hello" { fileinto "R"; }')
case("regex-octet", RX + 'if header :regex :comparator "i;octet" "subject" "^hello" { fileinto "R"; }')
case("regex-groups", RX + 'if header :regex "subject" "^([a-z]+) ([a-z]+)$" { fileinto "${2}"; }')
case("regex-address", RX + 'if address :regex :domain "cc" "^lists\\\\." { fileinto "R"; }')
case("regex-class", RX + 'if header :regex "x-spam-score" "^[[:digit:]]+$" { fileinto "R"; }')
case("regex-alternation", RX + 'if header :regex "subject" "(bye|World)$" { fileinto "R"; }')
case("regex-invalid", RX + 'if header :regex "subject" "([" { fileinto "R"; }')
case("regex-leftmost-longest", RX + 'if header :regex "subject" "(Hello|Hello World)" { fileinto "${1}"; }')
case("regex-anchor-whole-text", RX + req("body") + 'if body :text :regex "^Order" { fileinto "R"; }')
case("regex-dot-matches-newline", RX + req("body") + 'if body :text :regex "dog\\..Order" { fileinto "R"; }')
case("regex-nested-quantifier", RX + 'if header :regex "x-spam-score" "^([0-9]+)+$" { fileinto "R${1}"; }')

# --- body (RFC 5173) ----------------------------------------------------------------------------
B = req("fileinto", "body")
case("body-text-contains", B + 'if body :text :contains "lazy dog" { fileinto "B"; }')
case("body-default-text", B + 'if body :contains "order number" { fileinto "B"; }')
case("body-raw", B + 'if body :raw :contains "Caf=C3=A9" { fileinto "B"; }', "mime")
case("body-text-decoded", B + 'if body :text :contains "Café" { fileinto "B"; }', "mime")
case("body-content-plain", B + 'if body :content "text/plain" :contains "42 EUR" { fileinto "B"; }', "mime")
case("body-content-pdf", B + 'if body :content "application/pdf" :contains "secret" { fileinto "B"; }', "mime")
case("body-not-found", B + 'if body :contains "nonexistent" { fileinto "B"; }', "mime")
case("body-matches", B + 'if body :text :matches "*fox*" { fileinto "B"; }')
case("body-utf8", B + 'if body :contains "menú" { fileinto "B"; }', "encoded")
case("body-needs-require", F + 'if body :contains "x" { fileinto "B"; }')

# --- date / index (RFC 5260) --------------------------------------------------------------------
D = req("fileinto", "date", "relational", "variables")
case("date-year", D + 'if date :is "date" "year" "2026" { fileinto "D"; }')
case("date-utc-day", D + 'if date :zone "+0000" "date" "date" "2026-12-04" { fileinto "D"; }')
case("date-originalzone", D + 'if date :originalzone "date" "zone" "+0100" { fileinto "D"; }')
case("date-zone-shift", D + 'if date :zone "-0500" "date" "hour" "02" { fileinto "D"; }')
case("date-weekday", D + 'if date :zone "+0000" "date" "weekday" "5" { fileinto "D"; }')
case("date-time", D + 'if date :originalzone "date" "time" "08:58:59" { fileinto "D"; }')
case("date-julian", D + 'if date :zone "+0000" "date" "julian" "61378" { fileinto "D"; }')
case("date-iso8601", D + 'if date :originalzone "date" "iso8601" "2026-12-04T08:58:59+01:00" { fileinto "D"; }')
case("date-value-ge", D + 'if date :value "ge" :originalzone "date" "date" "2026-01-01" { fileinto "D"; }')
case("date-matches-vars", D + 'if date :originalzone :matches "date" "month" "*" { fileinto "M.${1}"; }')
case("date-missing-header", D + 'if date :is "x-nope" "year" "2026" { fileinto "D"; }')
case("date-received-index", D + req("index") + 'if date :index 1 :zone "+0000" "received" "hour" "08" { fileinto "D"; }')
case("date-received-last-localzone", D + req("index") + 'if date :index 1 :last "received" "hour" "07" { fileinto "D"; }')
case("date-received-last", D + req("index") + 'if date :index 1 :last :zone "+0000" "received" "hour" "07" { fileinto "D"; }')
case("date-std11", D + 'if date :originalzone "date" "std11" "Fri, 04 Dec 2026 08:58:59 +0100" { fileinto "D"; }')
case("currentdate-year", D + 'if currentdate :value "ge" "year" "2024" { fileinto "Now"; }')
case("currentdate-zone", D + 'if currentdate :zone "+0000" :matches "zone" "+0000" { fileinto "Now"; }')
case("date-bad-part", D + 'if date "date" "decade" "1" { discard; }')
IX = req("fileinto", "index")
case("index-header-first", IX + 'if header :index 1 "x-priority" "3" { fileinto "I"; }')
case("index-header-second", IX + 'if header :index 2 "x-priority" "3" { fileinto "I"; }')
case("index-header-last", IX + 'if header :index 1 :last "x-priority" "5" { fileinto "I"; }')
case("index-out-of-range", IX + 'if header :index 3 "x-priority" "3" { fileinto "I"; }')
case("index-address", IX + 'if address :index 1 :is "to" "u@example.net" { fileinto "I"; }')
case("index-last-needs-index", IX + 'if header :last "x-priority" "5" { fileinto "I"; }')

# --- encoded-character -------------------------------------------------------------------------
EC = req("fileinto", "encoded-character")
case("encoded-hex", EC + 'fileinto "${hex:4A 75 6E 6B}";')
case("encoded-unicode", EC + 'fileinto "Caf${unicode:e9}";')
case("encoded-invalid-kept", EC + 'fileinto "${hex:zz}";')
case("encoded-in-header-test", EC + 'if header :is "subject" "${hex:48}ello World" { fileinto "E"; }')

# --- vacation (RFC 5230, 6131) ------------------------------------------------------------------
VA = req("vacation")
case("vacation-default", VA + 'vacation "I am away";')
case("vacation-days", VA + 'vacation :days 3 "Away";')
case("vacation-subject-from", VA + 'vacation :subject "Out" :from "u@example.net" "Away";')
case("vacation-days-too-long", VA + 'vacation :days 100 "Away";')
case("vacation-days-zero", VA + 'vacation :days 0 "Away";')
case("vacation-seconds", req("vacation-seconds") + 'vacation :seconds 172800 "Away";')
case("vacation-seconds-below-min", req("vacation-seconds") + 'vacation :seconds 60 "Away";')
case("vacation-addresses", VA + 'vacation :addresses ["team@example.net"] "Away";')
case("vacation-mime", VA + 'vacation :mime "Content-Type: text/plain\r\n\r\nAway";')
case("vacation-twice", VA + 'vacation "a"; vacation "b";')
case("vacation-with-fileinto", VA + F + 'vacation "Away"; fileinto "A";')
case("vacation-reject-conflict", VA + R + 'vacation "Away"; reject "no";')
case("vacation-seconds-needs-require", VA + 'vacation :seconds 10 "x";')

# --- duplicate (RFC 7352) ----------------------------------------------------------------------
DU = req("duplicate", "fileinto")
case("duplicate-first-time", DU + 'if duplicate { fileinto "Dup"; }')
case("duplicate-header", DU + 'if duplicate :header "list-id" :seconds 60 { fileinto "Dup"; }')
case("duplicate-uniqueid", DU + 'if duplicate :uniqueid "x" :handle "h" { discard; }')
case("duplicate-id-exclusive", DU + 'if duplicate :header "a" :uniqueid "b" { discard; }')

# --- editheader (RFC 5293) ----------------------------------------------------------------------
EH = req("editheader", "fileinto")
case("editheader-add-visible", EH + 'addheader "X-Filtered" "yes"; if header :is "x-filtered" "yes" { fileinto "E"; }')
case("editheader-delete", EH + 'deleteheader "x-spam"; if exists "x-spam" { fileinto "Junk"; }')
case("editheader-delete-value", EH + 'deleteheader :is "x-priority" "3"; if header :is "x-priority" "3" '
     '{ fileinto "P3"; } elsif header :is "x-priority" "5" { fileinto "P5"; }')
case("editheader-delete-index", EH + req("index") + 'deleteheader :index 2 "x-priority"; '
     'if header :is "x-priority" "5" { fileinto "P5"; }')
case("editheader-add-first-index", EH + req("index") + 'addheader "X-Priority" "1"; '
     'if header :index 1 "x-priority" "1" { fileinto "P1"; }')
case("editheader-add-last", EH + req("index") + 'addheader :last "X-Priority" "9"; '
     'if header :index 1 :last "x-priority" "9" { fileinto "P9"; }')
case("editheader-received-protected", EH + 'deleteheader "received"; if exists "received" { fileinto "R"; }')
case("editheader-bad-name", EH + 'addheader "bad name" "x";')

# --- enotify (RFC 5435, 5436) -------------------------------------------------------------------
N = req("enotify", "fileinto", "variables")
case("notify-simple", N + 'notify "mailto:alerts@example.org";')
case("notify-importance", N + 'notify :importance "1" :message "urgent" "mailto:alerts@example.org";')
case("notify-valid-method", N + 'if valid_notify_method "mailto:a@example.org" { fileinto "V"; }')
case("notify-invalid-method", N + 'if valid_notify_method "xmpp:a@example.org" { fileinto "V"; }')
case("notify-capability-online", N + 'if notify_method_capability "mailto:a@example.org" "online" "maybe" '
     '{ fileinto "V"; }')
case("notify-encodeurl", N + 'set :encodeurl "s" "a b&c"; if string :is "${s}" "a%20b%26c" { fileinto "U"; }')
case("notify-with-keep", N + 'notify "mailto:alerts@example.org"; discard;')
case("notify-bad-option", N + 'notify :options ["a"] "mailto:a@example.org";')
case("notify-option", N + 'notify :options ["a=b"] "mailto:a@example.org";')
case("notify-bad-importance", N + 'notify :importance "4" "mailto:a@example.org";')
case("notify-unsupported-method", N + 'notify "xmpp:a@example.org";')
case("notify-no-recipient", N + 'notify "mailto:";')
case("notify-query", N + 'notify "mailto:a@example.org?subject=hi";')
case("notify-bad-from", N + 'notify :from "x" "mailto:a@example.org";')
case("notify-valid-empty", N + 'if valid_notify_method "mailto:" { fileinto "V"; }')

# --- include (RFC 6609) -------------------------------------------------------------------------
IN = req("include", "fileinto", "variables")
case("include-personal", IN + 'include "sub";', includes={"personal/sub": F + 'fileinto "FromSub";'})
case("include-global", IN + 'include :global "spam";',
     includes={"global/spam": F + 'if exists "x-spam" { fileinto "Junk"; }'})
case("include-return", IN + 'include "sub"; fileinto "After";',
     includes={"personal/sub": req("include") + "return; discard;"})
case("include-stop-ends-all", IN + 'include "sub"; fileinto "After";',
     includes={"personal/sub": "stop;"})
case("include-globals", IN + 'global "g"; set "g" "Shared"; include "sub";',
     includes={"personal/sub": IN + 'global "g"; fileinto "${g}";'})
case("include-local-not-shared", IN + 'set "l" "Local"; include "sub";',
     includes={"personal/sub": IN + 'fileinto "X${l}";'})
case("include-optional-missing", IN + 'include :optional "nope"; fileinto "A";')
case("include-once", IN + 'include :once "sub"; include :once "sub";',
     includes={"personal/sub": req("include", "imap4flags") + 'addflag "x";'})

# --- syntax errors both must refuse ---------------------------------------------------------------
case("error-missing-semicolon", "keep")
case("error-unknown-command", "frobnicate;")
case("error-unknown-test", "if frob { keep; }")
case("error-unknown-extension", 'require "x-nope";')
case("error-unbalanced", "if true { keep;")
case("error-require-late", 'keep; require "fileinto";')
case("error-else-alone", "else { keep; }")
case("error-bad-tag", "keep :nope;")
case("error-string-list-for-string", 'redirect ["a@example.org", "b@example.org"];')
case("error-unterminated", 'if header "a" "b')

# --- edges ----------------------------------------------------------------------------------
case("edge-matches-utf8-question", F + 'if header :matches "subject" "Caf? men?" { fileinto "U"; }', "encoded")
case("edge-string-empty-star", V + 'if string :matches "" "*" { fileinto "S"; }')
case("edge-string-empty-is", V + 'if string :is "" "" { fileinto "S"; }')
case("edge-vars-literal-dollar", V + 'set "a" "x"; fileinto "$${a}${}${1x}$";')
case("edge-vars-quotewildcard-match", V + 'set :quotewildcard "q" "Hello*"; if header :matches "subject" "${q}" '
     '{ fileinto "Q"; } else { fileinto "NotQ"; }')
case("edge-body-multipart-preamble", B + 'if body :content "multipart" :contains "preamble" { fileinto "P"; }', "mime")
case("edge-body-content-empty", B + 'if body :content "" :contains "secret" { fileinto "P"; }', "mime")
case("edge-body-html", B + 'if body :content "text/html" :contains "<b>total</b>" { fileinto "P"; }', "mime")
case("edge-size-boundary-over", F + 'if size :over 500 { fileinto "Big"; } else { fileinto "Small"; }', "bare")
case("edge-octet-value", RL + 'if header :value "lt" :comparator "i;octet" "subject" "hello" { fileinto "L"; }')
case("edge-hasflag-count", I4 + req("relational", "comparator-i;ascii-numeric") + 'addflag ["a", "b", "c"]; '
     'if hasflag :count "eq" :comparator "i;ascii-numeric" "3" { fileinto "Three"; }')
case("edge-multiline-dotstuff", V + 'set "t" text:\n..dot\n.\n; if string :matches "${t}" ".dot*" { fileinto "D"; }')
case("edge-encoded-multiline", EC + req("variables") + 'set "t" text:\n${hex:41}\n.\n; '
     'if string :matches "${t}" "A*" { fileinto "E"; }')
case("edge-exists-empty-name", F + 'if exists "x-nothere" { fileinto "X"; } else { fileinto "NoX"; }')
case("edge-address-localpart-only", F + 'if address :domain :is "from" "" { fileinto "NoDomain"; }', "bare")
case("edge-header-trailing-space", F + 'if header :is "x-spam" "Yes " { fileinto "T"; }')
case("edge-matches-case-variables", V + 'if header :matches "subject" "HELLO *" { fileinto "${1}"; }')
case("edge-regex-case-variables", RX + 'if header :regex "subject" "^HELLO (.*)$" { fileinto "${1}"; }')
case("edge-count-default-comparator", RL + 'if header :count "ge" "x-priority" "10" { fileinto "C"; }')
case("edge-keep-flags-then-implicit", I4 + 'keep :flags "a"; addflag "b";')
case("edge-fileinto-flags-empty-list", I4 + 'addflag "x"; fileinto :flags "" "F";')
case("edge-duplicate-last", DU + 'if duplicate :last :seconds 30 { fileinto "Dup"; } else { fileinto "New"; }')
case("edge-include-optional-global-missing", IN + 'include :global :optional "nope"; fileinto "A";')
case("edge-date-no-zone-header", D + 'if date :originalzone "date" "zone" "-0500" { fileinto "Z"; }', "mime")
case("edge-currentdate-julian-type", D + 'if currentdate :value "gt" :comparator "i;ascii-numeric" "julian" "60000" '
     '{ fileinto "J"; }')
case("edge-set-length-utf8", V + 'set :length "n" "menú"; fileinto "L${n}";')
case("edge-upper-utf8", V + 'set :upper "n" "menú"; fileinto "${n}";')

# --- more combinations ----------------------------------------------------------------------
case("combo-count-addresses-cc", RL + 'if address :count "eq" :comparator "i;ascii-numeric" "cc" "1" { fileinto "One"; }')
case("combo-regex-address-localpart", RX + 'if address :localpart :regex "cc" "^([a-z]+)\\+([a-z]+)$" '
     '{ fileinto "${1}.${2}"; }')
case("combo-envelope-vars", V + req("envelope") + 'if envelope :matches "from" "*@*" { fileinto "From.${2}"; }')
case("combo-address-vars-key", V + 'set "d" "example.com"; if address :domain :is "from" "${d}" { fileinto "V"; }')
case("combo-contains-octet-case", F + 'if header :contains :comparator "i;octet" "subject" "world" { fileinto "W"; }')
case("combo-deleteheader-matches", EH + 'deleteheader :matches "x-priority" "*"; if exists "x-priority" '
     '{ fileinto "Still"; } else { fileinto "Gone"; }')
case("combo-deleteheader-last-index", EH + req("index") + 'deleteheader :index 1 :last "x-priority"; '
     'if header :is "x-priority" "5" { fileinto "P5"; } else { fileinto "NoP5"; }')
case("combo-header-count-after-add", EH + req("relational", "comparator-i;ascii-numeric") + 'addheader "X-Priority" "1"; '
     'if header :count "eq" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "Three"; }')
case("combo-date-all-received", D + 'if date :zone "+0000" "received" "hour" "07" { fileinto "Some"; }')
case("combo-date-weekday-orig", D + 'if date :originalzone "date" "weekday" "5" { fileinto "Fri"; }')
case("combo-vacation-vars", VA + req("variables") + 'if header :matches "subject" "*" { set "s" "${1}"; } '
     'vacation :subject "Re: ${s}" :from "u@example.net" "Away";')
case("combo-reject-vars", R + req("variables") + 'if header :matches "from" "*<*>*" { reject "No mail from ${2}"; }')
case("combo-flags-named-variable", I4 + req("variables") + 'set "f" "\\Seen"; addflag "f" "\\Flagged"; '
     'fileinto :flags "${f}" "F";')
case("combo-include-stop-in-global", IN + 'include :global "gstop"; fileinto "User";',
     includes={"global/gstop": req("fileinto") + 'if exists "x-spam" { fileinto "Junk"; stop; }'})
case("combo-include-return-keeps-actions", IN + 'include "sub"; fileinto "After";',
     includes={"personal/sub": req("include", "fileinto") + 'fileinto "Inner"; return; fileinto "Never";'})
case("combo-include-once-twice", IN + 'include :once "a"; include "a";',
     includes={"personal/a": req("fileinto") + 'fileinto "A";'})
case("combo-spam-junk-seen", I4 + 'if header :is "x-spam" "yes" { fileinto :flags "\\Seen" "Junk"; stop; } keep;')
case("combo-anyof-short-circuit-vars", V + 'if anyof (header :matches "subject" "Hello *", header :matches "from" "*") '
     '{ fileinto "${1}"; }')
case("combo-allof-last-match-wins", V + 'if allof (header :matches "subject" "Hello *", header :matches "x-spam" "*") '
     '{ fileinto "${1}"; }')
case("combo-not-match-leaves-vars", V + 'if header :matches "subject" "* *" {} if not header :matches "x-spam" "N*" '
     '{ fileinto "${1}"; }')
case("combo-string-list-count", V + req("relational", "comparator-i;ascii-numeric") + 'if string :count "ge" :comparator '
     '"i;ascii-numeric" ["a", "b", "c"] "3" { fileinto "C"; }')
case("combo-redirect-copy-fileinto", C + 'redirect :copy "a@example.org"; fileinto "A";')
case("combo-body-raw-matches", B + 'if body :raw :matches "*quick brown*" { fileinto "Q"; }')
case("combo-size-and-header", F + 'if allof (size :under 10K, header :contains "x-spam" "yes") { fileinto "SmallSpam"; }')

# --- address syntax: quoted commas, comments, groups, invalid fields ------------------------------
AD = req("fileinto", "variables", "relational", "comparator-i;ascii-numeric", "subaddress")
for name, test in [
    ("quoted-comma", 'address :is "from" "first.last@example.com"'),
    ("count-with-group", 'address :count "eq" :comparator "i;ascii-numeric" "to" "5"'),
    ("group-member", 'address :is "to" "c@example.org"'),
    ("domain-case", 'address :domain :is "to" "example.org"'),
    ("domain-octet", 'address :domain :is :comparator "i;octet" "to" "EXAMPLE.org"'),
    ("null-address-is-empty", 'address :is "cc" ""'),
    ("null-address-counts", 'address :count "eq" :comparator "i;ascii-numeric" "cc" "1"'),
    ("invalid-all", 'address :is "reply-to" "broken address"'),
    ("invalid-localpart", 'address :localpart :matches "reply-to" "*"'),
    ("detail-with-second-delimiter", 'address :detail :is "sender" "tag+more"'),
    ("user-before-first-delimiter", 'address :user :is "sender" "bounce"'),
    ("header-keeps-display", 'header :is "from" "\\"Last, First\\" <first.last@example.com>"'),
]:
    case(f"addr-{name}", AD + f'if {test} {{ fileinto "Yes"; }}', "addresses")
case("addr-matches-parts", AD + 'if address :matches "from" "*.*@*" { fileinto "${1}-${2}-${3}"; }', "addresses")

# --- header values (whitespace, empty, repeated, RFC 2047) and decoded bodies -------------------
HB = req("fileinto", "variables", "body", "relational", "comparator-i;ascii-numeric")
for name, test in [
    ("trimmed", 'header :is "subject" "spaced out"'),
    ("empty-value", 'header :is "x-empty" ""'),
    ("empty-exists", 'exists "x-empty"'),
    ("missing-is-empty", 'header :is "x-missing" ""'),
    ("repeated-count", 'header :count "eq" :comparator "i;ascii-numeric" "x-multi" "2"'),
    ("unknown-charset", 'header :contains "x-bad-enc" "abc"'),
    ("two-encoded-words", 'header :is "x-q" "café and é"'),
    ("tab-kept", 'header :contains "x-tab" "a\tb"'),
    ("body-latin1-qp", 'body :contains "café"'),
    ("body-soft-break", 'body :contains "line twojoined"'),
    ("body-raw-undecoded", 'body :raw :contains "caf=E9"'),
    ("body-matches-all", 'body :text :matches "*"'),
]:
    case(f"hdr-{name}", HB + f'if {test} {{ fileinto "Yes"; }}', "headers")
case("hdr-matches-trimmed-var", HB + 'if header :matches "subject" "*" { fileinto "S${1}S"; }', "headers")
case("hdr-matches-second-occurrence", HB + 'if header :matches "x-multi" "s*" { fileinto "${1}"; }', "headers")

# --- where we follow the issue/RFC and Pigeonhole does not (docs/sieve.md, "Differences") ------
case("diff-ereject", req("ereject") + 'ereject "No thanks";')
case("diff-ereject-conditional", req("ereject") + 'if header :contains "subject" "Hello" { ereject "no"; }')
case("diff-redirect-to-sender", 'redirect "snd@example.com";')
case("diff-notify-two-recipients", req("enotify") + 'notify "mailto:a@example.org,b@example.org";')
case("diff-redirect-to-sender-copy", req("copy") + 'redirect :copy "snd@example.com"; discard;')
