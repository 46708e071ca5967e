// The official MCP TypeScript SDK's OAuth client through the whole authorization flow against
// an MCP server and the issuer it names: protected-resource metadata discovery (RFC 9728),
// authorization-server metadata, client registration (or the preregistered `oc-test`),
// authorization with PKCE and the resource indicator, the code exchanged for a token.
//
//   node flow.mjs --server http://127.0.0.1:PORT/mcp --scope oc:work
//                 [--redirect-uri http://127.0.0.1/callback] [--client-id oc-test]
//
// The browser step is a loop of fetches: issuer.mjs approves every interaction at once, so
// following its redirects (with its cookies) ends at the redirect URI with the code.
// Prints one JSON line: the tokens the SDK saved ({"access_token": …, "token_type": …}).
// Exits non-zero with the reason on stderr when any step fails.
//
// `authorize(provider)` and `MemoryProvider` are exported for client scripts that connect with
// StreamableHTTPClientTransport({ authProvider }) and call `transport.finishAuth(code)`.

import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';

import { auth } from '@modelcontextprotocol/sdk/client/auth.js';

/** An OAuthClientProvider keeping everything in memory. */
export class MemoryProvider {
  constructor({ redirectUri, scope, clientId }) {
    this.redirect = redirectUri;
    this.scope = scope;
    this.client = clientId ? { client_id: clientId } : undefined;
    this.saved = undefined;
    this.verifier = undefined;
    this.authorizationUrl = undefined;
  }
  get redirectUrl() { return this.redirect; }
  get clientMetadata() {
    return {
      client_name: 'oc OAuth test',
      redirect_uris: [this.redirect],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      scope: this.scope,
    };
  }
  clientInformation() { return this.client; }
  saveClientInformation(info) { this.client = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) { this.saved = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  codeVerifier() { return this.verifier; }
}

/** Plays the browser: follows `url`'s redirects, keeping cookies, up to the redirect URI's code. */
export async function authorize(url, redirectUri) {
  const jar = new Map();
  let next = new URL(url);
  for (let hop = 0; hop < 20; hop += 1) {
    if (next.href.startsWith(redirectUri)) {
      const error = next.searchParams.get('error');
      if (error) throw new Error(`authorization refused: ${error}: ${next.searchParams.get('error_description')}`);
      const code = next.searchParams.get('code');
      if (!code) throw new Error(`no code at ${next.href}`);
      return code;
    }
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(next, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`${next.href} answered ${res.status} without a redirect: ${(await res.text()).slice(0, 300)}`);
    next = new URL(location, next);
  }
  throw new Error('more than 20 redirects');
}

/** The whole flow through the SDK's `auth()`: returns the tokens. */
export async function flow({ server, scope, redirectUri, clientId }) {
  const provider = new MemoryProvider({ redirectUri, scope, clientId });
  const first = await auth(provider, { serverUrl: server, scope });
  if (first !== 'REDIRECT') throw new Error(`expected a redirect to authorize, got ${first}`);
  const code = await authorize(provider.authorizationUrl, redirectUri);
  const second = await auth(provider, { serverUrl: server, scope, authorizationCode: code });
  if (second !== 'AUTHORIZED') throw new Error(`expected AUTHORIZED, got ${second}`);
  return provider.tokens();
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      server: { type: 'string' },
      scope: { type: 'string', default: 'oc:work' },
      'redirect-uri': { type: 'string', default: 'http://127.0.0.1/callback' },
      'client-id': { type: 'string' },
    },
  });
  try {
    const tokens = await flow({
      server: values.server,
      scope: values.scope,
      redirectUri: values['redirect-uri'],
      clientId: values['client-id'],
    });
    process.stdout.write(`${JSON.stringify(tokens)}\n`);
  } catch (err) {
    console.error(`flow.mjs: ${err.stack ?? err}`);
    process.exit(1);
  }
}
