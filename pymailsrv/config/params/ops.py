"""Operations: the Prometheus metrics endpoint and the statistics page."""

from pymailsrv.config.params.spec import Param

PARAMS = (
    Param("metrics_listen", "listen", "",
          "Where the Prometheus metrics are served (GET /metrics, the text exposition format): "
          "connections, sessions, commands, logins, messages, deliveries, refusals, the queue and "
          "the worker processes, summed over every process. No authentication: bind it to a "
          "loopback or management address. Empty: off."),
    Param("stats_listen", "listen", "",
          "Where the statistics page is served (GET /): messages received, sent, bounced, rejected, "
          "greylisted, spam and virus over the last day, week, month and year as graphs, the queue "
          "and the sessions now. HTTP basic authentication against PostfixAdmin's admin table "
          "(active superadmins only, as PostfixAdmin marks them: admin.superadmin or a domain_admins row "
          "for ALL); use it behind TLS (a reverse proxy) "
          "when it is reachable from outside. Empty: off."),
    Param("stats_database", "path", "$data_directory/stats.db",
          "Where the statistics page's counts are kept (SQLite, constant size: round-robin buckets "
          "of 5 minutes for a day, 30 minutes for a week, 2 hours for a month and a day for a "
          "year). Written while metrics_listen or stats_listen is on; read by pymailsrv stats."),
    Param("stats_update_interval", "time", "60s",
          "How often the main process adds what was counted since to stats_database (and at "
          "shutdown); at least 1s."),
)
