"""The ManageSieve command table (STYLE.md rule 2): every command, the states it is valid in and
the capability it contributes; CAPABILITY is derived from it (RFC 5804 §1.7)."""

from __future__ import annotations

from typing import Final

from pymailsrv.managesieve import auth_commands as a
from pymailsrv.managesieve import script_commands as sc
from pymailsrv.managesieve.session import ANY, AUTH, NONAUTH, SieveCommand

COMMANDS: Final[dict[str, SieveCommand]] = {
    "AUTHENTICATE": SieveCommand(NONAUTH, a.cmd_authenticate, a.capa_sasl),  # RFC 5804 §2.1
    "STARTTLS": SieveCommand(NONAUTH, a.cmd_starttls, a.capa_starttls),  # §2.2
    "LOGOUT": SieveCommand(ANY, a.cmd_logout),  # §2.3
    "CAPABILITY": SieveCommand(ANY, a.cmd_capability, sc.capa_sieve),  # §2.4
    "HAVESPACE": SieveCommand(AUTH, sc.cmd_havespace),  # §2.5
    "PUTSCRIPT": SieveCommand(AUTH, sc.cmd_putscript, sc.capa_notify),  # §2.6
    "LISTSCRIPTS": SieveCommand(AUTH, sc.cmd_listscripts),  # §2.7
    "SETACTIVE": SieveCommand(AUTH, sc.cmd_setactive),  # §2.8
    "GETSCRIPT": SieveCommand(AUTH, sc.cmd_getscript),  # §2.9
    "DELETESCRIPT": SieveCommand(AUTH, sc.cmd_deletescript),  # §2.10
    "RENAMESCRIPT": SieveCommand(AUTH, sc.cmd_renamescript),  # §2.11
    "CHECKSCRIPT": SieveCommand(AUTH, sc.cmd_checkscript),  # §2.12
    "NOOP": SieveCommand(ANY, a.cmd_noop),  # §2.13
    "UNAUTHENTICATE": SieveCommand(AUTH, a.cmd_unauthenticate, a.capa_unauthenticate),  # §2.14
    "XCLIENT": SieveCommand(NONAUTH, a.cmd_xclient, a.capa_xclient),  # Pigeonhole's, for proxies
}
