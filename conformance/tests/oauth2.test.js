// OAuth2 sign-in (auth-methods + auth-with-oauth2) through the SDK's code flow, against an
// OpenID Connect provider on loopback started by this file (tests/oidc_provider.js): RS256
// id_tokens with a JWKS, PKCE S256, single-use codes, userinfo. The test plays the browser:
// listAuthMethods -> open the provider's authURL with our redirect URL -> take the code
// from the redirect -> authWithOAuth2Code.
//
// Two providers are configured on a fresh auth collection: `oidc` reads the user from the
// userinfo endpoint, `oidc2` has no userInfoURL and reads it from the id_token, which is then
// checked (signature by a JWKS key, audience, issuer, expiry).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getTokenPayload } from 'pocketbase';
import {
  CollectionTracker,
  DATETIME_RE,
  RECORD_ID_RE,
  assertFieldError,
  expectError,
  newClient,
  randomSuffix,
  superuserClient,
  uniqueName,
} from './helpers.js';
import { CLIENT_ID, CLIENT_SECRET, browse, s256, startOidcProvider } from './oidc_provider.js';

const REDIRECT_URL = 'https://app.example.test/oauth2-callback';
const PASSWORD = 'first-password-1';

let idp;
let su;
let collections;
let name; // the auth collection under test
let oauth2Options;

function providerConfig(providerName, extra = {}) {
  return {
    name: providerName,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    authURL: idp.authURL,
    tokenURL: idp.tokenURL,
    userInfoURL: idp.userInfoURL,
    displayName: 'Loopback IdP',
    pkce: true,
    extra: { jwksURL: idp.jwksURL, issuers: [idp.issuer] },
    ...extra,
  };
}

before(async () => {
  idp = await startOidcProvider();
  su = await superuserClient();
  collections = new CollectionTracker(su);
  name = uniqueName('oauth');
  oauth2Options = {
    enabled: true,
    mappedFields: { id: 'extId', name: 'name', username: 'handle', avatarURL: 'avatar' },
    providers: [
      providerConfig('oidc'),
      // No userInfoURL: the user comes from the id_token.
      providerConfig('oidc2', { userInfoURL: '', displayName: 'Loopback IdP (id_token)' }),
      // Without PKCE and without a display name.
      providerConfig('oidc3', { pkce: false, displayName: '' }),
    ],
  };
  await collections.create({
    name,
    type: 'auth',
    listRule: '',
    viewRule: '',
    createRule: '',
    fields: [
      { name: 'name', type: 'text' },
      { name: 'handle', type: 'text' },
      { name: 'extId', type: 'text' },
      { name: 'avatar', type: 'url' },
      { name: 'nickname', type: 'text' },
    ],
    oauth2: oauth2Options,
  });
});

after(async () => {
  await collections.cleanup();
  await idp.close();
});

/** A provider identity with fresh ids; `email_verified` defaults to true. */
function identity(tag, overrides = {}) {
  const suffix = randomSuffix(10);
  return {
    sub: `sub-${tag}-${suffix}`,
    email: `${tag}_${suffix}@example.com`,
    email_verified: true,
    name: `Name ${tag}`,
    preferred_username: `${tag}${suffix}`,
    picture: `https://avatars.example.test/${tag}.png`,
    ...overrides,
  };
}

/** The auth-methods entry of a provider (as the SDK asks for it). */
async function methodOf(providerName, pb = newClient()) {
  const methods = await pb.collection(name).listAuthMethods();
  const entry = methods.oauth2.providers.find((p) => p.name === providerName);
  assert.ok(entry, `no provider ${providerName} in ${JSON.stringify(methods.oauth2)}`);
  return entry;
}

/** The code flow up to the provider's redirect: {entry, code}. */
async function authorize(providerName, pb = newClient()) {
  const entry = await methodOf(providerName, pb);
  const { code, state } = await browse(entry.authURL, REDIRECT_URL);
  assert.equal(state, entry.state, 'the provider hands the state back');
  return { entry, code };
}

/** The whole code flow for the user signed in at the provider. */
async function signIn(providerName, { pb = newClient(), createData, verifier } = {}) {
  const { entry, code } = await authorize(providerName, pb);
  return pb
    .collection(name)
    .authWithOAuth2Code(providerName, code, verifier ?? entry.codeVerifier, REDIRECT_URL, createData);
}

async function recordsWithEmail(email) {
  return su.collection(name).getFullList({ filter: su.filter('email = {:email}', { email }) });
}

async function recordCount() {
  return (await su.collection(name).getList(1, 1)).totalItems;
}

async function createPasswordUser(tag, { verified = false } = {}) {
  const email = `${tag}_${randomSuffix(10)}@example.com`;
  const data = { email, password: PASSWORD, passwordConfirm: PASSWORD };
  // Only a superuser may set `verified`.
  const record = verified
    ? await su.collection(name).create({ ...data, verified: true })
    : await newClient().collection(name).create(data);
  assert.equal(record.verified, verified);
  return { email, id: record.id };
}

// ---------------------------------------------------------------------------------

test("the collection's oauth2 options keep the providers but never show the client secret", async () => {
  const collection = await su.collections.getOne(name);
  assert.equal(collection.oauth2.enabled, true);
  assert.deepEqual(collection.oauth2.mappedFields, oauth2Options.mappedFields);
  assert.deepEqual(collection.oauth2.providers.map((p) => p.name), ['oidc', 'oidc2', 'oidc3']);
  const oidc = collection.oauth2.providers[0];
  assert.equal(oidc.clientId, CLIENT_ID);
  assert.equal(oidc.authURL, idp.authURL);
  assert.equal(oidc.tokenURL, idp.tokenURL);
  assert.equal(oidc.userInfoURL, idp.userInfoURL);
  assert.equal(oidc.displayName, 'Loopback IdP');
  assert.equal(oidc.pkce, true);
  assert.deepEqual(oidc.extra, { jwksURL: idp.jwksURL, issuers: [idp.issuer] });
  assert.equal(collection.oauth2.providers[2].pkce, false);
  assert.ok(!JSON.stringify(collection).includes(CLIENT_SECRET), 'the client secret is never shown');
  // Saving the options back without the secret keeps it: the providers still work.
  await su.collections.update(name, { oauth2: collection.oauth2 });
  idp.user = identity('resaved');
  const auth = await signIn('oidc');
  assert.equal(auth.meta.isNew, true);
});

test('listAuthMethods lists each provider with a state, a PKCE pair and an authURL ending in redirect_uri=', async () => {
  const methods = await newClient().collection(name).listAuthMethods();
  assert.equal(methods.oauth2.enabled, true);
  assert.deepEqual(methods.oauth2.providers.map((p) => p.name), ['oidc', 'oidc2', 'oidc3']);
  const entry = methods.oauth2.providers[0];
  assert.equal(entry.displayName, 'Loopback IdP');
  assert.equal(methods.oauth2.providers[1].displayName, 'Loopback IdP (id_token)');
  assert.match(entry.state, /^[A-Za-z0-9]{30}$/);
  assert.match(entry.codeVerifier, /^[A-Za-z0-9]{43}$/);
  assert.equal(entry.codeChallenge, s256(entry.codeVerifier));
  assert.equal(entry.codeChallengeMethod, 'S256');
  assert.equal(entry.authUrl, entry.authURL);
  assert.ok(entry.authURL.startsWith(`${idp.authURL}?`), entry.authURL);
  assert.ok(entry.authURL.endsWith('&redirect_uri='), entry.authURL);
  const query = new URL(entry.authURL).searchParams;
  assert.equal(query.get('client_id'), CLIENT_ID);
  assert.equal(query.get('response_type'), 'code');
  assert.equal(query.get('state'), entry.state);
  assert.equal(query.get('code_challenge'), entry.codeChallenge);
  assert.equal(query.get('code_challenge_method'), 'S256');
  assert.deepEqual(query.get('scope').split(' ').sort(), ['email', 'openid', 'profile']);
  assert.ok(!JSON.stringify(methods).includes(CLIENT_SECRET), 'the client secret is never shown');
  // Every call gives a new state and verifier.
  const again = await methodOf('oidc');
  assert.notEqual(again.state, entry.state);
  assert.notEqual(again.codeVerifier, entry.codeVerifier);
});

test('without PKCE the entry has empty verifier fields and the flow works without a verifier', async () => {
  const entry = await methodOf('oidc3');
  assert.equal(entry.displayName, 'OIDC', "the provider's default name");
  assert.equal(entry.codeVerifier, '');
  assert.equal(entry.codeChallenge, '');
  assert.equal(entry.codeChallengeMethod, '');
  const query = new URL(entry.authURL).searchParams;
  assert.equal(query.get('code_challenge'), null);
  assert.equal(query.get('code_challenge_method'), null);
  assert.equal(query.get('state'), entry.state);
  const person = identity('nopkce');
  idp.user = person;
  const auth = await signIn('oidc3');
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.record.email, person.email);
  const exchange = idp.log.filter((r) => r.path === '/token').at(-1);
  assert.equal(exchange.form.code_verifier, undefined, 'no code_verifier is sent');
});

test('the first sign-in creates a verified record from the provider user; meta describes the user', async () => {
  const person = identity('first');
  idp.user = person;
  const before = await recordCount();
  const pb = newClient();
  const auth = await signIn('oidc', { pb });

  const { meta, record } = auth;
  assert.deepEqual(Object.keys(meta).sort(), [
    'accessToken', 'avatarURL', 'avatarUrl', 'email', 'expiry', 'id', 'isNew', 'name',
    'rawUser', 'refreshToken', 'username',
  ]);
  assert.equal(meta.isNew, true);
  assert.equal(meta.id, person.sub);
  assert.equal(meta.email, person.email);
  assert.equal(meta.name, person.name);
  assert.equal(meta.username, person.preferred_username);
  assert.equal(meta.avatarURL, person.picture);
  assert.equal(meta.avatarUrl, person.picture);
  assert.match(meta.accessToken, /^at-/);
  assert.match(meta.refreshToken, /^rt-/);
  assert.match(meta.expiry, DATETIME_RE);
  assert.deepEqual(meta.rawUser, person);

  assert.match(record.id, RECORD_ID_RE);
  assert.equal(record.collectionName, name);
  assert.equal(record.email, person.email);
  assert.equal(record.verified, true, 'the provider vouched for the email');
  assert.equal(record.name, person.name);
  assert.equal(record.handle, person.preferred_username);
  assert.equal(record.extId, person.sub);
  assert.equal(record.avatar, person.picture);
  assert.equal(record.nickname, '');
  assert.equal(await recordCount(), before + 1);

  const claims = getTokenPayload(auth.token);
  assert.equal(claims.type, 'auth');
  assert.equal(claims.id, record.id);
  assert.equal(claims.refreshable, true);
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.record.id, record.id);
  const refreshed = await pb.collection(name).authRefresh();
  assert.equal(refreshed.record.id, record.id);

  // The server exchanged the code with the secret, our redirect URL and the verifier.
  const exchange = idp.log.filter((r) => r.path === '/token').at(-1);
  assert.equal(exchange.form.grant_type, 'authorization_code');
  assert.equal(exchange.form.redirect_uri, REDIRECT_URL);
  const authorization = idp.log.filter((r) => r.path === '/authorize').at(-1);
  assert.equal(s256(exchange.form.code_verifier), authorization.query.code_challenge);
});

test('a second sign-in of the same identity returns the same record and changes nothing', async () => {
  const person = identity('again');
  idp.user = person;
  const first = await signIn('oidc');
  assert.equal(first.meta.isNew, true);
  // The provider's profile changed meanwhile; the record keeps its values.
  idp.user = { ...person, name: 'Renamed At Provider', picture: 'https://avatars.example.test/new.png' };
  const second = await signIn('oidc');
  assert.equal(second.meta.isNew, false);
  assert.equal(second.meta.name, 'Renamed At Provider');
  assert.equal(second.record.id, first.record.id);
  assert.equal(second.record.name, person.name);
  assert.equal(second.record.avatar, person.picture);
  assert.notEqual(second.token, '');
  assert.equal((await recordsWithEmail(person.email)).length, 1);
});

test('createData fills the new record and wins over mapped fields', async () => {
  const person = identity('create');
  idp.user = person;
  const auth = await signIn('oidc', { createData: { nickname: 'Nick', name: 'Chosen Name' } });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.record.nickname, 'Nick');
  assert.equal(auth.record.name, 'Chosen Name');
  assert.equal(auth.record.handle, person.preferred_username);
  assert.equal(auth.record.email, person.email);
  assert.equal(auth.record.verified, true);
  // createData is used for new records only.
  const again = await signIn('oidc', { createData: { nickname: 'Other' } });
  assert.equal(again.record.id, auth.record.id);
  assert.equal(again.record.nickname, 'Nick');
});

test('a createData email other than the provider one makes an unverified record', async () => {
  const person = identity('otheremail');
  idp.user = person;
  const chosen = `chosen_${randomSuffix(10)}@example.com`;
  const auth = await signIn('oidc', {
    createData: { email: chosen, password: PASSWORD, passwordConfirm: PASSWORD },
  });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.email, person.email);
  assert.equal(auth.record.email, chosen);
  assert.equal(auth.record.verified, false);
  const login = await newClient().collection(name).authWithPassword(chosen, PASSWORD);
  assert.equal(login.record.id, auth.record.id);
  // Signing in again through the link leaves it unverified (the emails differ) and
  // replaces the password chosen in createData.
  const again = await signIn('oidc');
  assert.equal(again.record.id, auth.record.id);
  assert.equal(again.meta.isNew, false);
  assert.equal(again.record.verified, false);
  await expectError(newClient().collection(name).authWithPassword(chosen, PASSWORD), 400);
  // createData cannot mark the record verified.
  idp.user = identity('forceverified');
  const err = await expectError(
    signIn('oidc', { createData: { email: `forced_${randomSuffix(8)}@example.com`, verified: true } }),
    400,
  );
  assert.equal(typeof err.response.message, 'string');
});

test('an email the provider did not verify is not used: no new record without createData', async () => {
  const person = identity('unverified', { email_verified: false });
  idp.user = person;
  const before = await recordCount();
  const err = await expectError(signIn('oidc'), 400);
  assert.equal(err.response.message, 'Failed to create record.');
  assert.deepEqual(Object.keys(err.response.data), ['email']);
  assertFieldError(err, 'email', 'validation_required');
  assert.equal(await recordCount(), before);
  // With the address in createData the record is created, but not verified, and meta
  // carries no email.
  const auth = await signIn('oidc', { createData: { email: person.email } });
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.email, '');
  assert.equal(auth.meta.rawUser.email, person.email);
  assert.equal(auth.record.email, person.email);
  assert.equal(auth.record.verified, false);
});

test("an unverified provider email never links to the existing account with that address", async () => {
  const victim = await createPasswordUser('victim');
  idp.user = identity('squatter', { email: victim.email, email_verified: false });
  // The address is ignored, so this is a sign-up without an email.
  const err = await expectError(signIn('oidc'), 400);
  assert.equal(err.response.message, 'Failed to create record.');
  assertFieldError(err, 'email', 'validation_required');
  // Nothing changed on the account: still one record, unverified, the password still works.
  const records = await recordsWithEmail(victim.email);
  assert.equal(records.length, 1);
  assert.equal(records[0].id, victim.id);
  assert.equal(records[0].verified, false);
  const login = await newClient().collection(name).authWithPassword(victim.email, PASSWORD);
  assert.equal(login.record.id, victim.id);
});

test('a verified provider email signs in to the existing verified account and keeps its password', async () => {
  const owner = await createPasswordUser('owner', { verified: true });
  idp.user = identity('owner', { email: owner.email });
  const auth = await signIn('oidc');
  assert.equal(auth.meta.isNew, false);
  assert.equal(auth.record.id, owner.id);
  assert.equal(auth.record.verified, true);
  // Existing records are not re-mapped.
  assert.equal(auth.record.name, '');
  const login = await newClient().collection(name).authWithPassword(owner.email, PASSWORD);
  assert.equal(login.record.id, owner.id);
  assert.equal((await recordsWithEmail(owner.email)).length, 1);
});

test('a verified provider email takes over an unverified account: verified, old password gone', async () => {
  const squatted = await createPasswordUser('squatted');
  idp.user = identity('realowner', { email: squatted.email });
  const auth = await signIn('oidc');
  assert.equal(auth.meta.isNew, false);
  assert.equal(auth.record.id, squatted.id);
  assert.equal(auth.record.verified, true);
  const err = await expectError(
    newClient().collection(name).authWithPassword(squatted.email, PASSWORD),
    400,
  );
  assert.equal(err.response.message, 'Failed to authenticate.');
  // The identity is linked now: the next sign-in finds the record by the link.
  const again = await signIn('oidc');
  assert.equal(again.record.id, squatted.id);
  assert.equal(again.meta.isNew, false);
});

test('a signed-in user links a new provider identity to its own record', async () => {
  const user = await createPasswordUser('linker', { verified: true });
  const pb = newClient();
  await pb.collection(name).authWithPassword(user.email, PASSWORD);
  // A provider identity with another address.
  const person = identity('linked');
  idp.user = person;
  const auth = await signIn('oidc', { pb });
  assert.equal(auth.meta.isNew, false);
  assert.equal(auth.record.id, user.id);
  assert.equal(auth.record.email, user.email);
  // A guest with that identity now gets the linked record.
  const guest = await signIn('oidc');
  assert.equal(guest.record.id, user.id);
  assert.equal((await recordsWithEmail(person.email)).length, 0);
});

test('without any verified email a record gets none, counts as verified, and takes the first verified one', async () => {
  // A collection whose email is optional.
  const optional = uniqueName('oauth_noemail');
  const created = await collections.create({
    name: optional,
    type: 'auth',
    createRule: '',
    fields: [{ name: 'name', type: 'text' }],
    oauth2: { enabled: true, mappedFields: { name: 'name' }, providers: [providerConfig('oidc')] },
  });
  await su.collections.update(optional, {
    fields: created.fields.map((f) => (f.name === 'email' ? { ...f, required: false } : f)),
  });
  const person = identity('noemail', { email_verified: false });
  idp.user = person;
  const signInTo = async () => {
    const entry = (await newClient().collection(optional).listAuthMethods()).oauth2.providers[0];
    const { code } = await browse(entry.authURL, REDIRECT_URL);
    return newClient().collection(optional).authWithOAuth2Code('oidc', code, entry.codeVerifier, REDIRECT_URL);
  };
  const auth = await signInTo();
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.email, '');
  assert.equal(auth.record.email, '');
  assert.equal(auth.record.verified, true, "no email on either side counts as matching");
  assert.equal(auth.record.name, person.name);
  // The provider verifies the address later: the record takes it.
  idp.user = { ...person, email_verified: true };
  const again = await signInTo();
  assert.equal(again.meta.isNew, false);
  assert.equal(again.record.id, auth.record.id);
  assert.equal(again.record.email, person.email);
  assert.equal(again.record.verified, true);
});

test('the user of the id_token (no userInfoURL) signs in; the id_token is verified', async () => {
  const person = identity('idtoken');
  idp.user = person;
  const jwksBefore = idp.log.filter((r) => r.path === '/jwks').length;
  const auth = await signIn('oidc2');
  assert.equal(auth.meta.isNew, true);
  assert.equal(auth.meta.id, person.sub);
  assert.equal(auth.meta.email, person.email);
  assert.equal(auth.meta.rawUser.sub, person.sub);
  assert.equal(auth.meta.rawUser.iss, idp.issuer);
  assert.equal(auth.meta.rawUser.aud, CLIENT_ID);
  assert.equal(auth.record.email, person.email);
  assert.equal(auth.record.verified, true);
  assert.equal(auth.record.name, person.name);
  assert.ok(idp.log.filter((r) => r.path === '/jwks').length > jwksBefore, 'the JWKS was fetched');
  const again = await signIn('oidc2');
  assert.equal(again.record.id, auth.record.id);
  assert.equal(again.meta.isNew, false);
});

test('a forged, foreign, wrong-issuer or expired id_token is refused (no userInfoURL)', async () => {
  const before = await recordCount();
  try {
    for (const spoil of ['signature', 'audience', 'issuer', 'expired']) {
      idp.user = identity(`spoil${spoil}`);
      idp.spoil = spoil;
      const err = await expectError(signIn('oidc2'), 400);
      assert.equal(err.response.message, 'Failed to fetch OAuth2 user.', spoil);
      assert.deepEqual(err.response.data, {}, spoil);
    }
  } finally {
    idp.spoil = '';
  }
  assert.equal(await recordCount(), before);
});

test('a wrong or replayed code, and a wrong code verifier, fail with 400 and create nothing', async () => {
  idp.user = identity('badcode');
  const before = await recordCount();
  const pb = newClient();

  const { entry } = await authorize('oidc');
  let err = await expectError(
    pb.collection(name).authWithOAuth2Code('oidc', 'not-a-code', entry.codeVerifier, REDIRECT_URL),
    400,
  );
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');
  assert.deepEqual(err.response.data, {});

  const flow = await authorize('oidc');
  err = await expectError(
    pb.collection(name).authWithOAuth2Code('oidc', flow.code, 'x'.repeat(43), REDIRECT_URL),
    400,
  );
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');
  assert.deepEqual(err.response.data, {});

  // A code issued for another redirect URL.
  const other = await authorize('oidc');
  err = await expectError(
    pb
      .collection(name)
      .authWithOAuth2Code('oidc', other.code, other.entry.codeVerifier, 'https://elsewhere.example.test/cb'),
    400,
  );
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');

  // A code works once.
  const fresh = await authorize('oidc');
  await pb.collection(name).authWithOAuth2Code('oidc', fresh.code, fresh.entry.codeVerifier, REDIRECT_URL);
  err = await expectError(
    pb.collection(name).authWithOAuth2Code('oidc', fresh.code, fresh.entry.codeVerifier, REDIRECT_URL),
    400,
  );
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');
  assert.equal(await recordCount(), before + 1);
});

test('an unknown provider or a missing code fails validation', async () => {
  const pb = newClient();
  let err = await expectError(
    pb.collection(name).authWithOAuth2Code('github', 'c', 'v', REDIRECT_URL),
    400,
  );
  assert.equal(err.response.message, 'An error occurred while loading the submitted data.');
  assertFieldError(err, 'provider', 'validation_invalid_provider');
  assert.equal(err.response.data.provider.message, 'Provider with name github is missing or is not enabled.');
  assert.deepEqual(err.response.data.provider.params, { name: 'github' });
  err = await expectError(pb.collection(name).authWithOAuth2Code('nope', 'c', 'v', REDIRECT_URL), 400);
  assertFieldError(err, 'provider', 'validation_invalid_provider');
  err = await expectError(pb.collection(name).authWithOAuth2Code('oidc', '', 'v', REDIRECT_URL), 400);
  assert.equal(err.response.message, 'An error occurred while loading the submitted data.');
  assertFieldError(err, 'code', 'validation_required');
  assert.equal(err.response.data.provider, undefined);
  err = await expectError(pb.collection(name).authWithOAuth2Code('', '', '', REDIRECT_URL), 400);
  assertFieldError(err, 'provider', 'validation_required');
  assertFieldError(err, 'code', 'validation_required');
  // The redirect URL is not required by the server; the provider refuses the code
  // without the one it was issued for.
  const flow = await authorize('oidc');
  err = await expectError(pb.collection(name).authWithOAuth2Code('oidc', flow.code, flow.entry.codeVerifier, ''), 400);
  assert.equal(err.response.message, 'Failed to fetch OAuth2 token.');
  assert.deepEqual(err.response.data, {});
  // createData must be an object.
  const raw = await fetch(`${pb.baseURL}/api/collections/${name}/auth-with-oauth2`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ provider: 'oidc', code: 'c', codeVerifier: 'v', redirectURL: REDIRECT_URL, createData: 'x' }),
  });
  assert.equal(raw.status, 400);
  const body = await raw.json();
  assert.equal(body.message, 'An error occurred while loading the submitted data.');
  assert.deepEqual(body.data, {});
});

test('external auths: the link is a record of _externalAuths, listed and unlinked through the SDK', async () => {
  const person = identity('external');
  idp.user = person;
  const pb = newClient();
  const auth = await signIn('oidc', { pb });
  const links = await su.collection(name).listExternalAuths(auth.record.id);
  assert.equal(links.length, 1);
  assert.equal(links[0].provider, 'oidc');
  assert.equal(links[0].providerId, person.sub);
  assert.equal(links[0].recordRef, auth.record.id);
  assert.equal(links[0].collectionRef, auth.record.collectionId);
  // The owner sees its own links.
  const own = await pb.collection(name).listExternalAuths(auth.record.id);
  assert.deepEqual(own.map((l) => l.id), links.map((l) => l.id));
  // Unlinked, the identity is found again by its verified email and linked anew.
  assert.equal(await pb.collection(name).unlinkExternalAuth(auth.record.id, 'oidc'), true);
  assert.deepEqual(await su.collection(name).listExternalAuths(auth.record.id), []);
  const again = await signIn('oidc');
  assert.equal(again.record.id, auth.record.id);
  assert.equal(again.meta.isNew, false);
  assert.equal((await su.collection(name).listExternalAuths(auth.record.id)).length, 1);
});

test('with OAuth2 disabled: auth-methods lists no providers and auth-with-oauth2 is 403', async () => {
  idp.user = identity('disabled');
  const { entry, code } = await authorize('oidc');
  await su.collections.update(name, { oauth2: { enabled: false } });
  try {
    const methods = await newClient().collection(name).listAuthMethods();
    assert.deepEqual(methods.oauth2, { enabled: false, providers: [] });
    const err = await expectError(
      newClient().collection(name).authWithOAuth2Code('oidc', code, entry.codeVerifier, REDIRECT_URL),
      403,
    );
    assert.equal(err.response.message, 'The collection is not configured to allow OAuth2 authentication.');
    assert.deepEqual(err.response.data, {});
  } finally {
    await su.collections.update(name, { oauth2: { enabled: true } });
  }
  const methods = await newClient().collection(name).listAuthMethods();
  assert.equal(methods.oauth2.providers.length, 3, 'the providers were kept while disabled');
});
