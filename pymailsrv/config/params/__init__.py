"""The one declared parameter table (STYLE.md rule 12), assembled from one module per area."""

from pymailsrv.config.params import core, mailbox, pipeline, queue, senderauth, smtpd, tls
from pymailsrv.config.params.spec import Param, ParamType

_MODULES = (core, smtpd, pipeline, queue, mailbox, tls, senderauth)
PARAMETERS: dict[str, Param] = {p.name: p for mod in _MODULES for p in mod.PARAMS}

__all__ = ["PARAMETERS", "Param", "ParamType"]
