// A small OpenID Connect provider on loopback for the OAuth2 conformance tests (node:http
// and node:crypto only). Not a test file.
//
//   GET  /authorize  the (pretend) login page: the signed-in user is `provider.user`; it
//                    redirects to redirect_uri with a single-use code and the state
//   POST /token      authorization_code grant: client secret (Basic header or form body),
//                    the code, the redirect_uri it was issued for, and the PKCE S256 verifier
//                    when the authorization request carried a challenge
//   GET  /userinfo   the user of a bearer access token
//   GET  /jwks       the public half of the RS256 key that signs the id_tokens
//
// `provider.spoil` makes the next id_tokens invalid in one way (see `signIdToken`), and
// `provider.log` records every request it served.
import crypto from 'node:crypto';
import http from 'node:http';

export const CLIENT_ID = 'conformance-client';
export const CLIENT_SECRET = 'conformance-secret-0123456789';

const b64url = (data) => Buffer.from(data).toString('base64url');

/** S256 PKCE challenge of a verifier (RFC 7636). */
export function s256(verifier) {
  return crypto.createHash('sha256').update(verifier).digest('base64url');
}

function signJwt(claims, privateKey, kid) {
  const head = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
  const body = b64url(JSON.stringify(claims));
  const signature = crypto.sign('sha256', Buffer.from(`${head}.${body}`), privateKey);
  return `${head}.${body}.${b64url(signature)}`;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res, status, value, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(value));
}

/** Client credentials of a token request: `Authorization: Basic` or the form body. */
function clientCredentials(req, form) {
  const header = req.headers.authorization || '';
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon >= 0) {
      return {
        id: decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' ')),
        secret: decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' ')),
      };
    }
  }
  return { id: form.get('client_id') || '', secret: form.get('client_secret') || '' };
}

/**
 * Starts the provider on 127.0.0.1 (random port). Returns an object with `issuer`,
 * `authURL`, `tokenURL`, `userInfoURL`, `jwksURL`, the mutable `user` (the userinfo
 * document of whoever is signed in at the provider), `spoil`, `log`, and `close()`.
 */
export async function startOidcProvider() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  // A second key that the JWKS does not publish, for forged signatures.
  const { privateKey: strangerKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = `k-${crypto.randomBytes(4).toString('hex')}`;
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' };

  const codes = new Map(); // code -> grant
  const tokens = new Map(); // access token -> user
  const provider = {
    issuer: '',
    user: null,
    /** '' | 'signature' | 'audience' | 'issuer' | 'expired' */
    spoil: '',
    log: [],
    close: () => new Promise((resolve) => server.close(resolve)),
  };

  function signIdToken(grant) {
    const now = Math.floor(Date.now() / 1000);
    const claims = {
      ...grant.user,
      iss: provider.issuer,
      sub: grant.user.sub,
      aud: CLIENT_ID,
      iat: now,
      exp: now + 600,
    };
    if (grant.nonce) claims.nonce = grant.nonce;
    switch (provider.spoil) {
      case 'signature':
        return signJwt(claims, strangerKey, kid);
      case 'audience':
        claims.aud = 'some-other-client';
        break;
      case 'issuer':
        claims.iss = 'https://issuer.invalid';
        break;
      case 'expired':
        claims.iat = now - 7200;
        claims.exp = now - 3600;
        break;
      default:
        break;
    }
    return signJwt(claims, privateKey, kid);
  }

  async function handle(req, res) {
    const url = new URL(req.url, provider.issuer);
    const entry = { method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams) };
    provider.log.push(entry);

    if (req.method === 'GET' && url.pathname === '/authorize') {
      const q = url.searchParams;
      if (q.get('client_id') !== CLIENT_ID || q.get('response_type') !== 'code') {
        res.writeHead(400, { 'content-type': 'text/plain' });
        return res.end('unknown client or response_type');
      }
      const redirect = q.get('redirect_uri') || '';
      if (!/^https?:\/\//.test(redirect)) {
        res.writeHead(400, { 'content-type': 'text/plain' });
        return res.end('redirect_uri required');
      }
      const challenge = q.get('code_challenge') || '';
      if (challenge && q.get('code_challenge_method') !== 'S256') {
        res.writeHead(400, { 'content-type': 'text/plain' });
        return res.end('only S256 PKCE');
      }
      if (!provider.user) {
        res.writeHead(401, { 'content-type': 'text/plain' });
        return res.end('nobody is signed in at the provider');
      }
      const code = `code-${crypto.randomBytes(16).toString('hex')}`;
      codes.set(code, {
        user: structuredClone(provider.user),
        challenge,
        nonce: q.get('nonce') || '',
        redirect,
        scope: q.get('scope') || '',
      });
      const target = new URL(redirect);
      target.searchParams.set('code', code);
      target.searchParams.set('state', q.get('state') || '');
      res.writeHead(302, { location: target.toString() });
      return res.end();
    }

    if (req.method === 'POST' && url.pathname === '/token') {
      const form = new URLSearchParams(await readBody(req));
      entry.form = Object.fromEntries(form);
      const refuse = (why) => sendJson(res, 400, { error: 'invalid_grant', error_description: why });
      const client = clientCredentials(req, form);
      if (client.id !== CLIENT_ID || client.secret !== CLIENT_SECRET) {
        return sendJson(res, 401, { error: 'invalid_client' });
      }
      if (form.get('grant_type') !== 'authorization_code') return refuse('grant_type');
      const grant = codes.get(form.get('code') || '');
      // Codes are single use, also when the exchange fails.
      codes.delete(form.get('code') || '');
      if (!grant) return refuse('unknown or used code');
      if (grant.redirect !== (form.get('redirect_uri') || '')) return refuse('redirect_uri mismatch');
      if (grant.challenge && s256(form.get('code_verifier') || '') !== grant.challenge) {
        return refuse('code_verifier mismatch');
      }
      const accessToken = `at-${crypto.randomBytes(16).toString('hex')}`;
      tokens.set(accessToken, grant.user);
      return sendJson(
        res,
        200,
        {
          access_token: accessToken,
          token_type: 'Bearer',
          expires_in: 3600,
          refresh_token: `rt-${crypto.randomBytes(8).toString('hex')}`,
          scope: grant.scope,
          id_token: signIdToken(grant),
        },
        { 'cache-control': 'no-store' },
      );
    }

    if (req.method === 'GET' && url.pathname === '/userinfo') {
      const header = req.headers.authorization || '';
      const user = header.startsWith('Bearer ') ? tokens.get(header.slice(7)) : undefined;
      if (!user) return sendJson(res, 401, { error: 'invalid_token' });
      return sendJson(res, 200, user);
    }

    if (req.method === 'GET' && url.pathname === '/jwks') {
      return sendJson(res, 200, { keys: [jwk] });
    }

    res.writeHead(404, { 'content-type': 'text/plain' });
    return res.end('not found');
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(String(err?.stack || err));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  provider.issuer = `http://127.0.0.1:${port}`;
  provider.authURL = `${provider.issuer}/authorize`;
  provider.tokenURL = `${provider.issuer}/token`;
  provider.userInfoURL = `${provider.issuer}/userinfo`;
  provider.jwksURL = `${provider.issuer}/jwks`;
  return provider;
}

/**
 * The browser's part of the code flow: opens `authURL` + the encoded redirect URL (the
 * way the SDK builds it), follows nothing, and returns the `code` and `state` of the
 * provider's redirect to `redirectURL`.
 */
export async function browse(authURL, redirectURL) {
  const res = await fetch(authURL + encodeURIComponent(redirectURL), { redirect: 'manual' });
  if (res.status !== 302) {
    throw new Error(`authorize answered ${res.status}: ${await res.text()}`);
  }
  const location = new URL(res.headers.get('location'));
  const expected = new URL(redirectURL);
  if (location.origin + location.pathname !== expected.origin + expected.pathname) {
    throw new Error(`redirected to ${location} instead of ${redirectURL}`);
  }
  return { code: location.searchParams.get('code'), state: location.searchParams.get('state') };
}
