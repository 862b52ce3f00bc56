// View collections whose columns come from other collections: a plain column keeps its source
// field's type and options (a relation stays a relation to the same collection, so expand and
// filters go through it), a selected source `id` becomes a single relation to that
// collection, and columns computed by expressions fall back to PocketBase's defaults.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  newClient,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let pb;
let tracker;
const sfx = randomSuffix();
const authorsName = `vf_authors_${sfx}`;
const postsName = `vf_posts_${sfx}`;
const commentsName = `vf_comments_${sfx}`;
const viewName = `vf_view_${sfx}`;
const aggName = `vf_agg_${sfx}`;
let authors;
let posts;
let view;
let agg;
let ann;
let first;
let second;

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  authors = await tracker.create({
    name: authorsName, type: 'base', listRule: '', viewRule: '',
    fields: [{ name: 'name', type: 'text' }, { name: 'secret', type: 'text', hidden: true }],
  });
  posts = await tracker.create({
    name: postsName, type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'title', type: 'text', max: 100, required: true },
      { name: 'status', type: 'select', values: ['draft', 'live'], maxSelect: 1 },
      { name: 'labels', type: 'select', values: ['x', 'y', 'z'], maxSelect: 3 },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
      { name: 'score', type: 'number', min: 0, max: 10, onlyInt: true },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
    ],
  });
  await tracker.create({
    name: commentsName, type: 'base', listRule: '', viewRule: '',
    fields: [
      { name: 'text', type: 'text' },
      { name: 'post', type: 'relation', collectionId: posts.id, maxSelect: 1, cascadeDelete: true, required: true },
      { name: 'rating', type: 'number' },
    ],
  });
  ann = await pb.collection(authorsName).create({ name: 'ann', secret: 's3cret' });
  first = await pb.collection(postsName).create({
    title: 'first', status: 'live', labels: ['x', 'z'], author: ann.id, score: 3,
  });
  second = await pb.collection(postsName).create({ title: 'second', status: 'draft', score: 5 });
  await pb.collection(commentsName).create({ text: 'c1', post: first.id, rating: 2 });
  // 3.25, not x.5: CAST(... AS INTEGER) truncates on SQLite and rounds on PostgreSQL.
  await pb.collection(commentsName).create({ text: 'c2', post: first.id, rating: 3.25 });
  await pb.collection(commentsName).create({ text: 'c3', post: second.id });
  // PocketBase's view query parser wants computed columns in parentheses.
  view = await tracker.create({
    name: viewName, type: 'view', listRule: '', viewRule: '',
    viewQuery: `SELECT c.id, c.post AS topic, c.text, p.title, p.status, p.labels, p.author, p.score,
      p.created, p.id AS post_ref, rating, (c.rating * 2) AS doubled, (p.title || '!') AS shout,
      CAST(c.rating AS INTEGER) AS rating_int, CAST(c.rating AS TEXT) AS rating_text,
      (SELECT COUNT(*) FROM ${commentsName} x WHERE x.post = c.post) AS siblings
      FROM ${commentsName} c JOIN ${postsName} p ON p.id = c.post`,
  });
  agg = await tracker.create({
    name: aggName, type: 'view', listRule: '', viewRule: '',
    viewQuery: `SELECT p.id, p.title, COUNT(c.id) AS n, TOTAL(c.rating) AS sum_rating,
      MAX(c.rating) AS top FROM ${postsName} p LEFT JOIN ${commentsName} c ON c.post = p.id
      GROUP BY p.id`,
  });
});

after(async () => {
  await tracker.cleanup();
});

function field(collection, name) {
  const f = collection.fields.find((x) => x.name === name);
  assert.ok(f, `no field ${name} in ${JSON.stringify(collection.fields.map((x) => x.name))}`);
  return f;
}

/** The listed keys of `f`, to compare with deepEqual (ids and help texts left out). */
function pick(f, keys) {
  return Object.fromEntries(keys.map((k) => [k, f[k]]));
}

test('view columns taken from a collection keep the source field type and options', async () => {
  // Read back through the API too, not only the create answer.
  const stored = await pb.collections.getOne(viewName);
  for (const v of [view, stored]) {
    assert.deepEqual(pick(field(v, 'topic'), ['type', 'collectionId', 'maxSelect', 'minSelect', 'cascadeDelete', 'required']),
      { type: 'relation', collectionId: posts.id, maxSelect: 1, minSelect: 0, cascadeDelete: true, required: true });
    assert.deepEqual(pick(field(v, 'author'), ['type', 'collectionId', 'maxSelect', 'cascadeDelete', 'required']),
      { type: 'relation', collectionId: authors.id, maxSelect: 1, cascadeDelete: false, required: false });
    assert.deepEqual(pick(field(v, 'title'), ['type', 'max', 'min', 'required']),
      { type: 'text', max: 100, min: 0, required: true });
    assert.deepEqual(pick(field(v, 'status'), ['type', 'values', 'maxSelect']),
      { type: 'select', values: ['draft', 'live'], maxSelect: 1 });
    assert.deepEqual(pick(field(v, 'labels'), ['type', 'values', 'maxSelect']),
      { type: 'select', values: ['x', 'y', 'z'], maxSelect: 3 });
    assert.deepEqual(pick(field(v, 'score'), ['type', 'min', 'max', 'onlyInt']),
      { type: 'number', min: 0, max: 10, onlyInt: true });
    assert.deepEqual(pick(field(v, 'created'), ['type', 'onCreate', 'onUpdate']),
      { type: 'autodate', onCreate: true, onUpdate: false });
    // an unqualified column belongs to the first table of the FROM clause
    assert.equal(field(v, 'rating').type, 'number');
    assert.equal(field(v, 'text').type, 'text');
  }
});

test('view records carry the source values of those columns', async () => {
  const list = await newClient().collection(viewName).getList(1, 20, { sort: 'text' });
  assert.deepEqual(list.items.map((r) => [r.text, r.topic, r.title, r.status, r.labels, r.author, r.score]), [
    ['c1', first.id, 'first', 'live', ['x', 'z'], ann.id, 3],
    ['c2', first.id, 'first', 'live', ['x', 'z'], ann.id, 3],
    ['c3', second.id, 'second', 'draft', [], '', 5],
  ]);
  assert.equal(list.items[0].created, first.created);
});

test('a view column selecting a source id is a single relation to that collection', async () => {
  assert.deepEqual(pick(field(view, 'post_ref'), ['type', 'collectionId', 'maxSelect']),
    { type: 'relation', collectionId: posts.id, maxSelect: 1 });
  const list = await newClient().collection(viewName).getList(1, 20, { sort: 'text', expand: 'post_ref' });
  assert.deepEqual(list.items.map((r) => [r.post_ref, r.expand?.post_ref?.id, r.expand?.post_ref?.title]), [
    [first.id, first.id, 'first'], [first.id, first.id, 'first'], [second.id, second.id, 'second'],
  ]);
});

test("the view's id column is the text primary key", async () => {
  for (const v of [view, agg]) {
    assert.deepEqual(pick(field(v, 'id'), ['type', 'primaryKey', 'required', 'system', 'pattern']),
      { type: 'text', primaryKey: true, required: true, system: true, pattern: '^[a-z0-9]+$' });
  }
});

test('getList expands through a view relation column, nested and with hidden fields stripped', async () => {
  const guest = newClient();
  const list = await guest.collection(viewName).getList(1, 20, { sort: 'text', expand: 'topic' });
  assert.equal(list.totalItems, 3);
  assert.deepEqual(list.items.map((r) => [r.text, r.expand?.topic?.id, r.expand?.topic?.title]), [
    ['c1', first.id, 'first'], ['c2', first.id, 'first'], ['c3', second.id, 'second'],
  ]);
  assert.equal(list.items[0].expand.topic.collectionName, postsName);
  assert.deepEqual(list.items[0].expand.topic.labels, ['x', 'z']);

  const nested = await guest.collection(viewName).getList(1, 20, { sort: 'text', expand: 'topic.author,author' });
  const c1 = nested.items[0];
  assert.equal(c1.expand.topic.expand.author.id, ann.id);
  assert.equal(c1.expand.topic.expand.author.name, 'ann');
  assert.equal(c1.expand.topic.expand.author.secret, undefined);
  assert.equal(c1.expand.author.name, 'ann');
  assert.equal(c1.expand.author.secret, undefined);
  // the post without an author: topic expands with an empty expand object, author is absent
  const c3 = nested.items[2];
  assert.equal(c3.expand.topic.id, second.id);
  assert.deepEqual(c3.expand.topic.expand, {});
  assert.equal(c3.expand.author, undefined);

  const one = await guest.collection(viewName).getOne(c1.id, { expand: 'topic' });
  assert.equal(one.expand.topic.id, first.id);
});

test("expand through a view relation column applies the target collection's view rule", async () => {
  await pb.collections.update(authorsName, { viewRule: null });
  try {
    const c1 = (await newClient().collection(viewName).getFullList({ filter: "text = 'c1'" }))[0];
    const guest = await newClient().collection(viewName).getOne(c1.id, { expand: 'author' });
    assert.equal(guest.expand, undefined);
    const asSuperuser = await pb.collection(viewName).getOne(c1.id, { expand: 'author' });
    assert.equal(asSuperuser.expand.author.name, 'ann');
    assert.equal(asSuperuser.expand.author.secret, 's3cret');
  } finally {
    await pb.collections.update(authorsName, { viewRule: '' });
  }
});

test('a filter and a sort go through a view relation column', async () => {
  const guest = newClient().collection(viewName);
  const byTitle = await guest.getFullList({ filter: 'topic.title = "first"', sort: 'text' });
  assert.deepEqual(byTitle.map((r) => r.text), ['c1', 'c2']);
  const byStatus = await guest.getFullList({ filter: "topic.status = 'draft'" });
  assert.deepEqual(byStatus.map((r) => r.text), ['c3']);
  const nested = await guest.getFullList({ filter: "topic.author.name = 'ann'", sort: 'text' });
  assert.deepEqual(nested.map((r) => r.text), ['c1', 'c2']);
  const none = await guest.getFullList({ filter: "topic.title = 'nope'" });
  assert.deepEqual(none, []);
  const sorted = await guest.getFullList({ sort: '-topic.title,text' });
  assert.deepEqual(sorted.map((r) => r.text), ['c3', 'c1', 'c2']);
});

test('view columns computed by expressions fall back to json, counts and casts are typed', async () => {
  const types = (v) => Object.fromEntries(v.fields.map((f) => [f.name, f.type]));
  const t = types(view);
  assert.equal(t.doubled, 'json');
  assert.equal(t.shout, 'json');
  assert.equal(t.siblings, 'json');
  assert.equal(t.rating_int, 'number');
  assert.equal(t.rating_text, 'text');
  const ta = types(agg);
  assert.equal(ta.title, 'text');
  assert.equal(ta.n, 'number');
  assert.equal(ta.sum_rating, 'number');
  assert.equal(ta.top, 'json');

  const rows = await newClient().collection(viewName).getFullList({ sort: 'text' });
  assert.deepEqual(rows.map((r) => [r.doubled, r.shout, r.siblings, r.rating_int, r.rating_text]), [
    [4, 'first!', 2, 2, '2'], [6.5, 'first!', 2, 3, '3.25'], [0, 'second!', 1, 0, '0'],
  ]);
  const sums = await newClient().collection(aggName).getFullList({ sort: 'title' });
  assert.deepEqual(sums.map((r) => [r.id, r.title, r.n, r.sum_rating, r.top]), [
    [first.id, 'first', 2, 5.25, 3.25], [second.id, 'second', 1, 0, 0],
  ]);
});
