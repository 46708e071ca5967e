// Drives `oc serve`'s `/mcp` with the official MCP TypeScript SDK (`Client` over
// `StreamableHTTPClientTransport`, pinned in package-lock.json) and bearer tokens from
// `oc token create --scope work`: the whole workflow as agent alice, and agent bob (a work token
// of his own) refused when he tries to finish, heartbeat or release what alice holds.
//
// SDK 1.32.2 speaks the handshake era only (initialize, Mcp-Session-Id), offering 2025-11-25
// (LATEST_PROTOCOL_VERSION); it cannot speak the stateless 2026-07-28 revision. The run is done
// twice: at 2025-11-25, and at 2025-03-26, the first version of the Streamable HTTP transport
// (the SDK has no option to offer an older version, so the initialize request it sends is
// edited on its way out; everything after it is the SDK's own, and it accepts 2025-03-26).
//
// Usage: node client_http.mjs <url of /mcp> <alice's work token> <bob's work token>
// Prints "<version>: ok" per run; exits non-zero on the first failure.

import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const [url, aliceToken, bobToken] = process.argv.slice(2);
if (!url || !aliceToken || !bobToken) {
  console.error('usage: node client_http.mjs <url> <alice token> <bob token>');
  process.exit(2);
}

async function connect(token, version, name) {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  if (version !== undefined) {
    const send = transport.send.bind(transport);
    transport.send = (message, options) => {
      if (message.method === 'initialize') {
        message = { ...message, params: { ...message.params, protocolVersion: version } };
      }
      return send(message, options);
    };
  }
  const client = new Client({ name, version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

// A tool's result, after checking it is not an error: its structured content (2025-06-18 on),
// or before that the JSON of its text, which must say the same.
async function call(client, name, args) {
  const r = await client.callTool({ name, arguments: args });
  assert.equal(r.isError ?? false, false, `${name}: ${JSON.stringify(r.content)}`);
  const text = JSON.parse(r.content[0].text);
  if (client.transport.protocolVersion >= '2025-06-18') {
    assert.deepEqual(r.structuredContent, text, `${name}: the text says what the structure says`);
  } else {
    assert.equal(r.structuredContent, undefined, `${name}: no structure before 2025-06-18`);
  }
  return text;
}

// A tool's refusal: the text of its error result.
async function refused(client, name, args) {
  const r = await client.callTool({ name, arguments: args });
  assert.equal(r.isError, true, `${name} should be refused: ${JSON.stringify(r)}`);
  return r.content.map((c) => c.text).join('\n');
}

async function run(version) {
  const label = version ?? '2025-11-25';
  const { client: alice, transport } = await connect(aliceToken, version, 'alice');
  assert.equal(transport.protocolVersion, label, 'the version negotiated');
  assert.ok(transport.sessionId, 'a session was opened');
  assert.ok(alice.getServerCapabilities()?.tools, 'the server offers tools');

  const names = (await alice.listTools()).tools.map((t) => t.name);
  for (const n of ['task_create', 'task_claim', 'task_heartbeat', 'task_finish',
    'task_log_append', 'lock_acquire', 'lock_release']) {
    assert.ok(names.includes(n), `${n} in ${names}`);
  }

  // The token says who is calling: no `agent` argument anywhere below.
  const created = await call(alice, 'task_create', { name: `ts sdk at ${label}`, labels: [label] });
  const claimed = await call(alice, 'task_claim', { labels: [label] });
  assert.equal(claimed.claimed, true, JSON.stringify(claimed));
  assert.equal(claimed.task_id, created.task.id, JSON.stringify({ created, claimed }));
  const task = claimed.task_id;
  const token = claimed.fencing_token;
  const logged = await call(alice, 'task_log_append', { task_id: task, message: 'tests pass', data: { n: 3 } });
  assert.equal(logged.entry.message, 'tests pass');
  const path = `repo/ts/${label}`;
  const locked = await call(alice, 'lock_acquire', { paths: [path] });
  assert.equal(locked.locks[0].path, path, JSON.stringify(locked));
  const ownerOf = (await call(alice, 'lock_check', { paths: [path] }));
  assert.equal(ownerOf.free, false, JSON.stringify(ownerOf));
  await call(alice, 'task_heartbeat', { task_id: task, fencing_token: token });

  // Bob, with a work token of his own, cannot act on what alice holds, nor act as alice.
  const { client: bob } = await connect(bobToken, version, 'bob');
  let text = await refused(bob, 'task_finish', { task_id: task, fencing_token: token, outcome: 'completed' });
  assert.match(text, /NOT_YOUR_AGENT/, text);
  text = await refused(bob, 'task_heartbeat', { task_id: task, fencing_token: token });
  assert.match(text, /NOT_YOUR_AGENT/, text);
  text = await refused(bob, 'task_finish', { agent: 'alice', task_id: task, fencing_token: token, outcome: 'completed' });
  assert.match(text, /NOT_YOUR_AGENT/, text);
  const bobRelease = await bob.callTool({ name: 'lock_release', arguments: { paths: [path] } });
  const stillHeld = await call(alice, 'lock_check', { paths: [path] });
  assert.equal(stillHeld.free, false, `bob released alice's lock: ${JSON.stringify(bobRelease)}`);
  await bob.close();

  const released = await call(alice, 'lock_release', { paths: [path] });
  assert.equal(released.results[0].ok, true, JSON.stringify(released));
  const finished = await call(alice, 'task_finish', { task_id: task, fencing_token: token, outcome: 'completed' });
  assert.equal(finished.task.status, 'completed', JSON.stringify(finished));
  text = await refused(alice, 'task_heartbeat', { task_id: task, fencing_token: token });
  assert.match(text, /ALREADY_FINISHED/, text);

  await transport.terminateSession();
  await alice.close();
  console.log(`${label}: ok`);
}

try {
  await run(undefined);
  await run('2025-03-26');
} catch (e) {
  console.error(e);
  process.exit(1);
}
