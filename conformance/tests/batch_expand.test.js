// Relations and the batch API through the SDK: expand (forward, nested, back-relation,
// view rules per hop) and pb.createBatch() (success and rollback).
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
const authorsName = `bx_authors_${randomSuffix()}`;
const postsName = `bx_posts_${randomSuffix()}`;
const commentsName = `bx_comments_${randomSuffix()}`;
const lockedName = `bx_locked_${randomSuffix()}`;
let author;
let post;
let locked;

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  const authors = await tracker.create({
    name: authorsName, type: 'base', listRule: '', viewRule: '',
    fields: [{ name: 'name', type: 'text' }, { name: 'secret', type: 'text', hidden: true }],
  });
  const lockedCollection = await tracker.create({
    name: lockedName, type: 'base', fields: [{ name: 'note', type: 'text' }],
  });
  const posts = await tracker.create({
    name: postsName, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text', required: true },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1 },
      { name: 'hush', type: 'relation', collectionId: lockedCollection.id, maxSelect: 1 },
    ],
  });
  await tracker.create({
    name: commentsName, type: 'base', listRule: '', viewRule: "text != 'private'",
    fields: [
      { name: 'text', type: 'text' },
      { name: 'post', type: 'relation', collectionId: posts.id, maxSelect: 1 },
    ],
  });
  author = await pb.collection(authorsName).create({ name: 'ann', secret: 's3cret' });
  locked = await pb.collection(lockedName).create({ note: 'x' });
  post = await pb.collection(postsName).create({ title: 'hello', author: author.id, hush: locked.id });
  for (const text of ['one', 'two', 'private']) {
    await pb.collection(commentsName).create({ text, post: post.id });
  }
  await pb.settings.update({ batch: { enabled: true } });
});

after(async () => {
  await pb.settings.update({ batch: { enabled: false } });
  await tracker.cleanup();
});

test('expand follows a single relation and strips hidden fields for guests', async () => {
  const got = await newClient().collection(postsName).getOne(post.id, { expand: 'author' });
  assert.equal(got.expand.author.id, author.id);
  assert.equal(got.expand.author.name, 'ann');
  assert.equal(got.expand.author.secret, undefined);
});

test('expand skips a relation whose collection has a null view rule', async () => {
  // A path that cannot be expanded leaves no `expand` key when it is the only one.
  const got = await newClient().collection(postsName).getOne(post.id, { expand: 'hush' });
  assert.equal(got.expand, undefined);
  const both = await newClient().collection(postsName).getOne(post.id, { expand: 'hush,author' });
  assert.deepEqual(Object.keys(both.expand), ['author']);
  const asSuperuser = await pb.collection(postsName).getOne(post.id, { expand: 'hush' });
  assert.equal(asSuperuser.expand.hush.note, 'x');
});

test('expand of a back-relation applies the related view rule and nests', async () => {
  const list = await newClient().collection(postsName).getList(1, 10, {
    filter: `id = "${post.id}"`, expand: `${commentsName}_via_post.post.author`,
  });
  const comments = list.items[0].expand[`${commentsName}_via_post`];
  assert.ok(Array.isArray(comments));
  assert.deepEqual(comments.map((c) => c.text).sort(), ['one', 'two']);
  assert.equal(comments[0].expand.post.expand.author.name, 'ann');
});

test('every record gets an expand object once the path resolves, even if empty', async () => {
  const lonely = await pb.collection(postsName).create({ title: 'no author' });
  try {
    const got = await newClient().collection(postsName).getOne(lonely.id, { expand: 'author' });
    assert.deepEqual(got.expand, {});
    const unknown = await newClient().collection(postsName).getOne(lonely.id, { expand: 'nosuchfield' });
    assert.equal(unknown.expand, undefined);
  } finally {
    await pb.collection(postsName).delete(lonely.id);
  }
});

test('a filter through a back-relation matches by the related records', async () => {
  const guest = newClient();
  const any = await guest.collection(postsName).getFullList({ filter: `${commentsName}_via_post.text ?= 'two'` });
  assert.deepEqual(any.map((p) => p.id), [post.id]);
  const none = await guest.collection(postsName).getFullList({ filter: `${commentsName}_via_post.text ?= 'zzz'` });
  assert.deepEqual(none, []);
});

test('a filter through a relation to a collection the caller may not list is refused', async () => {
  const err = await expectError(newClient().collection(postsName).getList(1, 10, { filter: "hush.note = 'x'" }), 400);
  assert.deepEqual(err.response.data, {});
});

test('fields reaches into expand', async () => {
  const got = await newClient().collection(postsName).getOne(post.id, {
    expand: 'author', fields: 'id,expand.author.name',
  });
  assert.deepEqual(got, { id: post.id, expand: { author: { name: 'ann' } } });
});

test('a batch creates, updates and deletes in one request', async () => {
  const batch = pb.createBatch();
  batch.collection(postsName).create({ id: 'batchrecord0001', title: 'from batch' });
  batch.collection(postsName).update('batchrecord0001', { title: 'updated in batch' });
  batch.collection(postsName).upsert({ id: 'batchrecord0002', title: 'upserted' });
  batch.collection(postsName).delete('batchrecord0002');
  const results = await batch.send();
  assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 204]);
  assert.equal(results[1].body.title, 'updated in batch');
  assert.equal(results[3].body, null);
  const stored = await pb.collection(postsName).getOne('batchrecord0001');
  assert.equal(stored.title, 'updated in batch');
});

test('a failing batch request rolls back the whole batch', async () => {
  const batch = pb.createBatch();
  batch.collection(postsName).create({ id: 'batchrollback01', title: 'never stored' });
  batch.collection(postsName).create({ title: '' });
  const err = await expectError(batch.send(), 400);
  assert.equal(err.response.message, 'Batch transaction failed.');
  assert.equal(err.response.data.requests['1'].code, 'batch_request_failed');
  assert.equal(err.response.data.requests['1'].response.data.title.code, 'validation_required');
  await expectError(pb.collection(postsName).getOne('batchrollback01'), 404);
});

test('batch requests are refused while batch is disabled', async () => {
  await pb.settings.update({ batch: { enabled: false } });
  try {
    const batch = pb.createBatch();
    batch.collection(postsName).create({ title: 'nope' });
    const err = await expectError(batch.send(), 403);
    assert.deepEqual(err.response.data, {});
  } finally {
    await pb.settings.update({ batch: { enabled: true } });
  }
});
