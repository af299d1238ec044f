"""Queue manager and delivery parameters (POSTFIX-SEMANTICS §5-§6)."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("maximal_queue_lifetime", "time", "5d", "How long a message may stay deferred.", unit="d"),
    Param("bounce_queue_lifetime", "time", "5d", "Lifetime of null-sender mail.", unit="d"),
    Param("minimal_backoff_time", "time", "300s", "Shortest wait before a retry."),
    Param("maximal_backoff_time", "time", "4000s", "Longest wait before a retry."),
    Param("queue_run_delay", "time", "300s", "How often the deferred queue is scanned."),
    Param("delay_warning_time", "time", "0h", "Send one delay notice after this long (0 = off).",
          unit="h"),
    Param("default_destination_concurrency_limit", "int", "20", "Parallel deliveries per destination."),
    Param("virtual_destination_concurrency_limit", "int", "$default_destination_concurrency_limit",
          "Parallel Maildir deliveries per mailbox."),
    Param("smtp_destination_concurrency_limit", "int", "$default_destination_concurrency_limit",
          "Parallel SMTP deliveries per next hop."),
    Param("lmtp_destination_concurrency_limit", "int", "$default_destination_concurrency_limit",
          "Parallel LMTP deliveries per next hop."),
    Param("default_process_limit", "int", "100", "Parallel deliveries overall."),
    Param("content_filter", "str", "", "transport:destination every message is sent to first "
          "(e.g. smtp:[127.0.0.1]:10024); chosen by the content_filter stage of the pipelines."),
    Param("reinject_listen", "listen", "", "Listener that takes mail back from the content filter "
          "(the 127.0.0.1:10025 service of master.cf): like smtpd, only from mynetworks, mail marked "
          "as already filtered; empty = off."),
    Param("transport_maps", "list", "", "Tables mapping domains to transport:nexthop."),
    Param("virtual_overquota_bounce", "bool", "yes", "Bounce (5.2.2) rather than defer when over quota."),
    Param("notify_null_sender_failures", "enum", "postmaster",
          "What to do with an undeliverable bounce.", choices=("postmaster", "drop")),
    Param("bounce_notice_recipient", "str", "postmaster", "Recipient of postmaster notices."),
    Param("smtp_connect_timeout", "time", "30s", "Outbound TCP connect timeout."),
    Param("smtp_helo_timeout", "time", "300s", "Outbound greeting/HELO timeout."),
    Param("smtp_data_done_timeout", "time", "600s", "Outbound wait for the reply to the final dot."),
    Param("smtp_tls_security_level", "enum", "may", "Outbound TLS.", choices=("none", "may", "encrypt")),
    Param("smtp_sasl_password_maps", "list", "", "Tables of host → user:password for the relayhost."),
    Param("smtp_deny_networks", "list", "127.0.0.0/8, ::1/128, 10.0.0.0/8, 172.16.0.0/12, "
          "192.168.0.0/16, 169.254.0.0/16, fc00::/7, fe80::/10, 0.0.0.0/8",
          "Addresses the SMTP client never connects to unless relayhost/transport names them."),
    Param("smtp_port", "int", "25", "Port of outbound SMTP.", minimum=1, maximum=65535),
    Param("dns_nameservers", "list", "", "Resolvers to use (host or host:port); empty = the system's."),
)
