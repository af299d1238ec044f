"""A Postfix + Dovecot + PostfixAdmin site in the classic layout, written into a directory:
``postfix/`` (main.cf, master.cf, the PostfixAdmin map files of POSTFIX_CONF.txt) and ``dovecot/``
(dovecot.conf with conf.d includes, dovecot-sql.conf.ext), for MySQL/MariaDB or SQLite."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Db:
    kind: str  # "mysql", "pgsql" or "sqlite"
    host: str = ""
    port: int = 0
    name: str = ""  # database, or the SQLite file
    user: str = ""

    @classmethod
    def from_url(cls, url: str) -> Db:
        u = urlsplit(url)
        if u.scheme.startswith("sqlite"):
            return cls("sqlite", name=u.path.removeprefix("/"))
        return cls("mysql", u.hostname or "", u.port or 3306, u.path.strip("/"), u.username or "")


# PostfixAdmin's POSTFIX_CONF.txt maps (name -> query); %s %u %d as Postfix expands them.
MAPS = {
    "virtual_domains_maps": "SELECT domain FROM domain WHERE domain='%s' AND active = '1'",
    "virtual_alias_maps": "SELECT goto FROM alias WHERE address='%s' AND active = '1'",
    "virtual_alias_domain_maps": "SELECT goto FROM alias,alias_domain WHERE alias_domain.alias_domain = '%d' "
    "and alias.address = CONCAT('%u', '@', alias_domain.target_domain) AND alias.active = 1 "
    "AND alias_domain.active='1'",
    "virtual_alias_domain_catchall_maps": "SELECT goto FROM alias,alias_domain WHERE "
    "alias_domain.alias_domain = '%d' and alias.address = CONCAT('@', alias_domain.target_domain) "
    "AND alias.active = 1 AND alias_domain.active='1'",
    "virtual_mailbox_maps": "SELECT maildir FROM mailbox WHERE username='%s' AND active = '1'",
    "virtual_alias_domain_mailbox_maps": "SELECT maildir FROM mailbox,alias_domain WHERE "
    "alias_domain.alias_domain = '%d' and mailbox.username = CONCAT('%u', '@', alias_domain.target_domain) "
    "AND mailbox.active = 1 AND alias_domain.active='1'",
    "sender_login_maps": "SELECT goto FROM alias WHERE address='%s' AND active = '1'",
}


def _map_file(db: Db) -> str:
    if db.kind == "sqlite":
        return f"dbpath = {db.name}\n"
    return f"user = {db.user or 'postfix'}\npassword = \nhosts = {db.host}:{db.port}\ndbname = {db.name}\n"


def write_postfix(root: Path, db: Db, *, vmail: Path, cert: str, key: str, delivery: str = "dovecot",
                  sasl: str = "dovecot") -> Path:
    """``delivery``: dovecot (LMTP), virtual or maildrop; ``sasl``: dovecot or cyrus."""
    pf = root / "postfix"
    (pf / "sql").mkdir(parents=True)
    kind = db.kind
    for name, query in MAPS.items():
        q = query
        if kind in ("sqlite", "pgsql"):  # no CONCAT() in Debian 12's SQLite; || as PostfixAdmin's pgsql docs
            q = q.replace("CONCAT('%u', '@', alias_domain.target_domain)", "'%u' || '@' || alias_domain.target_domain")
            q = q.replace("CONCAT('@', alias_domain.target_domain)", "'@' || alias_domain.target_domain")
        (pf / "sql" / f"{kind}_{name}.cf").write_text(
            "# PostfixAdmin\n" + _map_file(db) + f"query = {q}\n")
    transport = {"dovecot": "lmtp:unix:private/dovecot-lmtp", "virtual": "virtual", "maildrop": "maildrop"}[delivery]
    sql = f"proxy:{kind}:$config_directory/sql/{kind}_"
    (pf / "main.cf").write_text(f"""# See /usr/share/postfix/main.cf.dist for a commented, more complete version
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6

# TLS parameters
smtpd_tls_cert_file={cert}
smtpd_tls_key_file={key}
smtpd_tls_security_level=may
smtp_tls_CApath=/etc/ssl/certs
smtp_tls_security_level=may
smtp_tls_session_cache_database = btree:${{data_directory}}/smtp_scache

smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = mx.example.test
mydomain = example.test
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
myorigin = $mydomain
mydestination = $myhostname, localhost.$mydomain, localhost
relayhost =
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = all
inet_protocols = all
message_size_limit = 52428800

# PostfixAdmin
virtual_mailbox_domains = {sql}virtual_domains_maps.cf
virtual_alias_maps =
   {sql}virtual_alias_maps.cf,
   {sql}virtual_alias_domain_maps.cf,
   {sql}virtual_alias_domain_catchall_maps.cf
virtual_mailbox_maps =
   {sql}virtual_mailbox_maps.cf,
   {sql}virtual_alias_domain_mailbox_maps.cf
virtual_mailbox_base = {vmail}
virtual_uid_maps = static:8
virtual_gid_maps = static:8
virtual_minimum_uid = 8
virtual_transport = {transport}
maildrop_destination_recipient_limit = 1
smtpd_sender_login_maps = {sql}sender_login_maps.cf

# SASL
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = {"dovecot" if sasl == "dovecot" else "cyrus"}
{"smtpd_sasl_path = private/auth" if sasl == "dovecot" else "cyrus_sasl_config_path = $config_directory/sasl"}
smtpd_sasl_security_options = noanonymous
smtpd_sasl_authenticated_header = yes
broken_sasl_auth_clients = yes

smtpd_helo_required = yes
disable_vrfy_command = yes
smtpd_recipient_restrictions =
   permit_mynetworks,
   permit_sasl_authenticated,
   reject_non_fqdn_recipient,
   reject_unknown_recipient_domain,
   reject_unauth_destination,
   reject_rbl_client zen.spamhaus.org,
   check_policy_service inet:127.0.0.1:10023,
   check_policy_service inet:127.0.0.1:12340
smtpd_milters = inet:localhost:8891
non_smtpd_milters = $smtpd_milters

# amavisd-new
content_filter = amavis:[127.0.0.1]:10024
""")
    (pf / "master.cf").write_text("""#
# Postfix master process configuration file.
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
#               (yes)   (yes)   (no)    (never) (100)
# ==========================================================================
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_tls_auth_only=yes
  -o smtpd_reject_unlisted_recipient=no
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o milter_macro_daemon_name=ORIGINATING
smtps     inet  n       -       y       -       -       smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
trace     unix  -       -       y       -       0       bounce
verify    unix  -       -       y       -       1       verify
flush     unix  n       -       y       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
        -o syslog_name=postfix/$service_name
showq     unix  n       -       y       -       -       showq
error     unix  -       -       y       -       -       error
retry     unix  -       -       y       -       -       error
discard   unix  -       -       y       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       y       -       -       lmtp
anvil     unix  -       -       y       -       1       anvil
scache    unix  -       -       y       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
maildrop  unix  -       n       n       -       -       pipe
  flags=DRXhu user=vmail argv=/usr/bin/maildrop -d ${recipient}
dovecot   unix  -       n       n       -       -       pipe
  flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}
postgrey  unix  -       n       n       -       -       spawn
  user=postgrey argv=/usr/sbin/postgrey --delay=120 --max-age=30
amavis    unix  -       -       -       -       2       smtp
  -o smtp_data_done_timeout=1200
  -o smtp_send_xforward_command=yes
  -o disable_dns_lookups=yes
  -o max_use=20
127.0.0.1:10025 inet n  -       -       -       -       smtpd
  -o content_filter=
  -o local_recipient_maps=
  -o relay_recipient_maps=
  -o smtpd_restriction_classes=
  -o smtpd_delay_reject=no
  -o smtpd_client_restrictions=permit_mynetworks,reject
  -o smtpd_helo_restrictions=
  -o smtpd_sender_restrictions=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_data_restrictions=reject_unauth_pipelining
  -o smtpd_end_of_data_restrictions=
  -o mynetworks=127.0.0.0/8
  -o smtpd_error_sleep_time=0
  -o smtpd_soft_error_limit=1001
  -o smtpd_hard_error_limit=1000
  -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks
""")
    if sasl == "cyrus":
        (pf / "sasl").mkdir()
        (pf / "sasl" / "smtpd.conf").write_text("pwcheck_method: saslauthd\nmech_list: PLAIN LOGIN\n")
    return pf


def write_dovecot(root: Path, db: Db, *, vmail: Path, cert: str, key: str, home_in_query: bool = True,
                  postfix_spool: str = "/var/spool/postfix") -> Path:
    """Dovecot's Debian layout: dovecot.conf including conf.d/*.conf, auth-sql.conf.ext,
    dovecot-sql.conf.ext. ``home_in_query``: the user_query returns home = base + maildir and
    mail_location is ``maildir:~/``; otherwise mail_location = ``maildir:BASE/%d/%n``.
    ``postfix_spool``: where the sockets for Postfix are (a test running this Dovecot moves them)."""
    dc = root / "dovecot"
    (dc / "conf.d").mkdir(parents=True)
    (dc / "dovecot.conf").write_text("""## Dovecot configuration file
# Enable installed protocols
!include_try /usr/share/dovecot/protocols.d/*.protocol
protocols = imap pop3 lmtp

listen = *, ::
dict {
  #quota = mysql:/etc/dovecot/dovecot-dict-sql.conf.ext
}
!include conf.d/*.conf
!include_try local.conf
""")
    location = "maildir:~/" if home_in_query else f"maildir:{vmail}/%d/%n"
    (dc / "conf.d" / "10-auth.conf").write_text("""disable_plaintext_auth = yes
auth_mechanisms = plain login
#!include auth-system.conf.ext
!include auth-sql.conf.ext
""")
    (dc / "conf.d" / "auth-sql.conf.ext").write_text("""# Authentication for SQL users.
passdb {
  driver = sql
  # Path for SQL configuration file, see example-config/dovecot-sql.conf.ext
  args = /etc/dovecot/dovecot-sql.conf.ext
}
userdb {
  driver = sql
  args = /etc/dovecot/dovecot-sql.conf.ext
}
""".replace("/etc/dovecot", str(dc)))
    (dc / "conf.d" / "10-mail.conf").write_text(f"""mail_location = {location}
namespace inbox {{
  inbox = yes
}}
mail_privileged_group = mail
first_valid_uid = 8
mail_plugins = $mail_plugins quota
""")
    (dc / "conf.d" / "10-master.conf").write_text("""service imap-login {
  inet_listener imap {
    #port = 143
  }
  inet_listener imaps {
    #port = 993
    #ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    #port = 110
  }
  inet_listener pop3s {
    #port = 995
    #ssl = yes
  }
}
service lmtp {
  unix_listener /var/spool/postfix/private/dovecot-lmtp {
    mode = 0600
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0666
  }
}
""".replace("/var/spool/postfix", postfix_spool))
    (dc / "conf.d" / "10-ssl.conf").write_text(f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n")
    (dc / "conf.d" / "20-imap.conf").write_text("protocol imap {\n  mail_max_userip_connections = 25\n"
                                                "  mail_plugins = $mail_plugins imap_quota\n}\n")
    (dc / "conf.d" / "20-pop3.conf").write_text("protocol pop3 {\n  pop3_uidl_format = %08Xu%08Xv\n}\n")
    (dc / "conf.d" / "20-lmtp.conf").write_text("protocol lmtp {\n  mail_plugins = $mail_plugins sieve\n}\n")
    (dc / "conf.d" / "90-quota.conf").write_text("plugin {\n  quota = maildir:User quota\n  quota_rule = *:storage=1G\n"
                                                 "  quota_rule2 = Trash:storage=+100M\n}\n")
    if db.kind == "sqlite":
        connect = db.name
        home = f"'{vmail}/' || maildir AS home"
    elif db.kind == "pgsql":
        connect = f"host={db.host} port={db.port} dbname={db.name} user={db.user}"
        home = f"'{vmail}/' || maildir AS home"
    else:
        connect = f"host={db.host} port={db.port} dbname={db.name} user={db.user}"
        home = f"CONCAT('{vmail}/', maildir) AS home"
    user_home = f"{home}, " if home_in_query else ""
    (dc / "dovecot-sql.conf.ext").write_text(f"""# This file is commonly accessed via passdb {{}} or userdb {{}}
# section in conf.d/auth-sql.conf.ext
driver = {db.kind}
connect = {connect}
default_pass_scheme = MD5-CRYPT

password_query = SELECT username AS user,password FROM mailbox \\
  WHERE username = '%u' AND active='1'

user_query = SELECT {user_home}8 AS uid, 8 AS gid, \\
  '*:bytes=' || quota AS quota_rule FROM mailbox WHERE username = '%u' AND active='1'
""".replace("'*:bytes=' || quota", "CONCAT('*:bytes=', quota)" if db.kind == "mysql" else "'*:bytes=' || quota"))
    return dc
