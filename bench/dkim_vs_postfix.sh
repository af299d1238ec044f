#!/bin/bash
# DKIM cost side by side: pymailsrv's native DKIM against Postfix + the OpenDKIM milter, under the
# same smtp-source load (../shared/anchors/bench-smtp.sh: 20 sessions x 2 KiB by default),
# interleaved A B A B, reporting msg/s and CPU per message for each.
#   MODE=sign    (default) every message is signed with RSA-2048 (the client is in mynetworks):
#                pymailsrv's dkim_sign stage vs OpenDKIM in Mode s as smtpd_milters.
#   MODE=verify  every message carries a valid RSA-2048 signature and is checked: pymailsrv's
#                sender_auth stage (DKIM + SPF + DMARC + ARC, keys from a loopback DNS responder)
#                vs OpenDKIM in Mode v (keys from its TestPublicKeys file; no SPF/DMARC).
#   ROUNDS=2 SESSIONS=20 MSGS=20000 SIZE=2048 REPS=1 PROCS=2 MODE=sign bench/dkim_vs_postfix.sh
# Needs root, Debian's postfix and opendkim, and the repo's .venv or PYTHON. The messages come
# from smtp-source -F (a prepared message of SIZE bytes from sender@client.test); SMTP_SOURCE is
# pointed at a wrapper that adds it, so bench-smtp.sh is used as it is.
# The Postfix anchor is the machine's one Postfix: this script adds the milter to its main.cf
# (removed again at exit), so do not run it beside another benchmark of the anchor.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
MODE="${MODE:-sign}"; ROUNDS="${ROUNDS:-2}"
PORT="${PYM_PORT:-2541}"; MILTER_PORT="${MILTER_PORT:-8891}"
BASE=/var/lab/pymailsrv-dkim-vmail
WORK=/var/lab/pymailsrv-dkim-bench
export REPS="${REPS:-1}" SESSIONS="${SESSIONS:-20}" MSGS="${MSGS:-20000}" SIZE="${SIZE:-2048}"
export LAB_EXTRA_PIDFILES="$WORK/pymailsrv.pid $WORK/opendkim.pid $WORK/dns.pid"
OPENDKIM="$(command -v opendkim || echo /usr/sbin/opendkim)"
[ "$MODE" = sign ] || [ "$MODE" = verify ] || { echo "MODE is sign or verify" >&2; exit 2; }

rm -rf "$WORK"; mkdir -p "$WORK" "$BASE/bench.test"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
        postconf -e smtpd_milters= non_smtpd_milters= >/dev/null 2>&1 && postfix reload >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT

# --- keys, the message, the DNS records --------------------------------------------------------
PYTHONPATH="$ROOT" "$PY" - "$WORK" "$SIZE" "$MODE" <<'PYEOF'
import sys
from pathlib import Path
import dkim
from pymailsrv.senderauth import keys
work, size, mode = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
public = keys.generate("rsa", str(work / "bench.private"))
(work / "bench.public").write_text(public)
line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
body = (line * (size // len(line) + 1))[:size].rsplit(b"\r\n", 1)[0] + b"\r\n"
msg = (b"From: Sender <sender@client.test>\r\nTo: u0@bench.test\r\nSubject: dkim bench\r\n"
       b"Date: Sun, 06 Dec 2026 08:00:00 +0000\r\nMessage-ID: <bench@client.test>\r\n\r\n" + body)
if mode == "verify":
    key = (work / "bench.private").read_bytes()
    msg = dkim.sign(msg, b"bench", b"client.test", key, canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"]) + msg
(work / "message.eml").write_bytes(msg.replace(b"\r\n", b"\n"))
(work / "KeyTable").write_text(f"bench._domainkey.client.test client.test:bench:{work / 'bench.private'}\n")
(work / "SigningTable").write_text("*@client.test bench._domainkey.client.test\n")
(work / "keys.txt").write_text(f"bench._domainkey.client.test v=DKIM1; k=rsa; p={public}\n")
PYEOF
cat > "$WORK/smtp-source" <<SH
#!/bin/bash
# bench-smtp.sh's arguments without -l (smtp-source refuses -l with -F)
args=()
while [ \$# -gt 0 ]; do
    if [ "\$1" = -l ]; then shift 2; continue; fi
    args+=("\$1"); shift
done
exec /usr/sbin/smtp-source -F "$WORK/message.eml" "\${args[@]}"
SH
chmod +x "$WORK/smtp-source"
export SMTP_SOURCE="$WORK/smtp-source"

# --- Postfix + OpenDKIM (SKIP_POSTFIX=1: only pymailsrv, e.g. to smoke-test beside another bench)
if [ "${SKIP_POSTFIX:-0}" != 1 ]; then
"$ANCHORS/postfix-setup.sh" >/dev/null
# opendkim runs as root here: its keys must be root's (RequireSafeKeys), as they are
cat > "$WORK/opendkim.conf" <<CONF
Syslog no
Background no
Socket inet:$MILTER_PORT@127.0.0.1
PidFile $WORK/opendkim.pid
Canonicalization relaxed/relaxed
OversignHeaders From,Subject,Date,To
InternalHosts 127.0.0.0/8
CONF
if [ "$MODE" = sign ]; then
    printf 'Mode s\nKeyTable %s\nSigningTable refile:%s\n' "$WORK/KeyTable" "$WORK/SigningTable" >> "$WORK/opendkim.conf"
else
    printf 'Mode v\nTestPublicKeys %s\nInternalHosts 192.0.2.1\n' "$WORK/keys.txt" >> "$WORK/opendkim.conf"
fi
"$OPENDKIM" -x "$WORK/opendkim.conf" -f &
pids+=($!)
for _ in $(seq 1 100); do ss -ltn "sport = :$MILTER_PORT" | grep -q ":$MILTER_PORT" && break; sleep 0.1; done
postconf -e "smtpd_milters = inet:127.0.0.1:$MILTER_PORT" "milter_default_action = tempfail" >/dev/null
postfix reload >/dev/null 2>&1
fi

# --- pymailsrv ---------------------------------------------------------------------------------
if [ "$MODE" = verify ]; then
    PYTHONPATH="$ROOT" "$PY" - "$WORK" <<'PYEOF' &
import asyncio, sys
from pathlib import Path
from tests.dns_responder import DnsResponder
work = Path(sys.argv[1])
async def main():
    dns = await DnsResponder().start()
    public = (work / "bench.public").read_text()
    value = f"v=DKIM1; k=rsa; p={public}"
    dns.add("bench._domainkey.client.test", "TXT", " ".join(f'"{value[i:i + 250]}"' for i in range(0, len(value), 250)))
    dns.add("client.test", "TXT", '"v=spf1 ip4:127.0.0.0/8 -all"')
    dns.add("_dmarc.client.test", "TXT", '"v=DMARC1; p=reject"')
    (work / "dns.port").write_text(str(dns.port))
    await asyncio.Event().wait()
asyncio.run(main())
PYEOF
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$WORK/dns.port" ] && break; sleep 0.1; done
    PIPELINE="restrictions, cleanup, sender_auth"; NETS="192.0.2.0/24"
else
    PIPELINE="restrictions, cleanup, dkim_sign"; NETS="127.0.0.0/8"
fi
cat > "$WORK/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $WORK
virtual_mailbox_base = $BASE
smtpd_listen = 127.0.0.1:$PORT
worker_processes = ${PROCS:-2}
mynetworks = $NETS
log_file = $WORK/pymailsrv.log
smtpd_pipeline = $PIPELINE
dkim_key_table = $WORK/KeyTable
dkim_signing_table = refile:$WORK/SigningTable
dns_nameservers = 127.0.0.1:$(cat "$WORK/dns.port" 2>/dev/null || echo 53)
virtual_alias_maps = regexp:$WORK/valias.regexp
CONF
PYTHONPATH="$ROOT" "$PY" "$HERE/bench_site.py" "$WORK/pymailsrv.conf" --valias "$WORK/valias.regexp" >/dev/null
if ss -ltn "sport = :$PORT" | grep -q ":$PORT"; then echo "port $PORT is taken (PYM_PORT=...)" >&2; exit 2; fi
# started directly (not through pym) so that $! is the server itself and the trap stops it
PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/pymailsrv.conf" serve >/dev/null 2>&1 &
pids+=($!); echo "$!" > "$WORK/pymailsrv.pid"
for _ in $(seq 1 100); do ss -ltn "sport = :$PORT" | grep -q ":$PORT" && break; sleep 0.2; done

echo "== MODE=$MODE: pymailsrv ($PIPELINE) vs Postfix + OpenDKIM milter"
for ((r = 1; r <= ROUNDS; r++)); do
    [ "${SKIP_POSTFIX:-0}" = 1 ] || "$ANCHORS/bench-smtp.sh" 127.0.0.1 2525 /var/lab/postfix-vmail "postfix+opendkim-$MODE"
    "$ANCHORS/bench-smtp.sh" 127.0.0.1 "$PORT" "$BASE" "pymailsrv-dkim-$MODE"
done

# one delivered message of each, to show the work was done
for base in /var/lab/postfix-vmail "$BASE"; do
    [ "${SKIP_POSTFIX:-0}" = 1 ] && [ "$base" != "$BASE" ] && continue
    f="$(find "$base/bench.test" -type f -path '*/new/*' 2>/dev/null | head -1)"
    [ -n "$f" ] && echo "   $base: $(grep -c -i -E '^(DKIM-Signature|Authentication-Results):' "$f") DKIM-Signature/Authentication-Results fields; $(grep -i -m1 -E '^Authentication-Results:|dkim=' "$f" | cut -c1-100)"
done
