"""The built-in restrictions (POSTFIX-SEMANTICS §3) and the access-map actions (§4).

Importing this module fills :data:`BUILTINS` (policy/registry.py) from the check modules.
Restrictions whose input is not there yet (no recipient at MAIL, no HELO) answer DUNNO, as
Postfix does.
"""

from __future__ import annotations

from pymailsrv.policy import checks_access, checks_basic, checks_dns, checks_spf
from pymailsrv.policy.checks_access import apply_action, policy_attributes
from pymailsrv.policy.checks_basic import auth_destination, unlisted
from pymailsrv.policy.registry import BUILTINS, BuiltinRestriction

__all__ = ["BUILTINS", "BuiltinRestriction", "apply_action", "auth_destination", "checks_access", "checks_basic",
           "checks_dns", "checks_spf", "policy_attributes", "unlisted"]
