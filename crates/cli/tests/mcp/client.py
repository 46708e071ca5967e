"""Drives `oc mcp` with the official MCP Python SDK (pinned in .ci/run), in both generations:
the handshake era (mode="legacy") and the stateless revision (mode="auto" probes
server/discover and must settle on 2026-07-28), with every tool served (--tools all): every
schema, the workflow, a task's log, decisions and checkpoints, progress while a lock_acquire
waits, and a wait the client gives up on (it sends notifications/cancelled) that the server
stops. Exits non-zero on the first failure.

Usage: python client.py <path to oc> <data dir>
"""

import asyncio
import sys

from mcp import Client, MCPError, StdioServerParameters

OC, DATA = sys.argv[1], sys.argv[2]


def params(agent):
    return StdioServerParameters(command=OC, args=["--data-dir", DATA, "mcp", "--tools", "all"], env={"OC_AGENT": agent})


async def run(mode):
    async with Client(params("alice"), mode=mode, read_timeout_seconds=10) as c:
        expected = "2025-11-25" if mode == "legacy" else "2026-07-28"
        assert c.protocol_version == expected, (mode, c.protocol_version)
        tools = (await c.list_tools()).tools
        names = [t.name for t in tools]
        for n in ("task_claim", "task_release", "lock_acquire", "task_log_append", "checkpoint_restore", "lock_stats"):
            assert n in names, (n, names)
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
        r = await c.call_tool("task_log_append", {"task_id": task, "message": "tests pass", "data": {"n": 3}})
        assert not r.is_error and r.structured_content["entry"]["message"] == "tests pass", r
        r = await c.call_tool("checkpoint_create", {"task_id": task, "description": "before the risky part"})
        assert not r.is_error, r
        checkpoint = r.structured_content["checkpoint"]["id"]
        r = await c.call_tool("decision_record", {"task_id": task, "decision": "use a B-tree", "reasoning": "ranges"})
        assert not r.is_error, r
        r = await c.call_tool("checkpoint_restore", {"task_id": task, "checkpoint_id": checkpoint})
        assert not r.is_error, r
        r = await c.call_tool("decision_list", {"task_id": task})
        assert r.structured_content["decisions"] == [], "restored to before the decision"
        r = await c.call_tool("task_log_query", {"task_id": task})
        assert [e["message"] for e in r.structured_content["entries"]][-1:] == ["tests pass"], r
        r = await c.call_tool("task_finish", {"task_id": task, "fencing_token": token, "outcome": "completed"})
        assert not r.is_error and r.structured_content["task"]["status"] == "completed", r
        r = await c.call_tool("task_heartbeat", {"task_id": task, "fencing_token": token})
        assert r.is_error and "ALREADY_FINISHED" in r.content[0].text, r
        assert "already completed at" in r.content[0].text, r
        r = await c.call_tool("task_finish", {"task_id": task, "fencing_token": token, "outcome": "completed"})
        assert r.is_error and "ALREADY_FINISHED" in r.content[0].text, r
        r = await c.call_tool("task_stats", {})
        assert r.structured_content["stats"]["by_status"]["completed"] >= 1, r

        # Progress while waiting: bob holds a path for 2 s, alice waits for it.
        path = f"waits/{mode}"
        r = await c.call_tool("lock_acquire", {"agent": "bob", "paths": [path], "ttl_secs": 2})
        assert not r.is_error, r
        seen = []

        async def progress(done, total, message):
            seen.append((done, total, message))

        r = await c.call_tool("lock_acquire", {"paths": [path], "wait_ms": 10000}, progress_callback=progress)
        assert not r.is_error and r.structured_content["locks"][0]["path"] == path, r
        assert seen and seen[0][1] == 10000, seen
        assert all(a[0] < b[0] for a, b in zip(seen, seen[1:])), seen

        # A wait the client gives up on: it cancels the request, and the server stops waiting.
        path = f"cancels/{mode}"
        r = await c.call_tool("lock_acquire", {"agent": "carol", "paths": [path], "ttl_secs": 60})
        assert not r.is_error, r
        try:
            await c.call_tool("lock_acquire", {"paths": [path], "wait_ms": 30000}, read_timeout_seconds=1.0)
            raise AssertionError("the client should have given up")
        except MCPError:
            pass
        waiting = None
        for _ in range(50):
            r = await c.call_tool("lock_stats", {})
            waiting = r.structured_content["stats"]["waiting"]
            if waiting == 0:
                break
            await asyncio.sleep(0.1)
        assert waiting == 0, f"the cancelled wait goes on: {r.structured_content}"
        r = await c.call_tool("lock_release", {"agent": "carol", "paths": [path]})
        assert r.structured_content["results"][0]["ok"], r
        await asyncio.sleep(0.3)
        r = await c.call_tool("lock_check", {"agent": "dave", "paths": [path]})
        assert r.structured_content["free"], f"the cancelled wait took the lock: {r.structured_content}"

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
