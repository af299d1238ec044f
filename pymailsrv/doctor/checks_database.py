"""The database: reachable, its schema at the revision this pymailsrv ships; and the hosted
domains the DNS checks look at."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

from pymailsrv.config.settings import Settings
from pymailsrv.db import schema
from pymailsrv.db.engine import describe, make_engine
from pymailsrv.db.manage import Admin
from pymailsrv.doctor.report import Report
from pymailsrv.errors import PymailsrvError

TIMEOUT = 20.0


@dataclass
class Domains:
    hosted: list[str] = field(default_factory=list)  # active mailbox/alias domains
    backup_mx: list[str] = field(default_factory=list)
    alias: list[str] = field(default_factory=list)  # active alias domains


async def check_database(settings: Settings, report: Report) -> Domains:
    url = settings.expanded("database_url")
    prefix = settings.expanded("database_table_prefix")
    subject = f"database {describe(url)}"
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and not os.path.exists(path):  # connecting would create it
            report.warning(subject, "does not exist yet", ["pymailsrv db upgrade  (pymailsrv serve does it too)"],
                           label="fix")
            return Domains()
    engine = make_engine(url)
    try:
        revision, state = await asyncio.wait_for(schema.current(engine, prefix), TIMEOUT)
        head = schema.head_revision()
        if revision == head:
            report.ok(subject, f"reachable; schema at revision {head} ({state.describe()})")
        else:
            found = f"at revision {revision}" if revision else f"not set up by pymailsrv ({state.describe()})"
            report.error(subject, f"reachable; schema {found}, this pymailsrv needs {head}",
                         ["pymailsrv db upgrade"], label="fix")
            return Domains()
        return await asyncio.wait_for(_domains(Admin(engine, table_prefix=prefix)), TIMEOUT)
    except TimeoutError:
        report.error(subject, f"no answer within {TIMEOUT:.0f}s")
    except (PymailsrvError, OSError) as exc:
        report.error(subject, f"unreachable: {exc}")
    except Exception as exc:  # a driver's own error: a finding, never a traceback
        report.error(subject, f"{type(exc).__name__}: {exc}")
    finally:
        await engine.dispose()
    return Domains()


async def _domains(admin: Admin) -> Domains:
    found = Domains()
    found.alias = [str(row["alias_domain"]) for row in await admin.list_alias_domains() if row["active"]]
    for row in await admin.list_domains():
        # "ALL" is PostfixAdmin's superadmin pseudo-domain; an alias domain is a domain row too
        if row["domain"] == "ALL" or not row["active"] or row["domain"] in found.alias:
            continue
        (found.backup_mx if row["backupmx"] else found.hosted).append(str(row["domain"]))
    return found
