// A real OpenID provider (panva's oidc-provider) for the pki test suite, on 127.0.0.1 and a free port.
//
// Start: node server.js [--keys <file with a private JWKS>]
// Prints one JSON line {"issuer": "...", "port": n} on stdout once it listens.
//
// - Clients register themselves (OpenID Connect Dynamic Client Registration at /reg). Client metadata
//   x_groups (list) is copied into client_credentials access tokens as the "groups" claim, and
//   x_omit_aud: true makes its JWT access tokens carry no aud claim, the way Ping Identity's do.
// - Access tokens are JWTs whenever a resource indicator (RFC 8707) is asked for: aud = the resource.
// - Users sign in through devInteractions (any login, any password); USER_GROUPS (JSON object
//   login -> [groups]) gives them a "groups" claim.
// - Test hooks under /test/: GET stats (how often the JWKS was fetched), POST rotate (body: a private
//   JWKS whose first key signs from now on; the provider is rebuilt with the clients registered so far).
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const args = process.argv.slice(2);
const keysFile = args.includes('--keys') ? args[args.indexOf('--keys') + 1] : null;
const userGroups = JSON.parse(process.env.USER_GROUPS || '{}');

function generatedJwks() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { keys: [{ ...jwk, kid: `k-${randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' }] };
}

let jwks = keysFile ? JSON.parse(readFileSync(keysFile, 'utf8')) : generatedJwks();
const stats = { jwks_requests: 0, token_requests: 0 };
const cookieKeys = [randomBytes(32).toString('hex')];
// Clients registered so far: a rebuilt provider (key rotation) gets them as static clients.
const registered = new Map();

function configuration() {
  return {
    jwks,
    clients: [...registered.values()],
    cookies: { keys: cookieKeys },
    features: {
      devInteractions: { enabled: true },
      registration: { enabled: true },
      clientCredentials: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, resource) => ({
          scope: 'api',
          audience: resource,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
        }),
      },
    },
    extraClientMetadata: {
      properties: ['x_groups', 'x_omit_aud'],
      validator(ctx, key, value) {
        if (key === 'x_groups' && value !== undefined && !Array.isArray(value)) throw new Error('x_groups: list');
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const client = ctx.oidc.client;
      if (token.kind === 'ClientCredentials' && client?.x_groups) return { groups: client.x_groups };
      if (token.accountId) return { groups: userGroups[token.accountId] || [] };
      return undefined;
    },
    formats: {
      customizers: {
        jwt: async (ctx, token, jwt) => {
          if (ctx?.oidc?.client?.x_omit_aud) {
            // oidc-provider insists on an aud in JWT access tokens; Ping's have none. A non-enumerable
            // property passes that check but is left out when the payload is serialized and signed.
            const { aud } = jwt.payload;
            delete jwt.payload.aud;
            Object.defineProperty(jwt.payload, 'aud', { value: aud, enumerable: false, writable: true });
          }
        },
      },
    },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    scopes: ['openid', 'profile', 'email', 'groups', 'api', 'offline_access'],
    conformIdTokenClaims: false, // the ID token carries the scopes' claims (one place to read them)
    findAccount: async (ctx, id) => ({
      accountId: id,
      claims: async () => ({
        sub: id,
        preferred_username: id,
        name: id,
        email: `${id}@example.test`,
        email_verified: true,
        groups: userGroups[id] || [],
      }),
    }),
    pkce: { required: () => false },
    ttl: {
      AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 600, IdToken: 600, Grant: 600,
      Interaction: 600, Session: 3600, RefreshToken: 3600,
    },
    renderError: async (ctx, out) => {
      ctx.type = 'html';
      ctx.body = `<h1>OP error</h1><pre>${JSON.stringify(out)}</pre>`;
    },
  };
}

let provider;
const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/test/stats') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(stats));
    return;
  }
  if (url.pathname === '/test/rotate' && req.method === 'POST') {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      try {
        jwks = body ? JSON.parse(body) : generatedJwks();
        provider = build(provider.issuer);
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ kids: jwks.keys.map((k) => k.kid) }));
      } catch (err) {
        res.statusCode = 400;
        res.end(String(err));
      }
    });
    return;
  }
  if (url.pathname === '/jwks') stats.jwks_requests += 1;
  if (url.pathname === '/token') stats.token_requests += 1;
  provider.callback()(req, res);
});

function build(issuer) {
  const p = new Provider(issuer, configuration());
  p.proxy = false;
  p.on('registration_create.success', (ctx, client) => registered.set(client.clientId, client.metadata()));
  return p;
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = build(issuer);
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
