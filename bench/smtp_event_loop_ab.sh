#!/bin/bash
# The same checkout served twice, event_loop = asyncio (127.0.0.1:2550) and uvloop (127.0.0.1:2551),
# under the same SMTP loads in interleaved rounds (A B A B): one session sending in sequence
# (bench/smtp_latency.py, one connection per message) and SESSIONS parallel sessions (Postfix's
# smtp-source), each with the CPU the server's processes (main + workers, from /proc) used per message.
#   ROUNDS=2 MSGS1=1000 MSGS20=4000 SESSIONS=20 SIZE=2048 PROCS=2 bench/smtp_event_loop_ab.sh
# Run as root under the bench lock (flock /tmp/bench.lock …); PYTHON (default the repo's .venv).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
ROUNDS="${ROUNDS:-2}"; MSGS1="${MSGS1:-1000}"; MSGS20="${MSGS20:-4000}"; SESSIONS="${SESSIONS:-20}"
SIZE="${SIZE:-2048}"; LOOPS=(asyncio uvloop); PORTS=(2550 2551)
SMTP_SOURCE="${SMTP_SOURCE:-$(command -v smtp-source || echo /usr/sbin/smtp-source)}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

for i in 0 1; do
    loop="${LOOPS[$i]}"; port="${PORTS[$i]}"; work="/var/lab/pymailsrv-loop-$loop"
    rm -rf "$work"; mkdir -p "$work/vmail"
    cat > "$work/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $work
virtual_mailbox_base = $work/vmail
smtpd_listen = 127.0.0.1:$port
worker_processes = ${PROCS:-2}
event_loop = $loop
mynetworks = 127.0.0.0/8
log_file = $work/pymailsrv.log
CONF
    pym() { PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$work/pymailsrv.conf" "$@"; }
    pym db upgrade >/dev/null
    pym domain add bench.test >/dev/null
    pym mailbox add u0@bench.test --password pw >/dev/null
    PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$work/pymailsrv.conf" serve >/dev/null 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 150); do grep -qs "daemon started" "$work/pymailsrv.log" && break; sleep 0.2; done
    grep -o "daemon started.*" "$work/pymailsrv.log"
done
sleep 3  # the workers start

cpu() {  # CPU seconds (user+system) of PID and every process below it
    python3 - "$1" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
kids: dict[int, list[int]] = {}
stat: dict[int, list[str]] = {}
for d in os.listdir("/proc"):
    if d.isdigit():
        try:
            f = open(f"/proc/{d}/stat").read().rpartition(")")[2].split()
        except OSError:
            continue
        stat[int(d)] = f
        kids.setdefault(int(f[1]), []).append(int(d))
todo, total = [int(sys.argv[1])], 0
while todo:
    p = todo.pop()
    if p in stat:
        total += int(stat[p][11]) + int(stat[p][12])
    todo.extend(kids.get(p, []))
print(total / tick)
EOF
}

clear_maildir() { find "/var/lab/pymailsrv-loop-$1/vmail" -type f -path '*/new/*' -delete; sync; }

per_msg() {  # LABEL MSGS CPU0 CPU1 T0 T1 [extra]
    python3 - "$@" <<'EOF'
import sys
label, n, c0, c1, t0, t1, extra = (sys.argv[1:] + [""])[:7]
n = int(n); cpu = float(c1) - float(c0); wall = float(t1) - float(t0)
print(f"{label:26s} {n / wall:7.0f} msg/s  server CPU {cpu:6.2f} s = {cpu / n * 1e6:6.0f} µs/msg  {extra}", flush=True)
EOF
}

for i in 0 1; do  # what the processes spend doing nothing (timers, metrics reports) is in every figure
    c0="$(cpu "${pids[$i]}")"; sleep "${IDLE_SECS:-5}"; c1="$(cpu "${pids[$i]}")"
    python3 -c 'import sys; print(f"{sys.argv[1]:26s} idle: server CPU {(float(sys.argv[3]) - float(sys.argv[2])) / float(sys.argv[4]) * 1e3:.1f} ms/s")' \
        "${LOOPS[$i]}" "$c0" "$c1" "${IDLE_SECS:-5}"
done
for ((r = 1; r <= ROUNDS; r++)); do
    for i in 0 1; do
        loop="${LOOPS[$i]}"; port="${PORTS[$i]}"; pid="${pids[$i]}"
        clear_maildir "$loop"
        c0="$(cpu "$pid")"; t0="$(date +%s.%N)"
        line="$("$PY" "$HERE/smtp_latency.py" --messages "$MSGS1" --rounds 1 --size "$SIZE" "1session=127.0.0.1:$port")"
        t1="$(date +%s.%N)"; sleep 0.5; c1="$(cpu "$pid")"
        per_msg "$loop#$r 1 session" "$MSGS1" "$c0" "$c1" "$t0" "$t1"
        echo "    ${line#*msg/s  }"
    done
    for i in 0 1; do
        loop="${LOOPS[$i]}"; port="${PORTS[$i]}"; pid="${pids[$i]}"
        clear_maildir "$loop"
        c0="$(cpu "$pid")"; t0="$(date +%s.%N)"
        "$SMTP_SOURCE" -s "$SESSIONS" -m "$MSGS20" -l "$SIZE" -M client.test -f sender@client.test \
            -t u0@bench.test "127.0.0.1:$port" >/dev/null
        t1="$(date +%s.%N)"; sleep 0.5; c1="$(cpu "$pid")"
        got="$(find "/var/lab/pymailsrv-loop-$loop/vmail" -type f -path '*/new/*' | wc -l)"
        per_msg "$loop#$r $SESSIONS sessions" "$MSGS20" "$c0" "$c1" "$t0" "$t1" "delivered=$got"
    done
done
