"""The commented configuration that ``pymailsrv init`` writes (and config/pymailsrv.conf ships)."""

from __future__ import annotations

PRODUCTION_PORTS = {
    "smtpd_listen": "0.0.0.0:25",
    "submission_listen": "0.0.0.0:587",
    "smtps_listen": "0.0.0.0:465",
    "imap_listen": "0.0.0.0:143",
    "imaps_listen": "0.0.0.0:993",
    "pop3_listen": "0.0.0.0:110",
    "pop3s_listen": "0.0.0.0:995",
    "managesieve_listen": "0.0.0.0:4190",
}

DEMO_PORTS = {
    "smtpd_listen": "127.0.0.1:2525",
    "submission_listen": "127.0.0.1:2587",
    "smtps_listen": "127.0.0.1:2465",
    "imap_listen": "127.0.0.1:1143",
    "imaps_listen": "127.0.0.1:1993",
    "pop3_listen": "127.0.0.1:1110",
    "pop3s_listen": "127.0.0.1:1995",
    "managesieve_listen": "127.0.0.1:4190",
}

TEMPLATE = """\
# pymailsrv configuration (main.cf syntax: "name = value", a line starting with white space
# continues the previous one, "#" starts a comment only at the start of a line, $name expands
# another parameter). "pymailsrv postconf -d" lists every parameter with its default;
# "pymailsrv postconf -n" shows what this file changes.

# --- Identity ---------------------------------------------------------------------------------
myhostname = {hostname}
# mydomain = $myhostname minus its first label; myorigin = $myhostname
# Clients allowed to relay without authentication (besides loopback with mynetworks_style=host).
mynetworks_style = host
# mynetworks = 127.0.0.0/8, [::1]/128, 192.0.2.0/24
# recipient_delimiter = +

# --- Storage ----------------------------------------------------------------------------------
data_directory = {data_dir}
# queue_directory = $data_directory/spool
# virtual_mailbox_base = $data_directory/vmail
# The PostfixAdmin database. Embedded default: SQLite in the data directory. For MariaDB/MySQL:
#   database_url = mysql+asyncmy://postfix:secret@127.0.0.1:3306/postfix?charset=utf8mb4
# PostgreSQL (pip install 'pymailsrv[postgres]'):
#   database_url = postgresql+asyncpg://postfix:secret@127.0.0.1/postfix
# database_url = sqlite+aiosqlite:///$data_directory/pymailsrv.db
# Lookups found or not are reused this long; changes made with pymailsrv's admin commands or in
# PostfixAdmin (its log table) reach every process within about a second anyway:
# directory_cache_ttl = 5s
# database_pool_size = 8

# --- TLS (shared by every listener unless smtpd_tls_cert_file/smtpd_tls_key_file are set) -----
tls_cert_file = {cert_file}
tls_key_file = {key_file}
# Certificates from an ACME CA (Let's Encrypt), renewed on their own; tls_cert_file serves until
# the first is issued. HTTP-01 answers on port 80 (acme_http_listen), TLS-ALPN-01 on acme_tls_listen.
# acme_directory_url = https://acme-v02.api.letsencrypt.org/directory
# acme_email = postmaster@example.com
# acme_domains = imap.example.com, smtp.example.com
# acme_tls_listen = 0.0.0.0:443
# A certificate per name clients ask for by SNI (name or .domain -> file with key and chain):
# tls_server_sni_maps = texthash:/etc/pymailsrv/sni

# --- Listeners (host:port lists; empty = off) -------------------------------------------------
smtpd_listen = {smtpd_listen}
submission_listen = {submission_listen}
smtps_listen = {smtps_listen}
imap_listen = {imap_listen}
imaps_listen = {imaps_listen}
pop3_listen = {pop3_listen}
pop3s_listen = {pop3s_listen}
# ManageSieve (RFC 5804; Roundcube's managesieve plugin, Thunderbird's sieve add-on), STARTTLS
managesieve_listen = {managesieve_listen}
# Dovecot's services for a Postfix in front (README: "Replacing Dovecot under your Postfix"):
# lmtp_listen = unix:/var/spool/postfix/private/dovecot-lmtp
# dovecot_auth_listen = unix:/var/spool/postfix/private/auth
# quota_status_listen = 127.0.0.1:12340
# service_socket_group = postfix
# Worker processes (SMTP, IMAP, POP3) beside the main one (auto: one per CPU core, at most 4; 0: none)
# worker_processes = auto
# Event loop of the serving processes: asyncio, uvloop (pip install 'pymailsrv[uvloop]'), auto
# event_loop = asyncio

# --- SMTP policy (Postfix names and defaults) -------------------------------------------------
# message_size_limit = 10240000
# smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination
# smtpd_recipient_restrictions = reject_non_fqdn_recipient, reject_unknown_recipient_domain
# smtpd_helo_required = no
# relayhost = [smtp.example.net]:587

# --- Sender authentication (docs/senderauth.md) -----------------------------------------------
# DKIM keys as OpenDKIM has them; `pymailsrv dkim keygen example.com` makes one and prints its record
# dkim_key_table = /etc/pymailsrv/dkim/KeyTable
# dkim_signing_table = refile:/etc/pymailsrv/dkim/SigningTable
# Check SPF/DKIM/DMARC/ARC of inbound mail (Authentication-Results) and act on DMARC policies
# smtpd_pipeline = restrictions, header_checks, cleanup, sender_auth, dkim_sign, content_filter
# sender_auth_restrictions = reject_dmarc_policy
# ARC-seal mail that aliases forward to other providers
# arc_signing_key = example.com:arc:/etc/pymailsrv/dkim/example.com/arc.private

# --- Passwords ---------------------------------------------------------------------------------
# Your PostfixAdmin's $CONF['encrypt']: passwords pymailsrv writes take the form PostfixAdmin writes
# (md5crypt, php_crypt:SHA512, dovecot:SHA512-CRYPT, dovecot:ARGON2ID, sha512.b64, ...).
# postfixadmin_encrypt = md5crypt
# Scheme of stored hashes without a {{SCHEME}} prefix (Dovecot's name; empty: from postfixadmin_encrypt).
# default_pass_scheme =
# disable_plaintext_auth = yes
# Clients that may log in without TLS and get no failed-login penalty (e.g. a webmail host)
# login_trusted_networks = 192.0.2.10/32

# --- IMAP and POP3 limits (Dovecot's names where it has them) ---------------------------------
# mail_max_userip_connections = 20
# Connections per client IP (IMAP and POP3 apart); loopback and login_trusted_networks are exempt.
# login_max_ip_connections = 100
# Sieve scripts per user (count, bytes of all together; 0 = no limit), Pigeonhole's names
# sieve_quota_max_scripts = 0
# sieve_quota_max_storage = 0

# --- PostfixAdmin vacation (its vacation.pl's settings) ---------------------------------------
# Its $CONF['vacation_domain'] (empty: any user#domain@ target in a domain not hosted here)
# postfixadmin_vacation_domain = autoreply.example.com
# Seconds between two replies to one sender when the vacation table has no interval_time column
# postfixadmin_vacation_interval = 0

# --- Metrics and statistics (off unless set) ----------------------------------------------------
# Prometheus metrics on /metrics, no authentication: keep it on loopback or a management network.
# metrics_listen = 127.0.0.1:9154
# The statistics page (graphs of the last day/week/month/year) for PostfixAdmin superadmins.
# stats_listen = 127.0.0.1:8025

# --- Logging ----------------------------------------------------------------------------------
# log_file =
# log_level = info
# file (log_file, or standard error), syslog (syslog_address) or journald (under systemd)
# log_target = file
# syslog_facility = mail
# syslog_address = /dev/log
"""


def render(*, hostname: str, data_dir: str, cert_file: str, key_file: str, demo: bool) -> str:
    ports = DEMO_PORTS if demo else PRODUCTION_PORTS
    return TEMPLATE.format(hostname=hostname, data_dir=data_dir, cert_file=cert_file,
                           key_file=key_file, **ports)
