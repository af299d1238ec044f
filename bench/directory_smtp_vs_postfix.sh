#!/bin/bash
# The directory on MariaDB under SMTP load (issue: "the seed setup must not halve the mail rate"):
# the same smtp-source load, interleaved, against
#   postfix          Postfix with PostfixAdmin's documented proxy:mysql: maps (127.0.0.1:2525)
#   pymailsrv-sqlite pymailsrv on its embedded SQLite directory (127.0.0.1:$SQLITE_PORT, 2536)
#   pymailsrv-mariadb pymailsrv with database_url on the same MariaDB database ($MARIADB_PORT, 2537)
# One PostfixAdmin database (MariaDB, database $DB) serves Postfix and the MariaDB pymailsrv.
# SPREAD=1 by default: every message to a new address <seq>u@bench.test that a regexp alias folds
# onto u0..u99, so every RCPT is a directory miss (what a flood to unknown addresses costs).
# mariadbd's CPU is counted with the servers' (LAB_EXTRA_PIDFILES), for all three.
#   ROUNDS=2 SESSIONS=20 MSGS=20000 SIZE=2048 REPS=1 PROCS=2 bench/directory_smtp_vs_postfix.sh
# Needs root (Postfix), Debian's postfix and postfix-mysql, MariaDB at 127.0.0.1:3306 (root, no
# password), and the repo's .venv or PYTHON.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
cd "$ROOT"  # python -m/-c import from the current directory first: this checkout's code
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"; [ -x "$PY" ] || PY=python3
ROUNDS="${ROUNDS:-2}"
DB="${DB:-pymailsrv_bench}"
WORK=/var/lab/pymailsrv-dirbench
SQLITE_PORT="${SQLITE_PORT:-2536}"; MARIADB_PORT="${MARIADB_PORT:-2537}"
export REPS="${REPS:-1}" SESSIONS="${SESSIONS:-20}" MSGS="${MSGS:-20000}" SIZE="${SIZE:-2048}"
export SPREAD="${SPREAD:-1}"

"$ANCHORS/postfix-setup.sh" >/dev/null
for port in "$SQLITE_PORT" "$MARIADB_PORT"; do
    ! ss -ltn "sport = :$port" | grep -q ":$port" || { echo "port $port is taken" >&2; exit 1; }
done
rm -rf "$WORK"; mkdir -p "$WORK"
pgrep -o mariadbd > "$WORK/mariadbd.pid"
export LAB_EXTRA_PIDFILES="$WORK/sqlite/pymailsrv.pid $WORK/mariadb/pymailsrv.pid $WORK/mariadbd.pid"
mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"

pym() {  # $1 = instance, the rest: CLI arguments
    local conf="$WORK/$1/pymailsrv.conf"; shift
    PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$conf" "$@"
}

# --- the two pymailsrv instances -----------------------------------------------------------
setup_instance() {  # $1 = name, $2 = port, $3 = database_url ('' = embedded SQLite)
    local dir="$WORK/$1"
    mkdir -p "$dir" "$dir/vmail"
    cat > "$dir/pymailsrv.conf" <<CONF
myhostname = mx.bench.test
data_directory = $dir
virtual_mailbox_base = $dir/vmail
smtpd_listen = 127.0.0.1:$2
worker_processes = ${PROCS:-2}
mynetworks = 127.0.0.0/8
log_file = $dir/pymailsrv.log
virtual_alias_maps = regexp:$WORK/valias.regexp
CONF
    [ -n "$3" ] && echo "database_url = $3" >> "$dir/pymailsrv.conf"
    pym "$1" db upgrade >/dev/null
}
cat > "$WORK/valias.regexp" <<'RE'
/([1-9][0-9])u@bench\.test$/    u$1@bench.test
/([0-9])u@bench\.test$/         u$1@bench.test
RE
setup_instance sqlite "$SQLITE_PORT" ""
setup_instance mariadb "$MARIADB_PORT" "mysql://root@127.0.0.1:3306/$DB"
for name in sqlite mariadb; do
    PYTHONPATH="$ROOT" "$PY" "$HERE/bench_site.py" "$WORK/$name/pymailsrv.conf" >/dev/null
done

# --- Postfix on the same PostfixAdmin database, as PostfixAdmin's POSTFIX_CONF documents --------
SQL=/etc/postfix/sql
mkdir -p "$SQL"
mapfile() {  # $1 = file, $2 = query
    printf 'user = root\npassword =\nhosts = 127.0.0.1\ndbname = %s\nquery = %s\n' "$DB" "$2" > "$SQL/$1"
}
mapfile mysql_virtual_domains_maps.cf "SELECT domain FROM domain WHERE domain='%s' AND active = '1'"
mapfile mysql_virtual_alias_maps.cf "SELECT goto FROM alias WHERE address='%s' AND active = '1'"
mapfile mysql_virtual_alias_domain_maps.cf "SELECT goto FROM alias,alias_domain WHERE alias_domain.alias_domain = '%d' and alias.address = CONCAT('%u', '@', alias_domain.target_domain) AND alias.active = 1 AND alias_domain.active='1'"
mapfile mysql_virtual_alias_domain_catchall_maps.cf "SELECT goto FROM alias,alias_domain WHERE alias_domain.alias_domain = '%d' and alias.address = CONCAT('@', alias_domain.target_domain) AND alias.active = 1 AND alias_domain.active='1'"
mapfile mysql_virtual_mailbox_maps.cf "SELECT maildir FROM mailbox WHERE username='%s' AND active = '1'"
mapfile mysql_virtual_alias_domain_mailbox_maps.cf "SELECT maildir FROM mailbox,alias_domain WHERE alias_domain.alias_domain = '%d' and mailbox.username = CONCAT('%u', '@', alias_domain.target_domain) AND mailbox.active = 1 AND alias_domain.active='1'"
postconf -e \
    "virtual_mailbox_domains = proxy:mysql:$SQL/mysql_virtual_domains_maps.cf" \
    "virtual_alias_maps = proxy:mysql:$SQL/mysql_virtual_alias_maps.cf, proxy:mysql:$SQL/mysql_virtual_alias_domain_maps.cf, proxy:mysql:$SQL/mysql_virtual_alias_domain_catchall_maps.cf, regexp:/etc/postfix/lab-valias.regexp" \
    "virtual_mailbox_maps = proxy:mysql:$SQL/mysql_virtual_mailbox_maps.cf, proxy:mysql:$SQL/mysql_virtual_alias_domain_mailbox_maps.cf"
postfix reload >/dev/null 2>&1
trap 'for n in sqlite mariadb; do kill $(cat $WORK/$n/pymailsrv.pid 2>/dev/null) 2>/dev/null || true; done; "$ANCHORS/postfix-setup.sh" >/dev/null 2>&1 || true' EXIT

for name in sqlite mariadb; do  # python itself in the background, so the pid file names it
    PYTHONPATH="$ROOT" "$PY" -m pymailsrv --config "$WORK/$name/pymailsrv.conf" serve >/dev/null 2>&1 &
    echo $! > "$WORK/$name/pymailsrv.pid"
done
for port in "$SQLITE_PORT" "$MARIADB_PORT"; do
    for _ in $(seq 1 100); do ss -ltn "sport = :$port" | grep -q ":$port" && break; sleep 0.2; done
done
# a Postfix that cannot read its maps defers everything: check one lookup before measuring
postmap -q u1@bench.test "proxy:mysql:$SQL/mysql_virtual_mailbox_maps.cf" >/dev/null \
    || { echo "postfix cannot query $DB through proxy:mysql" >&2; exit 1; }

for ((r = 1; r <= ROUNDS; r++)); do
    "$ANCHORS/bench-smtp.sh" 127.0.0.1 2525 /var/lab/postfix-vmail postfix-proxy-mysql
    "$ANCHORS/bench-smtp.sh" 127.0.0.1 "$SQLITE_PORT" "$WORK/sqlite/vmail" pymailsrv-sqlite
    "$ANCHORS/bench-smtp.sh" 127.0.0.1 "$MARIADB_PORT" "$WORK/mariadb/vmail" pymailsrv-mariadb
done
