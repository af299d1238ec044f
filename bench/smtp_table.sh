#!/bin/bash
# Issue 18's table in one run: four smtp-source loads, each interleaved Postfix (the anchor,
# 127.0.0.1:2525) / pymailsrv (127.0.0.1:PYM_PORT) for ROUNDS rounds, delivery into Maildir
# counted; per round: accepted and delivered msg/s of both, the ratios, and the CPU per message of
# each server's own processes (from /proc, the load generator not included); then the time from
# end of DATA to the 250 of one session in sequence (bench/smtp_latency.py), median and p99.
#   ROUNDS=2 SCALE=1 PROCS=2 PYM_PORT=2560 bench/smtp_table.sh
# Rows (ROWS="1 2 3 4" picks some):
#   1: 1 session × 5,000 × 2 KiB             2: 20 sessions × 20,000 × 2 KiB, all to one mailbox
#   3: 20 sessions × 20,000 × 2 KiB over 100 mailboxes           4: 20 sessions × 2,000 × 100 KiB
# SCALE=0.2 multiplies every message count (quick runs); LAT_MSGS=500 messages per latency round
# (scaled too); WARMUP=200 messages per server first; IDLE_MAX=15 IDLE_WAIT=20: before each run
# wait at most IDLE_WAIT s for the box to be under IDLE_MAX % busy (other jobs share it; the
# "others" column is the CPU they used meanwhile, so a disturbed round shows).
# Needs root (Postfix), Debian's postfix package (smtp-source), ../shared/anchors, and the repo's
# .venv or PYTHON.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
. "$ANCHORS/lab-common.sh"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
ROUNDS="${ROUNDS:-2}"; SCALE="${SCALE:-1}"; ROWS="${ROWS:-1 2 3 4}"
PORT="${PYM_PORT:-2560}"; PROCS="${PROCS:-2}"
WARMUP="${WARMUP:-200}"; IDLE_MAX="${IDLE_MAX:-15}"; IDLE_WAIT="${IDLE_WAIT:-20}"
RUN_TIMEOUT="${RUN_TIMEOUT:-900}"
SMTP_SOURCE="${SMTP_SOURCE:-$(command -v smtp-source || echo /usr/sbin/smtp-source)}"
PF_BASE=/var/lab/postfix-vmail
WORK="/var/lab/pymailsrv-table-$PORT"; BASE="$WORK/vmail"
scaled() { python3 -c 'import sys; print(max(1, round(int(sys.argv[1]) * float(sys.argv[2]))))' "$1" "$SCALE"; }
LAT_MSGS="$(scaled "${LAT_MSGS:-500}")"

# --- the servers ------------------------------------------------------------------------------
"$ANCHORS/postfix-setup.sh" >/dev/null
stop_pymailsrv() {   # and wait for it (its workers finish first): no server of ours is left
    local pid
    pid="$(cat "$WORK/pymailsrv.pid" 2>/dev/null)" || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
}
stop_pymailsrv
rm -rf "$WORK"; mkdir -p "$WORK" "$BASE"
cat > "$WORK/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $WORK
virtual_mailbox_base = $BASE
smtpd_listen = 127.0.0.1:$PORT
worker_processes = $PROCS
mynetworks = 127.0.0.0/8
log_file = $WORK/pymailsrv.log
# the spread row: fold smtp-source's <seq>u@bench.test onto u0..u99, as the Postfix anchor does
virtual_alias_maps = regexp:$WORK/valias.regexp
CONF
PYTHONPATH="$ROOT" "$PY" "$HERE/bench_site.py" "$WORK/pymailsrv.conf" --valias "$WORK/valias.regexp" >/dev/null
PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" serve >/dev/null 2>&1 &
echo $! > "$WORK/pymailsrv.pid"
trap stop_pymailsrv EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 150); do   # the greeting: with worker processes the main one listens first
    python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
sys.exit(0 if s.recv(100).startswith(b"220") else 1)' "$PORT" 2>/dev/null && break
    sleep 0.2
done
PF_PID="$(tr -d ' \n' < /var/spool/postfix/pid/master.pid)"
PYM_PID="$(cat "$WORK/pymailsrv.pid")"

# --- one measured run -------------------------------------------------------------------------
wait_postfix_queue_empty() {
    for ((i = 0; i < 600; i++)); do
        [ -z "$(postqueue -j 2>/dev/null | head -1)" ] && return 0
        sleep 0.5
    done
    echo "postfix queue not empty after 300s" >&2; return 1
}

# $1 label $2 port $3 maildir base $4 sessions $5 msgs $6 size $7 spread
# prints: accept_s deliver_s complete server_cpu_s others_cpu_s
one_run() {
    local port="$2" base="$3" s="$4" m="$5" size="$6" spread="$7" root snap t0 t1 w rcpt
    [ "$1" = postfix ] && root="$PF_PID" || root="$PYM_PID"
    if [ "$spread" = 1 ]; then rcpt=(-N -t u@bench.test); else rcpt=(-t u0@bench.test); fi
    wait_postfix_queue_empty
    lab_clear_maildirs "$base"
    sync; sleep 1
    lab_wait_idle "$IDLE_MAX" "$IDLE_WAIT" >/dev/null 2>&1
    snap="$(mktemp /tmp/smtp-table-snap.XXXXXX)"
    python3 "$ANCHORS/cpu-account.py" snap "$snap"
    t0="$(date +%s.%N)"
    timeout "$RUN_TIMEOUT" "$SMTP_SOURCE" -s "$s" -m "$m" -l "$size" -M client.test -f sender@client.test \
        "${rcpt[@]}" "127.0.0.1:$port" >/dev/null 2>"$WORK/smtp-source.err" \
        || echo "   smtp-source failed: $(tail -2 "$WORK/smtp-source.err" | tr '\n' ' ')" >&2
    t1="$(date +%s.%N)"
    w="$(python3 "$ANCHORS/maildir-wait.py" "$base" "$m" "$t0" "$RUN_TIMEOUT")"
    # the server's own process tree; then everything but it and this script's (the client's)
    local server others
    server="$(python3 "$ANCHORS/cpu-account.py" diff "$snap" "$root" | sed -E 's/ours=([0-9.]+).*/\1/')"
    others="$(python3 "$ANCHORS/cpu-account.py" diff "$snap" "$root" $$ | sed -E 's/.*foreign=([0-9.]+).*/\1/')"
    rm -f "$snap"
    python3 - "$t0" "$t1" "$w" "$server" "$others" <<'PYEOF'
import sys
t0, t1, w, server, others = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
kv = dict(x.split("=") for x in w.split())
print("%.3f %s %s %s %s" % (t1 - t0, kv["last_ctime_rel"], kv["complete"], server, others))
PYEOF
}

ROW_NAME=("" "1 session x 5,000 x 2 KiB" "20 sessions x 20,000 x 2 KiB, one mailbox"
          "20 sessions x 20,000 x 2 KiB, 100 mailboxes" "20 sessions x 2,000 x 100 KiB")
ROW_ARGS=("" "1 5000 2048 0" "20 20000 2048 0" "20 20000 2048 1" "20 2000 102400 0")
RESULTS="$WORK/table.txt"; : > "$RESULTS"

echo "== smtp_table: Postfix 127.0.0.1:2525 vs pymailsrv 127.0.0.1:$PORT (worker_processes=$PROCS," \
     "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')), ROUNDS=$ROUNDS SCALE=$SCALE, nproc=$(nproc)"
if (( WARMUP > 0 )); then
    one_run postfix 2525 "$PF_BASE" 4 "$WARMUP" 2048 1 >/dev/null
    one_run pymailsrv "$PORT" "$BASE" 4 "$WARMUP" 2048 1 >/dev/null
fi
printf '%-44s %-5s %-9s  %9s %9s %8s %7s  | %s\n' load round server "accept/s" "deliv/s" "cpu ms/m" others complete
for row in $ROWS; do
    read -r s m size spread <<< "${ROW_ARGS[$row]}"
    m="$(scaled "$m")"
    for ((r = 1; r <= ROUNDS; r++)); do
        for server in postfix pymailsrv; do
            if [ "$server" = postfix ]; then out="$(one_run postfix 2525 "$PF_BASE" "$s" "$m" "$size" "$spread")"
            else out="$(one_run pymailsrv "$PORT" "$BASE" "$s" "$m" "$size" "$spread")"; fi
            read -r a d complete cpu others <<< "$out"
            python3 - "$RESULTS" "$row" "${ROW_NAME[$row]} ($m)" "$r" "$server" "$m" "$a" "$d" "$complete" "$cpu" "$others" <<'PYEOF'
import sys
res, row, name, r, server, m, a, d, complete, cpu, others = sys.argv[1:]
m, a, d, cpu = int(m), float(a), float(d), float(cpu)
ar, dr = m / a, (m / d if complete == "1" and d > 0 else 0.0)
open(res, "a").write(f"{row} {r} {server} {ar:.1f} {dr:.1f} {cpu / m * 1e3:.3f}\n")
print(f"{name:44s} {r:5s} {server:9s}  {ar:9.0f} {dr:9.0f} {cpu / m * 1e3:8.2f} {others:>6s}s  | {complete}", flush=True)
PYEOF
        done
        python3 - "$RESULTS" "$row" "$r" <<'PYEOF'
import sys
rows = [line.split() for line in open(sys.argv[1])]
get = lambda who: next(x for x in rows if x[0] == sys.argv[2] and x[1] == sys.argv[3] and x[2] == who)
p, y = get("postfix"), get("pymailsrv")
ratio = lambda a, b: f"{float(a) / float(b):.2f}x" if float(b) > 0 else "-"
print(f"{'':44s} {sys.argv[3]:5s} {'ratio':9s}  {ratio(y[3], p[3]):>9s} {ratio(y[4], p[4]):>9s} {ratio(y[5], p[5]):>8s}"
      "   (pymailsrv / Postfix)", flush=True)
PYEOF
    done
done

# --- latency of one session in sequence: end of DATA -> 250 ------------------------------------
echo "== end of DATA -> 250, one session, $LAT_MSGS messages x 2 KiB per round (ms, median/p99)"
for ((r = 1; r <= ROUNDS; r++)); do
    for target in "postfix=127.0.0.1:2525:$PF_BASE" "pymailsrv=127.0.0.1:$PORT:$BASE"; do
        spec="${target%:*}"; base="${target##*:}"
        wait_postfix_queue_empty
        lab_clear_maildirs "$base"; sync
        "$PY" "$HERE/smtp_latency.py" --messages "$LAT_MSGS" --rounds 1 "$spec" \
            | sed -E "s/^([a-z]+)#1 +([0-9]+ msg\/s).*end-of-data ([0-9.]+)\/([0-9.]+).*/  round $r \1: median \3 ms, p99 \4 ms (\2)/"
    done
done
wait_postfix_queue_empty || true
lab_clear_maildirs "$PF_BASE"

# --- the issue's table: delivered msg/s of every round, the median ratio, CPU per message ------
python3 - "$RESULTS" "${ROW_NAME[@]:1}" <<'PYEOF'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
names = sys.argv[2:]
print("| load | Postfix msg/s | pymailsrv msg/s | ratio (median of rounds) | CPU ms/msg Postfix / pymailsrv |")
print("|---|---|---|---|---|")
for row in sorted({r[0] for r in rows}, key=int):
    pick = lambda who, col: [float(r[col]) for r in rows if r[0] == row and r[2] == who]
    pf, py = pick("postfix", 4), pick("pymailsrv", 4)
    ratios = [b / a for a, b in zip(pf, py) if a > 0]
    fmt = lambda v: " / ".join(f"{x:.0f}" for x in v)
    print(f"| {names[int(row) - 1]} | {fmt(pf)} | {fmt(py)} | {statistics.median(ratios):.2f}x |"
          f" {statistics.median(pick('postfix', 5)):.2f} / {statistics.median(pick('pymailsrv', 5)):.2f} |")
PYEOF
echo "== done in ${SECONDS}s"
