"""Dovecot's dovecot.conf (with its includes) and dovecot-sql.conf.ext → pymailsrv parameters.

Implementation notes:
- passdb/userdb ``driver = sql`` read PostfixAdmin's mailbox table: pymailsrv's Directory reads the
  same rows from ``database_url`` (the SQL connection Dovecot used); other drivers (PAM, passwd)
  serve system users, which pymailsrv does not;
- the Maildir path Dovecot used (user_query's home/mail, mail_location) must be
  virtual_mailbox_base + mailbox.maildir for pymailsrv to find the same folders and UIDs.
"""

from __future__ import annotations

import os
import re

from pymailsrv.config.params import PARAMETERS
from pymailsrv.errors import ConfigError
from pymailsrv.migrate import dovecot_conf as dc
from pymailsrv.migrate import sql
from pymailsrv.migrate.site import Site

_CARRY = ("disable_plaintext_auth", "login_trusted_networks", "auth_failure_delay", "imap_idle_notify_interval",
          "pop3_uidl_format", "mail_max_userip_connections")
# Settings Dovecot may set per protocol: the protocol sections pymailsrv's one value comes from.
_PROTOCOL_KEYS = {"mail_max_userip_connections": ("imap", "pop3"), "pop3_uidl_format": ("pop3",),
                  "imap_idle_notify_interval": ("imap",)}
_HANDLED = {"protocols", "listen", "ssl", "ssl_cert", "ssl_key", "auth_mechanisms", "mail_location", "mail_home",
            "mail_uid", "mail_gid", "mail_plugins", *_CARRY}
_WHY = {
    "auth_username_format": "logins are looked up stripped and lower-cased (as %Lu)",
    "first_valid_uid": "pymailsrv runs as one user that owns every Maildir",
    "last_valid_uid": "pymailsrv runs as one user that owns every Maildir",
    "first_valid_gid": "pymailsrv runs as one user that owns every Maildir",
    "mail_privileged_group": "pymailsrv runs as one user that owns every Maildir",
    "mail_access_groups": "pymailsrv runs as one user that owns every Maildir",
    "default_internal_user": "pymailsrv runs as one user that owns every Maildir",
    "default_login_user": "pymailsrv runs as one user that owns every Maildir",
    "auth_default_realm": "logins are full addresses, as PostfixAdmin stores them",
    "ssl_min_protocol": "TLS versions are Python's ssl defaults (TLS 1.2 and later)",
    "ssl_cipher_list": "ciphers are Python's ssl defaults",
    "ssl_prefer_server_ciphers": "ciphers are Python's ssl defaults",
}
_HARMLESS = {"log_path", "info_log_path", "debug_log_path", "syslog_facility", "log_timestamp", "base_dir",
             "state_dir", "instance_name", "login_greeting", "postmaster_address", "hostname", "dict",
             "ssl_dh", "ssl_client_ca_dir", "ssl_client_ca_file", "lda_mailbox_autocreate",
             "lda_mailbox_autosubscribe", "recipient_delimiter", "lmtp_save_to_detail_mailbox"}
_PORTS = {"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995}
_VARS = {"%{user}": "%u", "%{username}": "%n", "%{domain}": "%d", "%Lu": "%u", "%Ln": "%n", "%Ld": "%d",
         "%{home}": "%h", "%{user | lower}": "%u"}


def read(dovecot_dir: str, site: Site) -> None:
    path = os.path.join(dovecot_dir, "dovecot.conf")
    root = dc.load(path)
    _Translator(root, dovecot_dir, site).run()


def _short(s: dc.Setting | dc.Section, key: str = "") -> str:
    file = os.path.basename(s.file) if s.file else "dovecot.conf"
    return f"{file}:{s.line} {key}".rstrip()


class _Translator:
    def __init__(self, root: dc.Section, dovecot_dir: str, site: Site) -> None:
        self.root = root
        self.dir = dovecot_dir
        self.site = site
        self.report = site.report
        self.home = ""  # the userdb's home template
        self.mail = ""  # the userdb's mail (overrides mail_location)

    def run(self) -> None:
        self._auth_dbs()
        self._listeners()
        self._tls()
        self._carried()
        self._mail_location()
        self._plugins()
        self._rest()

    # --- passdb / userdb ------------------------------------------------------------------------
    def _auth_dbs(self) -> None:
        for kind in ("passdb", "userdb"):
            for sec in self.root.find(kind):
                driver = sec.value("driver")
                where = _short(sec, f"{kind} {driver}")
                if driver == "sql":
                    self._sql(kind, sec.value("args"), where)
                elif driver == "static" and kind == "userdb":
                    args = dict(a.split("=", 1) for a in sec.value("args").split() if "=" in a)
                    self.home = args.get("home", self.home)
                    self.mail = args.get("mail", self.mail)
                    if "uid" in args:
                        self.site.run_as.append(f"uid {args['uid']} (userdb static)")
                    self.report.translated(where, "fixed uid/gid/home for every user: pymailsrv writes as the "
                                           "user it runs as, under virtual_mailbox_base")
                elif driver == "prefetch":
                    self.report.translated(where, "the passdb's user fields: pymailsrv reads mailbox rows once")
                else:
                    self.report.dropped(where, f"{driver or 'no'} driver: pymailsrv serves PostfixAdmin's "
                                        "virtual users from the database only, not system or file users",
                                        blocking=True)

    def _sql(self, kind: str, args: str, where: str) -> None:
        path = args.strip()
        if not os.path.isabs(path):
            path = os.path.join(self.dir, path)
        try:
            conf = dc.load_flat(path)
        except ConfigError as exc:
            self.report.dropped(where, f"cannot read {path}: {exc}", blocking=True)
            return
        name = os.path.basename(path)
        driver, connect = conf.value("driver"), conf.value("connect")
        db = sql.from_dovecot(driver, connect)
        if db is None:
            self.report.dropped(f"{name} driver", f"{driver!r} databases are not supported", blocking=True)
        elif not any(w.startswith(name) for _, w in self.site.databases):
            self.site.database(db, f"{name} connect")
        scheme = conf.get("default_pass_scheme")
        if scheme is not None and "default_pass_scheme" not in self.site.values:
            self.site.set("default_pass_scheme", scheme.value, f"{name}:{scheme.line}")
            self.report.carried(f"{name}:{scheme.line} default_pass_scheme", scheme.value)
        key = "password_query" if kind == "passdb" else "user_query"
        query = conf.get(key)
        if query is not None:
            self._query(kind, query, f"{name}:{query.line} {key}")
        if kind == "passdb":  # the file's other settings, once
            for other, s in conf.settings.items():
                if other in ("driver", "connect", "default_pass_scheme", "password_query", "user_query"):
                    continue
                why = ("pymailsrv lists users from the mailbox table itself" if other == "iterate_query"
                       else "no pymailsrv counterpart")
                self.report.dropped(f"{name}:{s.line} {other}", why)

    def _query(self, kind: str, query: dc.Setting, where: str) -> None:
        found = sql.tables(query.value)
        if "mailbox" not in found.pfa or found.others:
            self.report.dropped(where, "does not read PostfixAdmin's mailbox table: pymailsrv reads "
                                "mailbox.password and mailbox.maildir only", blocking=True)
            return
        if found.prefix:
            self.site.table_prefixes.append((found.prefix, where))
        extra = [c for c in ("password_expiry", "domain.active", "expir") if c in query.value.lower()]
        text = ("PostfixAdmin's mailbox rows (active = 1): pymailsrv's Directory reads the same"
                + (f"; conditions on {', '.join(extra)} are NOT applied" if extra else ""))
        self.report.translated(where, text)
        self._user_fields(query.value, where)  # a password_query may carry userdb_ fields (prefetch)

    def _user_fields(self, query: str, where: str) -> None:
        for field in ("home", "mail"):
            m = re.search(rf"(?:CONCAT\s*\(\s*'([^']*)'\s*,\s*([\w.]*maildir)\s*\)|'([^']*)'\s*\|\|\s*([\w.]*maildir)"
                          rf"|'([^']*)')\s+AS\s+(?:userdb_)?{field}\b", query, re.I)
            if m:
                prefix = m.group(1) if m.group(1) is not None else m.group(3)
                template = prefix + "{maildir}" if prefix is not None else (m.group(5) or "")
                if field == "home":
                    self.home = template
                else:
                    self.mail = template
        if re.search(r"AS\s+(?:userdb_)?quota_rule", query, re.I):
            if re.search(r"bytes=.*quota|quota.*AS\s+quota_rule", query, re.I | re.S):
                self.report.translated(f"{where} quota_rule", "mailbox.quota in bytes: pymailsrv's quota "
                                       "(Maildir++ maildirsize, as Dovecot's maildir quota)")
            else:
                self.report.dropped(f"{where} quota_rule", "only *:bytes=<mailbox.quota> quotas are read")

    # --- listeners and TLS ----------------------------------------------------------------------
    def _protocols(self) -> list[str]:
        s = self.root.get("protocols")
        text = s.value if s is not None else "imap pop3 lmtp"
        return list(dict.fromkeys(text.split()))

    def _listeners(self) -> None:
        protocols = self._protocols()
        where = _short(self.root.get("protocols") or self.root, "protocols")
        ssl = self.root.value("ssl", "yes").lower()
        hosts = [h.strip() for h in self.root.value("listen", "*, ::").replace(",", " ").split()]
        if set(hosts) <= {"*", "::", "[::]"}:
            hosts = [""]
        for proto in protocols:
            if proto not in ("imap", "pop3"):
                why = {"lmtp": "Postfix's delivery into Dovecot is replaced by pymailsrv's own SMTP and delivery",
                       "sieve": "ManageSieve is not provided", "submission": "submission_listen (Postfix's "
                       "submission service) is the submission server"}.get(proto, "not provided")
                self.report.dropped(f"{where} {proto}", why)
                continue
            login = self.root.merged("service", f"{proto}-login")
            for name in (proto, proto + "s"):
                if name.endswith("s") and ssl == "no":
                    continue
                self._listener(login, name, hosts)

    def _listener(self, login: dc.Section, name: str, hosts: list[str]) -> None:
        port = _PORTS[name]
        lsn = login.merged("inet_listener", name)
        if lsn.get("port") is not None:
            port = int(lsn.value("port") or 0)
        if port == 0:
            self.report.translated(_short(lsn, f"{name} port = 0"), f"{name}_listen left off")
            return
        addr = lsn.value("address")
        listen_hosts = [h.strip() for h in addr.replace(",", " ").split()] if addr else hosts
        items = [str(port) if h in ("", "*", "::") else (f"[{h}]:{port}" if ":" in h else f"{h}:{port}")
                 for h in listen_hosts]
        items = list(dict.fromkeys(items))
        origin = _short(lsn, f"service {login.name} inet_listener {name}") if lsn.file else \
            f"protocols {name.rstrip('s')} ({name} on its default port)"
        self.site.set(f"{name}_listen", ", ".join(items), origin)
        self.report.translated(origin, f"{name}_listen = {', '.join(items)}")

    def _tls(self) -> None:
        for key, param in (("ssl_cert", "tls_cert_file"), ("ssl_key", "tls_key_file")):
            s = self.root.get(key)
            if s is None:
                continue
            if not s.value.startswith("<"):
                self.report.dropped(_short(s, key), f"the PEM is in the configuration: write it to a file and set "
                                    f"{param}", blocking=True)
                continue
            self.site.set(param, s.value[1:].strip(), _short(s))
            self.report.translated(_short(s, key), f"{param} = {s.value[1:].strip()}")
        ssl = self.root.get("ssl")
        if ssl is not None and ssl.value.lower() == "required":
            self.site.set("disable_plaintext_auth", "yes", _short(ssl))
            self.report.translated(_short(ssl, "ssl = required"), "disable_plaintext_auth = yes (PLAIN and "
                                   "LOGIN, the only mechanisms, need TLS)")
        mechs = self.root.value("auth_mechanisms", "plain").lower().split()
        other = [m for m in mechs if m not in ("plain", "login")]
        if self.root.get("auth_mechanisms") is not None and len(other) < len(mechs):
            self.report.carried(_short(self.root.get("auth_mechanisms") or self.root, "auth_mechanisms"),
                                "PLAIN and LOGIN are what pymailsrv offers")
        if other:
            self.report.dropped(_short(self.root.get("auth_mechanisms") or self.root, "auth_mechanisms"),
                                f"{' '.join(other)}: pymailsrv offers PLAIN and LOGIN")

    def _carried(self) -> None:
        for key in _CARRY:
            s = self.root.get(key)
            found = [x for x in (self.root.merged("protocol", p).get(key) for p in _PROTOCOL_KEYS.get(key, ()))
                     if x is not None]
            if found:  # one value for IMAP and POP3: the larger limit, so no session allowed before is refused
                s = max(found, key=lambda x: int(x.value) if x.value.isdigit() else 0)
            if s is None:
                continue
            if key == "disable_plaintext_auth" and "disable_plaintext_auth" in self.site.values:
                continue
            self.site.set(key, s.value, _short(s))
            self.report.carried(_short(s, key), s.value)

    # --- Maildirs -------------------------------------------------------------------------------
    def _mail_location(self) -> None:
        loc = self.root.get("mail_location")
        mail_home = self.root.get("mail_home")
        home = self.home or (mail_home.value if mail_home else "")
        location = self.mail or (loc.value if loc else "")
        where = "userdb mail" if self.mail else _short(loc or self.root, "mail_location")
        if not location:
            self.report.dropped(where, "no mail_location: Dovecot found the mail by itself; pymailsrv needs "
                                "virtual_mailbox_base", blocking=True)
            return
        fmt, _, rest = location.partition(":") if ":" in location.split("/")[0] else ("maildir", "", location)
        if fmt != "maildir":
            self.report.dropped(where, f"{fmt}: pymailsrv reads Maildirs only", blocking=True)
            return
        path, *opts = rest.split(":")
        for opt in opts:
            key = opt.partition("=")[0].upper()
            if key in ("INDEX", "INDEXPVT", "VOLATILEDIR"):
                self.report.translated(f"{where} {key}", "Dovecot's index files are not read (pymailsrv keeps "
                                       "its own; UIDs come from dovecot-uidlist)")
            elif key == "CONTROL":
                self.report.dropped(f"{where} {key}", "dovecot-uidlist lives in the CONTROL directory: pymailsrv "
                                    "reads it in the Maildir; move the files there or UIDs change", blocking=True)
            elif key == "LAYOUT" and opt.partition("=")[2].lower() != "maildir++":
                self.report.dropped(f"{where} {opt}", "pymailsrv's folders are Maildir++ (.Folder)", blocking=True)
            elif key in ("DIRNAME", "FULLDIRNAME", "MAILBOXDIR"):
                self.report.dropped(f"{where} {opt}", "pymailsrv finds folders as Maildir++ .Folder directories "
                                    "of the Maildir itself", blocking=True)
            elif key == "UTF-8":
                self.report.dropped(f"{where} {opt}", "folder names are kept in UTF-8 on disk; pymailsrv reads "
                                    "Dovecot's default (modified UTF-7): folders with non-ASCII names look different")
            else:
                self.report.dropped(f"{where} {opt}", "not applied")
        if path.startswith("~"):
            path = home.rstrip("/") + path[1:] if home else path
        for long, short in _VARS.items():
            path = path.replace(long, short)
        self.site.dovecot_maildirs.append((path.replace("%h", home.rstrip("/")), where))
        for key in ("mail_uid", "mail_gid"):
            s = self.root.get(key)
            if s is not None:
                self.site.run_as.append(f"{key[5:]} {s.value} ({key})")
        for ns in self.root.find("namespace"):
            sep, prefix = ns.get("separator"), ns.get("prefix")
            if sep is not None and sep.value not in ("", "."):
                self.report.dropped(_short(sep, "separator"), f"{sep.value!r}: pymailsrv's hierarchy separator is "
                                    "'.'; clients see folder names with '.' instead")
            if prefix is not None and prefix.value:
                self.report.dropped(_short(prefix, "prefix"), f"{prefix.value!r}: pymailsrv shows folders "
                                    "without a namespace prefix")

    def _plugins(self) -> None:
        plugins: dict[str, str] = {}
        sources = [self.root, *self.root.find("protocol")]
        for sec in sources:
            s = sec.get("mail_plugins")
            if s is not None:
                for p in s.value.split():
                    plugins.setdefault(p, _short(s, "mail_plugins"))
        settings: dict[str, dc.Setting] = {}
        for sec in self.root.find("plugin"):
            settings.update(sec.settings)
        for plugin, where in plugins.items():
            if plugin in ("quota", "imap_quota"):
                continue
            if plugin == "sieve" and "sieve_user_scripts" in PARAMETERS:
                self.site.sieve = True
                self.report.translated(f"{where} sieve", "pymailsrv runs Sieve at delivery itself")
            elif plugin == "sieve":
                self.report.dropped(f"{where} sieve", "Sieve filters are not run at delivery (yet)")
            else:
                self.report.dropped(f"{where} {plugin}", "plugin not provided")
        if "quota" in plugins:
            self._quota(settings, plugins["quota"])
        for key, s in settings.items():
            if key.startswith("quota"):
                continue
            if key in PARAMETERS:  # Pigeonhole's names where pymailsrv has them (sieve_before, …)
                self.site.set(key, s.value, _short(s))
                self.report.carried(_short(s, f"plugin {key}"), s.value)
            else:
                self.report.dropped(_short(s, f"plugin {key}"), "plugin setting not applied")

    def _quota(self, settings: dict[str, dc.Setting], where: str) -> None:
        backend = settings.get("quota")
        if backend is None or backend.value.startswith("maildir"):
            self.report.translated(f"{where} quota", "Maildir++ quota (maildirsize), kept by pymailsrv too; limit "
                                   "from mailbox.quota")
        else:
            self.report.translated(_short(backend, "quota"), f"{backend.value}: pymailsrv counts usage in "
                                   "maildirsize; the dict/SQL usage (PostfixAdmin's quota2) is no longer updated")
        for key, s in settings.items():
            if key.startswith("quota") and key in PARAMETERS:  # quota_exceeded_message, where pymailsrv has it
                self.site.set(key, s.value, _short(s))
                self.report.carried(_short(s, f"plugin {key}"), s.value)
            elif key.startswith("quota") and key != "quota":
                why = ("a quota rule for users without one: pymailsrv treats mailbox.quota 0 as unlimited"
                       if key == "quota_rule" else "not applied")
                self.report.dropped(_short(s, f"plugin {key}"), f"{s.value}: {why}")

    def _rest(self) -> None:
        for key, s in self.root.settings.items():
            if key in _HANDLED:
                continue
            if key in _WHY:
                self.report.dropped(_short(s, key), _WHY[key])
            elif key in _HARMLESS:
                self.report.dropped(_short(s, key), "Dovecot's own (logging, paths, names): not needed")
            else:
                self.report.dropped(_short(s, key), "no pymailsrv counterpart")
        for sec in self.root.find("protocol"):
            for key, s in sec.settings.items():
                if key != "mail_plugins" and key not in _PROTOCOL_KEYS:
                    self.report.dropped(_short(s, f"protocol {sec.name} {key}"), "no pymailsrv counterpart")
        for sec in self.root.find("service"):
            if sec.settings or any(sub.settings for sub in sec.sections if sub.kind != "inet_listener"):
                self.report.dropped(_short(sec, f"service {sec.name}"), "Dovecot's process and socket settings: "
                                    "pymailsrv's processes are worker_processes, its sockets the *_listen ones")
