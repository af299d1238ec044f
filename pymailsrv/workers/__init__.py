"""Worker processes (``worker_processes`` > 0): more cores for SMTP, IMAP and POP3, still one queue
manager. ``master`` starts and supervises them (and reloads them); ``anvil`` keeps the counts that
must hold across them; ``channel`` is a worker's side of the line to the main process.

The main process binds every SMTP listener but does not accept on them. Each worker is a child
process (``pymailsrv serve`` with the internal ``--worker`` option) that inherits those
listening sockets and accepts from them (the kernel gives each new connection to one of the
workers, so one that is busy takes fewer), runs the SMTP sessions with its own restriction engine
and Directory, and delivers to local Maildirs itself (the fast path). What it cannot finish
before the 250 it spools and hands to the main process, whose queue manager owns every retry,
bounce and outbound delivery. The log lines are the same, each process logging under its own
pid, as Postfix's smtpd processes do.

Each worker has one socketpair to the main process; one request per line:
  ``open IP``     → ``ok N`` | ``count N`` | ``rate N``: the per-client connection limits, counted
                    across all processes by the main one (anvil's job in Postfix); not asked for
                    exempt clients (smtpd_client_event_limit_exceptions, default mynetworks)
  ``close IP``    (no answer) the session admitted by ``open`` has ended
  ``pickup ID``   (no answer) queue file ID is spooled: the main queue manager takes it over
  ``auth IP LOGIN`` → ``ok DELAY`` | ``no TEXT``: failed-login throttling (auth/throttle.py)
                    counted once for SMTP AUTH in every worker and IMAP/POP3 in the main process
  ``auth-cancel IP LOGIN``, ``auth-ok IP LOGIN``, ``auth-failed IP LOGIN`` (no answer) how
                    that attempt ended
  ``userip SERVICE USER IP LIMIT`` → ``ok`` | ``no``: mail_max_userip_connections for IMAP or
                    POP3, counted across processes; ``userip-close SERVICE USER IP`` (no answer)
  ``metrics JSON`` (no answer) the worker's counts (meter.Snapshot.to_json), sent every second
                    when they changed and when it ends; the main process adds up each worker's last
  ``ip-close PARAM IP`` (no answer) a passed IMAP/POP3 connection that the main process counted
                    for login_max_ip_connections has ended (PARAM and IP as it sent them)
(IP, LOGIN and USER percent-encoded, except in ``ip-close``.)
The IMAP/POP3 connections themselves come over a second socketpair, one per message with its
file descriptor: ``PARAM INDEX VERDICT IP``, VERDICT ``ok`` or the per-IP limit it is over
(``count``; the worker's session only says so), IP as the main process counted it (``-``: not).
EOF on the socketpair tells a worker that the main process is gone: it stops as on SIGTERM; the
main process releases what a dead worker held. A worker that dies is restarted after a pause,
as Postfix's master(8) does.
"""

from pymailsrv.workers.channel import (
    Inbox,
    MainChannel,
    MeterReports,
    RemoteLimiter,
    RemoteSessionCounter,
    RemoteThrottle,
    WorkerSpec,
)
from pymailsrv.workers.master import WorkerHealth, WorkerPool

__all__ = ["Inbox", "MainChannel", "MeterReports", "RemoteLimiter", "RemoteSessionCounter", "RemoteThrottle",
           "WorkerHealth", "WorkerPool", "WorkerSpec"]
