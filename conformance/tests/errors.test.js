// Wire-level error shapes and body parsing, checked with raw fetch.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  SUPERUSER_EMAIL,
  SUPERUSER_PASSWORD,
  assertErrorEnvelope,
  rawRequest,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let su;
let token;
let tracker;
const name = `errs_${randomSuffix()}`;
let recordsPath;
let existingId;

const JSON_HEADERS = { 'Content-Type': 'application/json' };

before(async () => {
  su = await superuserClient();
  token = su.authStore.token;
  tracker = new CollectionTracker(su);
  await tracker.create({
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '',
    updateRule: '',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'views', type: 'number' },
      { name: 'active', type: 'bool' },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
    ],
  });
  recordsPath = `/api/collections/${name}/records`;
  existingId = (await su.collection(name).create({ title: 'existing' })).id;
});

after(async () => {
  await tracker.cleanup();
});

function assertJsonError(res, status) {
  assert.equal(res.status, status, res.text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assertErrorEnvelope(res.body, status);
}

test('a malformed JSON body on record create is a 400 envelope with empty data', async () => {
  const res = await rawRequest('POST', recordsPath, {
    token, headers: JSON_HEADERS, body: '{"title": "abc',
  });
  assertJsonError(res, 400);
  assert.deepEqual(res.body, {
    data: {}, message: 'Something went wrong while processing your request.', status: 400,
  });
});

test('a malformed JSON body on record update is a 400 envelope and changes nothing', async () => {
  const res = await rawRequest('PATCH', `${recordsPath}/${existingId}`, {
    token, headers: JSON_HEADERS, body: '{"title": ',
  });
  assertJsonError(res, 400);
  assert.deepEqual(res.body.data, {});
  assert.equal((await su.collection(name).getOne(existingId)).title, 'existing');
});

test('a JSON body that is not an object is a 400 on record create', async () => {
  for (const body of ['[1,2]', '"text"']) {
    const res = await rawRequest('POST', recordsPath, { token, headers: JSON_HEADERS, body });
    assertJsonError(res, 400);
    assert.deepEqual(res.body.data, {}, body);
  }
});

test('a malformed JSON body on auth-with-password is a 400 envelope', async () => {
  const res = await rawRequest('POST', '/api/collections/_superusers/auth-with-password', {
    headers: JSON_HEADERS, body: '{"identity": ',
  });
  assertJsonError(res, 400);
  assert.equal(res.body.message, 'An error occurred while loading the submitted data.');
  assert.deepEqual(res.body.data, {});
});

test('a malformed JSON body on collection create is a 400 envelope', async () => {
  const res = await rawRequest('POST', '/api/collections', {
    token, headers: JSON_HEADERS, body: '{"name": ',
  });
  assertJsonError(res, 400);
  assert.deepEqual(res.body.data, {});
});

test('an unsupported Content-Type with a body is 400 "Unsupported Content-Type."', async () => {
  for (const type of ['text/plain', 'text/csv', 'application/octet-stream']) {
    const res = await rawRequest('POST', recordsPath, {
      token, headers: { 'Content-Type': type }, body: 'title=hello',
    });
    assertJsonError(res, 400);
    assert.deepEqual(res.body, { data: {}, message: 'Unsupported Content-Type.', status: 400 }, type);
  }
  const login = await rawRequest('POST', '/api/collections/_superusers/auth-with-password', {
    headers: { 'Content-Type': 'text/plain' }, body: 'x',
  });
  assertJsonError(login, 400);
  assert.equal(login.body.message, 'Unsupported Content-Type.');
});

test('an empty body is accepted and treated as no data', async () => {
  const res = await rawRequest('POST', recordsPath, { token, headers: JSON_HEADERS, body: '' });
  assertJsonError(res, 400);
  assert.equal(res.body.message, 'Failed to create record.');
  assert.equal(res.body.data.title.code, 'validation_required');
});

test('a JSON null body is treated as an empty object', async () => {
  const res = await rawRequest('POST', recordsPath, { token, headers: JSON_HEADERS, body: 'null' });
  assertJsonError(res, 400);
  assert.equal(res.body.data.title.code, 'validation_required');
});

test('a Content-Type with a charset parameter is accepted', async () => {
  const res = await rawRequest('POST', '/api/collections/_superusers/auth-with-password', {
    headers: { 'Content-Type': 'application/json; charset=utf-8' },
    body: JSON.stringify({ identity: SUPERUSER_EMAIL, password: SUPERUSER_PASSWORD }),
  });
  assert.equal(res.status, 200);
  assert.equal(typeof res.body.token, 'string');
});

test('urlencoded bodies create records with type inference and repeated keys as arrays', async () => {
  const res = await rawRequest('POST', recordsPath, {
    token,
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: 'title=form+post&views=12&active=true&tags=a&tags=c',
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.title, 'form post');
  assert.equal(res.body.views, 12);
  assert.equal(res.body.active, true);
  assert.deepEqual(res.body.tags, ['a', 'c']);
});

test('multipart bodies merge @jsonPayload parts into the record data', async () => {
  const form = new FormData();
  form.append('title', 'multipart post');
  form.append('views', '7');
  form.append('@jsonPayload', JSON.stringify({ meta: { k: [1, 2] }, tags: ['b'] }));
  const res = await rawRequest('POST', recordsPath, { token, body: form });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.title, 'multipart post');
  assert.equal(res.body.views, 7);
  assert.deepEqual(res.body.meta, { k: [1, 2] });
  assert.deepEqual(res.body.tags, ['b']);
});

test('the Authorization header also accepts a Bearer prefix', async () => {
  const res = await rawRequest('GET', '/api/collections?perPage=1', {
    headers: { Authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  assert.equal(res.body.perPage, 1);
});

test('a trailing slash on a records path is 404', async () => {
  for (const [method, path] of [
    ['GET', `${recordsPath}/`],
    ['POST', `${recordsPath}/`],
    ['GET', `${recordsPath}/${existingId}/`],
    ['GET', '/api/health/'],
    ['GET', '/api/collections/'],
  ]) {
    const res = await rawRequest(method, path, { token });
    assert.equal(res.status, 404, `${method} ${path}`);
    assertErrorEnvelope(res.body, 404);
    assert.deepEqual(res.body.data, {});
  }
});

test('an unknown /api path is a 404 envelope', async () => {
  const res = await rawRequest('GET', `/api/definitely-not-here-${randomSuffix()}`);
  assertJsonError(res, 404);
  assert.deepEqual(res.body.data, {});
});

test('a wrong method on a known path is 404, not 405', async () => {
  const res = await rawRequest('PUT', '/api/health');
  assertJsonError(res, 404);
  assert.deepEqual(res.body.data, {});
});

test('an unknown collection in the records path is a 404 envelope', async () => {
  const res = await rawRequest('GET', `/api/collections/missing_${randomSuffix()}/records`, { token });
  assertJsonError(res, 404);
  assert.deepEqual(res.body, { data: {}, message: 'Missing collection context.', status: 404 });
});

test('validation errors on the wire nest code and message under data.<field>', async () => {
  const res = await rawRequest('POST', recordsPath, {
    token, headers: JSON_HEADERS, body: JSON.stringify({ tags: ['zz'] }),
  });
  assertJsonError(res, 400);
  assert.deepEqual(res.body, {
    data: {
      tags: { code: 'validation_invalid_value', message: 'Invalid value zz.', params: { value: 'zz' } },
      title: { code: 'validation_required', message: 'Cannot be blank.' },
    },
    message: 'Failed to create record.',
    status: 400,
  });
});

test('CORS preflight is answered with 204 and echoes the requested headers', async () => {
  const res = await fetch(`${su.baseURL}/api/health`, {
    method: 'OPTIONS',
    headers: {
      Origin: 'http://example.test',
      'Access-Control-Request-Method': 'PATCH',
      'Access-Control-Request-Headers': 'authorization,content-type',
    },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.equal(res.headers.get('access-control-allow-headers'), 'authorization,content-type');
  assert.match(res.headers.get('access-control-allow-methods') ?? '', /PATCH/);
});
