// Settings API and health check.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertFieldError,
  createUserAndLogin,
  expectError,
  newClient,
  rawRequest,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let su;
let user;
let originalAppName;

before(async () => {
  su = await superuserClient();
  originalAppName = (await su.settings.getAll()).meta.appName;
  user = await createUserAndLogin('settings');
});

after(async () => {
  // Always restore the app name, even if a test failed half-way.
  await su.settings.update({ meta: { appName: originalAppName } });
  await su.collection('users').delete(user.record.id).catch(() => {});
});

test('settings getAll returns every settings group', async () => {
  const s = await su.settings.getAll();
  assert.deepEqual(
    Object.keys(s).sort(),
    ['backups', 'batch', 'logs', 'meta', 'rateLimits', 's3', 'smtp', 'superuserIPs', 'trustedProxy'],
  );
  assert.deepEqual(
    Object.keys(s.meta).sort(),
    ['accentColor', 'appName', 'appURL', 'hideControls', 'senderAddress', 'senderName'],
  );
  assert.equal(typeof s.meta.appName, 'string');
  assert.deepEqual(Object.keys(s.batch).sort(), ['enabled', 'maxBodySize', 'maxRequests', 'timeout']);
  assert.deepEqual(Object.keys(s.rateLimits).sort(), ['enabled', 'excludedIPs', 'rules']);
  assert.ok(Array.isArray(s.rateLimits.rules));
  for (const rule of s.rateLimits.rules) {
    assert.deepEqual(Object.keys(rule).sort(), ['audience', 'duration', 'label', 'maxRequests']);
  }
  assert.deepEqual(Object.keys(s.trustedProxy).sort(), ['headers', 'useLeftmostIP']);
  assert.ok(Array.isArray(s.superuserIPs));
});

test('settings never return write-only secrets', async () => {
  const s = await su.settings.getAll();
  assert.ok(!('password' in s.smtp), 'smtp.password is write-only');
  assert.ok(!('secret' in s.s3), 's3.secret is write-only');
  assert.ok(!('secret' in s.backups.s3), 'backups.s3.secret is write-only');
});

test('a fresh server has the default batch, rate limit and logs settings', async () => {
  const s = await su.settings.getAll();
  assert.deepEqual(s.batch, { enabled: false, maxRequests: 50, timeout: 3, maxBodySize: 0 });
  assert.equal(s.rateLimits.enabled, false);
  assert.deepEqual(s.rateLimits.excludedIPs, []);
  assert.deepEqual(s.rateLimits.rules, [
    { label: '*:auth', audience: '', duration: 3, maxRequests: 2 },
    { label: '*:create', audience: '', duration: 5, maxRequests: 20 },
    { label: '/api/batch', audience: '', duration: 1, maxRequests: 3 },
    { label: '/api/', audience: '', duration: 10, maxRequests: 300 },
  ]);
  assert.equal(s.smtp.enabled, false);
  assert.equal(s.s3.enabled, false);
  assert.deepEqual(s.superuserIPs, []);
  assert.deepEqual(s.trustedProxy, { headers: [], useLeftmostIP: false });
  assert.equal(s.logs.maxDays, 5);
});

test('updating meta.appName round-trips and leaves the other meta fields alone', async () => {
  const before = await su.settings.getAll();
  const newName = `Conformance ${randomSuffix()}`;
  const returned = await su.settings.update({ meta: { appName: newName } });
  assert.equal(returned.meta.appName, newName, 'update returns the full new settings');
  assert.equal(returned.meta.appURL, before.meta.appURL);
  assert.equal(returned.meta.senderAddress, before.meta.senderAddress);
  assert.deepEqual(returned.batch, before.batch, 'other groups are untouched');
  const reloaded = await su.settings.getAll();
  assert.equal(reloaded.meta.appName, newName);

  const restored = await su.settings.update({ meta: { appName: originalAppName } });
  assert.equal(restored.meta.appName, originalAppName);
  assert.equal((await su.settings.getAll()).meta.appName, originalAppName);
});

test('updating settings with a blank appName fails with a nested field error', async () => {
  const err = await expectError(su.settings.update({ meta: { appName: '' } }), 400);
  assert.equal(err.response.message, 'An error occurred while saving the new settings.');
  assert.ok(err.response.data.meta, JSON.stringify(err.response.data));
  assertFieldError({ response: { data: err.response.data.meta } }, 'appName', 'validation_required');
  assert.equal((await su.settings.getAll()).meta.appName, originalAppName, 'nothing was saved');
});

test('settings require a superuser: 401 for guests, 403 for users', async () => {
  const guestErr = await expectError(newClient().settings.getAll(), 401);
  assert.equal(guestErr.response.message, 'The request requires valid record authorization token.');
  await expectError(newClient().settings.update({ meta: { appName: 'x' } }), 401);
  const userErr = await expectError(user.client.settings.getAll(), 403);
  assert.equal(userErr.response.message, 'The authorized record is not allowed to perform this action.');
});

test('health check for a guest is the plain healthy message', async () => {
  const health = await newClient().health.check();
  assert.deepEqual(health, { message: 'API is healthy.', code: 200, data: {} });
});

test('health check for a superuser adds diagnostic data', async () => {
  const health = await su.health.check();
  assert.equal(health.code, 200);
  assert.equal(health.message, 'API is healthy.');
  assert.equal(typeof health.data.canBackup, 'boolean');
  assert.equal(health.data.realIP, '127.0.0.1');
  assert.equal(typeof health.data.possibleProxyHeader, 'string');
});

test('health answers 200 JSON with the default security headers', async () => {
  const res = await rawRequest('GET', '/api/health');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(res.headers.get('x-frame-options'), 'SAMEORIGIN');
  assert.equal(res.headers.get('x-xss-protection'), '1; mode=block');
});
