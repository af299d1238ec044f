"""SMTP server parameters (POSTFIX-SEMANTICS §2-§4)."""

import os

from pymailsrv.config.params.spec import Param


def _one_per_core() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(cores, 4)


PARAMS = (
    Param("smtpd_listen", "listen", "", "MTA listener (port 25), host:port list; empty = off."),
    Param("submission_listen", "listen", "", "Submission listener (port 587); empty = off."),
    Param("smtps_listen", "listen", "", "Implicit-TLS submission listener (port 465); empty = off."),
    Param("smtpd_processes", "int", "auto", "SMTP processes beside the main one, to use more CPU "
          "cores: each serves every SMTP listener and delivers to local Maildirs itself; the main "
          "process keeps the queue manager, IMAP and POP3. 0: the main process serves SMTP; "
          "auto: one per CPU core, at most 4, none on a single core.", minimum=0, auto=_one_per_core),
    Param("reinject_listen", "listen", "", "Content-filter return path (like smtpd, only from "
          "mynetworks, mail marked as already filtered); empty = off."),
    Param("smtpd_peername_lookup", "bool", "no",
          "Look up the client's hostname (reverse DNS, forward-confirmed) for logs, Received: and "
          "restrictions. Postfix defaults to yes; pymailsrv to no (a DNS round trip per connection)."),
    Param("smtpd_banner", "str", "$myhostname ESMTP $mail_name", "Text after 220 in the greeting."),
    Param("message_size_limit", "size", "10240000", "Largest message accepted, in bytes."),
    Param("smtpd_recipient_limit", "int", "1000", "Recipients per message.", minimum=1),
    Param("smtpd_soft_error_limit", "int", "10", "Errors before each reply is delayed."),
    Param("smtpd_hard_error_limit", "int", "20", "Errors before the session is closed."),
    Param("smtpd_error_sleep_time", "time", "1s", "Delay per reply after the soft error limit."),
    Param("smtpd_timeout", "time", "300s", "Idle time before the session is closed."),
    Param("smtpd_helo_required", "bool", "no", "Require HELO/EHLO before MAIL."),
    Param("disable_vrfy_command", "bool", "no", "Refuse VRFY."),
    Param("smtpd_delay_reject", "bool", "yes", "Evaluate client/helo/sender lists at RCPT TO."),
    Param("smtpd_client_restrictions", "list", "", "Restrictions at connect."),
    Param("smtpd_helo_restrictions", "list", "", "Restrictions at HELO/EHLO."),
    Param("smtpd_sender_restrictions", "list", "", "Restrictions at MAIL FROM."),
    Param("smtpd_relay_restrictions", "list",
          "permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination",
          "Relay control at RCPT TO, before smtpd_recipient_restrictions."),
    Param("smtpd_recipient_restrictions", "list", "", "Restrictions at RCPT TO."),
    Param("smtpd_data_restrictions", "list", "", "Restrictions at DATA."),
    Param("smtpd_end_of_data_restrictions", "list", "", "Restrictions after the final dot."),
    Param("smtpd_restriction_classes", "list", "", "Names of user-defined restriction lists."),
    Param("smtpd_null_access_lookup_key", "str", "<>", "Access-map key for the null sender."),
    Param("parent_domain_matches_subdomains", "list",
          "debug_peer_list, fast_flush_domains, mynetworks, permit_mx_backup_networks, "
          "qmqpd_authorized_clients, relay_domains, smtpd_access_maps",
          "Lists whose domain.tld also matches subdomains; without smtpd_access_maps here, access maps "
          "match subdomains only through .domain.tld keys (as Postfix)."),
    Param("smtpd_reject_unlisted_recipient", "bool", "yes", "Reject unknown users of our domains."),
    Param("smtpd_reject_unlisted_sender", "bool", "no", "Reject unknown senders of our domains."),
    Param("unknown_local_recipient_reject_code", "int", "550", "Code for unknown local users."),
    Param("unknown_virtual_mailbox_reject_code", "int", "550", "Code for unknown virtual users."),
    Param("unknown_address_reject_code", "int", "450", "Code for reject_unknown_*_domain."),
    Param("unknown_hostname_reject_code", "int", "450", "Code for reject_unknown_helo_hostname."),
    Param("unverified_recipient_reject_code", "int", "450", "Code for unverified recipients."),
    Param("relay_domains_reject_code", "int", "554", "Code for reject_unauth_destination."),
    Param("access_map_reject_code", "int", "554", "Code for REJECT in an access map."),
    Param("access_map_defer_code", "int", "450", "Code for DEFER in an access map."),
    Param("maps_rbl_reject_code", "int", "554", "Code for DNSBL rejects."),
    Param("defer_code", "int", "450", "Code for the defer restriction."),
    Param("reject_code", "int", "554", "Code for the reject restriction."),
    Param("non_fqdn_reject_code", "int", "504", "Code for reject_non_fqdn_*."),
    Param("invalid_hostname_reject_code", "int", "501", "Code for reject_invalid_helo_hostname."),
    Param("plaintext_reject_code", "int", "450", "Code for a non-TLS client when TLS is required."),
    Param("smtpd_sasl_auth_enable", "bool", "no", "Offer AUTH on the MTA listener (port 25)."),
    Param("smtpd_sasl_security_options", "list", "noanonymous", "SASL restrictions."),
    Param("smtpd_sasl_authenticated_header", "bool", "no", "Name the SASL user in Received:."),
    Param("broken_sasl_auth_clients", "bool", "no", "Also advertise AUTH=PLAIN LOGIN."),
    Param("smtpd_sender_login_maps", "list", "", "Tables of which logins own which senders "
          "(empty = the database's mailboxes and aliases)."),
    Param("smtpd_tls_security_level", "enum", "may", "TLS on the MTA listener.",
          choices=("none", "may", "encrypt")),
    Param("smtpd_tls_auth_only", "bool", "no", "Offer AUTH on the MTA listener only after STARTTLS."),
    Param("smtpd_tls_cert_file", "file", "$tls_cert_file", "Certificate for the SMTP listeners."),
    Param("smtpd_tls_key_file", "file", "$tls_key_file", "Key for the SMTP listeners."),
    Param("smtpd_tls_received_header", "bool", "yes", "Put the TLS protocol and cipher in Received:."),
    Param("smtpd_forbid_bare_newline", "enum", "normalize",
          "Bare LF in DATA: normalize (accept, fix), yes (reject), no.", choices=("normalize", "yes", "no")),
    Param("smtpd_client_connection_count_limit", "int", "50", "Concurrent sessions per client IP."),
    Param("smtpd_client_connection_rate_limit", "int", "0", "Connections per client IP per "
          "anvil_rate_time_unit (0 = off)."),
    Param("smtpd_client_event_limit_exceptions", "list", "$mynetworks",
          "Clients exempt from the per-client connection limits (networks)."),
    Param("submission_reject_sender_login_mismatch", "bool", "yes",
          "On submission/smtps, an authenticated user may only use MAIL FROM addresses it owns."),
    Param("anvil_rate_time_unit", "time", "60s", "Time unit of the per-client rate limits."),
    Param("smtpd_authorized_xforward_hosts", "list", "", "Clients allowed to use XFORWARD."),
    Param("smtpd_policy_service_timeout", "time", "100s", "Time limit of check_policy_service."),
    Param("greylist_delay", "time", "300s", "check_greylist: how long a new triplet is deferred."),
    Param("greylist_retry_window", "time", "2d", "check_greylist: the first retry must come within this.",
          unit="d"),
    Param("greylist_max_age", "time", "35d", "check_greylist: forget triplets unused this long.", unit="d"),
    Param("greylist_auto_whitelist_clients", "int", "5",
          "check_greylist: passes after which a client network is no longer delayed (0 = never)."),
    Param("greylist_text", "str", "Greylisted, please try again later",
          "check_greylist: text of the 450 4.2.0 reply."),
    Param("header_checks", "list", "", "regexp/pcre tables applied to each header line."),
    Param("body_checks", "list", "", "regexp/pcre tables applied to each body line."),
    Param("smtpd_max_line_length", "size", "4096", "Longest command line accepted (500 5.5.2)."),
)
