"""Scale-out parameters: IMAP/POP3 proxy front nodes, and the state nodes share in the database."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("proxy_backends", "list", "",
          "Backend hosts of an IMAP/POP3 proxy front node (host names or addresses; IPv6 in "
          "[brackets]). A user the directory assigns no backend (proxy_host_query) goes to one "
          "of these by consistent (rendezvous) hashing of the login: adding or removing one "
          "backend moves only the users of that backend. Empty, with proxy_host_query empty: "
          "this node serves its own Maildirs (no proxying)."),
    Param("proxy_host_query", "str", "",
          "SQL query on database_url answering the backend of a user, as Dovecot's passdb "
          "proxy/host/port extra fields: its first row's first column is the host, an optional "
          "second column the port (NULL or absent: proxy_imap_port/proxy_pop3_port). %u is "
          "the login, %d its domain, %n its local part, %s the service (imap, pop3, sieve, lmtp); they "
          "are passed as bound parameters, never pasted into the SQL. A host of '' or NULL, or "
          "no row, falls back to proxy_backends; with proxy_backends empty the user is served "
          "by this node itself."),
    Param("proxy_imap_port", "int", "143", "The backends' IMAP port.", minimum=1, maximum=65535),
    Param("proxy_pop3_port", "int", "110", "The backends' POP3 port.", minimum=1, maximum=65535),
    Param("proxy_sieve_port", "int", "4190",
          "The backends' ManageSieve port (a front node with managesieve_listen proxies ManageSieve "
          "sessions too; %s is sieve in proxy_host_query).", minimum=1, maximum=65535),
    Param("lmtp_proxy", "bool", "no",
          "On a front node (proxy_backends or proxy_host_query set), deliver mail for virtual "
          "mailboxes over LMTP to the user's backend, chosen as for IMAP and POP3 (service "
          "lmtp for %s; port proxy_lmtp_port), instead of into this node's Maildirs (Dovecot's "
          "lmtp_proxy). The backends listen with lmtp_listen and must have the front nodes in "
          "their mynetworks. A user this node serves itself is delivered here."),
    Param("proxy_lmtp_port", "int", "24", "The backends' LMTP port.", minimum=1, maximum=65535),
    Param("proxy_connect_timeout", "time", "10s",
          "How long a front node waits for a backend to connect and accept the login before the "
          "client gets a temporary failure (IMAP NO [UNAVAILABLE], POP3 -ERR [SYS/TEMP])."),
    Param("auth_throttle_shared", "bool", "no",
          "Also count failed logins in the database (table pymailsrv_auth_failure, created by "
          "'pymailsrv db upgrade'), so the penalty a client address earns on one node applies "
          "on every node sharing database_url. A database that cannot be reached is ignored "
          "(the node's own count still applies): no node needs another, nor the database, "
          "to throttle."),
    Param("greylist_shared", "bool", "no",
          "Keep check_greylist's triplets in the database (tables pymailsrv_greylist and "
          "pymailsrv_greylist_client, created by 'pymailsrv db upgrade'), so that a retry "
          "reaching another MX node sharing database_url passes as it would on the first. "
          "Passed triplets are cached on each node. A database that is slow (2s) or down is "
          "ignored: the node decides on its own state (a retry may be deferred once more)."),
    Param("connection_limits_shared", "bool", "no",
          "Count IMAP and POP3 sessions for mail_max_userip_connections on every node sharing "
          "database_url (table pymailsrv_session, created by 'pymailsrv db upgrade'), so the "
          "limit holds across front nodes. Set it where the clients connect (the front nodes, or "
          "every node of a fleet without fronts), not also on backends behind fronts (they would "
          "count a proxied session twice). A database that is slow (2s) or down is ignored: the "
          "node's own count still applies."),
    Param("connection_limits_shared_expiry", "time", "120s",
          "connection_limits_shared: how long the sessions of a node that stopped renewing them "
          "(crashed, cut off) still count. Each node renews its own every third of this."),
)
