#!/bin/bash
# Side-by-side SMTP acceptance + Maildir delivery: Postfix (the anchor, 127.0.0.1:2525) and
# pymailsrv (127.0.0.1:2526) under the same smtp-source load, interleaved A B A B.
# Uses ../shared/anchors (bench-smtp.sh measures accept and delivery rates and CPU).
#   ROUNDS=2 SESSIONS=20 MSGS=20000 SIZE=2048 REPS=1 PROCS=2 bench/smtp_vs_postfix.sh
# (PROCS: pymailsrv's worker_processes; SIEVE=1: every pymailsrv user u0..u99 has the 30-rule
# Sieve script of bench/sieve_rules.py as its active script, issue 15's performance case;
# EVENT_LOOP: pymailsrv's event_loop, asyncio or uvloop; default: the checkout's default)
# Needs root (Postfix), Debian's postfix package, and the repo's .venv or PYTHON.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
ROUNDS="${ROUNDS:-2}"
PORT="${PYM_PORT:-2526}"
BASE=/var/lab/pymailsrv-vmail
WORK=/var/lab/pymailsrv-bench
export REPS="${REPS:-1}" SESSIONS="${SESSIONS:-20}" MSGS="${MSGS:-20000}" SIZE="${SIZE:-2048}"
export LAB_EXTRA_PIDFILES="$WORK/pymailsrv.pid"

"$ANCHORS/postfix-setup.sh" >/dev/null
rm -rf "$WORK"; mkdir -p "$WORK" "$BASE"
cat > "$WORK/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $WORK
virtual_mailbox_base = $BASE
smtpd_listen = 127.0.0.1:$PORT
worker_processes = ${PROCS:-2}
${EVENT_LOOP:+event_loop = $EVENT_LOOP}
mynetworks = 127.0.0.0/8
log_file = $WORK/pymailsrv.log
# SPREAD=1: fold smtp-source's <seq>u@bench.test onto u0..u99, as the Postfix anchor does
virtual_alias_maps = regexp:$WORK/valias.regexp
CONF
PYTHONPATH="$ROOT" "$PY" "$HERE/bench_site.py" "$WORK/pymailsrv.conf" --valias "$WORK/valias.regexp" >/dev/null
if [ "${SIEVE:-0}" = 1 ]; then
    PYTHONPATH="$ROOT" "$PY" "$HERE/sieve_rules.py" --install "$BASE"
fi
PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" serve >/dev/null 2>&1 &
echo $! > "$WORK/pymailsrv.pid"
trap 'kill $(cat $WORK/pymailsrv.pid) 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do ss -ltn "sport = :$PORT" | grep -q ":$PORT" && break; sleep 0.2; done

for ((r = 1; r <= ROUNDS; r++)); do
    "$ANCHORS/bench-smtp.sh" 127.0.0.1 2525 /var/lab/postfix-vmail postfix
    "$ANCHORS/bench-smtp.sh" 127.0.0.1 "$PORT" "$BASE" "pymailsrv$([ "${SIEVE:-0}" = 1 ] && echo +sieve)$([ -z "${EVENT_LOOP:-}" ] || echo "+$EVENT_LOOP")"
done
