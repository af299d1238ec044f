"""The ``Authentication-Results:`` header (RFC 8601), written with the authres package.

One header per message under ``authserv-id`` = $myhostname, with a result for each method
checked: spf (MAIL FROM, else HELO), dkim (one per signature), dmarc and arc. A header of our
own authserv-id that arrived with the message is forged (RFC 8601 §5) and removed first, so a
sender cannot claim results we never found; downstream (the ARC sealer, Sieve, users' clients)
trusts only ours.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import authres
import authres.arc
import authres.dmarc

from pymailsrv.senderauth.dkim import Signature
from pymailsrv.senderauth.dmarc import DmarcOutcome
from pymailsrv.senderauth.spf import SpfResult

FIELD = "Authentication-Results"
_COMMENT = re.compile(r"\([^()]*\)")
# What a property value taken from the message may look like in our header: a sender who could
# put "; dkim=pass" into a d= tag or a From domain would forge results under our name.
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+/=-]*")


def token(value: str) -> str | None:
    """``value`` when it is safe as an unquoted property value, else None (the property is left out)."""
    return value if value and len(value) <= 255 and _TOKEN.fullmatch(value) else None
_CONTEXT = authres.FeatureContext(authres, authres.dmarc, authres.arc)


def authserv_id_of(value: str) -> str:
    """The authserv-id of an Authentication-Results value (comments and folding ignored)."""
    text = _COMMENT.sub(" ", value.replace("\n", " "))
    return text.split(";", 1)[0].strip().split(" ", 1)[0].lower()


@dataclass(slots=True)
class Findings:
    """What the checks found for one message (in session.stage_data between events)."""

    spf: SpfResult | None = None
    spf_identity: str = "mailfrom"  # mailfrom | helo
    helo: SpfResult | None = None
    dkim: list[Signature] = field(default_factory=list)
    dmarc: DmarcOutcome | None = None
    arc: str = ""  # pass | fail | none; "" when not checked


def header_value(authserv_id: str, found: Findings) -> str:
    """The header's value, folded after each result ("\\n\\t")."""
    results: list[object] = []
    if found.spf is not None:
        domain = token(found.spf.domain)
        if found.spf_identity == "helo":
            results.append(authres.SPFAuthenticationResult(result=found.spf.result, smtp_helo=domain))
        else:
            results.append(authres.SPFAuthenticationResult(result=found.spf.result, smtp_mailfrom=domain))
    for sig in found.dkim:
        results.append(_dkim(sig))
    if found.dmarc is not None:
        results.append(authres.dmarc.DMARCAuthenticationResult(
            result=found.dmarc.result, header_from=token(found.dmarc.from_domain),
            policy=found.dmarc.requested if found.dmarc.result in ("pass", "fail") else None))
    if found.arc:
        results.append(authres.arc.ARCAuthenticationResult(result=found.arc))
    header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=results)
    return ";\n\t".join(_split_results(header.header_value()))


def _dkim(sig: Signature) -> object:
    result = authres.DKIMAuthenticationResult(result=sig.result, header_d=token(sig.domain),
                                              header_s=token(sig.selector), header_a=token(sig.algorithm))
    if token(sig.b):
        result.properties.append(authres.core.AuthenticationResultProperty("header", "b", sig.b))
    return result


def _split_results(value: str) -> Sequence[str]:
    return value.split("; ")


def parse(value: str) -> object:
    """An Authentication-Results value parsed (for tests and the ARC sealer's checks)."""
    return authres.core.AuthenticationResultsHeader.parse_value(_CONTEXT, value.replace("\n", " "))
