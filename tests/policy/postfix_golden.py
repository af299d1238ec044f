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
"""

from __future__ import annotations

import socket
from pathlib import Path

HERE = Path(__file__).parent
EXTRA = ["alice@example.com", "Alice@EXAMPLE.COM.", '"alice"@example.com', "alice+x@example.com",
         "anyone@backup.example", "postmaster@localhost", "postmaster", "nobody@example.com", "user@",
         "@example.com", "user@@example.com", "user@example.com@", "carol@example.com", "carol@[127.0.0.1]",
         "carol@mx.example.test", "@remote.example:carol@example.com", '"@remote.example:user"@example.com',
         "@remote.example:user@example.com", "user%carol@example.com"]


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
    for case in cases():
        print(f"{case}\t{ask(case)}")
