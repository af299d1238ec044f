"""Automatic replies (RFC 3834): when one may be sent, and how it is written.

Shared by PostfixAdmin's vacation (``delivery.vacation``) and Sieve's ``vacation`` action: the
rules and the composition live here once, so both answer the same mail the same way. Pure: bytes
and strings in, values out; no I/O, no database.
"""

from pymailsrv.autoreply.compose import Reply, compose_reply
from pymailsrv.autoreply.rules import (
    X_LOOP,
    header_refusal,
    parse_headers,
    recipients_in_headers,
    sender_refusal,
)

__all__ = ["X_LOOP", "Reply", "compose_reply", "header_refusal", "parse_headers", "recipients_in_headers",
           "sender_refusal"]
