"""Site-wide parameters: names, paths, database, TLS files, logging, authentication, processes."""

import os

from pymailsrv.config.params.spec import Param
from pymailsrv.log import DEFAULT_JOURNAL_SOCKET, DEFAULT_SYSLOG_SOCKET, FACILITIES


def _one_per_core() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(cores, 4)


PARAMS = (
    Param("worker_processes", "int", "auto", "Processes beside the main one that serve SMTP, IMAP "
          "and POP3, to use more CPU cores: each accepts SMTP on every listener and delivers to local "
          "Maildirs itself; IMAP/POP3 connections are accepted by the main process and passed to "
          "the worker with the fewest sessions. The main process holds the listening sockets, the "
          "queue manager and the per-client counts. 0: the main process serves everything; auto: one per CPU core, "
          "at most 4, none on a single core.", minimum=0, auto=_one_per_core),
    Param("event_loop", "enum", "asyncio", "The event loop of the serving processes (the main one and "
          "every worker; one-shot commands use asyncio's): asyncio, the standard library's; uvloop (libuv, "
          "pip install 'pymailsrv[uvloop]'), measured on the same checkout at about 5% less CPU per message for "
          "one SMTP session, 8% for 20 sessions and none for IMAP, which is why it is not the default; auto: "
          "uvloop when it is installed, else asyncio. A reload keeps the loop; restart to change it.",
          choices=("auto", "uvloop", "asyncio")),
    # Postfix names (POSTFIX-SEMANTICS §2)
    Param("myhostname", "str", "", "This host's fully-qualified name (default: the machine's FQDN)."),
    Param("mydomain", "str", "", "The local domain (default: $myhostname minus its first label)."),
    Param("myorigin", "str", "$myhostname", "Domain appended to unqualified sender addresses."),
    Param("mydestination", "list", "$myhostname, localhost.$mydomain, localhost",
          "Domains delivered by the local transport (alias_maps apply)."),
    Param("mynetworks", "list", "", "Trusted client networks; empty = derived from mynetworks_style."),
    Param("mynetworks_style", "enum", "subnet", "How mynetworks is derived when empty.",
          choices=("host", "subnet", "class")),
    Param("inet_interfaces", "list", "all", "Interfaces the listeners bind to when a listen address "
          "has no host part."),
    Param("mail_name", "str", "pymailsrv", "The mail system name shown in banners and bounces."),
    Param("syslog_name", "str", "pymailsrv", "Program name in log lines (pymailsrv/smtpd[pid]: …)."),
    Param("recipient_delimiter", "str", "", "Separator of address extensions (user+ext@domain)."),
    Param("virtual_mailbox_base", "path", "$data_directory/vmail",
          "Root of the Maildirs; mailbox.maildir is relative to it."),
    Param("virtual_mailbox_domains", "list", "", "Extra virtual mailbox domains besides the database."),
    Param("virtual_alias_domains", "list", "", "Extra virtual alias domains besides the database."),
    Param("virtual_mailbox_maps", "list", "", "Extra virtual mailbox tables besides the database."),
    Param("virtual_alias_maps", "list", "", "Extra virtual alias tables besides the database."),
    Param("virtual_uid_maps", "list", "", "Accepted for compatibility; pymailsrv writes as its own user."),
    Param("virtual_gid_maps", "list", "", "Accepted for compatibility; pymailsrv writes as its own group."),
    Param("virtual_mailbox_limit", "size", "51200000", "Largest message the virtual agent delivers."),
    Param("alias_maps", "list", "", "Local aliases (/etc/aliases style) for mydestination domains."),
    Param("relay_domains", "list", "", "Domains we relay for (besides backup-MX domains in the database)."),
    Param("relayhost", "str", "", "Send all non-local mail through this host; [host]:port skips MX."),
    # pymailsrv's own
    Param("data_directory", "path", "/var/lib/pymailsrv", "Where pymailsrv keeps its state."),
    Param("queue_directory", "path", "$data_directory/spool", "The mail queue."),
    Param("database_url", "str", "sqlite+aiosqlite:///$data_directory/pymailsrv.db",
          "SQLAlchemy URL of the PostfixAdmin database (sqlite+aiosqlite, mysql+aiomysql, "
          "postgresql+asyncpg)."),
    Param("database_table_prefix", "str", "", "PostfixAdmin's $CONF['database_prefix']."),
    Param("database_pool_size", "int", "8",
          "Connections each process opens at most for directory lookups (MariaDB/MySQL, PostgreSQL); "
          "lookups arriving while all are busy go to the database together in one statement.",
          minimum=1),
    Param("directory_cache_ttl", "time", "5s",
          "How long a domain/alias/mailbox lookup result, found or not, is reused (password lookups "
          "never are); 0 disables the cache. Changes made with pymailsrv's admin commands or "
          "PostfixAdmin (which log them in its log table) reach every process within about a "
          "second; other direct SQL changes within this time. On a database server the list of a "
          "hosted domain's addresses is kept as long, so mail to unknown addresses costs no query."),
    Param("tls_cert_file", "file", "", "PEM certificate chain for every TLS listener."),
    Param("tls_key_file", "file", "", "PEM private key for tls_cert_file."),
    Param("log_file", "str", "", "Log file of the file log_target; empty = standard error."),
    Param("log_level", "enum", "info", "Logging level.",
          choices=("trace", "debug", "info", "warning", "error")),
    Param("log_target", "enum", "file",
          "Where every process (the main one and the workers) logs: file (log_file, or standard "
          "error when it is empty), syslog (syslog_address, as Postfix logs) or journald (the "
          "systemd journal's native protocol, with SYSLOG_IDENTIFIER=$syslog_name/smtpd etc. as "
          "fields; standard error with <N> severity prefixes where its socket is missing).",
          choices=("file", "syslog", "journald")),
    Param("syslog_facility", "enum", "mail", "The syslog facility of the syslog and journald targets.",
          choices=tuple(sorted(FACILITIES))),
    Param("syslog_address", "str", DEFAULT_SYSLOG_SOCKET,
          "Where the syslog target sends: a unix datagram socket path, or host[:port] for UDP "
          "(port 514; RFC 5426)."),
    Param("syslog_format", "enum", "rfc3164",
          "The syslog target's format: rfc3164 (the BSD format syslog(3) writes; with the host name "
          "over UDP) or rfc5424 (ISO timestamps, app name and process id fields).",
          choices=("rfc3164", "rfc5424")),
    Param("journald_socket", "str", DEFAULT_JOURNAL_SOCKET, "The journal's native socket (journald target)."),
    Param("default_pass_scheme", "str", "",
          "Scheme of stored passwords without a {SCHEME} prefix (Dovecot's default_pass_scheme); "
          "$1$ values are MD5-CRYPT whatever it says. Empty: the scheme that reads what "
          "postfixadmin_encrypt writes unprefixed (md5: MD5, cleartext: PLAIN, otherwise CRYPT)."),
    Param("postfixadmin_encrypt", "str", "md5crypt",
          "The site's PostfixAdmin $CONF['encrypt']: every password pymailsrv writes (mailbox add and "
          "passwd, pw hash, the demo) takes the form PostfixAdmin writes with it, so its user portal "
          "verifies it: md5crypt, md5, system, cleartext, mysql_encrypt, authlib, sha512.b64, "
          "php_crypt[:METHOD[:DIFFICULTY[:{PREFIX}]]], dovecot:SCHEME or (PostfixAdmin 4) a Dovecot "
          "scheme name. The default is PostfixAdmin 3.3's own: its unprefixed $1$ MD5-crypt is "
          "verified by PostfixAdmin 3.3 at its default and by PostfixAdmin 4 at its php_crypt default, "
          "and read by Dovecot whatever its default_pass_scheme, so mailboxes added here work at once "
          "in an existing site. It is "
          "a weak hash (1000 MD5 rounds): where PostfixAdmin is set to something stronger "
          "(php_crypt, PostfixAdmin 4's default; dovecot:SHA512-CRYPT; dovecot:ARGON2ID), name that "
          "here."),
    Param("quota_multiplier", "int", "1024000", "Bytes per 'MB' of quota, as PostfixAdmin.", minimum=1),
    Param("auth_failure_delay", "time", "2s",
          "How long a failed login waits for its answer, and the first step of the penalty a "
          "client address gets for failing: each failure from it within auth_failure_window "
          "doubles the wait before its next login is checked, up to 15s (Dovecot's auth "
          "penalty); a successful login from the address clears it."),
    Param("auth_failure_limit", "int", "10",
          "Failed logins for one user, from any addresses, within auth_failure_window after which "
          "that user is guarded: its logins from addresses that have failed lately and never "
          "logged in successfully are refused for a while (temporary failure). Addresses that "
          "logged in successfully in the last 7 days, or have not failed, are never refused."),
    Param("auth_failure_window", "time", "300s", "How long a failed login counts."),
    Param("disable_plaintext_auth", "bool", "yes",
          "Refuse plaintext authentication (IMAP LOGIN, POP3 USER/PASS, SASL PLAIN and LOGIN on "
          "SMTP, IMAP and POP3) unless the connection is secured: TLS, the same host (loopback or "
          "the address connected to) or login_trusted_networks."),
    Param("login_trusted_networks", "list", "",
          "Networks whose clients count as secured (plaintext authentication allowed without TLS) "
          "and get no failed-login penalty, e.g. a webmail host or an IMAP/POP3 proxy (Dovecot's "
          "login_trusted_networks); also exempt from login_max_ip_connections."),
)
