// Update modifiers: number `field+`/`field-`, multi-value `field+`, `+field`, `field-`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  assertFieldError,
  expectError,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let pb;
let tracker;
const name = `mods_${randomSuffix()}`;
const targetName = `modtargets_${randomSuffix()}`;
let targets = [];

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  const target = await tracker.create({
    name: targetName,
    type: 'base',
    fields: [{ name: 'label', type: 'text' }],
  });
  await tracker.create({
    name,
    type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'views', type: 'number', min: -100, max: 100 },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'd', 'e'], maxSelect: 5 },
      { name: 'links', type: 'relation', collectionId: target.id, maxSelect: 10 },
    ],
  });
  targets = [];
  for (const label of ['t1', 't2', 't3']) {
    targets.push((await pb.collection(targetName).create({ label })).id);
  }
});

after(async () => {
  await tracker.cleanup();
});

async function fresh(data) {
  return pb.collection(name).create({ title: 'mod', ...data });
}

test('views+ adds to the stored number', async () => {
  const rec = await fresh({ views: 5 });
  const updated = await pb.collection(name).update(rec.id, { 'views+': 10 });
  assert.equal(updated.views, 15);
  assert.equal((await pb.collection(name).getOne(rec.id)).views, 15);
});

test('views- subtracts from the stored number and may go negative', async () => {
  const rec = await fresh({ views: 5 });
  const updated = await pb.collection(name).update(rec.id, { 'views-': 8 });
  assert.equal(updated.views, -3);
});

test('views+ and views- accept fractional amounts', async () => {
  const rec = await fresh({ views: 1 });
  const updated = await pb.collection(name).update(rec.id, { 'views+': 0.5 });
  assert.equal(updated.views, 1.5);
});

test('views+ and views- in one request both apply', async () => {
  const rec = await fresh({ views: 5 });
  const updated = await pb.collection(name).update(rec.id, { 'views+': 10, 'views-': 3 });
  assert.equal(updated.views, 12);
});

test('views+ on create applies to the zero default', async () => {
  const rec = await fresh({ 'views+': 4 });
  assert.equal(rec.views, 4);
});

test('a number modifier that breaks the max constraint is a validation error', async () => {
  const rec = await fresh({ views: 95 });
  const err = await expectError(pb.collection(name).update(rec.id, { 'views+': 10 }), 400);
  assertFieldError(err, 'views', 'validation_max_number_constraint');
  assert.equal((await pb.collection(name).getOne(rec.id)).views, 95);
});

test('tags+ appends values to a multi select', async () => {
  const rec = await fresh({ tags: ['a'] });
  const one = await pb.collection(name).update(rec.id, { 'tags+': 'c' });
  assert.deepEqual(one.tags, ['a', 'c']);
  const many = await pb.collection(name).update(rec.id, { 'tags+': ['d', 'b'] });
  assert.deepEqual(many.tags, ['a', 'c', 'd', 'b']);
});

test('tags+ does not duplicate a value that is already selected', async () => {
  const rec = await fresh({ tags: ['a', 'b'] });
  const updated = await pb.collection(name).update(rec.id, { 'tags+': ['b', 'c'] });
  assert.deepEqual(updated.tags, ['a', 'b', 'c']);
});

test('+tags prepends values to a multi select', async () => {
  const rec = await fresh({ tags: ['a', 'b'] });
  const one = await pb.collection(name).update(rec.id, { '+tags': 'c' });
  assert.deepEqual(one.tags, ['c', 'a', 'b']);
  const many = await pb.collection(name).update(rec.id, { '+tags': ['d', 'e'] });
  assert.deepEqual(many.tags, ['d', 'e', 'c', 'a', 'b']);
});

test('tags- removes the listed values and ignores values that are not selected', async () => {
  const rec = await fresh({ tags: ['a', 'b', 'c', 'd'] });
  const one = await pb.collection(name).update(rec.id, { 'tags-': 'b' });
  assert.deepEqual(one.tags, ['a', 'c', 'd']);
  const many = await pb.collection(name).update(rec.id, { 'tags-': ['a', 'd', 'e'] });
  assert.deepEqual(many.tags, ['c']);
  const all = await pb.collection(name).update(rec.id, { 'tags-': ['c'] });
  assert.deepEqual(all.tags, []);
});

test('tags+ with a value outside the allowed list is validation_invalid_value', async () => {
  const rec = await fresh({ tags: ['a'] });
  const err = await expectError(pb.collection(name).update(rec.id, { 'tags+': 'zz' }), 400);
  assertFieldError(err, 'tags', 'validation_invalid_value');
  assert.deepEqual((await pb.collection(name).getOne(rec.id)).tags, ['a']);
});

test('modifiers on different fields combine in one update', async () => {
  const rec = await fresh({ views: 1, tags: ['a', 'b'] });
  const updated = await pb.collection(name).update(rec.id, {
    'views+': 2, 'tags-': 'a', 'tags+': 'e', title: 'combined',
  });
  assert.equal(updated.views, 3);
  assert.deepEqual(updated.tags, ['b', 'e']);
  assert.equal(updated.title, 'combined');
});

test('relation modifiers append, prepend and remove ids', async () => {
  const [t1, t2, t3] = targets;
  const rec = await fresh({ links: [t1] });
  const appended = await pb.collection(name).update(rec.id, { 'links+': t2 });
  assert.deepEqual(appended.links, [t1, t2]);
  const prepended = await pb.collection(name).update(rec.id, { '+links': t3 });
  assert.deepEqual(prepended.links, [t3, t1, t2]);
  const removed = await pb.collection(name).update(rec.id, { 'links-': [t1, t3] });
  assert.deepEqual(removed.links, [t2]);
});
