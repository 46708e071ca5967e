"""Drives `oc mcp` with the official MCP Python SDK (pinned in .ci/run), in both generations:
the handshake era (mode="legacy") and the stateless revision (mode="auto" probes
server/discover and must settle on 2026-07-28). Exits non-zero on the first failure.

Usage: python client.py <path to oc> <data dir>
"""

import asyncio
import sys

from mcp import Client, MCPError, StdioServerParameters

OC, DATA = sys.argv[1], sys.argv[2]


def params(agent):
    return StdioServerParameters(command=OC, args=["--data-dir", DATA, "mcp"], env={"OC_AGENT": agent})


async def run(mode):
    async with Client(params("alice"), mode=mode, read_timeout_seconds=10) as c:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert c.protocol_version == expected, (mode, c.protocol_version)
        tools = (await c.list_tools()).tools
        names = [t.name for t in tools]
        assert "task_claim" in names and "lock_acquire" in names, names
        for t in tools:
            assert t.input_schema["type"] == "object", t.name
            assert t.output_schema is not None, t.name
        r = await c.call_tool("task_create", {"name": f"task for {mode}", "labels": [mode]})
        assert not r.is_error, r.content
        r = await c.call_tool("task_claim", {"labels": [mode]})
        assert not r.is_error and r.structured_content["claimed"], r
        token = r.structured_content["fencing_token"]
        task = r.structured_content["task_id"]
        r = await c.call_tool("lock_acquire", {"paths": [f"repo/{mode}"]})
        assert not r.is_error, r
        r = await c.call_tool("lock_acquire", {"agent": "bob", "paths": [f"repo/{mode}/x"]})
        assert r.is_error, r
        assert "alice" in r.content[0].text, r.content
        r = await c.call_tool("task_heartbeat", {"task_id": task, "fencing_token": token})
        assert not r.is_error, r
        r = await c.call_tool("task_finish", {"task_id": task, "fencing_token": token, "outcome": "completed"})
        assert not r.is_error and r.structured_content["task"]["status"] == "completed", r
        r = await c.call_tool("task_heartbeat", {"task_id": task, "fencing_token": token})
        assert r.is_error and "LEASE_LOST" in r.content[0].text, r
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
