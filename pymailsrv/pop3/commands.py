"""The POP3 command table (STYLE.md rule 2): every command, the states it is valid in, and the
capability it advertises. CAPA is derived from this table (RFC 2449 §5)."""

from __future__ import annotations

from typing import Final

from pymailsrv.pop3 import auth_commands as a
from pymailsrv.pop3 import mail_commands as m
from pymailsrv.pop3.session import ANY_STATE, AUTH_STATE, TRANS_STATE, Spec

COMMANDS: Final[dict[str, Spec]] = {
    "CAPA": Spec(ANY_STATE, a.cmd_capa),  # RFC 2449 §5
    "USER": Spec(AUTH_STATE, a.cmd_user, a.capa_user),  # RFC 1939 §7
    "PASS": Spec(AUTH_STATE, a.cmd_pass),
    "AUTH": Spec(AUTH_STATE, a.cmd_auth, a.capa_sasl),  # RFC 5034
    "STLS": Spec(AUTH_STATE, a.cmd_stls, a.capa_stls),  # RFC 2595 §4
    "QUIT": Spec(ANY_STATE, a.cmd_quit),  # RFC 1939 §5, §6
    "STAT": Spec(TRANS_STATE, m.cmd_stat),
    "LIST": Spec(TRANS_STATE, m.cmd_list),
    "RETR": Spec(TRANS_STATE, m.cmd_retr),
    "DELE": Spec(TRANS_STATE, m.cmd_dele),
    "RSET": Spec(TRANS_STATE, m.cmd_rset),
    "NOOP": Spec(TRANS_STATE, m.cmd_noop),
    "TOP": Spec(TRANS_STATE, m.cmd_top, "TOP"),  # RFC 1939 §7 (optional)
    "UIDL": Spec(TRANS_STATE, m.cmd_uidl, "UIDL"),  # RFC 1939 §7 (optional)
}
