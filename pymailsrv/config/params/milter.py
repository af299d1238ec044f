"""The milter client's parameters, with Postfix's names and defaults (MILTER_README)."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("smtpd_milters", "list", "",
          "Mail filter applications (Sendmail milter protocol) for mail received over SMTP, in "
          "order: inet:host:port, inet6:[addr]:port or unix:/path; { socket, default_action = ..., "
          "connect_timeout = ..., command_timeout = ..., content_timeout = ..., protocol = ... } "
          "sets one milter's options. They run in the milters stage of smtpd_pipeline."),
    Param("smtpd_milter_maps", "list", "",
          "Lookup tables searched by the SMTP client's IP address (cidr:, inline:, texthash: …): a "
          "value of DISABLE turns the milters off for that client, any other value is a list of "
          "milters used instead of smtpd_milters (Postfix 3.2); no match: smtpd_milters."),
    Param("non_smtpd_milters", "list", "",
          "Mail filter applications for mail the server generates (bounces, notices), as "
          "smtpd_milters; they run in the milters stage of non_smtpd_pipeline."),
    Param("milter_default_action", "enum", "tempfail",
          "What to do when a milter cannot be reached or breaks the protocol: accept (go on as if "
          "it were not there), tempfail (451 4.7.1), reject (550 5.5.0) or quarantine (accept and "
          "hold the message).",
          choices=("accept", "tempfail", "reject", "quarantine")),
    Param("milter_protocol", "int", "6",
          "The milter protocol version offered in the option negotiation (2 to 6).",
          minimum=2, maximum=6),
    Param("milter_connect_timeout", "time", "30s",
          "Time limit for connecting to a milter and negotiating protocol options."),
    Param("milter_command_timeout", "time", "30s",
          "Time limit for a milter's reply to one SMTP event (connect, HELO, MAIL, RCPT, DATA)."),
    Param("milter_content_timeout", "time", "300s",
          "Time limit for sending the message content (headers, body, end of message) to a milter "
          "and receiving its reply; a progress reply starts it again."),
    Param("milter_macro_daemon_name", "str", "$myhostname",
          "The value of the {daemon_name} macro sent to milters."),
    Param("milter_macro_v", "str", "$mail_name",
          "The value of the v macro sent to milters."),
    Param("milter_connect_macros", "list", "j {daemon_name} {daemon_addr} v _",
          "Macros sent to milters with the client connection."),
    Param("milter_helo_macros", "list", "{tls_version} {cipher} {cipher_bits} {cert_subject} {cert_issuer}",
          "Macros sent to milters after HELO or EHLO."),
    Param("milter_mail_macros", "list",
          "i {auth_type} {auth_authen} {auth_author} {mail_addr} {mail_host} {mail_mailer}",
          "Macros sent to milters after MAIL FROM."),
    Param("milter_rcpt_macros", "list", "i {rcpt_addr} {rcpt_host} {rcpt_mailer}",
          "Macros sent to milters after RCPT TO."),
    Param("milter_data_macros", "list", "i", "Macros sent to milters after DATA."),
    Param("milter_end_of_header_macros", "list", "i", "Macros sent to milters after the message headers."),
    Param("milter_end_of_data_macros", "list", "i", "Macros sent to milters at the end of the message."),
    Param("milter_unknown_command_macros", "list", "",
          "Macros sent to milters after an unknown SMTP command (pymailsrv does not pass unknown "
          "commands to milters; kept for configurations that set it)."),
)
