"""Site-wide parameters: names, paths, database, TLS files, logging, authentication, processes."""

import os

from pymailsrv.config.params.spec import Param


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
          "second; other direct SQL changes within this time."),
    Param("tls_cert_file", "file", "", "PEM certificate chain for every TLS listener."),
    Param("tls_key_file", "file", "", "PEM private key for tls_cert_file."),
    Param("log_file", "str", "", "Log file; empty = standard error."),
    Param("log_level", "enum", "info", "Logging level.",
          choices=("trace", "debug", "info", "warning", "error")),
    Param("default_pass_scheme", "str", "CRYPT",
          "Scheme of stored passwords without a {SCHEME} prefix (Dovecot's default_pass_scheme)."),
    Param("password_scheme", "str", "SHA512-CRYPT", "Scheme for passwords pymailsrv writes."),
    Param("quota_multiplier", "int", "1024000", "Bytes per 'MB' of quota, as PostfixAdmin.", minimum=1),
    Param("auth_failure_delay", "time", "2s", "Base delay after a failed login; grows per failure."),
    Param("auth_failure_limit", "int", "10",
          "Failed logins per client IP or login within auth_failure_window before temporary refusal. "
          "Logins still being checked count as failed, except from an address that logged in "
          "successfully in the last 7 days."),
    Param("auth_failure_window", "time", "300s", "Window for counting failed logins."),
    Param("disable_plaintext_auth", "bool", "yes",
          "Refuse plaintext authentication on unencrypted connections from non-local clients."),
)
