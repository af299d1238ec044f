"""Check the translation against the site's data: every active mailbox's Maildir, where Dovecot
(or Postfix's virtual) found it, must be virtual_mailbox_base/mailbox.maildir, since that is
where pymailsrv will look. Reads the database (mailbox rows only; never writes)."""

from __future__ import annotations

import os
import posixpath

from pymailsrv.db.engine import make_engine
from pymailsrv.db.manage import Admin
from pymailsrv.errors import PymailsrvError
from pymailsrv.migrate.site import Site

SHOWN = 3  # mismatching mailboxes named in the report


def expand(template: str, username: str, maildir: str) -> str:
    """Dovecot's path of one user: %u the login, %n its local part, %d its domain; ``{maildir}``
    the stored mailbox.maildir."""
    local, _, domain = username.partition("@")
    path = template.replace("{maildir}", maildir).replace("%u", username).replace("%n", local)
    return posixpath.normpath(path.replace("%d", domain))


async def check_maildirs(site: Site) -> None:
    if site.layout is None or "database_url" not in site.values:
        return
    template, base = site.layout
    url = site.values["database_url"].text
    prefix = site.values["database_table_prefix"].text if "database_table_prefix" in site.values else ""
    engine = make_engine(url)
    try:
        rows = await Admin(engine, table_prefix=prefix).list_mailboxes()
    except (PymailsrvError, OSError) as exc:
        site.report.dropped("check of the Maildirs", f"could not read the mailbox table: {exc}")
        return
    finally:
        await engine.dispose()
    active = [r for r in rows if r["active"]]
    wrong: list[str] = []
    missing = 0
    for r in active:
        theirs = expand(template, r["username"], r["maildir"])
        ours = posixpath.normpath(posixpath.join(base, str(r["maildir"]).lstrip("/")))
        if theirs != ours:
            wrong.append(f"{r['username']}: {theirs} (pymailsrv: {ours})")
        elif not os.path.isdir(ours):
            missing += 1
    where = f"check of {len(active)} active mailboxes"
    if wrong:
        site.report.dropped(where, f"{len(wrong)} Maildirs are not at virtual_mailbox_base/mailbox.maildir, "
                            f"e.g. {'; '.join(wrong[:SHOWN])}", blocking=True)
    else:
        extra = f" ({missing} have no Maildir yet: the first delivery makes it)" if missing else ""
        site.report.translated(where, f"each at virtual_mailbox_base/mailbox.maildir{extra}")
