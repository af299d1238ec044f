"""Certificates: ACME (RFC 8555) for this host's names, and a certificate per name by SNI."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("tls_server_sni_maps", "list", "",
          "Tables that map a name a client asks for by TLS SNI to the files holding that name's "
          "private key and certificate chain (key first, as Postfix's chain files), for every TLS "
          "listener (SMTP, IMAP, POP3). Keys: the name, then .parent domains (.example.com covers "
          "mail.example.com), as Postfix; names found nowhere get the default certificate. "
          "texthash:, hash: and inline: tables, read whole at start and on reload."),
    Param("acme_directory_url", "str", "",
          "URL of an ACME (RFC 8555) CA's directory, e.g. https://acme-v02.api.letsencrypt.org/directory; "
          "setting it agrees to that CA's terms of service. Empty: no ACME. When set, the main process "
          "obtains one certificate for $myhostname and $acme_domains, keeps it in $data_directory/acme "
          "and renews it; once issued it replaces tls_cert_file (and smtpd_tls_cert_file) on every "
          "listener, each new one without a restart."),
    Param("acme_domains", "list", "", "Names the ACME certificate covers besides $myhostname."),
    Param("acme_email", "str", "", "Contact address of the ACME account (optional)."),
    Param("acme_http_listen", "listen", "80",
          "Where the HTTP-01 challenge responder listens while ACME is on (the CA connects to port "
          "80 of each name); empty: no HTTP-01."),
    Param("acme_tls_listen", "listen", "",
          "Where the TLS-ALPN-01 (RFC 8737) challenge responder listens, usually 443; empty: none. "
          "HTTP-01 is used when both are on."),
    Param("acme_ca_file", "file", "",
          "CA certificates that the ACME server's HTTPS certificate is checked against (a private "
          "or test CA); empty: the system's."),
    Param("acme_renew_before", "time", "30d", "Renew the ACME certificate this long before it expires "
          "(at most a third of its lifetime before).", unit="d"),
    Param("acme_minimal_backoff_time", "time", "10m",
          "After a failed ACME attempt, wait this long before the next; the wait doubles with each "
          "failure in a row.", unit="s"),
    Param("acme_maximal_backoff_time", "time", "1d", "The longest wait between failed ACME attempts.",
          unit="s"),
)
