// Records CRUD: shapes, zero values, custom ids, validation codes, 404s.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  DATETIME_RE,
  RECORD_ID_RE,
  assertErrorEnvelope,
  assertFieldError,
  customRecordId,
  expectError,
  randomSuffix,
  rawRequest,
  superuserClient,
} from './helpers.js';

let pb;
let tracker;
const suffix = randomSuffix();
const targetName = `rectarget_${suffix}`;
const name = `records_${suffix}`;
let collection;
let targetRecord;

const FIELD_NAMES = [
  'title', 'views', 'active', 'contact', 'site', 'when', 'status', 'tags', 'meta', 'ref', 'refs',
  'created', 'updated',
];

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  const target = await tracker.create({
    name: targetName,
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [{ name: 'label', type: 'text' }],
  });
  collection = await tracker.create({
    name,
    type: 'base',
    fields: [
      { name: 'title', type: 'text', required: true, min: 3, max: 20 },
      { name: 'views', type: 'number', min: 0, max: 1000, onlyInt: true },
      { name: 'active', type: 'bool' },
      { name: 'contact', type: 'email' },
      { name: 'site', type: 'url' },
      { name: 'when', type: 'date' },
      { name: 'status', type: 'select', values: ['draft', 'published'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'd'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'ref', type: 'relation', collectionId: target.id, maxSelect: 1 },
      { name: 'refs', type: 'relation', collectionId: target.id, maxSelect: 5 },
      { name: 'code', type: 'text', hidden: false },
      { name: 'created', type: 'autodate', onCreate: true },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
    indexes: [`CREATE UNIQUE INDEX idx_${name}_code ON ${name} (code) WHERE code != ''`],
  });
  targetRecord = await pb.collection(targetName).create({ label: 'target one' });
});

after(async () => {
  await tracker.cleanup();
});

test('create returns HTTP 200 (not 201) with the created record as JSON', async () => {
  const res = await rawRequest('POST', `/api/collections/${name}/records`, {
    token: pb.authStore.token,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ title: 'raw create' }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  assert.equal(res.body.title, 'raw create');
  assert.match(res.body.id, RECORD_ID_RE);
});

test('a minimal record has every field with its zero value', async () => {
  const rec = await pb.collection(name).create({ title: 'zeroes' });
  assert.deepEqual(
    Object.keys(rec).sort(),
    ['active', 'code', 'collectionId', 'collectionName', 'contact', 'created', 'id', 'meta', 'ref',
      'refs', 'site', 'status', 'tags', 'title', 'updated', 'views', 'when'],
  );
  assert.match(rec.id, RECORD_ID_RE);
  assert.equal(rec.collectionId, collection.id);
  assert.equal(rec.collectionName, name);
  assert.equal(rec.title, 'zeroes');
  assert.equal(rec.views, 0);
  assert.equal(rec.active, false);
  assert.equal(rec.contact, '');
  assert.equal(rec.site, '');
  assert.equal(rec.when, '');
  assert.equal(rec.status, '');
  assert.deepEqual(rec.tags, []);
  assert.equal(rec.meta, null);
  assert.equal(rec.ref, '');
  assert.deepEqual(rec.refs, []);
  assert.equal(rec.code, '');
  assert.match(rec.created, DATETIME_RE);
  assert.match(rec.updated, DATETIME_RE);
  assert.equal(rec.created, rec.updated);
  assert.ok(!('expand' in rec), 'expand only appears when requested');
});

test('autodate values are the server time of creation', async () => {
  const before = Date.now();
  const rec = await pb.collection(name).create({ title: 'clock', created: '2001-01-01 00:00:00.000Z' });
  const after = Date.now();
  const created = Date.parse(rec.created.replace(' ', 'T'));
  assert.ok(created >= before - 5000 && created <= after + 5000,
    `created ${rec.created} is near now (client-sent autodate values are ignored)`);
});

test('every field type round-trips its value', async () => {
  const rec = await pb.collection(name).create({
    title: 'full record',
    views: 12,
    active: true,
    contact: 'someone@example.com',
    site: 'https://example.com/path?q=1',
    when: '2024-01-02 10:00:00.000Z',
    status: 'published',
    tags: ['c', 'a'],
    meta: { nested: { list: [1, 2, 3] }, ok: true },
    ref: targetRecord.id,
    refs: [targetRecord.id],
  });
  assert.equal(rec.title, 'full record');
  assert.equal(rec.views, 12);
  assert.equal(rec.active, true);
  assert.equal(rec.contact, 'someone@example.com');
  assert.equal(rec.site, 'https://example.com/path?q=1');
  assert.equal(rec.when, '2024-01-02 10:00:00.000Z');
  assert.equal(rec.status, 'published');
  assert.deepEqual(rec.tags, ['c', 'a'], 'multi select keeps submitted order');
  assert.deepEqual(rec.meta, { nested: { list: [1, 2, 3] }, ok: true });
  assert.equal(rec.ref, targetRecord.id);
  assert.deepEqual(rec.refs, [targetRecord.id]);

  const fetched = await pb.collection(name).getOne(rec.id);
  assert.deepEqual(fetched, rec);
});

test('date inputs in RFC 3339 with an offset are stored in UTC in the canonical format', async () => {
  const a = await pb.collection(name).create({ title: 'date tz', when: '2024-01-02T10:00:00+02:00' });
  assert.equal(a.when, '2024-01-02 08:00:00.000Z');
  const b = await pb.collection(name).create({ title: 'date only', when: '2024-03-04' });
  assert.equal(b.when, '2024-03-04 00:00:00.000Z');
  const c = await pb.collection(name).create({ title: 'date js', when: new Date('2024-05-06T07:08:09.123Z') });
  assert.equal(c.when, '2024-05-06 07:08:09.123Z');
});

test('lenient coercion: numeric strings become numbers, unparsable dates become empty', async () => {
  const rec = await pb.collection(name).create({ title: 'coerce', views: '12', when: 'not a date' });
  assert.equal(rec.views, 12);
  assert.equal(rec.when, '');
});

test('getOne returns the stored record', async () => {
  const created = await pb.collection(name).create({ title: 'get me', views: 5 });
  const fetched = await pb.collection(name).getOne(created.id);
  assert.deepEqual(fetched, created);
  const byCollectionId = await pb.collection(collection.id).getOne(created.id);
  assert.deepEqual(byCollectionId, created, 'the collection may be addressed by id');
});

test('update is partial: only the sent fields change and updated moves forward', async () => {
  const created = await pb.collection(name).create({
    title: 'partial', views: 1, status: 'draft', tags: ['a'],
  });
  await new Promise((resolve) => setTimeout(resolve, 15));
  const updated = await pb.collection(name).update(created.id, { views: 2 });
  assert.equal(updated.id, created.id);
  assert.equal(updated.views, 2);
  assert.equal(updated.title, 'partial');
  assert.equal(updated.status, 'draft');
  assert.deepEqual(updated.tags, ['a']);
  assert.equal(updated.created, created.created);
  assert.ok(updated.updated > created.updated, `${updated.updated} > ${created.updated}`);
  assert.deepEqual(await pb.collection(name).getOne(created.id), updated);
});

test('update can clear fields back to their zero values', async () => {
  const created = await pb.collection(name).create({
    title: 'clear me', status: 'draft', tags: ['a', 'b'], meta: { x: 1 }, ref: targetRecord.id,
  });
  const updated = await pb.collection(name).update(created.id, {
    status: '', tags: [], meta: null, ref: '',
  });
  assert.equal(updated.status, '');
  assert.deepEqual(updated.tags, []);
  assert.equal(updated.meta, null);
  assert.equal(updated.ref, '');
});

test('changing the id on update is rejected with validation_pk_change', async () => {
  const created = await pb.collection(name).create({ title: 'fixed id' });
  const err = await expectError(pb.collection(name).update(created.id, { id: customRecordId() }), 400);
  assert.equal(err.response.message, 'Failed to update record.');
  assertFieldError(err, 'id', 'validation_pk_change');
});

test('delete resolves true, answers 204 on the wire, and the record is then 404', async () => {
  const a = await pb.collection(name).create({ title: 'delete me' });
  assert.equal(await pb.collection(name).delete(a.id), true);
  const err = await expectError(pb.collection(name).getOne(a.id), 404);
  assert.equal(err.response.message, "The requested resource wasn't found.");
  assert.deepEqual(err.response.data, {});

  const b = await pb.collection(name).create({ title: 'delete raw' });
  const res = await rawRequest('DELETE', `/api/collections/${name}/records/${b.id}`, {
    token: pb.authStore.token,
  });
  assert.equal(res.status, 204);
  assert.equal(res.text, '');
});

test('a custom id is accepted on create', async () => {
  const id = customRecordId();
  const rec = await pb.collection(name).create({ id, title: 'custom id' });
  assert.equal(rec.id, id);
  assert.equal((await pb.collection(name).getOne(id)).title, 'custom id');
});

test('a duplicate id is rejected with data.id.code = validation_not_unique', async () => {
  const id = customRecordId();
  await pb.collection(name).create({ id, title: 'first' });
  const err = await expectError(pb.collection(name).create({ id, title: 'second' }), 400);
  assert.equal(err.response.message, 'Failed to create record.');
  assertFieldError(err, 'id', 'validation_not_unique');
  assert.equal(err.response.data.id.message, 'Value must be unique.');
});

test('a custom id of the wrong length is rejected on the id field', async () => {
  const err = await expectError(pb.collection(name).create({ id: 'short', title: 'bad id' }), 400);
  assertFieldError(err, 'id', 'validation_min_text_constraint');
});

test('a missing required field is validation_required', async () => {
  const err = await expectError(pb.collection(name).create({ views: 1 }), 400);
  assert.equal(err.response.message, 'Failed to create record.');
  assertFieldError(err, 'title', 'validation_required');
  assert.equal(err.response.data.title.message, 'Cannot be blank.');
  assert.deepEqual(Object.keys(err.response.data), ['title'], 'only the failing field is reported');
});

test('text min and max length violations carry their params', async () => {
  const short = await expectError(pb.collection(name).create({ title: 'ab' }), 400);
  assertFieldError(short, 'title', 'validation_min_text_constraint');
  assert.deepEqual(short.response.data.title.params, { min: 3 });
  const long = await expectError(pb.collection(name).create({ title: 'x'.repeat(21) }), 400);
  assertFieldError(long, 'title', 'validation_max_text_constraint');
  assert.deepEqual(long.response.data.title.params, { max: 20 });
});

test('number min, max and onlyInt violations have distinct codes', async () => {
  const low = await expectError(pb.collection(name).create({ title: 'num low', views: -1 }), 400);
  assertFieldError(low, 'views', 'validation_min_number_constraint');
  assert.deepEqual(low.response.data.views.params, { min: 0 });
  const high = await expectError(pb.collection(name).create({ title: 'num high', views: 1001 }), 400);
  assertFieldError(high, 'views', 'validation_max_number_constraint');
  assert.deepEqual(high.response.data.views.params, { max: 1000 });
  const frac = await expectError(pb.collection(name).create({ title: 'num frac', views: 1.5 }), 400);
  assertFieldError(frac, 'views', 'validation_only_int_constraint');
});

test('select values outside the allowed list are validation_invalid_value', async () => {
  const single = await expectError(pb.collection(name).create({ title: 'sel one', status: 'nope' }), 400);
  assertFieldError(single, 'status', 'validation_invalid_value');
  assert.deepEqual(single.response.data.status.params, { value: 'nope' });
  const multi = await expectError(pb.collection(name).create({ title: 'sel many', tags: ['a', 'zz'] }), 400);
  assertFieldError(multi, 'tags', 'validation_invalid_value');
});

test('more select values than maxSelect is validation_too_many_values', async () => {
  const err = await expectError(
    pb.collection(name).create({ title: 'sel max', tags: ['a', 'b', 'c', 'd'] }),
    400,
  );
  assertFieldError(err, 'tags', 'validation_too_many_values');
  assert.deepEqual(err.response.data.tags.params, { maxSelect: 3 });
});

test('a single select given several values keeps the last one', async () => {
  const rec = await pb.collection(name).create({ title: 'sel last', status: ['draft', 'published'] });
  assert.equal(rec.status, 'published');
});

test('email, url and relation fields validate their values', async () => {
  const email = await expectError(pb.collection(name).create({ title: 'bad mail', contact: 'nope' }), 400);
  assertFieldError(email, 'contact', 'validation_is_email');
  const url = await expectError(pb.collection(name).create({ title: 'bad url', site: 'not a url' }), 400);
  assertFieldError(url, 'site', 'validation_invalid_url');
  const rel = await expectError(
    pb.collection(name).create({ title: 'bad rel', ref: customRecordId() }),
    400,
  );
  assertFieldError(rel, 'ref', 'validation_missing_rel_records');
});

test('several invalid fields are all reported in one response', async () => {
  const err = await expectError(
    pb.collection(name).create({ title: 'ab', views: 5000, status: 'x' }),
    400,
  );
  assert.deepEqual(Object.keys(err.response.data).sort(), ['status', 'title', 'views']);
});

test('a failed update reports "Failed to update record." with field errors', async () => {
  const created = await pb.collection(name).create({ title: 'upd valid' });
  const err = await expectError(pb.collection(name).update(created.id, { title: 'x' }), 400);
  assert.equal(err.response.message, 'Failed to update record.');
  assertFieldError(err, 'title', 'validation_min_text_constraint');
  assert.equal((await pb.collection(name).getOne(created.id)).title, 'upd valid', 'nothing was saved');
});

test('a unique index violation is validation_not_unique on the indexed field', async () => {
  const code = `code-${randomSuffix()}`;
  await pb.collection(name).create({ title: 'unique one', code });
  const err = await expectError(pb.collection(name).create({ title: 'unique two', code }), 400);
  assertFieldError(err, 'code', 'validation_not_unique');
  const other = await pb.collection(name).create({ title: 'unique three', code: `${code}-x` });
  const updErr = await expectError(pb.collection(name).update(other.id, { code }), 400);
  assertFieldError(updErr, 'code', 'validation_not_unique');
});

test('an unknown collection is 404 for list, view and create', async () => {
  const missing = `missing_${randomSuffix()}`;
  const list = await expectError(pb.collection(missing).getList(1, 10), 404);
  assert.equal(list.response.message, 'Missing collection context.');
  await expectError(pb.collection(missing).getOne(customRecordId()), 404);
  await expectError(pb.collection(missing).create({ title: 'x' }), 404);
});

test('an unknown record id is 404 for view, update and delete', async () => {
  const id = customRecordId();
  for (const call of [
    () => pb.collection(name).getOne(id),
    () => pb.collection(name).update(id, { title: 'nobody' }),
    () => pb.collection(name).delete(id),
  ]) {
    const err = await expectError(call(), 404);
    assert.equal(err.response.message, "The requested resource wasn't found.");
    assert.deepEqual(err.response.data, {});
  }
});

test('the raw 404 body for a missing record is the standard error envelope', async () => {
  const res = await rawRequest('GET', `/api/collections/${name}/records/${customRecordId()}`, {
    token: pb.authStore.token,
  });
  assert.equal(res.status, 404);
  assertErrorEnvelope(res.body, 404);
  assert.deepEqual(res.body, { data: {}, message: "The requested resource wasn't found.", status: 404 });
});
