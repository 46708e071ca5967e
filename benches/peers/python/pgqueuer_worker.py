"""pgqueuer through its public API: `Queries.enqueue` in batches, then a `QueueManager` with its
defaults (batches of 10, one connection) running a no-op entrypoint in drain mode, which returns
once the queue is empty and every job's status is written.

Protocol (see benches/peers/node/protocol.mjs): `@oc <json>` lines on stdout, `go` on stdin.
Arguments: --jobs N, --batch N (--workers and --fetch are accepted and ignored: pgqueuer's
defaults are what is measured). The connection comes from the PG* environment variables.
"""

import asyncio
import json
import sys
import time

import asyncpg
from pgqueuer import QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode


def say(value):
    sys.stdout.write("@oc " + json.dumps(value) + "\n")
    sys.stdout.flush()


async def ready(phase):
    say({"ready": phase})
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != "go":
        raise SystemExit(f"expected 'go' from the driver, got {line!r}")


def parse_args(argv):
    out = {"jobs": 20000, "batch": 1000, "workers": 16, "fetch": 1}
    if len(argv) % 2:
        raise SystemExit(f"bad arguments {argv!r}")
    for key, value in zip(argv[::2], argv[1::2]):
        key = key.removeprefix("--")
        if key not in out or not value.isdigit() or not 1 <= int(value) <= 10_000_000:
            raise SystemExit(f"bad argument --{key} {value}")
        out[key] = int(value)
    return out


async def main():
    a = parse_args(sys.argv[1:])
    jobs, batch = a["jobs"], a["batch"]
    conn = await asyncpg.connect()
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()

    await ready("insert")
    t0 = time.perf_counter()
    for start in range(0, jobs, batch):
        n = min(batch, jobs - start)
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    say({"phase": "insert", "seconds": time.perf_counter() - t0, "jobs": jobs})

    await ready("work")
    done = 0
    qm = QueueManager(Queries(AsyncpgDriver(conn)))

    @qm.entrypoint("noop")
    async def noop(job):
        nonlocal done
        done += 1

    t0 = time.perf_counter()
    await qm.run(mode=QueueExecutionMode.drain)
    say({"phase": "work", "seconds": time.perf_counter() - t0, "jobs": done})

    check = await asyncpg.connect()
    left = await check.fetchval("SELECT count(*) FROM pgqueuer")
    say({"left": int(left)})
    await check.close()


asyncio.run(main())
