// A real authorization server for the OAuth tests: oidc-provider on 127.0.0.1, issuing JWT
// access tokens (RFC 9068) for the resources named on the command line (RFC 8707).
//
//   node issuer.mjs --audience http://127.0.0.1:PORT/mcp [--audience …] [--port 0]
//                   [--redirect-uri http://127.0.0.1:PORT/callback] [--agent alice] [--alg RS256|ES256|PS256]
//
// Clients:
// - `oc-test`: public, authorization code with PKCE (S256), the redirect URIs given; every
//   interaction is approved at once as the account `--agent`, granting the scopes asked for.
// - `oc-machine` / `oc-machine-secret`: confidential, client credentials, for tests that need a
//   token without a browser; its tokens' `sub` is `oc-machine`.
// Dynamic client registration is on too, for SDK clients that register themselves.
//
// Prints one JSON line once it listens: {"issuer": "http://127.0.0.1:PORT", "pid": N}.
// Test-only: keys are generated at start and kept in memory; nothing is persisted.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values } = parseArgs({
  options: {
    audience: { type: 'string', multiple: true },
    port: { type: 'string', default: '0' },
    'redirect-uri': { type: 'string', multiple: true, default: ['http://127.0.0.1/callback'] },
    agent: { type: 'string', default: 'alice' },
    alg: { type: 'string', default: 'RS256' },
  },
});
const audiences = values.audience ?? [];
if (audiences.length === 0) {
  console.error('issuer.mjs: at least one --audience (the resource URL tokens are for) is needed');
  process.exit(2);
}
const SCOPES = 'oc:read oc:work oc:admin';

function keys() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return [
    { ...rsa, kid: `rsa-${randomBytes(4).toString('hex')}`, use: 'sig' },
    { ...ec, kid: `ec-${randomBytes(4).toString('hex')}`, use: 'sig' },
  ];
}

const server = http.createServer();
await new Promise((resolve) => server.listen(Number(values.port), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: keys() },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  clients: [
    {
      client_id: 'oc-test',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: values['redirect-uri'],
      scope: `openid offline_access ${SCOPES}`,
    },
    {
      client_id: 'oc-machine',
      client_secret: 'oc-machine-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPES,
    },
  ],
  scopes: ['openid', 'offline_access', ...SCOPES.split(' ')],
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    registration: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf ?? audiences[0],
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (!audiences.includes(resource)) throw new errors.InvalidTarget();
        return {
          scope: SCOPES,
          audience: resource,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: values.alg } },
        };
      },
    },
  },
  pkce: { required: () => true },
});

// Every interaction is approved at once: the login as --agent, the consent to what was asked.
async function interaction(req, res) {
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session } = details;
    if (prompt.name === 'login') {
      await provider.interactionFinished(req, res, { login: { accountId: values.agent } }, { mergeWithLastSubmission: false });
      return;
    }
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const missing = prompt.details;
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  } catch (err) {
    res.statusCode = 500;
    res.end(String(err));
  }
}

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url.startsWith('/interaction/')) interaction(req, res);
  else callback(req, res);
});
provider.on('server_error', (_ctx, err) => console.error('issuer.mjs: server error:', err));

process.stdout.write(`${JSON.stringify({ issuer, pid: process.pid })}\n`);
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
// Exit with the test that started us: stdin closes when it does.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
