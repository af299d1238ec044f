"""Parameters of the services Dovecot gives Postfix: LMTP, the auth socket, quota-status
(Dovecot's names where it has them)."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("lmtp_listen", "list", "",
          "LMTP listeners (RFC 2033): host:port, [ipv6]:port or unix:/path (Postfix: "
          "virtual_transport = lmtp:inet:host:port or lmtp:unix:/path); empty = off. Over TCP "
          "only clients in mynetworks may deliver (LMTP skips the restrictions)."),
    Param("lmtp_timeout", "time", "5m", "Idle time before an LMTP session is closed."),
    Param("login_greeting", "str", "$mail_name ready.",
          "Text after the host name in the LMTP greeting (Dovecot's login_greeting)."),
    Param("lmtp_rcpt_check_quota", "bool", "yes",
          "Refuse a recipient over quota at RCPT (Dovecot's; its default is no)."),
    Param("lmtp_add_received_header", "bool", "yes", "Add a Received: header as Dovecot's lmtp does."),
    Param("quota_full_tempfail", "bool", "no",
          "A full mailbox is a temporary failure (452 4.2.2) instead of a permanent one (552 5.2.2)."),
    Param("quota_exceeded_message", "str", "Quota exceeded (mailbox for user is full)",
          "The text of the LMTP reply for a full mailbox (Dovecot's)."),
    Param("dovecot_auth_listen", "list", "",
          "Dovecot authentication protocol sockets (what Postfix's smtpd_sasl_type = dovecot and "
          "smtpd_sasl_path connect to): unix:/path or host:port; empty = off. Over TCP only "
          "clients in mynetworks may connect."),
    Param("quota_status_listen", "list", "",
          "Quota-status policy service (Dovecot's quota-status -p postfix, for Postfix's "
          "check_policy_service): host:port or unix:/path; empty = off. Over TCP only clients "
          "in mynetworks may ask."),
    Param("quota_status_success", "str", "DUNNO",
          "Policy action when the recipient has room (Dovecot's default is OK; DUNNO lets the "
          "restrictions after it decide)."),
    Param("quota_status_nouser", "str", "REJECT Unknown user",
          "Policy action when the recipient is no mailbox and no alias."),
    Param("quota_status_overquota", "str", "552 5.2.2 Mailbox is full",
          "Policy action when the recipient's mailbox is full."),
    Param("quota_status_toolarge", "str", "",
          "Policy action when the message alone is larger than the quota; empty = quota_status_overquota."),
    Param("service_socket_mode", "str", "0660",
          "Permissions (octal) of the UNIX sockets of lmtp_listen, dovecot_auth_listen and "
          "quota_status_listen."),
    Param("service_socket_group", "str", "",
          "Group of those UNIX sockets (postfix, so that Postfix's processes may connect); "
          "empty = this process's group."),
)
