"""IMAP and POP3 parameters (Dovecot's names where they exist)."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("imap_listen", "listen", "", "IMAP listener (port 143); empty = off."),
    Param("imaps_listen", "listen", "", "IMAP over implicit TLS (port 993); empty = off."),
    Param("pop3_listen", "listen", "", "POP3 listener (port 110); empty = off."),
    Param("pop3s_listen", "listen", "", "POP3 over implicit TLS (port 995); empty = off."),
    Param("imap_max_line_length", "size", "65536", "Longest IMAP command line (without literals)."),
    Param("imap_max_literal_size", "size", "$message_size_limit", "Largest literal accepted (APPEND)."),
    Param("imap_idle_notify_interval", "time", "2m", "How often IDLE sends a keep-alive."),
    Param("imap_timeout", "time", "30m", "Idle time before an IMAP session is closed."),
    Param("pop3_timeout", "time", "10m", "Idle time before a POP3 session is closed."),
    Param("pop3_max_line_length", "size", "8192",
          "Longest POP3 command line (RFC 2449 allows 255; SASL initial responses need more)."),
    Param("pop3_uidl_format", "str", "%08Xu%08Xv", "UIDL format (Dovecot's): %u UID, %v UIDVALIDITY, "
          "width and X (hex, lower case as Dovecot prints it) / U (upper case) modifiers."),
    Param("pop3_enable_apop", "bool", "no", "Offer APOP (needs plaintext passwords)."),
    Param("pop3_hide_deleted", "bool", "yes", "Hide messages IMAP flagged \\Deleted."),
    Param("mail_max_userip_connections", "int", "20", "Sessions per user and client IP."),
    Param("login_max_ip_connections", "int", "100",
          "Connections per client IP, counted for IMAP and for POP3 apart, logged in or not "
          "(0 = no limit); one more is answered \"* BYE\" or \"-ERR\" and closed. Not in Dovecot, "
          "whose login processes limit only the connections of all clients together.", minimum=0),
    Param("login_ip_limit_exceptions", "list", "127.0.0.0/8, [::1]/128, $login_trusted_networks",
          "Clients exempt from login_max_ip_connections (networks): loopback, such as webmail on "
          "this host, and login_trusted_networks."),
    Param("protocol_error_limit", "int", "10", "Bad commands before an IMAP/POP3 session is closed."),
)
