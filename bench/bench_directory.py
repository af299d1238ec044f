"""Directory lookup rate: what smtpd and the delivery agent ask per recipient (is_local_domain,
mailbox, resolve, the mailbox of each final address), on SQLite, MariaDB and PostgreSQL, for
known, unknown and aliased addresses, one at a time and 50 at once.

    .venv/bin/python bench/bench_directory.py [--lookups 3000] [--backends sqlite,mariadb,postgres]
    .venv/bin/python bench/bench_directory.py --against ../main-checkout --rounds 3   # A/B

Each (backend, kind, concurrency) runs in a fresh child process with directory_cache_ttl as
configured (default 5 s, the default of the parameter). Seeds a scratch database per backend
(2,000 mailboxes with identity aliases, 20,000 aliases folding onto 100 of them, an alias
domain; no catch-all, so an unknown address is refused), dropped afterwards.

kinds: ``known`` a mailbox (random among 2,000: later ones may be cached), ``unknown`` a new
address every time (never cached: what an MX under a dictionary attack sees), ``aliased`` a new
alias every time, folding onto one of 100 mailboxes (the issue's SMTP benchmark).
Prints lookups/s, this process's CPU per lookup, and the database server's CPU per lookup when it
runs on this machine (all its processes: on a shared machine, indicative only).
``--against DIR`` runs every case with the pymailsrv of another checkout too, interleaved (A B A
B ...), so a noisy machine affects both alike. ``mariadb-aiomysql`` as a backend measures the
aiomysql driver (``mysql://`` means asyncmy since the directory was rewritten).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MAILBOXES, ALIASES, TARGETS = 2000, 20000, 100
KINDS = ("known", "unknown", "aliased")
SERVERS = {"mariadb": ("mariadbd", "mysqld"), "postgres": ("postgres",)}


# --- the database ---------------------------------------------------------------------------------
def rows() -> dict[str, list[dict[str, Any]]]:
    users = [f"u{i}@example.com" for i in range(MAILBOXES)]
    return {
        "domain": [{"domain": "example.com"}, {"domain": "example.net"}],
        "alias_domain": [{"alias_domain": "example.net", "target_domain": "example.com"}],
        "mailbox": [{"username": u} for u in users],
        "alias": [{"address": u, "goto": u} for u in users]
        + [{"address": f"a{i}@example.com", "goto": users[i % TARGETS]} for i in range(ALIASES)],
    }


async def seed(url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from pymailsrv.db.engine import make_engine
    from pymailsrv.db.models import complete_row, tables_for
    from pymailsrv.db.schema import create_schema

    await create_schema(url)
    engine = make_engine(url)
    try:
        tables = tables_for(engine.dialect.name)
        async with engine.begin() as conn:
            for name, items in rows().items():
                await conn.execute(tables[name].insert(), [complete_row(name, r) for r in items])
    finally:
        await engine.dispose()


def scratch(backend: str, tmp: str) -> tuple[str, Any]:
    """(URL, drop function) of a new database for a backend."""
    name = f"pymailsrv_bench_{uuid.uuid4().hex[:8]}"
    if backend == "sqlite":
        return f"sqlite:///{tmp}/{name}.db", lambda: None
    if backend.startswith("mariadb"):
        import pymysql

        host, _, port = os.environ.get("PYMAILSRV_BENCH_MARIADB", "127.0.0.1:3306").partition(":")

        def admin(sql: str) -> None:
            conn = pymysql.connect(host=host, port=int(port or 3306), user="root", autocommit=True)
            conn.cursor().execute(sql)
            conn.close()

        admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        driver = "mysql+aiomysql" if backend == "mariadb-aiomysql" else "mysql"
        return f"{driver}://root@{host}:{port or 3306}/{name}", lambda: admin(f"DROP DATABASE `{name}`")
    import asyncpg

    host, _, port = os.environ.get("PYMAILSRV_BENCH_POSTGRES", "127.0.0.1:5432").partition(":")

    async def pg(sql: str) -> None:
        conn = await asyncpg.connect(host=host, port=int(port or 5432), user="postgres", database="postgres")
        await conn.execute(sql)
        await conn.close()

    asyncio.run(pg(f'CREATE DATABASE "{name}"'))
    return (f"postgresql://postgres@{host}:{port or 5432}/{name}",
            lambda: asyncio.run(pg(f'DROP DATABASE "{name}" WITH (FORCE)')))


def server_cpu(backend: str) -> float | None:
    """CPU seconds of the database server's processes on this machine (None: not here)."""
    names = SERVERS.get(backend.partition("-")[0])
    if not names:
        return None
    total, found = 0, False
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.find("(") + 1:stat.rfind(")")]
        if comm in names:
            fields = stat[stat.rfind(")") + 2:].split()
            total += sum(int(x) for x in fields[11:15])
            found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


# --- one case, in a child process --------------------------------------------------------------------
def addresses(kind: str, n: int) -> list[str]:
    rnd = random.Random(7)
    if kind == "known":
        return [f"u{rnd.randrange(MAILBOXES)}@example.com" for _ in range(n)]
    if kind == "unknown":
        return [f"nobody{i}@example.com" for i in range(n)]
    return [f"a{i}@example.com" for i in rnd.sample(range(ALIASES), n)]


async def rcpt(d: Any, address: str) -> None:
    await d.is_local_domain(address.rpartition("@")[2])
    await d.mailbox(address)
    for final in await d.resolve(address):
        await d.mailbox(final)


async def run_case(case: dict[str, Any]) -> dict[str, Any]:
    from pymailsrv.db.directory import SqlDirectory

    kw: dict[str, Any] = {"cache_ttl": case["ttl"]}
    if "pool_size" in inspect.signature(SqlDirectory).parameters and case.get("pool_size"):
        kw["pool_size"] = case["pool_size"]
    d = SqlDirectory(case["url"], "/srv/vmail", "+", **kw)
    todo = addresses(case["kind"], case["lookups"] + 50)
    try:
        for a in todo[-50:]:  # connections open, domain rows cached
            await rcpt(d, a)
        todo = todo[:-50]
        cpu0, srv0, t0 = time.process_time(), server_cpu(case["backend"]), time.perf_counter()
        if case["concurrency"] == 1:
            for a in todo:
                await rcpt(d, a)
        else:
            it = iter(todo)

            async def worker() -> None:
                for a in it:
                    await rcpt(d, a)

            await asyncio.gather(*(worker() for _ in range(case["concurrency"])))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        srv1 = server_cpu(case["backend"])
    finally:
        await d.close()
    n = len(todo)
    return {"rate": n / elapsed, "cpu_us": 1e6 * cpu / n,
            "server_us": 1e6 * (srv1 - srv0) / n if srv0 is not None and srv1 is not None else None}


def child(case: dict[str, Any], checkout: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], env=env, cwd=checkout,
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"case {case} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- the driver ---------------------------------------------------------------------------------------
def fmt(r: dict[str, Any]) -> str:
    srv = f"{r['server_us']:6.0f}" if r["server_us"] is not None else "     -"
    return f"{r['rate']:8.0f} {r['cpu_us']:7.0f} {srv}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", default="sqlite,mariadb,postgres",
                   help="comma-separated: sqlite, mariadb, mariadb-aiomysql, postgres")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--lookups", type=int, default=3000)
    p.add_argument("--concurrency", default="1,50", help="comma-separated concurrent lookups")
    p.add_argument("--ttl", type=float, default=5.0, help="directory_cache_ttl")
    p.add_argument("--pool-size", type=int, default=0, help="database_pool_size (0: the default)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--against", type=Path, help="another checkout to measure too, interleaved (A/B)")
    p.add_argument("--case", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.case:
        print(json.dumps(asyncio.run(run_case(json.loads(args.case)))))
        return
    checkouts = {"this": ROOT} | ({"other": args.against.resolve()} if args.against else {})
    print(f"lookups per case {args.lookups}, directory_cache_ttl {args.ttl:g}s; per lookup: CPU of this "
          "process, of the database server (us)")
    print(f"{'backend':16} {'kind':8} {'conc':>4} " + "  ".join(f"{c + ': lookups/s  cpu  server':>30}"
                                                            for c in checkouts))
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            url, drop = scratch(backend, tmp)
            try:
                asyncio.run(seed(url))
                for _ in range(args.rounds):
                    for kind in args.kinds.split(","):
                        for conc in map(int, args.concurrency.split(",")):
                            case = {"url": url, "backend": backend, "kind": kind, "concurrency": conc,
                                    "lookups": args.lookups, "ttl": args.ttl, "pool_size": args.pool_size}
                            results = [fmt(child(case, where)) for where in checkouts.values()]
                            print(f"{backend:16} {kind:8} {conc:4} " + "  ".join(f"{r:>30}" for r in results),
                                  flush=True)
            finally:
                drop()


if __name__ == "__main__":
    main()
