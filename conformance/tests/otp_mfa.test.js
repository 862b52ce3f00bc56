// One-time passwords (request-otp / auth-with-otp) and multi-factor auth (401 {mfaId},
// then a different second method), through the SDK. The codes arrive by mail at the
// SMTP receiver on loopback started by this file; the server's SMTP settings point at it
// while the file runs and are restored afterwards, like the `users` collection's
// otp/mfa options.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { getTokenPayload } from 'pocketbase';
import {
  CollectionTracker,
  ClientResponseError,
  RECORD_ID_RE,
  USERS_COLLECTION_ID,
  assertFieldError,
  expectError,
  newClient,
  randomSuffix,
  rawRequest,
  superuserClient,
  uniqueName,
} from './helpers.js';
import { mailsTo, nextMailTo, startSmtpSink } from './smtp.js';

const PASSWORD = 'first-password-1';
const OTP_OPTIONS = { enabled: true, length: 8, duration: 180 };
const MFA_OPTIONS = { enabled: true, duration: 600 };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let sink;
let su;
let collections;
let originalSettings;
let originalUsers;
const createdUsers = [];

before(async () => {
  sink = await startSmtpSink();
  su = await superuserClient();
  collections = new CollectionTracker(su);
  originalSettings = await su.settings.getAll();
  await su.settings.update({
    smtp: { enabled: true, host: '127.0.0.1', port: sink.port, tls: false },
    meta: { appName: 'OTP App', senderName: 'OTP Sender', senderAddress: 'sender@example.test' },
  });
  originalUsers = await su.collections.getOne('users');
});

after(async () => {
  await su.collections.update('users', { otp: originalUsers.otp, mfa: originalUsers.mfa });
  await su.settings.update({
    smtp: { ...originalSettings.smtp, password: '' },
    meta: originalSettings.meta,
  });
  for (const [collection, id] of createdUsers.reverse()) {
    await su.collection(collection).delete(id).catch(() => {});
  }
  await collections.cleanup();
  sink.server.close();
});

async function createUser(collection, tag, extra = {}) {
  const email = `${tag}_${randomSuffix(10)}@example.com`;
  const record = await newClient()
    .collection(collection)
    .create({ email, password: PASSWORD, passwordConfirm: PASSWORD, ...extra });
  createdUsers.push([collection, record.id]);
  return { email, id: record.id };
}

/**
 * The code in an OTP mail: the standalone 8-digit number of its body (the text and
 * HTML parts both carry it; every occurrence must be the same code).
 */
function otpCode(mail) {
  const body = mail.text.slice(mail.text.indexOf('\n\n'));
  const found = [...body.matchAll(/(?<![0-9A-Za-z])[0-9]{8}(?![0-9A-Za-z])/g)].map((m) => m[0]);
  assert.ok(found.length > 0, `no 8-digit code in:\n${mail.text}`);
  assert.equal(new Set(found).size, 1, `several different codes in:\n${mail.text}`);
  return found[0];
}

/** requestOTP as a guest; returns {otpId, code} with the code taken from the mail. */
async function requestCode(collection, email) {
  const seen = mailsTo(sink, email);
  const { otpId } = await newClient().collection(collection).requestOTP(email);
  const code = otpCode(await nextMailTo(sink, email, seen));
  return { otpId, code };
}

/** Auth-with-password that must stop at the first factor; returns the mfaId. */
async function firstFactorByPassword(collection, email, password = PASSWORD) {
  const err = await expectMfaRequired(newClient().collection(collection).authWithPassword(email, password));
  return err.response.mfaId;
}

/** The MFA step: 401 whose body is exactly `{mfaId}` (not the usual error envelope). */
async function expectMfaRequired(promise) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    assert.ok(err instanceof ClientResponseError, `expected ClientResponseError, got ${err}`);
    assert.equal(err.status, 401, `expected 401, got ${err.status}: ${JSON.stringify(err.response)}`);
    assert.deepEqual(Object.keys(err.response), ['mfaId']);
    assert.match(err.response.mfaId, RECORD_ID_RE);
    return err;
  }
  assert.fail(`expected 401 with mfaId, request succeeded with ${JSON.stringify(result)}`);
}

function assertAuthResponse(auth, collectionName, id, email) {
  assert.equal(typeof auth.token, 'string');
  const claims = getTokenPayload(auth.token);
  assert.equal(claims.type, 'auth');
  assert.equal(claims.id, id);
  assert.equal(claims.refreshable, true);
  assert.equal(auth.record.id, id);
  assert.equal(auth.record.email, email, 'the auth record shows its own email');
  assert.equal(auth.record.collectionName, collectionName);
}

// ---------------------------------------------------------------------------------
// OTP on the default `users` collection.

test('auth-methods reports otp disabled with duration 0 until it is enabled', async () => {
  await su.collections.update('users', { otp: { enabled: false }, mfa: { enabled: false } });
  let methods = await newClient().collection('users').listAuthMethods();
  assert.deepEqual(methods.otp, { enabled: false, duration: 0 });
  assert.deepEqual(methods.mfa, { enabled: false, duration: 0 });

  const updated = await su.collections.update('users', { otp: OTP_OPTIONS });
  assert.equal(updated.otp.enabled, true);
  assert.equal(updated.otp.length, 8);
  assert.equal(updated.otp.duration, 180);
  methods = await newClient().collection('users').listAuthMethods();
  assert.deepEqual(methods.otp, { enabled: true, duration: 180 });
  assert.deepEqual(methods.mfa, { enabled: false, duration: 0 });
  assert.equal(methods.password.enabled, true);
});

test('requestOTP answers {otpId} and mails an 8-digit code; authWithOTP logs in', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  const { email, id } = await createUser('users', 'otp');
  const seen = mailsTo(sink, email);
  const res = await newClient().collection('users').requestOTP(email);
  assert.deepEqual(Object.keys(res), ['otpId']);
  assert.match(res.otpId, RECORD_ID_RE);
  const code = otpCode(await nextMailTo(sink, email, seen));

  const pb = newClient();
  const auth = await pb.collection('users').authWithOTP(res.otpId, code);
  assertAuthResponse(auth, 'users', id, email);
  assert.equal(auth.record.collectionId, USERS_COLLECTION_ID);
  assert.equal(pb.authStore.isValid, true);
  assert.equal(pb.authStore.record.id, id);
  // The token is a normal auth token.
  const refreshed = await pb.collection('users').authRefresh();
  assert.equal(refreshed.record.id, id);
});

test("the OTP mail uses PocketBase's default template: subject and sentence", async () => {
  const updated = await su.collections.update('users', { otp: OTP_OPTIONS });
  assert.equal(updated.otp.emailTemplate.subject, 'OTP for {APP_NAME}');
  assert.match(updated.otp.emailTemplate.body, /Your one-time password is: <strong>\{OTP\}<\/strong>/);
  const { email } = await createUser('users', 'otpmail');
  const seen = mailsTo(sink, email);
  await newClient().collection('users').requestOTP(email);
  const mail = await nextMailTo(sink, email, seen);
  assert.match(mail.text, /^Subject: OTP for OTP App$/m);
  assert.match(mail.text, /^From: "?OTP Sender"? <sender@example\.test>$/m);
  assert.match(mail.text, /Your one-time password is: <strong>[0-9]{8}<\/strong>/);
});

test('a new auth collection gets the default OTP template, also when created with otp options', async () => {
  const plain = await collections.create({ name: uniqueName('otp_tpl'), type: 'auth' });
  assert.equal(plain.otp.emailTemplate.subject, 'OTP for {APP_NAME}');
  assert.equal(plain.otp.emailTemplate.body, originalUsers.otp.emailTemplate.body);
  const name = uniqueName('otp_tpl');
  const withOtp = await collections.create({ name, type: 'auth', createRule: '', otp: OTP_OPTIONS });
  assert.equal(withOtp.otp.emailTemplate.subject, 'OTP for {APP_NAME}');
  assert.equal(withOtp.otp.emailTemplate.body, originalUsers.otp.emailTemplate.body);
  const { email } = await createUser(name, 'tpl');
  const seen = mailsTo(sink, email);
  await newClient().collection(name).requestOTP(email);
  const mail = await nextMailTo(sink, email, seen);
  assert.match(mail.text, /^Subject: OTP for OTP App$/m);
  otpCode(mail);
});

test('an OTP is single use: the same code a second time fails with 400', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  const { email } = await createUser('users', 'otponce');
  const { otpId, code } = await requestCode('users', email);
  await newClient().collection('users').authWithOTP(otpId, code);
  const err = await expectError(newClient().collection('users').authWithOTP(otpId, code), 400);
  assert.equal(err.response.message, 'Invalid or expired OTP.');
  assert.deepEqual(err.response.data, {});
});

test('a wrong code fails with 400 and the right one still works afterwards', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  const { email, id } = await createUser('users', 'otpwrong');
  const { otpId, code } = await requestCode('users', email);
  const wrong = code === '00000000' ? '11111111' : '00000000';
  const err = await expectError(newClient().collection('users').authWithOTP(otpId, wrong), 400);
  assert.equal(err.response.message, 'Invalid or expired OTP.');
  assert.deepEqual(err.response.data, {});
  const auth = await newClient().collection('users').authWithOTP(otpId, code);
  assert.equal(auth.record.id, id);
});

test('the code of one OTP does not open another OTP', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  const a = await createUser('users', 'otpa');
  const b = await createUser('users', 'otpb');
  const first = await requestCode('users', a.email);
  const second = await requestCode('users', b.email);
  assert.notEqual(first.otpId, second.otpId);
  // (Two random 8-digit codes are equal once in 10^8 runs.)
  await expectError(newClient().collection('users').authWithOTP(first.otpId, second.code), 400);
  await expectError(newClient().collection('users').authWithOTP('', first.code), 400);
  await expectError(newClient().collection('users').authWithOTP(`x${randomSuffix(14)}`, first.code), 400);
  assert.equal((await newClient().collection('users').authWithOTP(first.otpId, first.code)).record.id, a.id);
  assert.equal((await newClient().collection('users').authWithOTP(second.otpId, second.code)).record.id, b.id);
});

test('requestOTP for an unknown email answers 200 with an otpId and sends no mail', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  const unknown = `nobody_${randomSuffix(10)}@example.com`;
  const res = await rawRequest('POST', '/api/collections/users/request-otp', {
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: unknown }),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(res.body), ['otpId']);
  assert.match(res.body.otpId, RECORD_ID_RE);
  const sdk = await newClient().collection('users').requestOTP(unknown);
  assert.match(sdk.otpId, RECORD_ID_RE);
  await sleep(500);
  assert.equal(mailsTo(sink, unknown), 0);
  // The fake id opens nothing.
  await expectError(newClient().collection('users').authWithOTP(sdk.otpId, '12345678'), 400);
});

test('request-otp and auth-with-otp validate their input', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  let err = await expectError(newClient().collection('users').requestOTP(''), 400);
  assertFieldError(err, 'email', 'validation_required');
  err = await expectError(newClient().collection('users').requestOTP('not-an-email'), 400);
  assertFieldError(err, 'email', 'validation_is_email');
  err = await expectError(newClient().collection('users').authWithOTP('', ''), 400);
  assertFieldError(err, 'otpId', 'validation_required');
  assertFieldError(err, 'password', 'validation_required');
});

test('with otp disabled, request-otp and auth-with-otp answer 403', async () => {
  const name = uniqueName('otp_off');
  await collections.create({ name, type: 'auth', createRule: '' });
  const { email } = await createUser(name, 'otpoff');
  let err = await expectError(newClient().collection(name).requestOTP(email), 403);
  assert.equal(err.response.message, 'The collection is not configured to allow OTP authentication.');
  err = await expectError(newClient().collection(name).authWithOTP(`x${randomSuffix(14)}`, '12345678'), 403);
  assert.equal(err.response.message, 'The collection is not configured to allow OTP authentication.');
  await sleep(300);
  assert.equal(mailsTo(sink, email), 0);
});

test('an OTP login verifies an unverified record and replaces its password; a verified one keeps it', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS });
  const fresh = await createUser('users', 'otpverify');
  assert.equal((await su.collection('users').getOne(fresh.id)).verified, false);
  let { otpId, code } = await requestCode('users', fresh.email);
  const auth = await newClient().collection('users').authWithOTP(otpId, code);
  assert.equal(auth.record.verified, true);
  assert.equal((await su.collection('users').getOne(fresh.id)).verified, true);
  await expectError(newClient().collection('users').authWithPassword(fresh.email, PASSWORD), 400);
  // The token of the OTP login itself stays valid.
  const res = await rawRequest('POST', '/api/collections/users/auth-refresh', { token: auth.token });
  assert.equal(res.status, 200);

  const verified = await createUser('users', 'otpkeep');
  await su.collection('users').update(verified.id, { verified: true });
  ({ otpId, code } = await requestCode('users', verified.email));
  await newClient().collection('users').authWithOTP(otpId, code);
  const again = await newClient().collection('users').authWithPassword(verified.email, PASSWORD);
  assert.equal(again.record.id, verified.id);
});

// ---------------------------------------------------------------------------------
// MFA.

test('auth-methods reports mfa enabled with its duration', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS, mfa: MFA_OPTIONS });
  try {
    const methods = await newClient().collection('users').listAuthMethods();
    assert.deepEqual(methods.mfa, { enabled: true, duration: 600 });
    assert.deepEqual(methods.otp, { enabled: true, duration: 180 });
  } finally {
    await su.collections.update('users', { mfa: { enabled: false } });
  }
});

test('MFA: password first gives 401 {mfaId}, then authWithOTP with the mfaId logs in', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS, mfa: MFA_OPTIONS });
  try {
    const { email, id } = await createUser('users', 'mfa');
    const mfaId = await firstFactorByPassword('users', email);
    const { otpId, code } = await requestCode('users', email);
    const pb = newClient();
    const auth = await pb.collection('users').authWithOTP(otpId, code, { mfaId });
    assertAuthResponse(auth, 'users', id, email);
    assert.equal(pb.authStore.isValid, true);
    const res = await rawRequest('POST', '/api/collections/users/auth-refresh', { token: auth.token });
    assert.equal(res.status, 200);
  } finally {
    await su.collections.update('users', { mfa: { enabled: false } });
  }
});

test('MFA: the same method twice fails with 400', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS, mfa: MFA_OPTIONS });
  try {
    const { email } = await createUser('users', 'mfasame');
    const mfaId = await firstFactorByPassword('users', email);
    const err = await expectError(
      newClient().collection('users').authWithPassword(email, PASSWORD, { mfaId }),
      400,
    );
    assert.equal(err.response.message, 'A different authentication method is required.');
    // The MFA session survives the refusal: the OTP still completes it.
    const { otpId, code } = await requestCode('users', email);
    await newClient().collection('users').authWithOTP(otpId, code, { mfaId });
  } finally {
    await su.collections.update('users', { mfa: { enabled: false } });
  }
});

test('MFA: OTP first, then the password with the mfaId; an OTP login keeps the password under MFA', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS, mfa: MFA_OPTIONS });
  try {
    const { email, id } = await createUser('users', 'mfaotp');
    const { otpId, code } = await requestCode('users', email);
    const err = await expectMfaRequired(newClient().collection('users').authWithOTP(otpId, code));
    const { mfaId } = err.response;
    const auth = await newClient().collection('users').authWithPassword(email, PASSWORD, { mfaId });
    assertAuthResponse(auth, 'users', id, email);
    assert.equal(auth.record.verified, true, 'the OTP to its email verified the record');
  } finally {
    await su.collections.update('users', { mfa: { enabled: false } });
  }
});

test('MFA: an unknown mfaId fails with 400, and a used one cannot be reused', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS, mfa: MFA_OPTIONS });
  try {
    const { email } = await createUser('users', 'mfabad');
    const { otpId, code } = await requestCode('users', email);
    let err = await expectError(
      newClient().collection('users').authWithPassword(email, PASSWORD, { mfaId: `x${randomSuffix(14)}` }),
      400,
    );
    assert.equal(err.response.message, 'Invalid or expired MFA session.');

    const mfaId = await firstFactorByPassword('users', email);
    await newClient().collection('users').authWithOTP(otpId, code, { mfaId });
    const next = await requestCode('users', email);
    err = await expectError(newClient().collection('users').authWithOTP(next.otpId, next.code, { mfaId }), 400);
    assert.equal(err.response.message, 'Invalid or expired MFA session.');
  } finally {
    await su.collections.update('users', { mfa: { enabled: false } });
  }
});

test('MFA: an mfaId of another record fails with 400', async () => {
  await su.collections.update('users', { otp: OTP_OPTIONS, mfa: MFA_OPTIONS });
  try {
    const a = await createUser('users', 'mfaa');
    const b = await createUser('users', 'mfab');
    const mfaIdA = await firstFactorByPassword('users', a.email);
    const { otpId, code } = await requestCode('users', b.email);
    await expectError(newClient().collection('users').authWithOTP(otpId, code, { mfaId: mfaIdA }), 400);
  } finally {
    await su.collections.update('users', { mfa: { enabled: false } });
  }
});

test('MFA rule: only records matching mfa.rule need a second factor', async () => {
  const name = uniqueName('mfa_rule');
  await collections.create({
    name,
    type: 'auth',
    createRule: '',
    fields: [{ name: 'role', type: 'text' }],
    otp: OTP_OPTIONS,
    mfa: { ...MFA_OPTIONS, rule: "role = 'admin'" },
  });
  const admin = await createUser(name, 'admin', { role: 'admin' });
  const plain = await createUser(name, 'plain', { role: 'member' });
  const auth = await newClient().collection(name).authWithPassword(plain.email, PASSWORD);
  assert.equal(auth.record.id, plain.id);
  const mfaId = await firstFactorByPassword(name, admin.email);
  const { otpId, code } = await requestCode(name, admin.email);
  assert.equal((await newClient().collection(name).authWithOTP(otpId, code, { mfaId })).record.id, admin.id);
});
