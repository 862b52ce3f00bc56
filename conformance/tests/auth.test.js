// Superuser and user password authentication, token refresh.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { getTokenPayload } from 'pocketbase';
import {
  DATETIME_RE,
  RECORD_ID_RE,
  SUPERUSER_EMAIL,
  SUPERUSER_PASSWORD,
  SUPERUSERS_COLLECTION_ID,
  USERS_COLLECTION_ID,
  assertFieldError,
  createUserAndLogin,
  expectError,
  newClient,
  superuserClient,
} from './helpers.js';

const createdUsers = [];

after(async () => {
  if (!createdUsers.length) return;
  const su = await superuserClient();
  for (const id of createdUsers) {
    await su.collection('users').delete(id).catch((err) => {
      if (err?.status !== 404) throw err;
    });
  }
});

test('superuser authWithPassword returns a token and the _superusers record', async () => {
  const pb = newClient();
  const res = await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);

  assert.equal(typeof res.token, 'string');
  assert.equal(res.token.split('.').length, 3, 'token is a JWT');
  assert.ok(!('meta' in res), 'password auth has no meta');

  const rec = res.record;
  assert.match(rec.id, RECORD_ID_RE);
  assert.equal(rec.collectionId, SUPERUSERS_COLLECTION_ID);
  assert.equal(rec.collectionName, '_superusers');
  assert.equal(rec.email, SUPERUSER_EMAIL);
  assert.equal(rec.verified, true);
  assert.equal(typeof rec.emailVisibility, 'boolean');
  assert.match(rec.created, DATETIME_RE);
  assert.match(rec.updated, DATETIME_RE);
  assert.ok(!('password' in rec), 'password is never output');
  assert.ok(!('tokenKey' in rec), 'tokenKey is never output');
});

test('the superuser token carries auth claims for the _superusers collection', async () => {
  const pb = newClient();
  const res = await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
  const [headerB64] = res.token.split('.');
  const header = JSON.parse(Buffer.from(headerB64, 'base64url').toString('utf8'));
  assert.equal(header.alg, 'HS256');

  const claims = getTokenPayload(res.token);
  assert.equal(claims.type, 'auth');
  assert.equal(claims.id, res.record.id);
  assert.equal(claims.collectionId, SUPERUSERS_COLLECTION_ID);
  assert.equal(claims.refreshable, true);
  assert.equal(typeof claims.exp, 'number');
  assert.ok(claims.exp > Date.now() / 1000, 'token is not expired');
});

test('after superuser login the SDK auth store is valid and reports a superuser', async () => {
  const pb = newClient();
  assert.equal(pb.authStore.isValid, false);
  assert.equal(pb.authStore.isSuperuser, false);
  const res = await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
  assert.equal(pb.authStore.token, res.token);
  assert.equal(pb.authStore.record.id, res.record.id);
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.isSuperuser, true);
});

test('a wrong superuser password is a 400 ClientResponseError with an empty data object', async () => {
  const pb = newClient();
  const err = await expectError(
    pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, `${SUPERUSER_PASSWORD}-wrong`),
    400,
  );
  assert.equal(err.response.message, 'Failed to authenticate.');
  assert.equal(err.message, 'Failed to authenticate.');
  assert.deepEqual(err.response.data, {});
  assert.equal(pb.authStore.isValid, false, 'a failed login stores nothing');
});

test('an unknown superuser identity fails exactly like a wrong password', async () => {
  const pb = newClient();
  const err = await expectError(
    pb.collection('_superusers').authWithPassword('nobody-here@example.com', 'whatever-password'),
    400,
  );
  assert.equal(err.response.message, 'Failed to authenticate.');
  assert.deepEqual(err.response.data, {});
});

test('an empty identity and password are rejected with validation_required field errors', async () => {
  const pb = newClient();
  const err = await expectError(pb.collection('_superusers').authWithPassword('', ''), 400);
  assert.equal(err.response.message, 'An error occurred while validating the submitted data.');
  assertFieldError(err, 'identity', 'validation_required');
  assertFieldError(err, 'password', 'validation_required');
});

test('authRefresh issues a fresh token for the same superuser record', async () => {
  const pb = await superuserClient();
  const before = pb.authStore.record;
  const oldToken = pb.authStore.token;
  // Tokens are second-granular; wait so the new exp differs from the old one.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const res = await pb.collection('_superusers').authRefresh();
  assert.equal(typeof res.token, 'string');
  assert.equal(res.record.id, before.id);
  assert.equal(res.record.collectionName, '_superusers');
  assert.equal(res.record.email, SUPERUSER_EMAIL);
  assert.equal(pb.authStore.token, res.token, 'the SDK stores the refreshed token');
  assert.notEqual(res.token, oldToken);
  assert.ok(getTokenPayload(res.token).exp > getTokenPayload(oldToken).exp,
    'the refreshed token expires later than the old one');
  assert.equal(pb.authStore.isSuperuser, true);

  // The refreshed token works for a superuser-only endpoint.
  const list = await pb.collections.getList(1, 1);
  assert.ok(list.totalItems >= 2);
});

test('authRefresh without a token is 401', async () => {
  const pb = newClient();
  const err = await expectError(pb.collection('_superusers').authRefresh(), 401);
  assert.equal(err.response.message, 'The request requires valid record authorization token.');
  assert.deepEqual(err.response.data, {});
});

test('authRefresh with a users token on _superusers is 403', async () => {
  const user = await createUserAndLogin('refresh');
  createdUsers.push(user.record.id);
  const err = await expectError(user.client.collection('_superusers').authRefresh(), 403);
  assert.equal(err.response.message, 'The request requires auth record from users collection.');
  assert.deepEqual(err.response.data, {});
});

test('a regular user logs in to the users collection and is not a superuser', async () => {
  const user = await createUserAndLogin('login');
  createdUsers.push(user.record.id);
  const pb = user.client;
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.isSuperuser, false);
  const rec = pb.authStore.record;
  assert.equal(rec.id, user.record.id);
  assert.equal(rec.collectionId, USERS_COLLECTION_ID);
  assert.equal(rec.collectionName, 'users');
  assert.equal(rec.email, user.email, 'the auth response always contains the own email');
  assert.equal(rec.verified, false);
  assert.ok(!('password' in rec));
  assert.ok(!('tokenKey' in rec));

  const claims = getTokenPayload(pb.authStore.token);
  assert.equal(claims.type, 'auth');
  assert.equal(claims.collectionId, USERS_COLLECTION_ID);

  const refreshed = await pb.collection('users').authRefresh();
  assert.equal(refreshed.record.id, user.record.id);
});

test('a regular user token cannot use superuser-only endpoints', async () => {
  const user = await createUserAndLogin('forbidden');
  createdUsers.push(user.record.id);
  const err = await expectError(user.client.collections.getList(1, 1), 403);
  assert.deepEqual(err.response.data, {});
  const guestErr = await expectError(newClient().collections.getList(1, 1), 401);
  assert.deepEqual(guestErr.response.data, {});
});

test('an invalid token is ignored and the request continues as a guest', async () => {
  const pb = newClient();
  pb.authStore.save('not-a-real-token', null);
  // Public endpoint still works.
  const health = await pb.health.check();
  assert.equal(health.code, 200);
  // Auth-only endpoint treats the caller as a guest (401, not 403).
  await expectError(pb.collections.getList(1, 1), 401);
});
