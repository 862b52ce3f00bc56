// View collections: fields inferred from the SELECT, read-only, rules applied.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  expectError,
  newClient,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let pb;
let tracker;
const sourceName = `vw_src_${randomSuffix()}`;
const viewName = `vw_view_${randomSuffix()}`;

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  await tracker.create({
    name: sourceName, type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'views', type: 'number' },
      { name: 'published', type: 'bool' },
    ],
  });
  for (const [title, views, published] of [['a', 1, true], ['b', 5, true], ['c', 9, false]]) {
    await pb.collection(sourceName).create({ title, views, published });
  }
});

after(async () => {
  await tracker.cleanup();
});

test('a view collection infers its fields from the query', async () => {
  const view = await tracker.create({
    name: viewName, type: 'view', listRule: '', viewRule: '',
    viewQuery: `SELECT id, title, views, published FROM ${sourceName} WHERE published = TRUE`,
  });
  assert.equal(view.type, 'view');
  const types = Object.fromEntries(view.fields.map((f) => [f.name, f.type]));
  assert.equal(types.id, 'text');
  assert.equal(types.title, 'text');
  assert.equal(types.views, 'number');
  assert.equal(types.published, 'bool');
});

test('a view collection lists, filters, sorts and views its rows', async () => {
  const guest = newClient();
  const list = await guest.collection(viewName).getList(1, 10, { sort: '-views' });
  assert.deepEqual(list.items.map((r) => r.title), ['b', 'a']);
  assert.equal(list.items[0].views, 5);
  assert.equal(list.items[0].published, true);
  const filtered = await guest.collection(viewName).getFullList({ filter: 'views > 2' });
  assert.deepEqual(filtered.map((r) => r.title), ['b']);
  const one = await guest.collection(viewName).getOne(list.items[0].id);
  assert.equal(one.title, 'b');
});

test('a view collection is read-only', async () => {
  const err = await expectError(pb.collection(viewName).create({ title: 'x' }), 400);
  assert.equal(err.response.message, 'Unsupported collection type.');
});

test('a view query without an id column is rejected', async () => {
  const err = await expectError(pb.collections.create({
    name: `vw_bad_${randomSuffix()}`, type: 'view', viewQuery: `SELECT title FROM ${sourceName}`,
  }), 400);
  assert.ok(err.response.data.viewQuery, JSON.stringify(err.response.data));
});

test('a view collection cannot have create, update or delete rules', async () => {
  const err = await expectError(pb.collections.create({
    name: `vw_bad_${randomSuffix()}`, type: 'view', createRule: '',
    viewQuery: `SELECT id FROM ${sourceName}`,
  }), 400);
  assert.ok(err.response.data.createRule, JSON.stringify(err.response.data));
});
