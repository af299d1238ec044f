#!/bin/bash
# Side-by-side IMAP load: Dovecot (anchor, 127.0.0.1:1143) and pymailsrv over the SAME Maildirs,
# interleaved rounds (A B A B) of both mixes. Run as root:
#   bench/imap_compare.sh [ROUNDS] [SECONDS]
# Uses ../shared/anchors beside the repository (ANCHORS to override) and the repo's .venv or PYTHON.
# Env: BASE (/var/lab/postfix-vmail), FIRST (50: users u50..u59), CLIENTS (10), PER_USER (200),
#      SERVER (serve: the real `pymailsrv serve` with its SQLite database, {PLAIN} passwords as the
#      Dovecot anchor has them, worker_processes=$PROCS (auto); bench: bench/imap_serve.py alone),
#      DRIVERS (1: load driver processes the clients are split over).
set -euo pipefail
ROUNDS="${1:-2}"; SECS="${2:-10}"
BASE="${BASE:-/var/lab/postfix-vmail}"; FIRST="${FIRST:-50}"; CLIENTS="${CLIENTS:-10}"; PER_USER="${PER_USER:-200}"
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"; cd "$ROOT"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT"
LOAD="$PY bench/imap_load.py --procs ${DRIVERS:-1}"
# the anchor Dovecot outlives this script and keeps the fds it inherits: not the one of
# `flock /tmp/bench.lock` (it would hold the machine-wide lock for as long as it runs)
"$ANCHORS/dovecot-setup.sh" >/dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
DPID="$(cat /run/lab-dovecot/master.pid)"
for ((i = FIRST; i < FIRST + 10; i++)); do rm -rf "$BASE/bench.test/u$i"; done
$LOAD x 0 --prefill "$BASE" --users 10 --first-user "$FIRST" --per-user "$PER_USER"
chown -R vmail:vmail "$BASE/bench.test"
if [ "${SERVER:-serve}" = bench ]; then
  SRV_LOG="$(mktemp)"
  $PY bench/imap_serve.py --port 0 --store maildir --base "$BASE" > "$SRV_LOG" 2>&1 &
  SPID=$!
  for _ in $(seq 50); do grep -q ready "$SRV_LOG" && break; sleep 0.2; done
  PORT="$(awk '/ready/{print $2}' "$SRV_LOG")"
else
  WORK="${WORK:-/var/lab/pymailsrv-imap}"; rm -rf "$WORK"; mkdir -p "$WORK"
  cat > "$WORK/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $WORK
virtual_mailbox_base = $BASE
log_file = $WORK/pymailsrv.log
postfixadmin_encrypt = dovecot:PLAIN
worker_processes = ${PROCS:-auto}
mail_max_userip_connections = 1000
smtpd_listen =
imap_listen = 127.0.0.1:1144
CONF
  "$PY" "$HERE/bench_site.py" "$WORK/pymailsrv.conf" >/dev/null
  "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" serve > /dev/null 2>&1 &
  SPID=$!; PORT=1144
  for _ in $(seq 100); do grep -q "serving" "$WORK/pymailsrv.log" 2>/dev/null && break; sleep 0.2; done
fi
trap 'kill $SPID 2>/dev/null; chown -R vmail:vmail "$BASE/bench.test"' EXIT
# warm both (Dovecot builds its index, pymailsrv its uidlist/cache)
$LOAD 127.0.0.1 1143 --users 10 --first-user "$FIRST" --seconds 3 --clients "$CLIENTS" >/dev/null
chown -R vmail:vmail "$BASE/bench.test"
$LOAD 127.0.0.1 "$PORT" --users 10 --first-user "$FIRST" --seconds 3 --clients "$CLIENTS" >/dev/null
for ((r = 1; r <= ROUNDS; r++)); do
  for mix in long login; do
    chown -R vmail:vmail "$BASE/bench.test"
    $LOAD 127.0.0.1 1143 --users 10 --first-user "$FIRST" --seconds "$SECS" --clients "$CLIENTS" --mix $mix \
      --server-pid "$DPID" --label "dovecot#$r" | sed -n 1,2p
    $LOAD 127.0.0.1 "$PORT" --users 10 --first-user "$FIRST" --seconds "$SECS" --clients "$CLIENTS" --mix $mix \
      --server-pid "$SPID" --label "pymailsrv#$r" | sed -n 1,2p
  done
done
