#!/bin/bash
# Dovecot's own load generator (imaptest) against Dovecot 2.3 (the anchor, 127.0.0.1:1143) and
# `pymailsrv serve` on the SAME Maildirs and users (u0..u99@bench.test / pw), interleaved rounds of
# both mixes (nologout: long sessions; default: a login per ~10 commands), with the CPU the server
# processes used per operation. Run as root:
#   ROUNDS=2 SECS=20 CLIENTS=10 bench/imaptest_compare.sh [CHECKOUT ...]
# Each CHECKOUT (default: this one) is a pymailsrv source tree served beside the others (1144, 1145,
# …), so two versions compare in the same run (e.g. main and an older worktree).
# Needs ../shared/anchors beside the repository (ANCHORS to override), Debian's dovecot-imapd and
# imaptest built by the anchors' build-imaptest.sh (IMAPTEST to override); PYTHON (default: the
# repo's .venv) runs every checkout. Env: PROCS (worker_processes, auto), SEED (123), USERS (0-99),
# EVENT_LOOPS (e.g. "asyncio uvloop": each checkout is served once per event_loop, side by side;
# default: the checkout's own default), DOVECOT (0: serve the anchor's Maildirs but run no load on it).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
. "$ANCHORS/lab-common.sh"
IMAPTEST="${IMAPTEST:-$LAB_BUILD/imaptest/src/imaptest}"
ROUNDS="${ROUNDS:-2}"; SECS="${SECS:-20}"; CLIENTS="${CLIENTS:-10}"; USERS="${USERS:-0-99}"; SEED="${SEED:-123}"
BASE=/var/lab/postfix-vmail
MBOX="${MBOX:-/var/lab/data/bench.mbox}"
[ -x "$IMAPTEST" ] || { echo "imaptest not built: run $ANCHORS/build-imaptest.sh" >&2; exit 1; }
[ -f "$MBOX" ] || { mkdir -p "$(dirname "$MBOX")"; python3 "$ANCHORS/gen-mbox.py" "$MBOX" 200 42; }
CHECKOUTS=("$@"); [ ${#CHECKOUTS[@]} -gt 0 ] || CHECKOUTS=("$ROOT")

# the anchor Dovecot outlives this script and keeps the fds it inherits: not the one of
# `flock /tmp/bench.lock` (it would hold the machine-wide lock for as long as it runs)
"$ANCHORS/dovecot-setup.sh" >/dev/null 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-
DPID="$(cat /run/lab-dovecot/master.pid)"
labels=(dovecot); ports=(1143); pids=("$DPID")
# Dovecot too: started here, it holds what this script holds open, /tmp/bench.lock under flock among them
cleanup() {
    for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
    chown -R vmail:vmail "$BASE" 2>/dev/null || true
    "$ANCHORS/dovecot-stop.sh" >/dev/null 2>&1 || true
}
trap cleanup EXIT
read -ra LOOPS <<< "${EVENT_LOOPS:-default}"
port=1144
for checkout in "${CHECKOUTS[@]}"; do
  checkout="$(cd "$checkout" && pwd)"
  for loop in "${LOOPS[@]}"; do
    work="/var/lab/pymailsrv-imaptest-$port"; rm -rf "$work"; mkdir -p "$work"
    cat > "$work/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $work
virtual_mailbox_base = $BASE
log_file = $work/pymailsrv.log
worker_processes = ${PROCS:-auto}
mail_max_userip_connections = 1000
smtpd_listen =
imap_listen = 127.0.0.1:$port
CONF
    # no per-IP login limit (imaptest's clients all come from 127.0.0.1), where the checkout has one
    if grep -rqs login_max_ip_connections "$checkout/pymailsrv/config"; then
        echo "login_max_ip_connections = 0" >> "$work/pymailsrv.conf"
    fi
    [ "$loop" = default ] || echo "event_loop = $loop" >> "$work/pymailsrv.conf"
    # in the checkout: python -m/-c import from the current directory before PYTHONPATH
    (cd "$checkout" && PYTHONPATH="$checkout" "$PY" "$HERE/bench_site.py" "$work/pymailsrv.conf" >/dev/null)
    (cd "$checkout" && exec env PYTHONPATH="$checkout" "$PY" -m pymailsrv --config "$work/pymailsrv.conf" serve) >/dev/null 2>&1 &
    pids+=("$!"); ports+=("$port")
    labels+=("pymailsrv:$(basename "$checkout")@$(git -C "$checkout" rev-parse --short HEAD)$([ "$loop" = default ] || echo "+$loop")")
    for _ in $(seq 150); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.2; done
    port=$((port + 1))
  done
done
sleep 3  # the workers start

run() {  # LABEL PORT PID MIX
    local mixargs="" snap log
    [ "$4" = nologout ] && mixargs="logout=0"
    chown -R vmail:vmail "$BASE"  # what a pymailsrv run as root made, before Dovecot resets it
    timeout 330 python3 "$ANCHORS/imap-reset.py" 127.0.0.1 "$2" "$USERS" 0 >/dev/null
    chown -R vmail:vmail "$BASE"; sync
    lab_wait_idle "${IDLE_MAX:-15}" "${IDLE_WAIT:-120}" >/dev/null || true
    snap="$(mktemp)"; log="$(mktemp)"
    python3 "$ANCHORS/cpu-account.py" snap "$snap"
    LD_LIBRARY_PATH=/usr/lib/dovecot timeout $((SECS + 120)) "$IMAPTEST" host=127.0.0.1 port="$2" \
        user='u%d@bench.test' pass=pw users="$USERS" clients="$CLIENTS" secs="$SECS" mbox="$MBOX" \
        seed="$SEED" $mixargs > "$log" 2>&1 || true
    local cpu; cpu="$(python3 "$ANCHORS/cpu-account.py" diff "$snap" "$3")"
    python3 - "$1" "$4" "$SECS" "$log" "$cpu" <<'EOF'
import re, sys
label, mix, secs, log, cpu = sys.argv[1:]
txt = open(log, errors="replace").read().splitlines()
ours = float(re.search(r"ours=([\d.]+)", cpu).group(1))
errors = sum(1 for ln in txt if "Error:" in ln or "error:" in ln)
total = 0
if "Totals:" in txt:
    i = txt.index("Totals:")
    cols = txt[i + 1].split()
    for ln in txt[i + 2:]:
        if re.fullmatch(r"\s*\d+(\s+\d+)*\s*", ln) and len(ln.split()) == len(cols):
            total = sum(map(int, ln.split()))
            break
rate = total / float(secs)
per_op = ours / total * 1e6 if total else 0.0
print(f"{label:42s} {mix:9s} {rate:8.0f} ops/s  server CPU {ours:6.1f} s = {per_op:5.0f} µs/op  errors={errors}")
EOF
    rm -f "$snap" "$log"
}

for ((r = 1; r <= ROUNDS; r++)); do
    for mix in nologout default; do
        for i in "${!labels[@]}"; do
            [ "$i" = 0 ] && [ "${DOVECOT:-1}" = 0 ] && continue
            run "${labels[$i]}#$r" "${ports[$i]}" "${pids[$i]}" "$mix"
        done
    done
done
