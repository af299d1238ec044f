#!/bin/bash
# Dovecot imaptest's scripted compliance tests (its src/tests/) against a real `pymailsrv serve`
# of this checkout: every script alone, then the whole folder in one run; prints the failures and
# the counts. Then, with STRESS=SECS, imaptest's stress run with state tracking (its default
# checks: random commands by users=5 clients=5 on a shared mailbox per user, every response
# checked against the state the clients saw). A throw-away data directory and users (the
# scripts create and delete mailboxes).
#   PROCS=0 bench/imaptest_scripts.sh [SCRIPT ...]        (PROCS: worker_processes, default auto)
#   RUNS=3             the alone pass and the whole-folder run this many times (one server)
#   STRESS=60 SCRIPTS=0 bench/imaptest_scripts.sh         (the stress run only; MBOX=file to
#                      append from, default one made by ../shared/anchors/gen-mbox.py 200 42)
# Needs ../shared/anchors beside the repository (ANCHORS to override), imaptest built by its
# build-imaptest.sh (IMAPTEST, TESTS to override) and the repo's .venv (or PYTHON).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
[ -n "${IMAPTEST:-}" ] || { . "$ANCHORS/lab-common.sh"; IMAPTEST="$LAB_BUILD/imaptest/src/imaptest"; }
TESTS="${TESTS:-$(dirname "$IMAPTEST")/tests}"
[ -x "$IMAPTEST" ] || { echo "imaptest not built: run $ANCHORS/build-imaptest.sh" >&2; exit 1; }
WORK="$(mktemp -d)"; PORT="${PORT:-1149}"
cat > "$WORK/pymailsrv.conf" <<CONF
myhostname = mx.compliance.test
data_directory = $WORK
log_file = $WORK/pymailsrv.log
worker_processes = ${PROCS:-auto}
smtpd_listen =
imap_listen = 127.0.0.1:$PORT
login_max_ip_connections = 0
mail_max_userip_connections = 1000
CONF
pym() { PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" "$@"; }
pym db upgrade >/dev/null && pym domain add compliance.test >/dev/null \
    && pym mailbox add tester@compliance.test --password pw >/dev/null || exit 1
PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" serve >/dev/null 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 150); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
sleep 2
it() { LD_LIBRARY_PATH=/usr/lib/dovecot timeout "${TIMEOUT:-120}" "$IMAPTEST" host=127.0.0.1 port="$PORT" "$@"; }
status=0
# the scripts: the files of the folder (not its broken/ directory: upstream's known-broken ones)
scripts=("$@"); [ ${#scripts[@]} -gt 0 ] || mapfile -t scripts < <(find "$TESTS" -maxdepth 1 -type f ! -name '*.mbox' -printf '%f\n' | sort)
for ((run = 1; run <= ${RUNS:-1} && ${SCRIPTS:-1} != 0; run++)); do
    failed=()
    for name in "${scripts[@]}"; do
        out="$(it user=tester@compliance.test pass=pw test="$TESTS/$name" 2>&1)"
        if ! grep -qE "test groups: 0 failed" <<<"$out"; then failed+=("$name"); echo "--- $name"; tail -15 <<<"$out"; fi
    done
    echo "run $run alone (worker_processes=${PROCS:-auto}): $(( ${#scripts[@]} - ${#failed[@]} ))/${#scripts[@]} passed; failed: ${failed[*]:-none}"
    [ ${#failed[@]} -eq 0 ] || status=1
    if [ $# -eq 0 ]; then
        out="$(TIMEOUT=900 it user=tester@compliance.test pass=pw test="$TESTS" 2>&1)"
        echo "run $run whole folder in one run (worker_processes=${PROCS:-auto}): $(grep -E "test groups:|individual commands failed" <<<"$out" | tr '\n' ' ')"
        grep -E "^\*\*\* Test .* failed|^[a-z0-9-]+: .*failed" <<<"$out" | grep -v "individual commands" | head -20
        grep -qE "test groups: 0 failed" <<<"$out" || status=1
    fi
done
if [ "${STRESS:-0}" -gt 0 ]; then
    for i in 1 2 3 4 5; do pym mailbox add "u$i@compliance.test" --password pw >/dev/null || exit 1; done
    MBOX="${MBOX:-$WORK/stress.mbox}"
    [ -f "$MBOX" ] || python3 "$ANCHORS/gen-mbox.py" "$MBOX" 200 42 >/dev/null || exit 1
    out="$(TIMEOUT=$((STRESS + 120)) it user='u%d@compliance.test' pass=pw users=5 clients=5 secs="$STRESS" mbox="$MBOX" 2>&1)"
    rc=$?
    errors="$(grep -cE "Error:|Panic:|Fatal:" <<<"$out")"
    echo "stress ${STRESS}s users=5 clients=5 (worker_processes=${PROCS:-auto}): imaptest exit $rc, $errors error line(s)"
    grep -E "Error:|Panic:|Fatal:|Warning:" <<<"$out" | head -40
    grep -A4 "^Totals:" <<<"$out"
    [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ] || status=1
fi
grep -iE "traceback| (error|fatal|panic|critical): " "$WORK/pymailsrv.log" | head -20  # the server's own complaints
exit $status
