#!/bin/bash
# Dovecot imaptest's scripted compliance tests (its src/tests/) against a real `pymailsrv serve`
# of this checkout: every script alone, then the whole folder in one run; prints the failures and
# the counts. A throw-away data directory and user (the scripts create and delete mailboxes).
#   PROCS=0 bench/imaptest_scripts.sh [SCRIPT ...]        (PROCS: worker_processes, default auto)
# Needs imaptest built by ../shared/anchors/build-imaptest.sh (IMAPTEST, TESTS to override) and
# the repo's .venv (or PYTHON).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
IMAPTEST="${IMAPTEST:-/opt/lab-build/imaptest/src/imaptest}"
TESTS="${TESTS:-$(dirname "$IMAPTEST")/tests}"
[ -x "$IMAPTEST" ] || { echo "imaptest not built: run ../shared/anchors/build-imaptest.sh" >&2; exit 1; }
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
it() { LD_LIBRARY_PATH=/usr/lib/dovecot timeout "${TIMEOUT:-120}" "$IMAPTEST" host=127.0.0.1 port="$PORT" \
    user=tester@compliance.test pass=pw "$@"; }
scripts=("$@"); [ ${#scripts[@]} -gt 0 ] || mapfile -t scripts < <(ls "$TESTS" | grep -v '\.mbox$')
failed=()
for name in "${scripts[@]}"; do
    out="$(it test="$TESTS/$name" 2>&1)"
    if ! grep -qE "test groups: 0 failed" <<<"$out"; then failed+=("$name"); echo "--- $name"; tail -15 <<<"$out"; fi
done
echo "alone: $(( ${#scripts[@]} - ${#failed[@]} ))/${#scripts[@]} passed; failed: ${failed[*]:-none}"
if [ $# -eq 0 ]; then
    out="$(TIMEOUT=900 it test="$TESTS" 2>&1)"
    echo "whole folder in one run: $(grep -E "test groups:|individual commands failed" <<<"$out" | tr '\n' ' ')"
    grep -E "^\*\*\* Test .* failed|^[a-z0-9-]+: .*failed" <<<"$out" | head -20
fi
