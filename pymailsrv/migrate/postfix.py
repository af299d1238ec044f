"""Postfix's main.cf, master.cf and SQL map files → pymailsrv parameters (into a Site).

Implementation notes:
- main.cf is read with pymailsrv's own parser (same syntax); a value that refers to a parameter
  pymailsrv does not get (``$config_directory``) is written expanded;
- maps that read PostfixAdmin's tables are not written: pymailsrv's Directory reads the same
  rows from ``database_url``; other tables are kept when pymailsrv can open their type;
- master.cf services become listeners; ``-o`` overrides apply to one service in Postfix and have
  no per-listener counterpart here unless the listener does it anyway (submission: TLS and AUTH).
"""

from __future__ import annotations

import os
import re

from pymailsrv.config.params import PARAMETERS
from pymailsrv.config.parser import Entry, expand, parse_text, split_list
from pymailsrv.db.sql_table import SqlTableConfig, parse_cf
from pymailsrv.errors import ConfigError
from pymailsrv.migrate import master_cf, sql
from pymailsrv.migrate.site import Site
from pymailsrv.policy.tables import SQL_TYPES, TABLE_TYPES

# Parameters handled by name below (not by the generic rule).
MAP_PARAMS = ("virtual_mailbox_domains", "virtual_alias_domains", "virtual_alias_maps", "virtual_mailbox_maps",
              "relay_domains", "transport_maps", "smtpd_sender_login_maps", "alias_maps")
RESTRICTION_PARAMS = ("smtpd_client_restrictions", "smtpd_helo_restrictions", "smtpd_sender_restrictions",
                      "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_data_restrictions",
                      "smtpd_end_of_data_restrictions")
# What a PostfixAdmin map of each parameter is answered by in pymailsrv.
_SERVED_BY = {
    "virtual_mailbox_domains": "the domain table (active, not backup MX)",
    "virtual_alias_domains": "the alias_domain table",
    "virtual_alias_maps": "the alias and alias_domain tables (with catch-alls)",
    "virtual_mailbox_maps": "the mailbox table (through alias domains too)",
    "relay_domains": "the domain table (backupmx, or a relay/smtp transport)",
    "transport_maps": "the domain table's transport column",
    "smtpd_sender_login_maps": "the mailbox and alias tables (submission_reject_sender_login_mismatch)",
}
_POSTFIX_OWN = "a part of Postfix's own installation; pymailsrv keeps its state under data_directory"
# Why a Postfix feature is missing, said only while pymailsrv has no parameter of that name (a
# pymailsrv that has one gets the setting carried).
_MISSING = {"milter": "milters are not supported (they are to come as pipeline stages)",
            "postscreen": "postscreen is not provided"}
_WHY = {
    "compatibility_level": "pymailsrv has one behaviour (Postfix 3 defaults)",
    "biff": "there is no biff service",
    "append_dot_mydomain": "pymailsrv never appends .$mydomain",
    "alias_database": "alias_maps source files are read directly (no newaliases)",
    "syslog_name": "pymailsrv logs as pymailsrv (pflogsumm: --syslog-name=pymailsrv)",
    "smtpd_tls_session_cache_database": "TLS sessions are cached in memory",
    "smtp_tls_session_cache_database": "TLS sessions are cached in memory",
    "smtpd_sasl_type": "pymailsrv authenticates SMTP AUTH itself against the same passdb (the database)",
    "smtpd_sasl_path": "pymailsrv authenticates SMTP AUTH itself against the same passdb (the database)",
    "smtpd_sasl_local_domain": "logins are full addresses, as PostfixAdmin stores them",
    "mailbox_size_limit": "local(8) delivery to system accounts is not provided",
    "home_mailbox": "local(8) delivery to system accounts is not provided",
    "mailbox_command": "local(8) delivery to system accounts is not provided",
    "inet_protocols": "pymailsrv listens on the addresses the *_listen parameters name, IPv4 or IPv6",
    "smtp_tls_CApath": "outbound TLS verifies against the system's CAs",
    "smtp_tls_CAfile": "outbound TLS verifies against the system's CAs",
    "smtpd_use_tls": "obsolete; smtpd_tls_security_level says it",
    "smtpd_tls_loglevel": "TLS is logged at log_level",
    "smtp_tls_loglevel": "TLS is logged at log_level",
}
for _name in ("data_directory", "queue_directory", "command_directory", "daemon_directory", "meta_directory",
              "shlib_directory", "html_directory", "manpage_directory", "readme_directory", "sample_directory",
              "sendmail_path", "newaliases_path", "mailq_path", "setgid_group", "mail_owner", "config_directory",
              "mail_spool_directory"):
    _WHY.setdefault(_name, _POSTFIX_OWN)
# Postfix defaults a carried value may refer to (postconf -d on Debian).
_POSTFIX_DEFAULTS = {
    "queue_directory": "/var/spool/postfix", "daemon_directory": "/usr/lib/postfix/sbin",
    "command_directory": "/usr/sbin", "data_directory": "/var/lib/postfix", "mail_name": "Postfix",
    "myhostname": "", "mydomain": "", "mail_owner": "postfix",
}
# References kept as they are in carried values: pymailsrv has these names with Postfix's meaning.
KEEP_REFS = frozenset({"myhostname", "mydomain", "myorigin", "mail_name", "mynetworks", "mydestination"})
# master.cf services that are parts of Postfix pymailsrv has built in.
_BUILT_IN = {"pickup", "cleanup", "qmgr", "tlsmgr", "rewrite", "bounce", "defer", "trace", "verify", "flush",
             "proxymap", "proxywrite", "smtp", "relay", "showq", "error", "retry", "discard", "local", "virtual",
             "lmtp", "anvil", "scache", "postlog", "dnsblog", "tlsproxy", "postscreen", "smtpd", "uucp", "ifmail",
             "bsmtp", "scalemail-backend", "mailman"}
_PORTS = {"smtp": 25, "submission": 587, "smtps": 465, "submissions": 465}
# -o overrides the submission/smtps listeners do anyway (TLS required, AUTH required and offered).
_SUBMISSION_BUILT_IN = {"syslog_name", "smtpd_tls_security_level", "smtpd_sasl_auth_enable", "smtpd_tls_auth_only",
                        "smtpd_tls_wrappermode", "smtpd_reject_unlisted_recipient", "milter_macro_daemon_name",
                        "smtpd_sasl_type", "smtpd_sasl_path", "smtpd_client_restrictions",
                        "smtpd_relay_restrictions", "smtpd_recipient_restrictions", "smtpd_helo_restrictions",
                        "smtpd_sender_restrictions", "smtpd_sender_login_maps", "smtpd_sasl_security_options"}
_POSTGREY_OPTS = {"delay": ("greylist_delay", "s"), "max-age": ("greylist_max_age", "d"),
                  "retry-window": ("greylist_retry_window", "d"),
                  "auto-whitelist-clients": ("greylist_auto_whitelist_clients", ""),
                  "greylist-text": ("greylist_text", "")}


class MainCf:
    """main.cf's entries and their values as Postfix sees them."""

    def __init__(self, entries: list[Entry], config_directory: str) -> None:
        self.entries = {e.name: e for e in entries}
        self.config_directory = config_directory

    def raw(self, name: str) -> str | None:
        e = self.entries.get(name)
        if e is not None:
            return e.value
        if name == "config_directory":
            return self.config_directory
        return _POSTFIX_DEFAULTS.get(name)

    def value(self, name: str) -> str:
        return expand(self.raw(name) or "", self.raw)

    def where(self, name: str) -> str:
        e = self.entries.get(name)
        return f"main.cf:{e.line} {name}" if e else f"main.cf {name}"

    def for_pymailsrv(self, name: str) -> str:
        """The value with references to this host's names kept (pymailsrv derives them as Postfix
        does), every other reference expanded."""
        def lookup(ref: str) -> str | None:
            if ref in KEEP_REFS:
                return "$$" + ref
            return self.raw(ref)
        return expand(self.raw(name) or "", lookup)


def read(postfix_dir: str, site: Site) -> None:
    path = os.path.join(postfix_dir, "main.cf")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            entries = parse_text(fh.read(), path)
    except OSError as exc:
        raise ConfigError(f"cannot read main.cf: {exc.strerror}", file=path) from None
    main = MainCf(entries, postfix_dir)
    services = _master(postfix_dir, site)
    _Translator(main, services, postfix_dir, site).run()


def _master(postfix_dir: str, site: Site) -> list[master_cf.Service]:
    path = os.path.join(postfix_dir, "master.cf")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return master_cf.parse(fh.read(), path)
    except OSError:
        site.report.dropped("master.cf", "not found: listeners follow Postfix's defaults (smtp on port 25)")
        return [master_cf.Service("smtp", "inet", "smtpd", ())]


class _Translator:
    def __init__(self, main: MainCf, services: list[master_cf.Service], postfix_dir: str, site: Site) -> None:
        self.main = main
        self.services = services
        self.by_name = {s.name: s for s in services}
        self.dir = postfix_dir
        self.site = site
        self.report = site.report
        self.done: set[str] = set()
        self._listen_origins: set[tuple[str, int]] = set()  # (parameter, master.cf line)

    def run(self) -> None:
        self._listeners()
        for name in MAP_PARAMS:
            if name in self.main.entries:
                self._maps(name)
        self._uid_maps()
        self._cyrus()
        self._delivery()
        self._content_filter()
        classes = split_list(self.main.value("smtpd_restriction_classes"))
        for name in (*RESTRICTION_PARAMS, *classes):
            if name in self.main.entries:
                self._restrictions(name)
        self._generic()

    # --- master.cf ------------------------------------------------------------------------------
    def _listen_hosts(self) -> list[str]:
        value = self.main.value("inet_interfaces").strip() or "all"
        self.done.add("inet_interfaces")
        if value.lower() == "all":
            hosts = [""]
        elif value.lower() in ("loopback-only", "localhost"):
            hosts = ["127.0.0.1", "[::1]"]
        else:
            hosts = [f"[{h}]" if ":" in h else h for h in split_list(value)]
        if "inet_interfaces" in self.main.entries:
            self.report.translated(self.main.where("inet_interfaces"), "the addresses of the SMTP listeners "
                                   f"master.cf names by port: {', '.join(h or '(all)' for h in hosts)}")
        return hosts

    def _listeners(self) -> None:
        hosts = self._listen_hosts()
        listens: dict[str, list[str]] = {}
        for svc in self.services:
            where = f"master.cf:{svc.line} {svc.name}"
            if svc.type == "inet" and svc.command == "smtpd":
                self._smtpd_service(svc, where, hosts, listens)
            elif svc.type == "inet" and svc.command == "postscreen":
                self.report.dropped(where, "postscreen: pymailsrv's smtpd takes the connections itself "
                                    "(postscreen_* tests are not run)")
                self._smtpd_service(svc, where, hosts, listens)
            elif svc.name in self._content_filter_services():
                self.report.translated(where, f"{svc.command} transport of a content filter: content_filter")
            elif svc.name in _BUILT_IN or svc.command in _BUILT_IN:
                self.report.translated(where, f"{svc.command}: built into pymailsrv")
            elif svc.command in ("pipe", "spawn"):
                self._pipe_service(svc, where)
            else:
                self.report.dropped(where, f"{svc.type} {svc.command} service has no pymailsrv counterpart")
        for param, items in listens.items():
            lines = sorted({w for p, w in self._listen_origins if p == param})
            self.site.set(param, ", ".join(items), "master.cf:" + ",".join(map(str, lines)))

    def _smtpd_service(self, svc: master_cf.Service, where: str, hosts: list[str],
                       listens: dict[str, list[str]]) -> None:
        host, _, port_name = svc.name.rpartition(":")
        port = _PORTS.get(port_name) or (int(port_name) if port_name.isdigit() else None)
        wrapper = svc.overrides.get("smtpd_tls_wrappermode", "no").lower() == "yes"
        if port is None:
            self.report.dropped(where, f"unknown port {port_name!r}")
            return
        # 127.0.0.1:10025 with content_filter off: mail back from a content filter
        if host and svc.overrides.get("content_filter", None) == "":
            listens.setdefault("reinject_listen", []).append(f"{host}:{port}")
            self._listen_origins.add(("reinject_listen", svc.line))
            self.report.translated(where, f"reinject_listen = {host}:{port} (mail back from the "
                                   "content filter, from mynetworks, not filtered again)")
            for key, value in svc.overrides.items():
                self.report.translated(f"{where} -o {key}={value}", "the reinject listener's own behaviour "
                                       "(mynetworks only, no content_filter, no restriction lists)")
            return
        param = "smtps_listen" if wrapper or port_name in ("smtps", "submissions") else (
            "submission_listen" if port_name == "submission" else "smtpd_listen")
        items = [f"{host}:{port}"] if host else [f"{h}:{port}" if h else str(port) for h in hosts]
        listens.setdefault(param, []).extend(items)
        self._listen_origins.add((param, svc.line))
        self.report.translated(where, f"{param} = {', '.join(items)}")
        builtin = _SUBMISSION_BUILT_IN if param != "smtpd_listen" else {"syslog_name"}
        self._overrides(svc, where, builtin)

    def _overrides(self, svc: master_cf.Service, where: str, builtin: set[str]) -> None:
        for key, value in svc.overrides.items():
            if key in builtin:
                self.report.translated(f"{where} -o {key}={value}", "what this listener does anyway")
            elif key == "content_filter" and svc.name == "smtp" and "content_filter" not in self.main.entries:
                self.site.set("content_filter", self._filter_target(value, where), where)
                self.report.translated(f"{where} -o content_filter={value}", "content_filter (every "
                                       "message received over SMTP; pymailsrv filters submission too)")
            else:
                self.report.dropped(f"{where} -o {key}={value}",
                                    "pymailsrv has no per-listener parameter overrides")

    def _pipe_service(self, svc: master_cf.Service, where: str) -> None:
        argv = svc.argv()
        program = os.path.basename(master_cf.split_argv(argv)[0]) if argv else svc.command
        if program in ("deliver", "dovecot-lda"):
            self.report.translated(where, "Dovecot's LDA: pymailsrv delivers into the same Maildirs itself")
        elif program == "maildrop":
            self.report.translated(where, "maildrop: pymailsrv delivers into the Maildirs itself; "
                                   "maildrop's mailfilter rules are NOT applied")
        elif "postgrey" in program:
            self.report.translated(where, "postgrey: the built-in check_greylist")
        else:
            self.report.dropped(where, f"runs {program or svc.command}: pymailsrv runs no external programs")

    def _content_filter_services(self) -> set[str]:
        return {s.name for s in self.services if s.command in ("smtp", "lmtp") and s.type == "unix"
                and s.name not in _BUILT_IN}

    # --- maps -----------------------------------------------------------------------------------
    def _maps(self, name: str) -> None:
        self.done.add(name)
        where = self.main.where(name)
        kept: list[str] = []
        for item in split_list(self.main.value(name)):
            spec = item[6:] if item.lower().startswith("proxy:") else item
            kind, colon, path = spec.partition(":")
            kind = kind.lower()
            if not colon or kind not in (*TABLE_TYPES, "proxy"):
                if colon and not item.startswith("/"):
                    self.report.dropped(f"{where} {item}", f"table type {kind!r} is not supported")
                else:
                    kept.append(item)  # a domain name, or a file of names
                continue
            if kind in SQL_TYPES and self._pfa_map(name, kind, path, where):
                continue
            kept.append(spec)
        if kept or not self.main.value(name).strip():
            if name in PARAMETERS:
                self.site.set(name, ", ".join(kept), where)
                self.report.carried(where, ", ".join(kept) or "(empty)")
            else:
                self.report.dropped(where, "no such parameter in pymailsrv")

    def _pfa_map(self, name: str, kind: str, path: str, where: str) -> bool:
        """True when the map reads PostfixAdmin's tables (pymailsrv's Directory answers it)."""
        full = path if os.path.isabs(path) else os.path.join(self.dir, path)
        try:
            with open(full, encoding="utf-8", errors="surrogateescape") as fh:
                values = parse_cf(fh.read(), full)
            cfg = SqlTableConfig.from_cf(kind, values, full)
        except (OSError, ConfigError) as exc:
            self.report.dropped(f"{where} {kind}:{path}", f"cannot read it: {exc}", blocking=True)
            return True
        found = sql.tables(cfg.query)
        if not found.pfa or found.others or name not in _SERVED_BY:
            return False
        db = sql.from_postfix_cf(kind, values)
        self.site.database(db, f"{kind}:{path}")
        if found.prefix:
            self.site.table_prefixes.append((found.prefix, f"{kind}:{path}"))
        if name == "virtual_mailbox_maps":
            self._virtual_base(where)
        self.report.translated(f"{where} {kind}:{os.path.basename(path)}",
                               f"PostfixAdmin's {', '.join(sorted(found.pfa))}: answered by {_SERVED_BY[name]} "
                               "from database_url")
        return True

    def _virtual_base(self, where: str) -> None:
        base = self.main.value("virtual_mailbox_base").strip()
        if "virtual_mailbox_base" in self.done or not base:
            return
        self.done.add("virtual_mailbox_base")
        where = self.main.where("virtual_mailbox_base")
        if self._delivers_virtual():
            self.site.postfix_maildirs.append((base.rstrip("/") + "/{maildir}", where))
        else:
            self.report.dropped(where, f"{base}: Postfix hands mail to {self.main.value('virtual_transport')}, so "
                                "where that agent (Dovecot) puts it decides virtual_mailbox_base")

    def _uid_maps(self) -> None:
        for name in ("virtual_uid_maps", "virtual_gid_maps", "virtual_minimum_uid"):
            if name not in self.main.entries:
                continue
            self.done.add(name)
            value = self.main.value(name)
            m = re.fullmatch(r"static:\s*(\d+)", value.strip())
            what = "uid" if "uid" in name else "gid"
            if m:
                self.site.run_as.append(f"{what} {m.group(1)} ({name})")
            if name in PARAMETERS:
                self.site.set(name, value, self.main.where(name))
            self.report.translated(self.main.where(name), f"pymailsrv writes Maildirs as the user it runs as: "
                                   f"run it as {what} {m.group(1) if m else value}")

    # --- SASL -----------------------------------------------------------------------------------
    def _cyrus(self) -> None:
        """Cyrus SASL's smtpd.conf says whom Postfix authenticated: PostfixAdmin's mailboxes (auxprop
        sql over the mailbox table) are pymailsrv's users too; sasldb2 or saslauthd's users are not."""
        if self.main.value("smtpd_sasl_type").strip() not in ("", "cyrus"):
            return
        self.done.add("cyrus_sasl_config_path")
        dirs = self.main.value("cyrus_sasl_config_path").split(":") if "cyrus_sasl_config_path" in \
            self.main.entries else [os.path.join(self.dir, "sasl"), "/usr/lib/sasl2", "/etc/sasl2"]
        name = (self.main.value("smtpd_sasl_path").strip() or "smtpd") + ".conf"
        for d in dirs:
            path = os.path.join(d, name)
            try:
                with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                    text = fh.read()
            except OSError:
                continue
            lines = [ln.partition(":") for ln in text.splitlines() if ":" in ln and not ln.lstrip().startswith("#")]
            opts = {k.strip().lower(): v.strip() for k, _, v in lines}
            self._cyrus_method(opts, path)
            return
        if self.main.value("smtpd_sasl_auth_enable").strip().lower() == "yes":
            self.report.dropped(f"cyrus SASL {name}", "not found: pymailsrv checks SMTP AUTH against the database's "
                                "mailboxes")

    def _cyrus_method(self, opts: dict[str, str], path: str) -> None:
        method = opts.get("pwcheck_method", "auxprop")
        where = f"{path} pwcheck_method: {method}"
        select = opts.get("sql_select", "")
        if method == "auxprop" and opts.get("auxprop_plugin", "") == "sql" and "mailbox" in sql.tables(select).pfa:
            self.report.translated(where, "auxprop sql over PostfixAdmin's mailbox table: pymailsrv checks SMTP "
                                   "AUTH against the same rows")
        else:
            self.report.dropped(where, "pymailsrv checks SMTP AUTH against PostfixAdmin's mailboxes only: "
                                "users that exist only in sasldb2 or behind saslauthd (PAM, IMAP…) can no "
                                "longer authenticate")
        mechs = [m for m in opts.get("mech_list", "").upper().split() if m not in ("PLAIN", "LOGIN")]
        if mechs:
            self.report.dropped(f"{path} mech_list", f"{' '.join(mechs)}: pymailsrv offers PLAIN and LOGIN")

    # --- delivery -------------------------------------------------------------------------------
    def _delivers_virtual(self) -> bool:
        return (self.main.value("virtual_transport").strip() or "virtual") == "virtual"

    def _delivery(self) -> None:
        for name in ("virtual_transport", "mailbox_transport", "local_transport", "default_transport",
                     "relay_transport"):
            if name not in self.main.entries:
                continue
            self.done.add(name)
            value = self.main.value(name).strip()
            kind = value.partition(":")[0]
            svc = self.by_name.get(kind)
            argv = svc.argv() if svc else ""
            where = self.main.where(name)
            if name in ("default_transport", "relay_transport") and kind in ("smtp", "relay"):
                self.report.translated(where, "outbound SMTP is built in")
            elif name != "virtual_transport":
                self.report.dropped(where, f"{value}: only virtual mailboxes (the database) are delivered to")
            elif kind == "virtual":
                self.report.translated(where, "virtual(8): pymailsrv delivers into the Maildirs itself")
            elif kind == "lmtp" or "dovecot" in kind or "deliver" in argv:
                self.report.translated(where, f"{value}: Dovecot's LMTP/LDA (assumed); pymailsrv delivers into "
                                       "the same Maildirs itself (UIDs and maildirsize kept)")
            elif "maildrop" in kind or "maildrop" in argv:
                self.report.translated(where, f"{value}: maildrop; pymailsrv delivers into the Maildirs "
                                       "itself; mailfilter rules are NOT applied")
            else:
                self.report.dropped(where, f"{value}: pymailsrv delivers virtual mailboxes into Maildirs itself",
                                    blocking=True)

    def _content_filter(self) -> None:
        if "content_filter" not in self.main.entries:
            return
        self.done.add("content_filter")
        where = self.main.where("content_filter")
        value = self.main.value("content_filter").strip()
        if value:
            self.site.set("content_filter", self._filter_target(value, where), where)
        else:
            self.report.carried(where, "(empty)")

    def _filter_target(self, value: str, where: str) -> str:
        kind, _, dest = value.partition(":")
        svc = self.by_name.get(kind)
        if svc is not None and svc.command in ("smtp", "lmtp") and kind != svc.command:
            target = f"{svc.command}:{dest}"
            self.report.translated(where, f"{value} (master.cf service {kind!r} is {svc.command}) → {target}")
            if svc.overrides:
                self.report.dropped(f"master.cf:{svc.line} {kind} -o {', '.join(svc.overrides)}",
                                    "per-transport overrides are not applied")
            return target
        self.report.carried(where, value)
        return value

    # --- restrictions ---------------------------------------------------------------------------
    def _restrictions(self, name: str) -> None:
        from pymailsrv.policy.builtins import BUILTINS

        self.done.add(name)
        where = self.main.where(name)
        classes = set(split_list(self.main.value("smtpd_restriction_classes")))
        items = split_list(self.main.for_pymailsrv(name))
        out: list[str] = []
        i = 0
        while i < len(items):
            word, i = items[i], i + 1
            spec = BUILTINS.get(word.lower())
            if word in classes:
                out.append(word)
                continue
            if spec is None:
                arg = items[i] if i < len(items) and ":" in items[i] else ""
                i += 1 if arg else 0
                self.report.dropped(f"{where} {word} {arg}".rstrip(), "no such restriction in pymailsrv")
                continue
            if not spec.takes_arg:
                out.append(word)
                continue
            arg = items[i] if i < len(items) else ""
            i += 1
            kind = arg.removeprefix("proxy:").partition(":")[0].lower() if ":" in arg else ""
            if kind and kind not in (*TABLE_TYPES, "inet", "unix") and word.lower() != "check_policy_service":
                self.report.dropped(f"{where} {word} {arg}", f"table type {kind!r} is not supported")
                continue
            replaced = self._policy_service(word, arg, f"{where} {word} {arg}")
            out.extend(replaced if replaced is not None else [f"{word} {arg}"])
        self.site.set(name, ", ".join(out), f"main.cf:{self.main.entries[name].line}")
        if name not in RESTRICTION_PARAMS:
            self.report.carried(where, "a restriction class of smtpd_restriction_classes")

    def _policy_service(self, word: str, arg: str, where: str) -> list[str] | None:
        """check_policy_service to postgrey → check_greylist; to Dovecot's quota-status → dropped;
        to a spawn service in master.cf → dropped (pymailsrv starts no programs)."""
        if word.lower() != "check_policy_service":
            return None
        svc = self.by_name.get(arg.removeprefix("unix:").removeprefix("private/")) if "private/" in arg else None
        argv = svc.argv() if svc else ""
        if "postgrey" in argv or arg.endswith(":10023") or "postgrey" in arg:
            for other in self.services:  # postgrey's options, where master.cf starts it
                if "postgrey" in other.argv():
                    self._postgrey_options(other.argv(), f"master.cf:{other.line} {other.name}")
            self.report.translated(where, "postgrey → check_greylist (pymailsrv's own greylisting)")
            return ["check_greylist"]
        if arg.endswith(":12340") or "quota-status" in arg or "quota-status" in argv:
            self.report.dropped(where, "Dovecot's quota-status: pymailsrv applies the quota when it delivers "
                                "(virtual_overquota_bounce)")
            return []
        if svc is not None and svc.command == "spawn":
            self.report.dropped(where, f"a policy server master.cf spawns ({argv}): start it on its own and "
                                "point check_policy_service at its inet: address")
            return []
        self.report.carried(where)
        return None

    def _postgrey_options(self, argv: str, where: str) -> None:
        for word in master_cf.split_argv(argv):
            key, eq, value = word.removeprefix("--").partition("=")
            if eq and key in _POSTGREY_OPTS:
                param, unit = _POSTGREY_OPTS[key]
                self.site.set(param, value + unit if value.isdigit() else value, where)
                self.report.translated(f"{where} --{key}={value}", param)

    # --- everything else ------------------------------------------------------------------------
    def _generic(self) -> None:
        for name, entry in self.main.entries.items():
            if name in self.done:
                continue
            where = f"main.cf:{entry.line} {name}"
            if name in _WHY:
                self.report.dropped(where, _WHY[name])
            elif name in PARAMETERS:
                value = self.main.for_pymailsrv(name)
                self.site.set(name, value, f"main.cf:{entry.line}")
                self.report.carried(where, "" if value == entry.value else f"as {value}")
            elif any(part in name for part in _MISSING):
                self.report.dropped(where, next(why for part, why in _MISSING.items() if part in name))
            elif name.startswith(("smtpd_tls_", "smtp_tls_", "tls_")):
                self.report.dropped(where, "TLS settings beyond certificate, key and security level are "
                                    "Python's ssl defaults")
            else:
                self.report.dropped(where, "no such parameter in pymailsrv")
