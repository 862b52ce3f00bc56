// Email auth flows (verification, password reset, email change), impersonation, the
// manage rule and the settings' test email, with a real SMTP receiver on loopback
// started by this file; the server's SMTP settings point at it while the file runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { getTokenPayload } from 'pocketbase';
import {
  BASE_URL,
  CollectionTracker,
  assertFieldError,
  expectError,
  newClient,
  randomSuffix,
  rawRequest,
  superuserClient,
  uniqueName,
} from './helpers.js';
import { startSmtpSink } from './smtp.js';

const APP_URL = 'https://app.example.test';
const APP_NAME = 'Conformance App';
const PASSWORD = 'first-password-1';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let sink;
let su;
let originalSettings;
const tracker = { collections: null, users: [] };

/** Waits up to 10 s for a mail to `to` that is not in `seen`; returns it. */
async function nextMailTo(to, seenCount = 0) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const matching = sink.mails.filter((m) => m.rcpt.includes(to));
    if (matching.length > seenCount) return matching[seenCount];
    if (Date.now() > deadline) assert.fail(`no mail to ${to} arrived`);
    await sleep(25);
  }
}

function mailsTo(to) {
  return sink.mails.filter((m) => m.rcpt.includes(to)).length;
}

function header(mail, name) {
  const line = mail.text
    .split('\n')
    .slice(0, mail.text.split('\n').indexOf(''))
    .find((l) => l.toLowerCase().startsWith(name.toLowerCase() + ':'));
  return line ? line.slice(name.length + 1).trim() : '';
}

/** The token of the first `<APP_URL><path><token>` link in a mail. */
function linkToken(mail, path) {
  const prefix = APP_URL + path;
  const at = mail.text.indexOf(prefix);
  assert.ok(at >= 0, `no ${prefix} link in:\n${mail.text}`);
  return /^[A-Za-z0-9_.-]+/.exec(mail.text.slice(at + prefix.length))[0];
}

async function createUser(collection, tag) {
  const email = `${tag}_${randomSuffix(10)}@example.com`;
  const record = await newClient()
    .collection(collection)
    .create({ email, password: PASSWORD, passwordConfirm: PASSWORD });
  tracker.users.push([collection, record.id]);
  return { email, id: record.id };
}

async function loginAs(collection, email, password = PASSWORD) {
  const pb = newClient();
  await pb.collection(collection).authWithPassword(email, password);
  return pb;
}

/** A raw JSON POST whose Host and X-Forwarded-Host headers claim another site. */
function postWithForeignHost(path, body) {
  const url = new URL(BASE_URL + path);
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        headers: {
          Host: 'evil.example',
          'X-Forwarded-Host': 'evil.example',
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(payload),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

async function requestVerificationToken(email) {
  const seen = mailsTo(email);
  await newClient().collection('users').requestVerification(email);
  return linkToken(await nextMailTo(email, seen), '/_/#/auth/confirm-verification/');
}

async function requestResetToken(collection, email) {
  const seen = mailsTo(email);
  await newClient().collection(collection).requestPasswordReset(email);
  return linkToken(await nextMailTo(email, seen), '/_/#/auth/confirm-password-reset/');
}

async function smtpOn() {
  await su.settings.update({
    smtp: { enabled: true, host: '127.0.0.1', port: sink.port, tls: false },
    meta: {
      appName: APP_NAME,
      appURL: APP_URL,
      senderName: 'Conformance Sender',
      senderAddress: 'sender@example.test',
    },
  });
}

before(async () => {
  sink = await startSmtpSink();
  su = await superuserClient();
  tracker.collections = new CollectionTracker(su);
  originalSettings = await su.settings.getAll();
  await smtpOn();
});

after(async () => {
  // Restore the untouched defaults (a later file checks a fresh server's settings).
  await su.settings.update({
    smtp: { ...originalSettings.smtp, password: '' },
    meta: originalSettings.meta,
  });
  for (const [collection, id] of tracker.users.reverse()) {
    await su.collection(collection).delete(id).catch(() => {});
  }
  await tracker.collections.cleanup();
  sink.server.close();
});

// ---------------------------------------------------------------------------------
// Verification.

test('requestVerification mails a link built from appURL (not the Host header) and confirmVerification verifies', async () => {
  const { email, id } = await createUser('users', 'verify');
  const status = await postWithForeignHost('/api/collections/users/request-verification', { email });
  assert.equal(status, 204);
  const mail = await nextMailTo(email);
  assert.equal(header(mail, 'Subject'), `Verify your ${APP_NAME} email`);
  assert.match(header(mail, 'From'), /sender@example\.test/);
  assert.ok(!mail.text.includes('evil.example'), 'no link from the request Host');
  const token = linkToken(mail, '/_/#/auth/confirm-verification/');
  const claims = getTokenPayload(token);
  assert.equal(claims.type, 'verification');
  assert.equal(claims.email, email);
  assert.equal(claims.id, id);
  assert.equal(claims.collectionId, '_pb_users_auth_');
  assert.ok(!('refreshable' in claims));
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 86400) < 10, 'valid for one day');

  assert.equal(await newClient().collection('users').confirmVerification(token), true);
  assert.equal((await su.collection('users').getOne(id)).verified, true);
  // Confirming again is fine; a verified record gets no new mail.
  assert.equal(await newClient().collection('users').confirmVerification(token), true);
  const seen = mailsTo(email);
  await newClient().collection('users').requestVerification(email);
  await sleep(500);
  assert.equal(mailsTo(email), seen);
});

test('request-verification answers 204 for unknown emails and repeats within 2 minutes send nothing', async () => {
  const unknown = `nobody_${randomSuffix(10)}@example.com`;
  const res = await rawRequest('POST', '/api/collections/users/request-verification', {
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: unknown }),
  });
  assert.equal(res.status, 204);
  assert.equal(res.text, '');

  const { email } = await createUser('users', 'repeat');
  await newClient().collection('users').requestVerification(email);
  await nextMailTo(email);
  await sleep(300);
  await newClient().collection('users').requestVerification(email);
  await newClient().collection('users').requestVerification(email);
  await sleep(600);
  assert.equal(mailsTo(email), 1, 'one verification mail');
  assert.equal(mailsTo(unknown), 0);
});

test('request-verification and request-password-reset validate the email', async () => {
  for (const action of ['requestVerification', 'requestPasswordReset']) {
    let err = await expectError(newClient().collection('users')[action](''), 400);
    assert.equal(err.response.message, 'An error occurred while validating the submitted data.');
    assertFieldError(err, 'email', 'validation_required');
    err = await expectError(newClient().collection('users')[action]('not-an-email'), 400);
    assertFieldError(err, 'email', 'validation_is_email');
    // 256 characters is one over the limit; 255 is accepted.
    err = await expectError(newClient().collection('users')[action](`${'a'.repeat(251)}@x.io`), 400);
    assertFieldError(err, 'email', 'validation_length_out_of_range');
    assert.deepEqual(err.response.data.email.params, { min: 1, max: 255 });
    assert.equal(await newClient().collection('users')[action](`${'a'.repeat(250)}@x.io`), true);
  }
});

test('_superusers: verification is refused, superusers are verified by default', async () => {
  let err = await expectError(
    newClient().collection('_superusers').requestVerification('anyone@example.com'),
    400,
  );
  assert.equal(err.response.message, 'All superusers are verified by default.');
  err = await expectError(newClient().collection('_superusers').confirmVerification('x'), 400);
  assert.equal(err.response.message, 'All superusers are verified by default.');
});

test('unknown and non-auth collections answer 404 on the email flows', async () => {
  const base = await tracker.collections.create({ name: uniqueName('flows_base'), type: 'base' });
  for (const action of ['request-verification', 'confirm-password-reset', 'confirm-email-change']) {
    let res = await rawRequest('POST', `/api/collections/nope_${randomSuffix()}/${action}`, {});
    assert.equal(res.status, 404);
    assert.equal(res.body.message, 'Missing or invalid collection context.');
    res = await rawRequest('POST', `/api/collections/${base.name}/${action}`, {});
    assert.equal(res.status, 404);
    assert.equal(res.body.message, 'Missing or invalid auth collection context.');
  }
});

// ---------------------------------------------------------------------------------
// Token confusion.

test('token types are never interchangeable', async () => {
  const { email, id } = await createUser('users', 'confuse');
  const user = await loginAs('users', email);
  const verification = await requestVerificationToken(email);
  const reset = await requestResetToken('users', email);

  // A verification token is no auth token: the request is a guest's.
  let res = await rawRequest('POST', '/api/collections/users/auth-refresh', { token: verification });
  assert.equal(res.status, 401);
  res = await rawRequest('GET', `/api/collections/users/records/${id}`, { token: verification });
  assert.equal(res.status, 404);
  res = await rawRequest('GET', `/api/collections/users/records/${id}`, { token: user.authStore.token });
  assert.equal(res.status, 200);

  let err = await expectError(newClient().collection('users').confirmVerification(reset), 400);
  assertFieldError(err, 'token', 'validation_invalid_token');
  err = await expectError(newClient().collection('users').confirmVerification(user.authStore.token), 400);
  assertFieldError(err, 'token', 'validation_invalid_token_claims');
  err = await expectError(
    newClient().collection('users').confirmPasswordReset(verification, 'new-password-1', 'new-password-1'),
    400,
  );
  assertFieldError(err, 'token', 'validation_invalid_token');
  err = await expectError(newClient().collection('users').confirmEmailChange(reset, PASSWORD), 400);
  assertFieldError(err, 'token', 'validation_invalid_token_payload');

  assert.equal((await su.collection('users').getOne(id)).verified, false);
  res = await rawRequest('POST', '/api/collections/users/auth-refresh', { token: user.authStore.token });
  assert.equal(res.status, 200, 'nothing above touched the user');
});

test('tokens of another auth collection are rejected', async () => {
  const other = await tracker.collections.create({
    name: uniqueName('flows_members'),
    type: 'auth',
    createRule: '',
  });
  const { email } = await createUser(other.name, 'member');
  const seen = mailsTo(email);
  await newClient().collection(other.name).requestVerification(email);
  const verification = linkToken(await nextMailTo(email, seen), '/_/#/auth/confirm-verification/');
  let err = await expectError(newClient().collection('users').confirmVerification(verification), 400);
  assertFieldError(err, 'token', 'validation_token_collection_mismatch');

  const reset = await requestResetToken(other.name, email);
  err = await expectError(
    newClient().collection('users').confirmPasswordReset(reset, 'new-password-1', 'new-password-1'),
    400,
  );
  assertFieldError(err, 'token', 'validation_token_collection_mismatch');

  const member = await loginAs(other.name, email);
  err = await expectError(member.collection('users').requestEmailChange('x@example.com'), 403);
  assert.equal(err.response.message, `The request requires auth record from ${other.name} collection.`);
  // In its own collection the token works.
  assert.equal(await newClient().collection(other.name).confirmVerification(verification), true);
});

// ---------------------------------------------------------------------------------
// Password reset.

test('confirmPasswordReset validates, sets the password, verifies, and kills older tokens', async () => {
  const { email, id } = await createUser('users', 'reset');
  const user = await loginAs('users', email);
  const token = await requestResetToken('users', email);
  const claims = getTokenPayload(token);
  assert.equal(claims.type, 'passwordReset');
  assert.equal(claims.email, email);
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 1800) < 10, 'valid for 30 minutes');
  const users = newClient().collection('users');

  let err = await expectError(users.confirmPasswordReset('', '', ''), 400);
  for (const key of ['token', 'password', 'passwordConfirm']) assertFieldError(err, key, 'validation_required');
  err = await expectError(users.confirmPasswordReset(token, '1234567', '1234567'), 400);
  assertFieldError(err, 'password', 'validation_length_out_of_range');
  assert.deepEqual(err.response.data.password.params, { min: 8, max: 255 });
  err = await expectError(users.confirmPasswordReset(token, '12345678', '12345679'), 400);
  assertFieldError(err, 'passwordConfirm', 'validation_values_mismatch');
  const long = 'p'.repeat(72);
  err = await expectError(users.confirmPasswordReset(token, long, long), 400);
  assert.equal(err.response.message, 'Failed to set new password.');
  assertFieldError(err, 'password', 'validation_max_text_constraint');

  const newPassword = 'n'.repeat(71);
  assert.equal(await users.confirmPasswordReset(token, newPassword, newPassword), true);
  let res = await rawRequest('POST', '/api/collections/users/auth-refresh', { token: user.authStore.token });
  assert.equal(res.status, 401, 'the old auth token is dead');
  await loginAs('users', email, newPassword);
  await expectError(newClient().collection('users').authWithPassword(email, PASSWORD), 400);
  assert.equal((await su.collection('users').getOne(id)).verified, true);
  err = await expectError(users.confirmPasswordReset(token, 'another-pass-1', 'another-pass-1'), 400);
  assertFieldError(err, 'token', 'validation_invalid_token');
});

test('request-password-reset answers 204 for unknown emails and 400 when password auth is off', async () => {
  assert.equal(
    await newClient().collection('users').requestPasswordReset(`nobody_${randomSuffix()}@example.com`),
    true,
  );
  const name = uniqueName('flows_nopw');
  await tracker.collections.create({ name, type: 'auth', passwordAuth: { enabled: false } });
  for (const email of ['someone@example.com', `nobody_${randomSuffix()}@example.com`]) {
    const err = await expectError(newClient().collection(name).requestPasswordReset(email), 400);
    assert.equal(err.response.message, 'The collection is not configured to allow password authentication.');
  }
});

// ---------------------------------------------------------------------------------
// Email change.

test('email change: auth required, validated, mailed to the new address, confirmed with the password', async () => {
  const { email, id } = await createUser('users', 'change');
  const taken = await createUser('users', 'taken');
  const user = await loginAs('users', email);
  const users = user.collection('users');

  let err = await expectError(newClient().collection('users').requestEmailChange('x@example.com'), 401);
  assert.equal(err.response.message, 'The request requires valid record authorization token.');
  err = await expectError(su.collection('users').requestEmailChange('x@example.com'), 403);
  err = await expectError(su.collection('_superusers').requestEmailChange('x@example.com'), 400);
  assert.equal(err.response.message, 'All superusers can change their emails directly.');
  err = await expectError(users.requestEmailChange(''), 400);
  assertFieldError(err, 'newEmail', 'validation_required');
  err = await expectError(users.requestEmailChange('nope'), 400);
  assertFieldError(err, 'newEmail', 'validation_is_email');
  err = await expectError(users.requestEmailChange(email), 400);
  assertFieldError(err, 'newEmail', 'validation_not_in_invalid');
  err = await expectError(users.requestEmailChange(taken.email), 400);
  assertFieldError(err, 'newEmail', 'validation_invalid_new_email');
  err = await expectError(users.requestEmailChange(`${'a'.repeat(251)}@x.io`), 400);
  assertFieldError(err, 'newEmail', 'validation_length_out_of_range');

  const newEmail = `changed_${randomSuffix(10)}@example.com`;
  assert.equal(await users.requestEmailChange(newEmail), true);
  const mail = await nextMailTo(newEmail);
  assert.equal(mailsTo(email), 0, 'nothing goes to the old address');
  const token = linkToken(mail, '/_/#/auth/confirm-email-change/');
  const claims = getTokenPayload(token);
  assert.equal(claims.type, 'emailChange');
  assert.equal(claims.email, email);
  assert.equal(claims.newEmail, newEmail);

  err = await expectError(newClient().collection('users').confirmEmailChange(token, 'wrong-password'), 400);
  assertFieldError(err, 'password', 'validation_invalid_password');
  err = await expectError(newClient().collection('users').confirmEmailChange('', ''), 400);
  assertFieldError(err, 'token', 'validation_required');
  assertFieldError(err, 'password', 'validation_required');

  const oldToken = user.authStore.token;
  assert.equal(await newClient().collection('users').confirmEmailChange(token, PASSWORD), true);
  const record = await su.collection('users').getOne(id);
  assert.equal(record.email, newEmail);
  assert.equal(record.verified, true);
  const res = await rawRequest('POST', '/api/collections/users/auth-refresh', { token: oldToken });
  assert.equal(res.status, 401, 'the old auth token is dead');
  await loginAs('users', newEmail);
});

test('with SMTP disabled: request-verification still answers 204, request-email-change fails', async () => {
  const { email } = await createUser('users', 'nosmtp');
  const user = await loginAs('users', email);
  await su.settings.update({ smtp: { enabled: false } });
  try {
    assert.equal(await newClient().collection('users').requestVerification(email), true);
    assert.equal(await newClient().collection('users').requestPasswordReset(email), true);
    const err = await expectError(user.collection('users').requestEmailChange(`n_${randomSuffix()}@example.com`), 400);
    assert.equal(err.response.message, 'Failed to request email change.');
    await sleep(300);
    assert.equal(mailsTo(email), 0);
  } finally {
    await smtpOn();
  }
});

// ---------------------------------------------------------------------------------
// Impersonation.

test('impersonate: superusers only, non-refreshable token, exp = now + duration', async () => {
  const { email, id } = await createUser('users', 'imp');
  const user = await loginAs('users', email);
  let res = await rawRequest('POST', `/api/collections/users/impersonate/${id}`, {});
  assert.equal(res.status, 401);
  res = await rawRequest('POST', `/api/collections/users/impersonate/${id}`, { token: user.authStore.token });
  assert.equal(res.status, 403);
  assert.equal(res.body.message, 'The authorized record is not allowed to perform this action.');

  const impersonated = await su.collection('users').impersonate(id, 100);
  const token = impersonated.authStore.token;
  const claims = getTokenPayload(token);
  assert.equal(claims.type, 'auth');
  assert.equal(claims.refreshable, false);
  assert.equal(claims.id, id);
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 100) < 5);
  assert.equal(impersonated.authStore.record.email, email, 'the auth record shows its email');
  // The token works, and auth-refresh hands the same one back.
  const refreshed = await impersonated.collection('users').authRefresh();
  assert.equal(refreshed.token, token);

  const def = getTokenPayload((await su.collection('users').impersonate(id, 0)).authStore.token);
  assert.ok(Math.abs(def.exp - Date.now() / 1000 - 432000) < 5, '0 = the collection default');

  res = await rawRequest('POST', `/api/collections/users/impersonate/${id}`, {
    token: su.authStore.token,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ duration: -1 }),
  });
  assert.equal(res.status, 400);
  assert.equal(res.body.data.duration.code, 'validation_min_greater_equal_than_required');
  res = await rawRequest('POST', `/api/collections/users/impersonate/${id}`, {
    token: su.authStore.token,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ duration: 1.5 }),
  });
  assert.equal(res.status, 400);
  assert.equal(res.body.message, 'An error occurred while loading the submitted data.');
  res = await rawRequest('POST', '/api/collections/users/impersonate/missing', { token: su.authStore.token });
  assert.equal(res.status, 404);
  res = await rawRequest('POST', `/api/collections/nope_${randomSuffix()}/impersonate/${id}`, {
    token: su.authStore.token,
  });
  assert.equal(res.status, 404);
  assert.equal(res.body.message, 'Missing or invalid auth collection context.');
});

// ---------------------------------------------------------------------------------
// The manage rule.

test('manageRule: a manager changes email, password and verified without oldPassword', async () => {
  const name = uniqueName('flows_managed');
  await tracker.collections.create({
    name,
    type: 'auth',
    createRule: '',
    viewRule: "@request.auth.id != ''",
    updateRule: "@request.auth.id != ''",
    manageRule: "@request.auth.role = 'admin'",
    fields: [{ name: 'role', type: 'text' }],
  });
  const adminEmail = `admin_${randomSuffix(10)}@example.com`;
  await newClient()
    .collection(name)
    .create({ email: adminEmail, password: PASSWORD, passwordConfirm: PASSWORD, role: 'admin' });
  const victim = await createUser(name, 'victim');
  const plain = await createUser(name, 'plain');
  const admin = await loginAs(name, adminEmail);
  const other = await loginAs(name, plain.email);
  const victimClient = await loginAs(name, victim.email);

  let err = await expectError(other.collection(name).update(victim.id, { email: 'moved@example.com' }), 400);
  assert.ok(err.response.data.email);
  err = await expectError(
    other.collection(name).update(victim.id, { password: 'changed-pass-1', passwordConfirm: 'changed-pass-1' }),
    400,
  );
  assertFieldError(err, 'oldPassword', 'validation_required');
  err = await expectError(other.collection(name).update(victim.id, { verified: true }), 400);
  assert.ok(err.response.data.verified);

  const moved = `moved_${randomSuffix(10)}@example.com`;
  await admin.collection(name).update(victim.id, { email: moved });
  await admin.collection(name).update(victim.id, { password: 'changed-pass-1', passwordConfirm: 'changed-pass-1' });
  err = await expectError(
    admin.collection(name).update(victim.id, { password: 'changed-pass-1', passwordConfirm: 'other-pass-1' }),
    400,
  );
  assertFieldError(err, 'passwordConfirm', 'validation_values_mismatch');
  await admin.collection(name).update(victim.id, { verified: true });
  const record = await su.collection(name).getOne(victim.id);
  assert.equal(record.email, moved);
  assert.equal(record.verified, true);
  const res = await rawRequest('POST', `/api/collections/${name}/auth-refresh`, {
    token: victimClient.authStore.token,
  });
  assert.equal(res.status, 401, "the victim's old token died with the change");
  await loginAs(name, moved, 'changed-pass-1');
});

test('manageRule: a manager sees the hidden emails of the records it manages, in lists, views and expand', async () => {
  const name = uniqueName('flows_mgrview');
  const created = await tracker.collections.create({
    name,
    type: 'auth',
    createRule: '',
    listRule: "@request.auth.id != ''",
    viewRule: "@request.auth.id != ''",
    updateRule: "@request.auth.id != ''",
    manageRule: "@request.auth.role = 'admin'",
    fields: [{ name: 'role', type: 'text' }],
  });
  const notes = uniqueName('flows_mgrnotes');
  await tracker.collections.create({
    name: notes,
    listRule: '',
    viewRule: '',
    fields: [{ name: 'owner', type: 'relation', collectionId: created.id, maxSelect: 1 }],
  });
  const adminEmail = `admin_${randomSuffix(10)}@example.com`;
  await newClient()
    .collection(name)
    .create({ email: adminEmail, password: PASSWORD, passwordConfirm: PASSWORD, role: 'admin' });
  const victim = await createUser(name, 'victim');
  const plain = await createUser(name, 'plain');
  const note = await su.collection(notes).create({ owner: victim.id });
  const admin = await loginAs(name, adminEmail);
  const other = await loginAs(name, plain.email);

  const emailOf = (items) => items.find((r) => r.id === victim.id)?.email;
  assert.equal(emailOf(await admin.collection(name).getFullList()), victim.email);
  assert.equal(emailOf(await other.collection(name).getFullList()), undefined);
  assert.equal((await admin.collection(name).getOne(victim.id)).email, victim.email);
  assert.equal((await other.collection(name).getOne(victim.id)).email, undefined);
  const expanded = async (client) =>
    (await client.collection(notes).getOne(note.id, { expand: 'owner' })).expand.owner.email;
  assert.equal(await expanded(admin), victim.email);
  assert.equal(await expanded(other), undefined);
  const updated = await admin.collection(name).update(victim.id, { role: 'member' });
  assert.equal(updated.email, victim.email, "the manager's update answer shows it too");
});

test('manageRule: @request.body in the manage rule sees the submitted keys', async () => {
  const name = uniqueName('flows_mgrbody');
  await tracker.collections.create({
    name,
    type: 'auth',
    createRule: '',
    updateRule: "@request.auth.id != ''",
    manageRule: "@request.auth.id != '' && @request.body.reason = 'support'",
  });
  const victim = await createUser(name, 'victim');
  const helper = await createUser(name, 'helper');
  const client = await loginAs(name, helper.email);
  let err = await expectError(client.collection(name).update(victim.id, { verified: true }), 400);
  assertFieldError(err, 'verified', 'validation_values_mismatch');
  assert.equal(err.response.data.verified.message, "Values don't match.");
  err = await expectError(
    client.collection(name).update(victim.id, {
      password: 'changed-pass-1',
      passwordConfirm: 'changed-pass-1',
      reason: 'other',
    }),
    400,
  );
  assertFieldError(err, 'oldPassword', 'validation_required');
  await client.collection(name).update(victim.id, { verified: true, reason: 'support' });
  await client
    .collection(name)
    .update(victim.id, { password: 'changed-pass-1', passwordConfirm: 'changed-pass-1', reason: 'support' });
  assert.equal((await su.collection(name).getOne(victim.id)).verified, true);
  await loginAs(name, victim.email, 'changed-pass-1');
});

// ---------------------------------------------------------------------------------
// The test email.

test('settings testEmail sends the chosen template; superusers only', async () => {
  const to = `probe_${randomSuffix(10)}@example.com`;
  assert.equal(await su.settings.testEmail('users', to, 'verification'), true);
  const mail = await nextMailTo(to);
  assert.equal(header(mail, 'Subject'), `Verify your ${APP_NAME} email`);
  linkToken(mail, '/_/#/auth/confirm-verification/');
  assert.equal(await su.settings.testEmail('users', to, 'password-reset'), true);
  linkToken(await nextMailTo(to, 1), '/_/#/auth/confirm-password-reset/');
  assert.equal(await su.settings.testEmail('users', to, 'email-change'), true);
  linkToken(await nextMailTo(to, 2), '/_/#/auth/confirm-email-change/');

  let err = await expectError(su.settings.testEmail('users', to, 'bogus'), 400);
  assert.equal(err.response.message, 'Failed to send the test email.');
  assertFieldError(err, 'template', 'validation_in_invalid');
  err = await expectError(su.settings.testEmail(`nope_${randomSuffix()}`, to, 'verification'), 400);
  assertFieldError(err, 'collection', 'validation_invalid_auth_collection');
  err = await expectError(su.settings.testEmail('users', 'not-an-email', 'verification'), 400);
  assertFieldError(err, 'email', 'validation_is_email');

  await expectError(newClient().settings.testEmail('users', to, 'verification'), 401);
  const { email } = await createUser('users', 'nottest');
  const user = await loginAs('users', email);
  await expectError(user.settings.testEmail('users', to, 'verification'), 403);
});
