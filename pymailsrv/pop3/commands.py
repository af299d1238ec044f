"""The POP3 command table (STYLE.md rule 2): every command, the states it is valid in, and the
capability it advertises. CAPA is derived from this table (RFC 2449 §5)."""

from __future__ import annotations

from typing import Final

from pymailsrv.pop3 import auth_commands as a
from pymailsrv.pop3 import mail_commands as m
from pymailsrv.pop3.session import ANY_STATE, AUTH_STATE, TRANS_STATE, Pop3Command

COMMANDS: Final[dict[str, Pop3Command]] = {
    "CAPA": Pop3Command(ANY_STATE, a.cmd_capa),  # RFC 2449 §5
    "USER": Pop3Command(AUTH_STATE, a.cmd_user, a.capa_user),  # RFC 1939 §7
    "PASS": Pop3Command(AUTH_STATE, a.cmd_pass),
    "AUTH": Pop3Command(AUTH_STATE, a.cmd_auth, a.capa_sasl),  # RFC 5034
    "STLS": Pop3Command(AUTH_STATE, a.cmd_stls, a.capa_stls),  # RFC 2595 §4
    "XCLIENT": Pop3Command(AUTH_STATE, a.cmd_xclient, a.capa_xclient),  # Dovecot's, for proxies
    "QUIT": Pop3Command(ANY_STATE, a.cmd_quit),  # RFC 1939 §5, §6
    "STAT": Pop3Command(TRANS_STATE, m.cmd_stat),
    "LIST": Pop3Command(TRANS_STATE, m.cmd_list),
    "RETR": Pop3Command(TRANS_STATE, m.cmd_retr),
    "DELE": Pop3Command(TRANS_STATE, m.cmd_dele),
    "RSET": Pop3Command(TRANS_STATE, m.cmd_rset),
    "NOOP": Pop3Command(TRANS_STATE, m.cmd_noop),
    "TOP": Pop3Command(TRANS_STATE, m.cmd_top, "TOP"),  # RFC 1939 §7 (optional)
    "UIDL": Pop3Command(TRANS_STATE, m.cmd_uidl, "UIDL"),  # RFC 1939 §7 (optional)
}
