"""The Sendmail macros Postfix sends to milters (MILTER_README, "Sendmail macro emulation"),
from the session and the transaction. Pure: values in, (name, value) pairs out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pymailsrv.pipeline.base import Session, Transaction

# The milter_*_macros parameter of each macro stage (protocol.M_*, in that order).
STAGE_PARAMS = ("milter_connect_macros", "milter_helo_macros", "milter_mail_macros", "milter_rcpt_macros",
                "milter_data_macros", "milter_end_of_data_macros", "milter_end_of_header_macros")


@dataclass(frozen=True, slots=True)
class Host:
    """Values that come from the configuration: ``j``, ``{daemon_name}``, ``v``."""

    myhostname: str
    daemon_name: str
    version: str


def values(host: Host, session: Session, txn: Transaction | None = None, rcpt: str | None = None) -> dict[str, str]:
    """Every macro Postfix defines, with the values known now (an unknown one is left out, as
    Postfix sends no undefined macro)."""
    state = session.state
    out = {"j": host.myhostname, "{daemon_name}": host.daemon_name, "v": host.version,
           "{client_addr}": state.client_address, "{client_name}": state.client_name,
           "{client_ptr}": state.reverse_client_name,
           "_": f"{state.client_name} [{state.client_address}]"}
    if state.client_port:
        out["{client_port}"] = str(state.client_port)
    if state.server_address:
        out["{daemon_addr}"] = state.server_address
    if state.server_port:
        out["{daemon_port}"] = str(state.server_port)
    if state.client_name == "unknown":
        out["{client_resolve}"] = "FAIL"
    if session.tls_active:
        out |= {"{tls_version}": session.tls_version, "{cipher}": session.tls_cipher,
                "{cipher_bits}": str(session.tls_bits)}
    if state.sasl_username:
        out |= {"{auth_type}": state.sasl_method, "{auth_authen}": state.sasl_username}
    queue_id = (txn.queue_id if txn is not None else "") or state.queue_id
    if queue_id:
        out["i"] = queue_id
    if txn is not None:
        out["{mail_addr}"] = txn.sender
        if "@" in txn.sender:
            out["{mail_host}"] = txn.sender.rpartition("@")[2]
    if rcpt is not None:
        out["{rcpt_addr}"] = rcpt
        if "@" in rcpt:
            out["{rcpt_host}"] = rcpt.rpartition("@")[2]
    return out


def pick(known: dict[str, str], names: Sequence[str]) -> list[tuple[str, str]]:
    """The macros ``names`` asks for that have a value; ``{name}`` and ``name`` are the same
    macro for a long name, as in Sendmail."""
    out: list[tuple[str, str]] = []
    for name in names:
        key = name if name in known or len(name) == 1 or name.startswith("{") else "{" + name + "}"
        if key in known:
            out.append((name, known[key]))
    return out
