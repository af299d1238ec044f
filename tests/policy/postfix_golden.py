"""Regenerate golden/postfix_rcpt_replies.txt from a real Postfix (not a test; run by hand).

Postfix 3.7 in a private config directory, listening on 127.0.0.1:2626, with this main.cf
(master.cf: the Debian one, its ``smtp inet`` line changed to ``127.0.0.1:2626 inet n - n - - smtpd``)::

    compatibility_level = 3.6
    myhostname = mx.example.test
    mydomain = example.test
    mydestination = mx.example.test, localhost
    inet_interfaces = 127.0.0.1
    inet_protocols = ipv4
    mynetworks = 192.0.2.0/24          # the test client 127.0.0.1 is NOT trusted
    smtpd_peername_lookup = no
    alias_maps =
    local_recipient_maps =
    virtual_mailbox_domains = example.com
    virtual_mailbox_maps = inline:{ alice@example.com=x, carol@example.com=x }
    relay_domains = backup.example
    recipient_delimiter = +
    (queue_directory, data_directory, maillog_file: somewhere private)

    postfix -c DIR start;  python tests/policy/postfix_golden.py > tests/policy/golden/postfix_rcpt_replies.txt

Each line: the RCPT TO argument, a tab, Postfix's final reply line (EHLO client.example.net,
MAIL FROM:<sender@sender.example>, one RCPT per connection).

``python tests/policy/postfix_golden.py restrictions > golden/postfix_restriction_replies.txt``
records the HELO/MAIL/RCPT scenarios of :data:`SCENARIOS` with :data:`RESTRICTIONS` appended to
that main.cf (``postfix -c DIR reload``): helo, sender, recipient, MAIL reply, RCPT reply;
golden/postfix_restriction_log.txt is the ``NOQUEUE: ...`` part of the maillog lines of that run.

``… actions > golden/postfix_action_replies.txt`` does the same for :data:`ACTIONS` (replacing
RESTRICTIONS) and :data:`ACTION_SCENARIOS`, through DATA and the final dot;
golden/postfix_action_log.txt holds the smtpd lines of that run with queue ids masked.

``… clients > golden/postfix_client_replies.txt``: :data:`CLIENTS` (CIDR_FILE = a file holding
:data:`CIDR`) and :data:`CLIENT_SCENARIOS`, connecting from several 127.x.y.z source addresses.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

HERE = Path(__file__).parent
EXTRA = ["alice@example.com", "Alice@EXAMPLE.COM.", '"alice"@example.com', "alice+x@example.com",
         "anyone@backup.example", "postmaster@localhost", "postmaster", "nobody@example.com", "user@",
         "@example.com", "user@@example.com", "user@example.com@", "carol@example.com", "carol@[127.0.0.1]",
         "carol@mx.example.test", "@remote.example:carol@example.com", '"@remote.example:user"@example.com',
         "@remote.example:user@example.com", "user%carol@example.com"]


RESTRICTIONS = {
    "smtpd_helo_restrictions": "reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, "
                               "check_helo_access inline:{ bad.helo.example=REJECT }",
    "smtpd_sender_restrictions": "reject_non_fqdn_sender, check_sender_access inline:{ spam.example=REJECT, "
                                 "{ tag.example = REJECT 5.7.0 go away }, defer.example=DEFER, "
                                 "{ code.example = 550 no thanks }, { dip.example = DEFER_IF_PERMIT maybe }, "
                                 "{ dir.example = DEFER_IF_REJECT soft }, { joe@ = REJECT by localpart }, "
                                 "{ .sub.example = REJECT subdomains }, ok.example=OK }",
    "smtpd_recipient_restrictions": "reject_non_fqdn_recipient, reject_unauth_destination, "
                                    "check_recipient_access inline:{ bob@example.com=REJECT, "
                                    "{ alice+spam@example.com = 450 4.2.2 full }, rr@example.com=reject }",
    "virtual_mailbox_maps": "inline:{ alice@example.com=x, carol@example.com=x, bob@example.com=x, "
                            "rr@example.com=x }",
}
GOOD = ("client.example.net", "a@good.example", "alice@example.com")
SCENARIOS = [
    GOOD,
    ("bad.helo.example", GOOD[1], GOOD[2]), ("x.bad.helo.example", GOOD[1], GOOD[2]),
    ("localhost", GOOD[1], GOOD[2]), ("bad_name.example", GOOD[1], GOOD[2]), ("[192.0.2.1]", GOOD[1], GOOD[2]),
    ("192.0.2.1", GOOD[1], GOOD[2]), ("a..b", GOOD[1], GOOD[2]), ("-x.example", GOOD[1], GOOD[2]),
    (GOOD[0], "a@spam.example", GOOD[2]), (GOOD[0], "a@x.spam.example", GOOD[2]),
    (GOOD[0], "a@tag.example", GOOD[2]), (GOOD[0], "a@defer.example", GOOD[2]),
    (GOOD[0], "a@code.example", GOOD[2]), (GOOD[0], "a@dip.example", GOOD[2]),
    (GOOD[0], "a@dir.example", GOOD[2]), (GOOD[0], "a@dir.example", "bob@example.com"),
    (GOOD[0], "joe@anything.example", GOOD[2]), (GOOD[0], "joe+x@anything.example", GOOD[2]),
    (GOOD[0], "a@sub.example", GOOD[2]), (GOOD[0], "a@x.sub.example", GOOD[2]),
    (GOOD[0], "a@ok.example", "bob@example.com"), (GOOD[0], "joe", GOOD[2]), (GOOD[0], "", GOOD[2]),
    (GOOD[0], "a@192.0.2.1", GOOD[2]), (GOOD[0], "a@", GOOD[2]), (GOOD[0], '"a b"@good.example', GOOD[2]),
    (GOOD[0], GOOD[1], "bob@example.com"), (GOOD[0], GOOD[1], "alice+spam@example.com"),
    (GOOD[0], GOOD[1], "rr@example.com"), (GOOD[0], GOOD[1], "postmaster"),
    (GOOD[0], GOOD[1], "x@remote.example"), (GOOD[0], GOOD[1], "nobody@example.com"),
]


ACTIONS = {
    "smtpd_helo_restrictions": "",
    "smtpd_restriction_classes": "strict",
    "strict": "reject_unlisted_recipient, reject",
    "smtpd_sender_restrictions": "warn_if_reject reject_non_fqdn_sender, check_sender_access inline:{ "
                                 "hold.example=HOLD, { holdtext.example = HOLD held for review }, "
                                 "discard.example=DISCARD, { warn.example = WARN odd sender }, "
                                 "{ redirect.example = REDIRECT jail@example.com }, "
                                 "{ filter.example = FILTER smtp:[127.0.0.1]:10024 }, "
                                 "{ prepend.example = PREPEND X-Tag: yes }, class.example=strict, "
                                 "{ info.example = INFO noted } }",
    "smtpd_recipient_restrictions": "reject_unauth_destination",
    "smtpd_data_restrictions": "check_sender_access inline:{ datarej.example=reject }",
    "smtpd_end_of_data_restrictions": "check_sender_access inline:{ { eodrej.example = REJECT too late } }",
    "virtual_mailbox_maps": "inline:{ alice@example.com=x }",
}
ACTION_SCENARIOS = [(GOOD[0], f"a@{name}.example", GOOD[2]) for name in (
    "good", "hold", "holdtext", "discard", "warn", "redirect", "filter", "prepend", "class", "info",
    "datarej", "eodrej")] + [(GOOD[0], "nofqdn", GOOD[2]), (GOOD[0], "a@class.example", "nobody@example.com")]


CLIENTS = {
    "smtpd_helo_restrictions": "",
    "mynetworks": "127.0.3.0/24",
    "smtpd_client_restrictions": "permit_mynetworks, check_client_access inline:{ 127.0.0.2=REJECT, "
                                 "{ 127.0.1 = REJECT net }, { 127.1 = DEFER wide }, 127.0.0.9=OK, "
                                 "127.0.0.7=reject_unknown_client_hostname }, "
                                 "check_client_access cidr:CIDR_FILE",
    "virtual_mailbox_maps": "inline:{ alice@example.com=x }",
}
CIDR = "127.0.2.0/24 REJECT cidr net\n!127.0.0.0/9 DEFER outside\n"
CLIENT_SCENARIOS = [("127.0.0.1", "alice@example.com"), ("127.0.0.2", "alice@example.com"),
                    ("127.0.1.5", "alice@example.com"), ("127.1.2.3", "alice@example.com"),
                    ("127.0.0.9", "alice@example.com"), ("127.0.2.9", "alice@example.com"),
                    ("127.0.0.7", "alice@example.com"), ("127.0.3.4", "x@remote.example"),
                    ("127.200.0.1", "alice@example.com"), ("127.0.0.9", "x@remote.example")]


def client_session(source: str, rcpt: str, port: int = 2626) -> str:
    with socket.create_connection(("127.0.0.1", port), source_address=(source, 0)) as s, s.makefile("rb") as f:
        def cmd(line: str | None) -> str:
            if line is not None:
                s.sendall(line.encode() + b"\r\n")
            while True:
                reply = f.readline().decode().rstrip("\r\n")
                if len(reply) < 4 or reply[3] != "-":
                    return reply
        cmd(None)
        cmd("EHLO client.example.net")
        cmd("MAIL FROM:<a@good.example>")
        return cmd(f"RCPT TO:<{rcpt}>")


def session(helo: str, sender: str, rcpt: str, port: int = 2626) -> list[str]:
    """MAIL, RCPT, DATA and end-of-data replies ("-" once a step failed)."""
    with socket.create_connection(("127.0.0.1", port)) as s, s.makefile("rb") as f:
        def cmd(line: str | None) -> str:
            if line is not None:
                s.sendall(line.encode() + b"\r\n")
            while True:
                reply = f.readline().decode().rstrip("\r\n")
                if len(reply) < 4 or reply[3] != "-":
                    return reply
        cmd(None)
        cmd(f"EHLO {helo}")
        out = [cmd(f"MAIL FROM:<{sender}>")]
        for line, _ok in ((f"RCPT TO:<{rcpt}>", "250"), ("DATA", "354"), ("Subject: t\r\n\r\nbody\r\n.", "")):
            out.append(cmd(line) if out[-1].startswith(("250", "354")) else "-")
        return [re.sub(r"queued as \w+", "queued as QUEUEID", r) for r in out]


def scenario(helo: str, sender: str, rcpt: str, port: int = 2626) -> tuple[str, str]:
    with socket.create_connection(("127.0.0.1", port)) as s, s.makefile("rb") as f:
        def cmd(line: str | None) -> str:
            if line is not None:
                s.sendall(line.encode() + b"\r\n")
            while True:
                reply = f.readline().decode().rstrip("\r\n")
                if len(reply) < 4 or reply[3] != "-":
                    return reply
        cmd(None)
        cmd(f"EHLO {helo}")
        mail = cmd(f"MAIL FROM:<{sender}>")
        if not mail.startswith("250"):
            return mail, "-"
        return mail, cmd(f"RCPT TO:<{rcpt}>")


def cases() -> list[str]:
    lines = (HERE / "open_relay_cases.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")] + EXTRA


def ask(rcpt: str, port: int = 2626) -> str:
    with socket.create_connection(("127.0.0.1", port)) as s, s.makefile("rb") as f:
        def cmd(line: str | None) -> str:
            if line is not None:
                s.sendall(line.encode() + b"\r\n")
            while True:
                reply = f.readline().decode().rstrip("\r\n")
                if len(reply) < 4 or reply[3] != "-":
                    return reply
        cmd(None)
        cmd("EHLO client.example.net")
        cmd("MAIL FROM:<sender@sender.example>")
        arg = rcpt if rcpt.startswith("<") else f"<{rcpt}>"
        return cmd(f"RCPT TO:{arg}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["clients"]:
        for source, rcpt in CLIENT_SCENARIOS:
            print(f"{source}\t{rcpt}\t{client_session(source, rcpt)}")
    elif sys.argv[1:] == ["actions"]:
        for helo, sender, rcpt in ACTION_SCENARIOS:
            print("\t".join([helo, sender, rcpt, *session(helo, sender, rcpt)]))
    elif sys.argv[1:] == ["restrictions"]:
        for helo, sender, rcpt in SCENARIOS:
            mail, reply = scenario(helo, sender, rcpt)
            print(f"{helo}\t{sender}\t{rcpt}\t{mail}\t{reply}")
    else:
        for case in cases():
            print(f"{case}\t{ask(case)}")
