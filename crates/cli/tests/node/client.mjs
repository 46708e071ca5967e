// The official MCP TypeScript SDK's client over Streamable HTTP with its OAuth provider, the
// whole way: the first request is refused (401 with `resource_metadata`), the SDK discovers the
// metadata and the issuer, authorizes with PKCE (issuer.mjs approves at once), exchanges the
// code, connects again with the token, lists the tools and calls one.
//
//   node client.mjs --server http://127.0.0.1:PORT/mcp --scope oc:work
//                   [--tool task_list --arguments '{}'] [--redirect-uri …] [--client-id oc-test]
//
// Prints one JSON line: {"unauthorized_first": bool, "tools": [names], "call": result|null}.
// Exits non-zero with the reason on stderr when any step fails.

import { parseArgs } from 'node:util';

import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { MemoryProvider, authorize } from './flow.mjs';

const { values } = parseArgs({
  options: {
    server: { type: 'string' },
    scope: { type: 'string', default: 'oc:work' },
    tool: { type: 'string' },
    arguments: { type: 'string', default: '{}' },
    'redirect-uri': { type: 'string', default: 'http://127.0.0.1/callback' },
    'client-id': { type: 'string', default: 'oc-test' },
  },
});

const provider = new MemoryProvider({
  redirectUri: values['redirect-uri'],
  scope: values.scope,
  clientId: values['client-id'],
});

async function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(values.server), { authProvider: provider });
  const client = new Client({ name: 'oc-oauth-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    return { client, transport, unauthorized: false };
  } catch (err) {
    if (err instanceof UnauthorizedError) return { client: null, transport, unauthorized: true };
    throw err;
  }
}

try {
  let { client, transport, unauthorized } = await connect();
  const unauthorizedFirst = unauthorized;
  if (unauthorized) {
    if (!provider.authorizationUrl) throw new Error('refused, but the SDK did not start an authorization');
    const code = await authorize(provider.authorizationUrl, values['redirect-uri']);
    await transport.finishAuth(code);
    ({ client, unauthorized } = await connect());
    if (unauthorized) throw new Error('still refused with the token the authorization gave');
  }
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const call = values.tool
    ? await client.callTool({ name: values.tool, arguments: JSON.parse(values.arguments) })
    : null;
  process.stdout.write(`${JSON.stringify({ unauthorized_first: unauthorizedFirst, tools, call })}\n`);
  await client.close();
} catch (err) {
  console.error(`client.mjs: ${err.stack ?? err}`);
  process.exit(1);
}
