// Shared helpers for the conformance suite. Not a test file: node's test
// runner only picks up files named *.test.js in this directory.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import PocketBase, { ClientResponseError } from 'pocketbase';

export { ClientResponseError };

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set. Run the suite through ./run.sh, or export BASALT_URL, ` +
        'SUPERUSER_EMAIL and SUPERUSER_PASSWORD yourself.',
    );
  }
  return value;
}

export const BASE_URL = requiredEnv('BASALT_URL').replace(/\/+$/, '');
export const SUPERUSER_EMAIL = requiredEnv('SUPERUSER_EMAIL');
export const SUPERUSER_PASSWORD = requiredEnv('SUPERUSER_PASSWORD');

/** The id PocketBase (and the JS SDK) hard-code for `_superusers`. */
export const SUPERUSERS_COLLECTION_ID = 'pbc_3142635823';
/** The literal id of the default `users` auth collection. */
export const USERS_COLLECTION_ID = '_pb_users_auth_';

/** `YYYY-MM-DD HH:MM:SS.mmmZ`, the only datetime format PocketBase emits. */
export const DATETIME_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Default generated record ids: 15 chars of [a-z0-9]. */
export const RECORD_ID_RE = /^[a-z0-9]{15}$/;

/** A fresh SDK client (guest) with auto-cancellation off so parallel calls are safe. */
export function newClient() {
  const pb = new PocketBase(BASE_URL);
  pb.autoCancellation(false);
  return pb;
}

/** A client authenticated as the superuser created by run.sh. */
export async function superuserClient() {
  const pb = newClient();
  await pb.collection('_superusers').authWithPassword(SUPERUSER_EMAIL, SUPERUSER_PASSWORD);
  return pb;
}

/** Lower-case alphanumeric random string. */
export function randomSuffix(length = 8) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.randomBytes(length);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

/** A collection name unique to this run: `<prefix>_<random>`. */
export function uniqueName(prefix) {
  return `${prefix}_${randomSuffix()}`;
}

/** A valid 15-char record id of our own choosing. */
export function customRecordId() {
  return randomSuffix(15);
}

/**
 * Assert that `body` is PocketBase's error envelope: exactly the keys
 * `data`, `message`, `status`, with `data` an object (never null).
 */
export function assertErrorEnvelope(body, status) {
  assert.ok(body && typeof body === 'object', 'error body must be a JSON object');
  assert.deepEqual(Object.keys(body).sort(), ['data', 'message', 'status']);
  assert.equal(body.status, status);
  assert.equal(typeof body.message, 'string');
  assert.ok(body.message.length > 0, 'message must not be empty');
  assert.ok(body.data !== null && typeof body.data === 'object' && !Array.isArray(body.data),
    'data must be an object');
}

/**
 * Await `promise`, require it to reject with a ClientResponseError carrying
 * HTTP `status` and a well-formed error envelope; return the error.
 */
export async function expectError(promise, status) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    assert.ok(err instanceof ClientResponseError, `expected ClientResponseError, got ${err}`);
    assert.equal(err.status, status,
      `expected HTTP ${status}, got ${err.status}: ${JSON.stringify(err.response)}`);
    assertErrorEnvelope(err.response, status);
    return err;
  }
  assert.fail(`expected HTTP ${status} error, request succeeded with ${JSON.stringify(result)}`);
}

/** Assert that `err.response.data[key].code === code` and the entry has a message. */
export function assertFieldError(err, key, code) {
  const entry = err.response.data[key];
  assert.ok(entry, `expected data.${key}, got data = ${JSON.stringify(err.response.data)}`);
  assert.equal(entry.code, code, `data.${key}.code`);
  assert.equal(typeof entry.message, 'string');
  assert.ok(entry.message.length > 0);
}

/** Raw HTTP helper returning {status, headers, body(parsed JSON or null), text}. */
export async function rawRequest(method, path, { token, headers = {}, body } = {}) {
  const h = { ...headers };
  if (token) h.Authorization = token;
  const res = await fetch(BASE_URL + path, { method, headers: h, body });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, body: json, text };
}

/**
 * Tracks collections created by a test file and deletes them afterwards
 * (in reverse creation order, so relations are dropped before their targets).
 */
export class CollectionTracker {
  constructor(pb) {
    this.pb = pb;
    this.names = [];
  }

  async create(data) {
    const collection = await this.pb.collections.create(data);
    this.names.push(collection.name);
    return collection;
  }

  /** Remember a collection created elsewhere (e.g. in a test that expects success). */
  track(name) {
    this.names.push(name);
  }

  forget(name) {
    this.names = this.names.filter((n) => n !== name);
  }

  async cleanup() {
    const errors = [];
    for (const name of [...this.names].reverse()) {
      try {
        await this.pb.collections.delete(name);
      } catch (err) {
        if (err?.status !== 404) errors.push(`${name}: ${err?.message ?? err}`);
      }
    }
    this.names = [];
    if (errors.length) throw new Error(`collection cleanup failed: ${errors.join('; ')}`);
  }
}

/**
 * Create a regular user in the default `users` auth collection through the SDK
 * as a guest (the default createRule is ""), then log in with authWithPassword.
 * Returns {client, record, email, password}.
 */
export async function createUserAndLogin(tag = 'user') {
  const email = `${tag}_${randomSuffix(10)}@example.com`;
  const password = `pw-${randomSuffix(12)}`;
  const guest = newClient();
  const record = await guest.collection('users').create({
    email,
    password,
    passwordConfirm: password,
  });
  const client = newClient();
  await client.collection('users').authWithPassword(email, password);
  return { client, record, email, password };
}
