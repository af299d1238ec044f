"""The one declared parameter table (STYLE.md rule 12), assembled from one module per area."""

from pymailsrv.config.params import core, mailbox, pipeline, proxy, queue, smtpd, tls
from pymailsrv.config.params.spec import Param, ParamType

PARAMETERS: dict[str, Param] = {p.name: p for mod in (core, smtpd, pipeline, queue, mailbox, tls, proxy)
                                for p in mod.PARAMS}

__all__ = ["PARAMETERS", "Param", "ParamType"]
