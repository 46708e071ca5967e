"""Drives `oc serve`'s /mcp (MCP over Streamable HTTP) with the official MCP Python SDK's
streamable HTTP client, in both generations: the handshake era (mode="legacy": initialize,
Mcp-Session-Id) and the stateless revision (mode="auto" probes server/discover and must settle
on 2026-07-28), each request with a bearer token. Alice and bob are `work` tokens: the workflow
as alice, progress while a lock_acquire waits (an SSE stream), a wait the client gives up on that
the server stops, and bob refused when he tries to finish alice's task or release her lock, even
naming her. Exits non-zero on the first failure.

Usage: python client_http.py <url of /mcp> <alice's token> <bob's token>
"""

import asyncio
import sys

from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

URL, ALICE, BOB = sys.argv[1], sys.argv[2], sys.argv[3]


def client(token, mode):
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return Client(streamable_http_client(URL, http_client=http), mode=mode, read_timeout_seconds=15)


async def run(mode):
    expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
    async with client(ALICE, mode) as c, client(BOB, mode) as bob:
        assert c.protocol_version == expected, (mode, c.protocol_version)
        assert bob.protocol_version == expected, (mode, bob.protocol_version)
        names = [t.name for t in (await c.list_tools()).tools]
        for n in ("task_claim", "task_finish", "lock_acquire", "lock_release"):
            assert n in names, (n, names)
        r = await c.call_tool("task_create", {"name": f"http task for {mode}", "labels": [f"http-{mode}"]})
        assert not r.is_error, r.content
        r = await c.call_tool("task_claim", {"labels": [f"http-{mode}"]})
        assert not r.is_error and r.structured_content["claimed"], r
        token, task = r.structured_content["fencing_token"], r.structured_content["task_id"]
        path = f"http/{mode}"
        r = await c.call_tool("lock_acquire", {"paths": [path]})
        assert not r.is_error, r

        # Bob cannot act for alice, even naming her and passing her fencing token.
        for args in ({"agent": "alice"}, {}):
            r = await bob.call_tool("task_finish", {**args, "task_id": task, "fencing_token": token, "outcome": "completed"})
            assert r.is_error and "NOT_YOUR_AGENT" in r.content[0].text, r
            r = await bob.call_tool("task_heartbeat", {**args, "task_id": task, "fencing_token": token})
            assert r.is_error and "NOT_YOUR_AGENT" in r.content[0].text, r
        r = await bob.call_tool("lock_release", {"agent": "alice", "paths": [path]})
        assert r.is_error and "NOT_YOUR_AGENT" in r.content[0].text, r
        r = await bob.call_tool("lock_check", {"paths": [path]})
        assert not r.structured_content["free"], r

        r = await c.call_tool("task_heartbeat", {"task_id": task, "fencing_token": token})
        assert not r.is_error, r

        # Progress while waiting, over an SSE stream: bob holds a path for 2 s, alice waits.
        wait = f"http-waits/{mode}"
        r = await bob.call_tool("lock_acquire", {"paths": [wait], "ttl_secs": 2})
        assert not r.is_error, r
        seen = []

        async def progress(done, total, message):
            seen.append((done, total, message))

        r = await c.call_tool("lock_acquire", {"paths": [wait], "wait_ms": 10000}, progress_callback=progress)
        assert not r.is_error and r.structured_content["locks"][0]["path"] == wait, r
        assert seen and seen[0][1] == 10000, seen
        assert all(a[0] < b[0] for a, b in zip(seen, seen[1:])), seen

        # A wait the client gives up on: the server stops waiting and takes nothing.
        gone = f"http-cancels/{mode}"
        r = await bob.call_tool("lock_acquire", {"paths": [gone], "ttl_secs": 60})
        assert not r.is_error, r
        try:
            await c.call_tool("lock_acquire", {"paths": [gone], "wait_ms": 30000}, read_timeout_seconds=1.0)
            raise AssertionError("the client should have given up")
        except MCPError:
            pass
        waiting = None
        for _ in range(100):
            r = await c.call_tool("lock_stats", {})
            waiting = r.structured_content["stats"]["waiting"]
            if waiting == 0:
                break
            await asyncio.sleep(0.1)
        assert waiting == 0, f"the cancelled wait goes on: {r.structured_content}"
        r = await bob.call_tool("lock_release", {"paths": [gone]})
        assert r.structured_content["results"][0]["ok"], r
        await asyncio.sleep(0.3)
        r = await c.call_tool("lock_check", {"paths": [gone]})
        assert r.structured_content["free"], f"the cancelled wait took the lock: {r.structured_content}"

        r = await c.call_tool("lock_release", {"paths": [path, wait]})
        assert not r.is_error, r
        r = await c.call_tool("task_finish", {"task_id": task, "fencing_token": token, "outcome": "completed"})
        assert not r.is_error and r.structured_content["task"]["status"] == "completed", r
        try:
            await c.call_tool("no_such_tool", {})
            raise AssertionError("an unknown tool should be a protocol error")
        except MCPError as e:
            assert e.code == -32602, e
    print(f"{mode}: ok")


async def main():
    for mode in ("legacy", "auto"):
        await run(mode)


asyncio.run(main())
