"""Which PostgreSQL driver for the store?  The gateway's write pattern, measured per driver.

The store group-commits: every write requested while the previous transaction committed runs
in ONE transaction.  A write is a short function of SQL statements whose results it needs at
once (the id an INSERT gave, whether an UPDATE matched): the MO path is "insert the MO, mark
it processed, insert its reply".  This script runs that pattern with many concurrent callers
against a throwaway server, once per driver shape:

* psycopg3-thread  psycopg 3, sync connection on one thread; a whole batch is one function run
                   there (one thread hop per batch) -- today's aiosqlite shape;
* psycopg3-async   psycopg 3 AsyncConnection; the batch runs on the event loop, one await per
                   statement;
* asyncpg          asyncpg; same shape as psycopg3-async;
* sqlalchemy-core  SQLAlchemy Core (text() statements) over psycopg 3 sync, on one thread;
* sqlite-thread    today's engine (sqlite3 in WAL on one thread), as the reference.

It prints one JSON line: per driver, writes/s, client CPU (ms per write, all threads of this
process: the event loop's share is what competes with the SMPP work) and batches.  Drivers
that are not installed are reported as skipped.  Usage:

    .venv/bin/python scripts/bench_pg_drivers.py [--writes 20000] [--callers 300] [--fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.pgserver import PgServer  # noqa: E402

SCHEMA = (
    "CREATE TABLE inbound (id BIGSERIAL PRIMARY KEY, carrier TEXT NOT NULL, carrier_msg_id TEXT,"
    " msisdn TEXT NOT NULL, text TEXT NOT NULL, received_at DOUBLE PRECISION NOT NULL,"
    " processed_at DOUBLE PRECISION)",
    "CREATE UNIQUE INDEX inbound_dedupe ON inbound (carrier, carrier_msg_id) WHERE carrier_msg_id IS NOT NULL",
    "CREATE TABLE outbound (id BIGSERIAL PRIMARY KEY, carrier TEXT NOT NULL, msisdn TEXT NOT NULL,"
    " text TEXT NOT NULL, inbound_id BIGINT REFERENCES inbound (id), created_at DOUBLE PRECISION NOT NULL,"
    " state TEXT NOT NULL)",
    "CREATE INDEX outbound_queued ON outbound (id) WHERE state = 'queued'",
)
SQLITE_SCHEMA = tuple(
    s.replace("BIGSERIAL", "INTEGER").replace("DOUBLE PRECISION", "REAL").replace("BIGINT", "INTEGER")
    for s in SCHEMA
)

INSERT_MO = ("INSERT INTO inbound (carrier, carrier_msg_id, msisdn, text, received_at) VALUES ({}, {}, {}, {}, {})"
             " ON CONFLICT (carrier, carrier_msg_id) WHERE carrier_msg_id IS NOT NULL DO NOTHING RETURNING id")
MARK = "UPDATE inbound SET processed_at = {} WHERE id = {} AND processed_at IS NULL"
INSERT_MT = ("INSERT INTO outbound (carrier, msisdn, text, inbound_id, created_at, state)"
             " VALUES ({}, {}, {}, {}, {}, 'queued') RETURNING id")


def sql(template: str, style: str) -> str:
    n = template.count("{}")
    marks = {"qmark": ["?"] * n, "format": ["%s"] * n, "dollar": [f"${i + 1}" for i in range(n)],
             "named": [f":p{i}" for i in range(n)]}[style]
    return template.format(*marks)


def args_for(i: int) -> tuple[tuple[Any, ...], Callable[[int], tuple[Any, ...]], Callable[[int], tuple[Any, ...]]]:
    now = time.time()
    mo = ("omantel", f"m{i}", f"9689{i:07d}", "P 1234AB Z1 60", now)
    return mo, (lambda mo_id: (now, mo_id)), (lambda mo_id: ("omantel", f"9689{i:07d}", "Booked, ticket 0000123", mo_id, now))


class GroupCommit:
    """The store's flusher, generic over how one batch runs (`run_batch(list of i) -> None`)."""

    def __init__(self, run_batch: Callable[[list[int]], Any], max_batch: int = 2000) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.pending: list[tuple[int, asyncio.Future[None]]] = []
        self.flusher: asyncio.Future[None] | None = None
        self.batches = 0

    async def write(self, i: int) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((i, fut))
        if self.flusher is None:
            self.flusher = asyncio.ensure_future(self._flush())
        await fut

    async def _flush(self) -> None:
        try:
            while self.pending:
                batch = self.pending[: self.max_batch]
                del self.pending[: self.max_batch]
                await self.run_batch([i for i, _ in batch])
                self.batches += 1
                for _, fut in batch:
                    fut.set_result(None)
        finally:
            self.flusher = None


async def drive(writer: GroupCommit, writes: int, callers: int) -> float:
    counter = iter(range(writes))

    async def caller() -> None:
        for i in counter:
            await writer.write(i)

    start = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return time.perf_counter() - start


# -- one batch per driver -------------------------------------------------------------------


def _sync_batch(conn: Any, style: str, ids: list[int], begin: str = "BEGIN") -> None:
    ins, mark, mt = sql(INSERT_MO, style), sql(MARK, style), sql(INSERT_MT, style)
    cur = conn.cursor()
    cur.execute(begin)
    for i in ids:
        mo, mark_args, mt_args = args_for(i)
        cur.execute(ins, mo)
        mo_id = cur.fetchone()[0]
        cur.execute(mark, mark_args(mo_id))
        cur.execute(mt, mt_args(mo_id))
        cur.fetchone()
    cur.execute("COMMIT")


async def run_psycopg_thread(url: str, writes: int, callers: int) -> dict[str, Any]:
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    writer = GroupCommit(lambda ids: loop.run_in_executor(pool, _sync_batch, conn, "format", ids))
    try:
        return {"seconds": await drive(writer, writes, callers), "batches": writer.batches}
    finally:
        pool.shutdown()
        conn.close()


async def run_psycopg_async(url: str, writes: int, callers: int) -> dict[str, Any]:
    import psycopg

    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    ins, mark, mt = sql(INSERT_MO, "format"), sql(MARK, "format"), sql(INSERT_MT, "format")

    async def batch(ids: list[int]) -> None:
        cur = conn.cursor()
        await cur.execute("BEGIN")
        for i in ids:
            mo, mark_args, mt_args = args_for(i)
            await cur.execute(ins, mo)
            mo_id = (await cur.fetchone())[0]
            await cur.execute(mark, mark_args(mo_id))
            await cur.execute(mt, mt_args(mo_id))
            await cur.fetchone()
        await cur.execute("COMMIT")

    writer = GroupCommit(batch)
    try:
        return {"seconds": await drive(writer, writes, callers), "batches": writer.batches}
    finally:
        await conn.close()


async def run_asyncpg(url: str, writes: int, callers: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(url)
    ins, mark, mt = sql(INSERT_MO, "dollar"), sql(MARK, "dollar"), sql(INSERT_MT, "dollar")

    async def batch(ids: list[int]) -> None:
        async with conn.transaction():
            for i in ids:
                mo, mark_args, mt_args = args_for(i)
                mo_id = await conn.fetchval(ins, *mo)
                await conn.execute(mark, *mark_args(mo_id))
                await conn.fetchval(mt, *mt_args(mo_id))

    writer = GroupCommit(batch)
    try:
        return {"seconds": await drive(writer, writes, callers), "batches": writer.batches}
    finally:
        await conn.close()


async def run_sqlalchemy(url: str, writes: int, callers: int) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), pool_size=1)
    conn = engine.connect()
    ins, mark, mt = (sa.text(sql(t, "named")) for t in (INSERT_MO, MARK, INSERT_MT))

    def named(values: tuple[Any, ...]) -> dict[str, Any]:
        return {f"p{i}": v for i, v in enumerate(values)}

    def batch(ids: list[int]) -> None:
        with conn.begin():
            for i in ids:
                mo, mark_args, mt_args = args_for(i)
                mo_id = conn.execute(ins, named(mo)).scalar()
                conn.execute(mark, named(mark_args(mo_id)))
                conn.execute(mt, named(mt_args(mo_id))).scalar()

    pool = concurrent.futures.ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    writer = GroupCommit(lambda ids: loop.run_in_executor(pool, batch, ids))
    try:
        return {"seconds": await drive(writer, writes, callers), "batches": writer.batches}
    finally:
        pool.shutdown()
        conn.close()
        engine.dispose()


async def run_sqlite(path: str, writes: int, callers: int) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    for statement in SQLITE_SCHEMA:
        conn.execute(statement)
    pool = concurrent.futures.ThreadPoolExecutor(1)
    loop = asyncio.get_running_loop()
    writer = GroupCommit(lambda ids: loop.run_in_executor(pool, _sync_batch, conn, "qmark", ids, "BEGIN IMMEDIATE"))
    try:
        return {"seconds": await drive(writer, writes, callers), "batches": writer.batches}
    finally:
        pool.shutdown()
        conn.close()


RUNNERS: dict[str, tuple[str, Callable[..., Any]]] = {
    "psycopg3-thread": ("psycopg", run_psycopg_thread),
    "psycopg3-async": ("psycopg", run_psycopg_async),
    "asyncpg": ("asyncpg", run_asyncpg),
    "sqlalchemy-core": ("sqlalchemy", run_sqlalchemy),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=20000)
    parser.add_argument("--callers", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2, help="each driver runs this many times; best kept")
    parser.add_argument("--fsync", action="store_true", help="the server fsyncs its WAL (as production does)")
    opts = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, PgServer(fsync=opts.fsync) as server:
        import importlib.util

        for rnd in range(opts.rounds):
            for name, (module, runner) in RUNNERS.items():
                if importlib.util.find_spec(module) is None:
                    results[name] = {"skipped": f"{module} is not installed"}
                    continue
                db = f"b{rnd}_{name.replace('-', '_')}"
                url = server.create_database(db)
                server.psql(";".join(SCHEMA), db)
                cpu = time.process_time()
                got = asyncio.run(runner(url, opts.writes, opts.callers))
                cpu = time.process_time() - cpu
                _keep_best(results, name, got, cpu, opts.writes)
                server.drop_database(db)
            cpu = time.process_time()
            got = asyncio.run(run_sqlite(str(Path(tmp) / f"s{rnd}.sqlite3"), opts.writes, opts.callers))
            _keep_best(results, "sqlite-thread", got, time.process_time() - cpu, opts.writes)
    print(json.dumps({"writes": opts.writes, "callers": opts.callers, "fsync": opts.fsync, "drivers": results}))
    return 0


def _keep_best(results: dict[str, Any], name: str, got: dict[str, Any], cpu: float, writes: int) -> None:
    row = {
        "writes_per_s": round(writes / got["seconds"]),
        "cpu_ms_per_write": round(cpu * 1000 / writes, 3),
        "batches": got["batches"],
    }
    if name not in results or results[name].get("writes_per_s", 0) < row["writes_per_s"]:
        results[name] = row


if __name__ == "__main__":
    sys.exit(main())
