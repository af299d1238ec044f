#!/bin/bash
# IMAP proxy overhead (issue 16): imaptest's load against one pymailsrv backend directly and
# through a pymailsrv front node (proxy_backends = that backend), interleaved rounds in the same
# run, both mixes (nologout: 10 long sessions, as ../shared/anchors/bench-imap.sh MIX=nologout;
# default: a login per ~10 commands). Prints ops/s of both, the ratio proxied/direct (issue 16's
# target: >= 0.90 in long sessions) and the CPU per operation of the front node and the backend
# (their process trees, /proc), which is the figure a busy shared machine does not blur.
#   ROUNDS=2 SECS=15 CLIENTS=10 bench/imap_proxy_overhead.sh
# Run as root from the checkout to measure. Needs ../shared/anchors beside the repository
# (ANCHORS to override) and imaptest built by its build-imaptest.sh (IMAPTEST to override); PYTHON
# (default: the repo's .venv) runs pymailsrv. Env: PORT (backend; the front is PORT+1, default
# 2570), PROCS (worker_processes of both, auto), FRONT_PROCS (the front's, default PROCS), SEED,
# USERS (0-99), MIXES ("nologout default"), WORK (scratch directory), IDLE_CONNS (after the
# rounds: that many IDLE sessions directly, then through the front, with bench/imap_idle_conns.py:
# the memory per session of the backend and of the front; default 0, none), LATENCY (before the
# rounds: that many NOOP round trips in one session, direct and proxied alternately, 3 times: the
# latency the hop adds, medians; default 2000, 0 none), PROFILE (a directory: py-spy records the
# front node's processes during the proxied runs of round 1, py-spy from PATH or PYSPY).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
. "$ANCHORS/lab-common.sh"
IMAPTEST="${IMAPTEST:-$LAB_BUILD/imaptest/src/imaptest}"
ROUNDS="${ROUNDS:-2}"; SECS="${SECS:-15}"; CLIENTS="${CLIENTS:-10}"; USERS="${USERS:-0-99}"; SEED="${SEED:-123}"
PORT="${PORT:-2570}"; FPORT=$((PORT + 1)); MIXES="${MIXES:-nologout default}"
WORK="${WORK:-/var/lab/pymailsrv-proxybench-$PORT}"
MBOX="${MBOX:-/var/lab/data/bench.mbox}"
[ -x "$IMAPTEST" ] || { echo "imaptest not built: run $ANCHORS/build-imaptest.sh" >&2; exit 1; }
[ -f "$MBOX" ] || { mkdir -p "$(dirname "$MBOX")"; python3 "$ANCHORS/gen-mbox.py" "$MBOX" 200 42; }

IDLE_CONNS="${IDLE_CONNS:-0}"
(( IDLE_CONNS == 0 )) || ulimit -n $((IDLE_CONNS * 2 + 2000))  # the servers hold them all (front: two each)
rm -rf "$WORK"; mkdir -p "$WORK/backend" "$WORK/front" "$WORK/vmail"; : > "$WORK/rates"
pids=()
cleanup() {  # stop both servers and wait for them (they shut down gracefully)
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
}
trap cleanup EXIT

node() {  # NAME PORT EXTRA-CONFIG: write the config, create u0..u99@bench.test / pw, start
    local name="$1" port="$2" conf="$WORK/$1/pymailsrv.conf"
    cat > "$conf" <<CONF
myhostname = $name.bench.test
data_directory = $WORK/$name
virtual_mailbox_base = $WORK/vmail
log_file = $WORK/$name/pymailsrv.log
worker_processes = $4
mail_max_userip_connections = 1000
login_max_ip_connections = 0
smtpd_listen =
imap_listen = 127.0.0.1:$port
$3
CONF
    (cd "$ROOT" && PYTHONPATH="$ROOT" "$PY" "$HERE/bench_site.py" "$conf" >/dev/null)
    (cd "$ROOT" && exec env PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$conf" serve) >/dev/null 2>&1 &
    pids+=("$!")
    for _ in $(seq 150); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; sleep 0.2; done
    echo "$name did not start: $WORK/$name/pymailsrv.log" >&2; exit 1
}
# the backend believes the front's forwarded client address (ID x-originating-ip)
node backend "$PORT" "login_trusted_networks = 127.0.0.1/32" "${PROCS:-auto}"; BPID="${pids[0]}"
node front "$FPORT" "proxy_backends = 127.0.0.1
proxy_imap_port = $PORT" "${FRONT_PROCS:-${PROCS:-auto}}"; FPID="${pids[1]}"
sleep 3  # the workers start
echo "# imaptest clients=$CLIENTS secs=$SECS users=$USERS; backend 127.0.0.1:$PORT (pid $BPID), front 127.0.0.1:$FPORT (pid $FPID), $(git -C "$ROOT" rev-parse --short HEAD)"

run() {  # LABEL PORT MIX ROUND [PROFILE]: one imaptest run; CPU of both process trees
    local mixargs="" snap log cpu_b cpu_f
    [ "$3" = nologout ] && mixargs="logout=0"
    timeout 330 python3 "$ANCHORS/imap-reset.py" 127.0.0.1 "$PORT" "$USERS" 0 >/dev/null
    sync
    lab_wait_idle "${IDLE_MAX:-15}" "${IDLE_WAIT:-10}" >/dev/null || true
    snap="$(mktemp)"; log="$(mktemp)"
    python3 "$ANCHORS/cpu-account.py" snap "$snap"
    if [ -n "${5:-}" ]; then  # the front's processes, sampled mid-run (py-spy does not stop them)
        (sleep 2; "$PYSPY" record --nonblocking --subprocesses --pid "$FPID" --duration $((SECS / 2)) \
            --format raw --output "$5" >/dev/null 2>&1) &
    fi
    LD_LIBRARY_PATH=/usr/lib/dovecot timeout $((SECS + 120)) "$IMAPTEST" host=127.0.0.1 port="$2" \
        user='u%d@bench.test' pass=pw users="$USERS" clients="$CLIENTS" secs="$SECS" mbox="$MBOX" \
        seed="$SEED" $mixargs > "$log" 2>&1 || true
    cpu_b="$(python3 "$ANCHORS/cpu-account.py" diff "$snap" "$BPID")"
    cpu_f="$(python3 "$ANCHORS/cpu-account.py" diff "$snap" "$FPID")"
    rate="$(python3 - "$1#$4" "$3" "$SECS" "$log" "$cpu_b" "$cpu_f" <<'EOF'
import re, sys
label, mix, secs, log, cpu_b, cpu_f = sys.argv[1:]
txt = open(log, errors="replace").read().splitlines()
ours = lambda cpu: float(re.search(r"ours=([\d.]+)", cpu).group(1))
foreign = float(re.search(r"foreign=([\d.]+)", cpu_b).group(1))
errors = sum(1 for ln in txt if "Error:" in ln or "error:" in ln)
total = logins = 0
if "Totals:" in txt:
    i = txt.index("Totals:")
    cols = txt[i + 1].split()
    for ln in txt[i + 2:]:
        if re.fullmatch(r"\s*\d+(\s+\d+)*\s*", ln) and len(ln.split()) == len(cols):
            counts = dict(zip(cols, map(int, ln.split())))
            total, logins = sum(counts.values()), counts.get("Logi", 0)
            break
rate = total / float(secs)
per_op = lambda s: s / total * 1e6 if total else 0.0
b, f = ours(cpu_b), ours(cpu_f)
print(f"{label:10s} {mix:9s} {rate:7.0f} ops/s ({logins / float(secs):5.1f} logins/s)  CPU/op: backend "
      f"{per_op(b):5.0f} µs, front {per_op(f):5.0f} µs  (backend {b:5.1f} s, front {f:5.1f} s, "
      f"other processes {foreign:5.1f} s)  errors={errors}", file=sys.stderr)
print(f"{rate:.1f} {per_op(b):.1f} {per_op(f):.1f}")
EOF
)"
    echo "$1 $3 $4 $rate" >> "$WORK/rates"  # rate = "ops/s backend-µs/op front-µs/op"
    rm -f "$snap" "$log"
}

LATENCY="${LATENCY:-2000}"
if (( LATENCY > 0 )); then
    "$PY" - "$PORT" "$FPORT" "$LATENCY" <<'EOF'
import socket, statistics, sys, time
direct, proxied, n = map(int, sys.argv[1:])

def rtts(port: int) -> list[float]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b'a LOGIN "u0@bench.test" "pw"\r\n')
        while not f.readline().startswith(b"a "):
            pass
        out = []
        for _ in range(n):
            t = time.perf_counter()
            s.sendall(b"n NOOP\r\n")
            f.readline()
            out.append(time.perf_counter() - t)
        s.sendall(b"z LOGOUT\r\n")
        return out

for i in range(3):
    d, p = statistics.median(rtts(direct)) * 1e6, statistics.median(rtts(proxied)) * 1e6
    print(f"latency#{i + 1}  NOOP round trip, median of {n}: direct {d:6.0f} µs, proxied {p:6.0f} µs, "
          f"the hop adds {p - d:5.0f} µs")
EOF
fi

PYSPY="${PYSPY:-$(command -v py-spy || true)}"
for ((r = 1; r <= ROUNDS; r++)); do
    for mix in $MIXES; do
        # alternate which goes first, so a drift of the machine's speed hits both alike
        if (( r % 2 )); then order="direct proxied"; else order="proxied direct"; fi
        for side in $order; do
            if [ "$side" = direct ]; then run direct "$PORT" "$mix" "$r"; continue; fi
            prof=""
            if [ -n "${PROFILE:-}" ] && [ "$r" = 1 ] && [ -n "$PYSPY" ]; then mkdir -p "$PROFILE"; prof="$PROFILE/front-$mix.txt"; fi
            run proxied "$FPORT" "$mix" "$r" "$prof"
        done
    done
done
for mix in $MIXES; do
    python3 - "$mix" "$ROUNDS" "$WORK/rates" <<'EOF'
import sys
mix, rounds, path = sys.argv[1:]
rates, cpu = {}, {}  # "side mix round" -> ops/s; -> (backend, front) CPU µs per op
for ln in open(path).read().splitlines():
    side, m, r, rate, b, f = ln.split()
    rates[f"{side} {m} {r}"], cpu[f"{side} {m} {r}"] = float(rate), (float(b), float(f))
ratios = []
for r in range(1, int(rounds) + 1):
    d, p = rates.get(f"direct {mix} {r}", 0.0), rates.get(f"proxied {mix} {r}", 0.0)
    if d:
        ratios.append(p / d)
        print(f"round {r} {mix:9s} proxied/direct = {p:.0f}/{d:.0f} = {p / d:.2f}")
if ratios:
    import statistics
    both = [(rates.get(f"direct {mix} {r}", 0.0), rates.get(f"proxied {mix} {r}", 0.0)) for r in range(1, int(rounds) + 1)]
    print(f"{mix:9s} proxied/direct: median of the rounds {statistics.median(ratios):.2f}, geometric mean "
          f"{statistics.geometric_mean(ratios):.2f}, all ops {sum(p for _, p in both) / sum(d for d, _ in both):.2f} "
          f"(issue 16's target: >= 0.90)")
    # what CPU alone predicts when front and backend share the cores (this machine): the
    # direct backend's CPU per op over the proxied one's plus the front's
    d = [cpu[f"direct {mix} {r}"][0] for r in range(1, int(rounds) + 1) if f"direct {mix} {r}" in cpu]
    pb = [cpu[f"proxied {mix} {r}"] for r in range(1, int(rounds) + 1) if f"proxied {mix} {r}" in cpu]
    if d and pb:
        bd, bp, fp = statistics.median(d), statistics.median(b for b, _ in pb), statistics.median(f for _, f in pb)
        print(f"{mix:9s} CPU per op, medians: direct backend {bd:.0f} µs; proxied backend {bp:.0f} µs + front "
              f"{fp:.0f} µs; on shared cores that predicts proxied/direct = {bd / (bp + fp):.2f}, on a "
              f"machine of its own a 2-core front carries {2e6 / fp:,.0f} ops/s" if fp else "")
EOF
done
if (( IDLE_CONNS > 0 )); then
    for side in direct proxied; do
        port="$PORT"; spids=(--server-pid "$BPID")
        [ "$side" = proxied ] && port="$FPORT" spids=(--server-pid "$FPID" --server-pid "$BPID")
        echo "IDLE $side: $IDLE_CONNS sessions (pids: backend $BPID, front $FPID)"
        "$PY" "$HERE/imap_idle_conns.py" 127.0.0.1 "$port" "${spids[@]}" --conns "$IDLE_CONNS" --timeout 120
        sleep 3  # the sessions end
    done
fi
