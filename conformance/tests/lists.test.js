// List/search: envelope, paging, sort, filter operators, fields picker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ClientResponseError,
  CollectionTracker,
  expectError,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let pb;
let tracker;
const name = `lists_${randomSuffix()}`;

// Seed rows, inserted in this order.
//  title        views active when                        tags       status      note
const ROWS = [
  ['alpha', 10, true, '2024-01-01 10:00:00.000Z', ['a', 'b'], 'draft', 'x'],
  ['beta', 20, false, '2024-02-01 10:00:00.000Z', ['b'], 'published', ''],
  ['gamma', 30, true, '2024-03-01 10:00:00.000Z', ['c'], 'draft', ''],
  ['delta', 40, false, '2024-04-01 10:00:00.000Z', [], '', ''],
  ['epsilon', 50, true, '', ['a', 'c', 'd'], 'published', 'y'],
  ['zeta alpha', 10, false, '2024-01-15 00:00:00.000Z', ['d'], 'draft', ''],
  ['eta', 70, true, '2025-06-30 23:59:59.999Z', ['a'], 'published', 'x'],
];
const INSERT_ORDER = ROWS.map((r) => r[0]);
const BODY_HTML = '<p>Hello <b>big</b> world of many words</p>';

/** Titles matching `filter`, sorted by title for stable comparison. */
async function titles(filter) {
  const items = await pb.collection(name).getFullList({ filter, sort: 'title', fields: 'title' });
  return items.map((r) => r.title);
}

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  await tracker.create({
    name,
    type: 'base',
    listRule: '',
    viewRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'views', type: 'number' },
      { name: 'active', type: 'bool' },
      { name: 'when', type: 'date' },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c', 'd'], maxSelect: 4 },
      { name: 'status', type: 'select', values: ['draft', 'published'], maxSelect: 1 },
      { name: 'note', type: 'text' },
      { name: 'body', type: 'text' },
      { name: 'meta', type: 'json' },
    ],
  });
  for (const [title, views, active, when, tags, status, note] of ROWS) {
    await pb.collection(name).create({
      title, views, active, when, tags, status, note, body: title === 'alpha' ? BODY_HTML : '',
    });
  }
});

after(async () => {
  await tracker.cleanup();
});

// ---------------------------------------------------------------- envelope

test('getList with defaults returns page 1 of 30 with totals', async () => {
  const list = await pb.collection(name).getList();
  assert.deepEqual(Object.keys(list).sort(), ['items', 'page', 'perPage', 'totalItems', 'totalPages']);
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 30);
  assert.equal(list.totalItems, 7);
  assert.equal(list.totalPages, 1);
  assert.equal(list.items.length, 7);
});

test('without a sort, items come back in insertion order', async () => {
  const list = await pb.collection(name).getList(1, 30, { fields: 'title' });
  assert.deepEqual(list.items.map((r) => r.title), INSERT_ORDER);
});

test('paging splits the rows and reports page, perPage, totalItems and totalPages', async () => {
  const p1 = await pb.collection(name).getList(1, 3, { sort: 'views,title' });
  const p2 = await pb.collection(name).getList(2, 3, { sort: 'views,title' });
  const p3 = await pb.collection(name).getList(3, 3, { sort: 'views,title' });
  for (const [p, page] of [[p1, 1], [p2, 2], [p3, 3]]) {
    assert.equal(p.page, page);
    assert.equal(p.perPage, 3);
    assert.equal(p.totalItems, 7);
    assert.equal(p.totalPages, 3);
  }
  assert.deepEqual(p1.items.map((r) => r.title), ['alpha', 'zeta alpha', 'beta']);
  assert.deepEqual(p2.items.map((r) => r.title), ['gamma', 'delta', 'epsilon']);
  assert.deepEqual(p3.items.map((r) => r.title), ['eta']);
});

test('a page past the end is empty but keeps the totals', async () => {
  const list = await pb.collection(name).getList(9, 3);
  assert.equal(list.page, 9);
  assert.equal(list.perPage, 3);
  assert.equal(list.totalItems, 7);
  assert.equal(list.totalPages, 3);
  assert.deepEqual(list.items, []);
});

test('totals reflect the filter; no match gives totalItems 0 and totalPages 0', async () => {
  const some = await pb.collection(name).getList(1, 2, { filter: 'views = 10' });
  assert.equal(some.totalItems, 2);
  assert.equal(some.totalPages, 1);
  const none = await pb.collection(name).getList(1, 2, { filter: 'views = 12345' });
  assert.equal(none.totalItems, 0);
  assert.equal(none.totalPages, 0);
  assert.deepEqual(none.items, []);
});

test('perPage above 1000 is clamped and echoed as 1000', async () => {
  const list = await pb.collection(name).getList(1, 5000, { fields: 'id' });
  assert.equal(list.perPage, 1000);
  assert.equal(list.totalItems, 7);
  assert.equal(list.totalPages, 1);
  assert.equal(list.items.length, 7);
});

test('page and perPage of zero or less fall back to 1 and 30', async () => {
  const list = await pb.collection(name).getList(0, -5, { fields: 'id' });
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 30);
});

test('a non-numeric page is 400', async () => {
  const err = await expectError(pb.collection(name).getList('x', 10), 400);
  assert.deepEqual(err.response.data, {});
});

test('skipTotal returns -1 for totalItems and totalPages but still returns items', async () => {
  const list = await pb.collection(name).getList(1, 2, { skipTotal: true, sort: 'title' });
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 2);
  assert.equal(list.totalItems, -1);
  assert.equal(list.totalPages, -1);
  assert.deepEqual(list.items.map((r) => r.title), ['alpha', 'beta']);
});

// ---------------------------------------------------------------- sort

test('sort ascending by a text field', async () => {
  const list = await pb.collection(name).getList(1, 30, { sort: 'title', fields: 'title' });
  assert.deepEqual(list.items.map((r) => r.title), [...INSERT_ORDER].sort());
  const plus = await pb.collection(name).getList(1, 30, { sort: '+title', fields: 'title' });
  assert.deepEqual(plus.items.map((r) => r.title), [...INSERT_ORDER].sort());
});

test('sort descending by a number field', async () => {
  const list = await pb.collection(name).getList(1, 30, { sort: '-views,title', fields: 'title,views' });
  assert.deepEqual(list.items.map((r) => r.views), [70, 50, 40, 30, 20, 10, 10]);
  assert.deepEqual(list.items.map((r) => r.title),
    ['eta', 'epsilon', 'delta', 'gamma', 'beta', 'alpha', 'zeta alpha']);
});

test('multi-field sort applies terms in order with mixed directions', async () => {
  const list = await pb.collection(name).getList(1, 30, { sort: 'views,-title', fields: 'title' });
  assert.deepEqual(list.items.map((r) => r.title),
    ['zeta alpha', 'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'eta']);
  const byBool = await pb.collection(name).getList(1, 30, { sort: '-active,-views', fields: 'title' });
  assert.deepEqual(byBool.items.map((r) => r.title),
    ['eta', 'epsilon', 'gamma', 'alpha', 'delta', 'beta', 'zeta alpha']);
});

test('sort by an unknown field is 400', async () => {
  const err = await expectError(pb.collection(name).getList(1, 10, { sort: 'nosuchfield' }), 400);
  assert.deepEqual(err.response.data, {});
});

// ---------------------------------------------------------------- full list / first item

test('getFullList with a small batch walks every page', async () => {
  const queries = [];
  pb.beforeSend = (url, options) => {
    queries.push({ ...options.query });
    return { url, options };
  };
  try {
    const all = await pb.collection(name).getFullList({ batch: 2, sort: 'views,title' });
    assert.equal(all.length, 7);
    assert.deepEqual(all.map((r) => r.title),
      ['alpha', 'zeta alpha', 'beta', 'gamma', 'delta', 'epsilon', 'eta']);
  } finally {
    pb.beforeSend = undefined;
  }
  assert.deepEqual(queries.map((q) => q.page), [1, 2, 3, 4], 'ceil(7 / 2) page requests');
  assert.ok(queries.every((q) => q.perPage === 2 && q.skipTotal === 1));
});

test('getFullList default batch returns every row in one request', async () => {
  const all = await pb.collection(name).getFullList({ sort: '-title' });
  assert.deepEqual(all.map((r) => r.title), [...INSERT_ORDER].sort().reverse());
});

test('getFirstListItem with pb.filter placeholders returns the matching record', async () => {
  const rec = await pb.collection(name).getFirstListItem(
    pb.filter('title = {:t} && views > {:v}', { t: 'alpha', v: 5 }),
  );
  assert.equal(rec.title, 'alpha');
  assert.equal(rec.views, 10);
  assert.deepEqual(rec.tags, ['a', 'b']);
});

test('pb.filter quotes strings safely and formats Date parameters', async () => {
  const quoted = await titles(pb.filter('title = {:t}', { t: 'it\'s "quoted"' }));
  assert.deepEqual(quoted, []);
  const since = await titles(pb.filter('when >= {:d}', { d: new Date('2024-03-01T10:00:00.000Z') }));
  assert.deepEqual(since, ['delta', 'eta', 'gamma']);
});

test('getFirstListItem with no match rejects with a 404 ClientResponseError', async () => {
  // The server answers an empty list; the SDK turns that into a 404 error
  // whose body is {code, message, data} (built client-side).
  let err;
  try {
    await pb.collection(name).getFirstListItem(
      pb.filter('title = {:t} && views > {:v}', { t: 'alpha', v: 500 }),
    );
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof ClientResponseError, 'expected a ClientResponseError');
  assert.equal(err.status, 404);
  assert.deepEqual(err.response.data, {});
});

// ---------------------------------------------------------------- filter operators

test('text operators = != > >= < <=', async () => {
  assert.deepEqual(await titles('title = "beta"'), ['beta']);
  assert.deepEqual(await titles("title = 'beta'"), ['beta'], 'single quotes work too');
  assert.deepEqual(await titles('title != "beta"'),
    ['alpha', 'delta', 'epsilon', 'eta', 'gamma', 'zeta alpha']);
  assert.deepEqual(await titles('title > "gamma"'), ['zeta alpha']);
  assert.deepEqual(await titles('title >= "gamma"'), ['gamma', 'zeta alpha']);
  assert.deepEqual(await titles('title < "beta"'), ['alpha']);
  assert.deepEqual(await titles('title <= "beta"'), ['alpha', 'beta']);
});

test('text operators ~ and !~ are case-insensitive "contains" matches', async () => {
  assert.deepEqual(await titles('title ~ "alpha"'), ['alpha', 'zeta alpha']);
  assert.deepEqual(await titles('title ~ "ALPHA"'), ['alpha', 'zeta alpha']);
  assert.deepEqual(await titles('title !~ "a"'), ['epsilon']);
  assert.deepEqual(await titles('title ~ "al%"'), ['alpha'], 'an explicit % is used as the LIKE pattern');
});

test('number operators = != > >= < <=', async () => {
  assert.deepEqual(await titles('views = 10'), ['alpha', 'zeta alpha']);
  assert.deepEqual(await titles('views != 10'), ['beta', 'delta', 'epsilon', 'eta', 'gamma']);
  assert.deepEqual(await titles('views > 40'), ['epsilon', 'eta']);
  assert.deepEqual(await titles('views >= 40'), ['delta', 'epsilon', 'eta']);
  assert.deepEqual(await titles('views < 20'), ['alpha', 'zeta alpha']);
  assert.deepEqual(await titles('views <= 20'), ['alpha', 'beta', 'zeta alpha']);
  assert.deepEqual(await titles('views > 15.5 && views < 30.5'), ['beta', 'gamma']);
});

test('number ~ and !~ match on the digits', async () => {
  assert.deepEqual(await titles('views ~ "0"'), INSERT_ORDER.slice().sort());
  assert.deepEqual(await titles('views ~ "7"'), ['eta']);
  assert.deepEqual(await titles('views !~ "1"'), ['beta', 'delta', 'epsilon', 'eta', 'gamma']);
});

test('bool operators = and != against true and false', async () => {
  assert.deepEqual(await titles('active = true'), ['alpha', 'epsilon', 'eta', 'gamma']);
  assert.deepEqual(await titles('active = false'), ['beta', 'delta', 'zeta alpha']);
  assert.deepEqual(await titles('active != true'), ['beta', 'delta', 'zeta alpha']);
  assert.deepEqual(await titles('active != false'), ['alpha', 'epsilon', 'eta', 'gamma']);
});

test('date operators compare the stored datetime strings', async () => {
  const feb = '"2024-02-01 10:00:00.000Z"';
  assert.deepEqual(await titles(`when = ${feb}`), ['beta']);
  assert.deepEqual(await titles(`when != ${feb}`),
    ['alpha', 'delta', 'epsilon', 'eta', 'gamma', 'zeta alpha']);
  assert.deepEqual(await titles(`when > ${feb}`), ['delta', 'eta', 'gamma']);
  assert.deepEqual(await titles(`when >= ${feb}`), ['beta', 'delta', 'eta', 'gamma']);
  // An empty date is the empty string, which sorts before every datetime.
  assert.deepEqual(await titles(`when < ${feb}`), ['alpha', 'epsilon', 'zeta alpha']);
  assert.deepEqual(await titles(`when <= ${feb}`), ['alpha', 'beta', 'epsilon', 'zeta alpha']);
  assert.deepEqual(await titles('when ~ "2024-01"'), ['alpha', 'zeta alpha']);
  assert.deepEqual(await titles('when !~ "2024"'), ['epsilon', 'eta']);
  assert.deepEqual(await titles('when > "2025-01-01"'), ['eta'], 'a date-only literal compares as a prefix string');
});

test('multi-select: :each with ?= means "any value equals"', async () => {
  assert.deepEqual(await titles('tags:each ?= "a"'), ['alpha', 'epsilon', 'eta']);
  assert.deepEqual(await titles('tags:each ?= "d"'), ['epsilon', 'zeta alpha']);
});

test('multi-select: :each with plain = means "every value equals"', async () => {
  assert.deepEqual(await titles('tags:each = "a"'), ['eta']);
});

test('multi-select: ?~ and ~ are contains-matches on the stored value', async () => {
  assert.deepEqual(await titles('tags ?~ "c"'), ['epsilon', 'gamma']);
  assert.deepEqual(await titles('tags ~ "c"'), ['epsilon', 'gamma']);
  assert.deepEqual(await titles('tags:each ?~ "c"'), ['epsilon', 'gamma']);
});

test('multi-select: ?= on the bare field compares the whole stored value and matches nothing', async () => {
  // Without :each a multi select is a single JSON-array value, so it never
  // equals one of its items (real PocketBase behaviour; use tags:each ?= ...).
  assert.deepEqual(await titles('tags ?= "a"'), []);
  assert.deepEqual(await titles('tags = "a"'), []);
});

test('multi-select: :length counts the selected values', async () => {
  assert.deepEqual(await titles('tags:length > 1'), ['alpha', 'epsilon']);
  assert.deepEqual(await titles('tags:length = 0'), ['delta']);
});

test("'' and null are equivalent for text, select and date comparisons", async () => {
  const emptyNote = ['beta', 'delta', 'gamma', 'zeta alpha'];
  assert.deepEqual(await titles('note = ""'), emptyNote);
  assert.deepEqual(await titles('note = null'), emptyNote);
  assert.deepEqual(await titles("note = ''"), emptyNote);
  assert.deepEqual(await titles('note != ""'), ['alpha', 'epsilon', 'eta']);
  assert.deepEqual(await titles('note != null'), ['alpha', 'epsilon', 'eta']);
  assert.deepEqual(await titles('status = null'), ['delta']);
  assert.deepEqual(await titles('status = ""'), ['delta']);
  assert.deepEqual(await titles('when = null'), ['epsilon']);
  assert.deepEqual(await titles('when = ""'), ['epsilon']);
});

test('&& and || combine terms, with || binding looser than && unless parenthesised', async () => {
  assert.deepEqual(await titles('active = true && views > 20'), ['epsilon', 'eta', 'gamma']);
  assert.deepEqual(await titles('views = 10 || views = 70'), ['alpha', 'eta', 'zeta alpha']);
  assert.deepEqual(await titles('(views = 10 || views = 70) && active = true'), ['alpha', 'eta']);
  assert.deepEqual(await titles('views = 10 || views = 70 && active = true'), ['alpha', 'eta', 'zeta alpha']);
  assert.deepEqual(
    await titles('(title ~ "eta" || title ~ "gam") && (views >= 30 && (active = true || note = "x"))'),
    ['eta', 'gamma'],
  );
});

test('a filter with a parse error is 400 with an empty data object', async () => {
  for (const filter of ['title ==== 1', 'title =', '(views > 1', 'active']) {
    const err = await expectError(pb.collection(name).getList(1, 10, { filter }), 400);
    assert.deepEqual(err.response.data, {}, `filter ${filter}`);
  }
});

test('a filter on an unknown field is 400', async () => {
  const err = await expectError(pb.collection(name).getList(1, 10, { filter: 'nosuchfield = 1' }), 400);
  assert.deepEqual(err.response.data, {});
});

// ---------------------------------------------------------------- fields picker

test('fields picks only the listed keys of each item and keeps the envelope', async () => {
  const list = await pb.collection(name).getList(1, 2, { fields: 'id,title', sort: 'title' });
  assert.equal(list.totalItems, 7);
  assert.equal(list.perPage, 2);
  for (const item of list.items) assert.deepEqual(Object.keys(item).sort(), ['id', 'title']);
  assert.equal(list.items[0].title, 'alpha');
});

test('fields=* returns every key', async () => {
  const list = await pb.collection(name).getList(1, 1, { fields: '*', sort: 'title' });
  const full = await pb.collection(name).getList(1, 1, { sort: 'title' });
  assert.deepEqual(list.items[0], full.items[0]);
});

test('fields with only envelope keys yields empty item objects', async () => {
  const list = await pb.collection(name).getList(1, 2, { fields: 'totalItems' });
  assert.equal(list.totalItems, 7);
  assert.deepEqual(list.items, [{}, {}]);
});

test('fields applies to getOne as well', async () => {
  const first = await pb.collection(name).getFirstListItem('title = "beta"');
  const picked = await pb.collection(name).getOne(first.id, { fields: 'title,views' });
  assert.deepEqual(picked, { title: 'beta', views: 20 });
});

test(':excerpt strips HTML and cuts the text, optionally adding an ellipsis', async () => {
  const filter = 'title = "alpha"';
  const withDots = await pb.collection(name).getList(1, 1, { filter, fields: 'id,body:excerpt(10,true)' });
  assert.deepEqual(Object.keys(withDots.items[0]).sort(), ['body', 'id']);
  assert.equal(withDots.items[0].body, 'Hello big...');
  const plain = await pb.collection(name).getList(1, 1, { filter, fields: 'body:excerpt(10)' });
  assert.deepEqual(plain.items[0], { body: 'Hello big' });
  const star = await pb.collection(name).getList(1, 1, { filter, fields: '*,body:excerpt(200)' });
  assert.equal(star.items[0].body, 'Hello big world of many words');
  assert.equal(star.items[0].title, 'alpha', '* keeps the other keys');
});
