"""Operations: the Prometheus metrics endpoint (``metrics_listen``) and the mailgraph-style
statistics page (``stats_listen``), served by the main process over a small HTTP/1.1 server
(``http``), with the counts kept durably in round-robin buckets (``rrd``) and drawn as SVG on
the server (``graphs``, ``page``). ``pymailsrv stats`` prints the same figures (``report``).

The figures come from ``pymailsrv.meter``: each process counts its own, worker processes report
theirs to the main process every second (workers/channel.py), and ``meter.Hub`` adds them up.
"""
