#!/bin/bash
# Reload under load: Postfix's smtp-source sends MSGS messages over SESSIONS parallel sessions to
# `pymailsrv serve` while `pymailsrv reload` (SIGHUP) runs RELOADS times; then every message must
# be in a Maildir, and smtp-source must have seen no refused connection or failed transaction.
#   SESSIONS=20 MSGS=20000 RELOADS=5 PROCS=2 bench/reload_under_load.sh
# Needs Debian's postfix (for smtp-source) and the repo's .venv or PYTHON.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
SESSIONS="${SESSIONS:-20}"; MSGS="${MSGS:-20000}"; RELOADS="${RELOADS:-5}"; PORT="${PYM_PORT:-2528}"
SMTP_SOURCE="${SMTP_SOURCE:-$(command -v smtp-source || echo /usr/sbin/smtp-source)}"
! ss -ltn "sport = :$PORT" | grep -q ":$PORT" || { echo "port $PORT is taken" >&2; exit 1; }
WORK="$(mktemp -d /tmp/pymailsrv-reload.XXXXXX)"
cat > "$WORK/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $WORK
virtual_mailbox_base = $WORK/vmail
smtpd_listen = 127.0.0.1:$PORT
worker_processes = ${PROCS:-2}
mynetworks = 127.0.0.0/8
log_file = $WORK/pymailsrv.log
CONF
pym() { PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" "$@"; }
pym db upgrade >/dev/null
pym domain add bench.test >/dev/null
pym mailbox add u0@bench.test --password pw >/dev/null
PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" serve >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 150); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done

start=$(date +%s.%N)
"$SMTP_SOURCE" -s "$SESSIONS" -m "$MSGS" -l 2048 -M client.test -f sender@client.test -t u0@bench.test \
    "127.0.0.1:$PORT" > "$WORK/smtp-source.out" 2> "$WORK/smtp-source.err" &
SOURCE=$!
count() { find "$WORK/vmail" -path '*/new/*' -type f | wc -l; }
done_reloads=0
while kill -0 "$SOURCE" 2>/dev/null && (( done_reloads < RELOADS )); do
    sleep 1.5
    kill -0 "$SOURCE" 2>/dev/null || break
    at=$(count)
    pym reload >/dev/null
    done_reloads=$((done_reloads + 1))
    echo "reload $done_reloads after $at messages delivered"
done
set +e; wait "$SOURCE"; rc=$?; set -e
end=$(date +%s.%N)
for _ in $(seq 1 300); do [ "$(count)" -ge "$MSGS" ] && break; sleep 0.2; done
delivered=$(count)
errors=$(grep -c . "$WORK/smtp-source.err" || true)
generations=$(grep -c "reload -- version" "$WORK/pymailsrv.log" || true)
python3 - "$MSGS" "$delivered" "$done_reloads" "$rc" "$errors" "$start" "$end" "$generations" <<'EOF'
import sys
msgs, delivered, reloads, rc, errors = map(int, sys.argv[1:6])
secs = float(sys.argv[7]) - float(sys.argv[6])
print(f"sent {msgs} in {secs:.1f} s ({msgs / secs:.0f} msg/s) with {reloads} reloads "
      f"({sys.argv[8]} logged): delivered {delivered}, lost {msgs - delivered}, "
      f"smtp-source exit {rc}, {errors} error lines")
sys.exit(0 if delivered == msgs and rc == 0 and errors == 0 else 1)
EOF
[ "$errors" = 0 ] || head -5 "$WORK/smtp-source.err"
