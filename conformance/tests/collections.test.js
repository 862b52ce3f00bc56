// Collections API: create/get/list/update/delete, validation, scaffolds, system collections.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  CollectionTracker,
  DATETIME_RE,
  SUPERUSERS_COLLECTION_ID,
  USERS_COLLECTION_ID,
  assertFieldError,
  expectError,
  randomSuffix,
  superuserClient,
} from './helpers.js';

let pb;
let tracker;
const suffix = randomSuffix();
const targetName = `coltarget_${suffix}`;
const mainName = `colmain_${suffix}`;
let target;
let main;

function fieldByName(collection, name) {
  const field = collection.fields.find((f) => f.name === name);
  assert.ok(field, `field ${name} missing from ${JSON.stringify(collection.fields.map((f) => f.name))}`);
  return field;
}

before(async () => {
  pb = await superuserClient();
  tracker = new CollectionTracker(pb);
  target = await tracker.create({
    name: targetName,
    type: 'base',
    fields: [{ name: 'label', type: 'text' }],
  });
  main = await tracker.create({
    name: mainName,
    type: 'base',
    listRule: '',
    viewRule: '',
    createRule: '@request.auth.id != ""',
    updateRule: null,
    deleteRule: null,
    fields: [
      { name: 'title', type: 'text', required: true, min: 3, max: 50 },
      { name: 'views', type: 'number', min: 0, max: 100, onlyInt: true },
      { name: 'active', type: 'bool' },
      { name: 'contact', type: 'email' },
      { name: 'site', type: 'url' },
      { name: 'when', type: 'date' },
      { name: 'status', type: 'select', values: ['draft', 'published'], maxSelect: 1 },
      { name: 'tags', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'meta', type: 'json' },
      { name: 'ref', type: 'relation', collectionId: target.id, maxSelect: 1 },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
    indexes: [`CREATE INDEX idx_${mainName}_title ON ${mainName} (title)`],
  });
});

after(async () => {
  await tracker.cleanup();
});

test('creating a base collection returns the full collection JSON', () => {
  assert.match(main.id, /^pbc_\d+$/);
  assert.equal(main.name, mainName);
  assert.equal(main.type, 'base');
  assert.equal(main.system, false);
  assert.equal(main.listRule, '');
  assert.equal(main.viewRule, '');
  assert.equal(main.createRule, '@request.auth.id != ""');
  assert.equal(main.updateRule, null);
  assert.equal(main.deleteRule, null);
  assert.match(main.created, DATETIME_RE);
  assert.match(main.updated, DATETIME_RE);
  assert.deepEqual(main.indexes, [`CREATE INDEX idx_${mainName}_title ON ${mainName} (title)`]);
  assert.ok(!('viewQuery' in main), 'base collections have no viewQuery');
  assert.ok(!('authRule' in main), 'base collections have no auth options');
});

test('a new base collection gets the system id field first', () => {
  const id = main.fields[0];
  assert.equal(id.name, 'id');
  assert.equal(id.type, 'text');
  assert.equal(id.system, true);
  assert.equal(id.primaryKey, true);
  assert.equal(id.required, true);
  assert.equal(id.min, 15);
  assert.equal(id.max, 15);
  assert.equal(id.pattern, '^[a-z0-9]+$');
  assert.equal(id.autogeneratePattern, '[a-z0-9]{15}');
  assert.deepEqual(
    main.fields.map((f) => f.name),
    ['id', 'title', 'views', 'active', 'contact', 'site', 'when', 'status', 'tags', 'meta', 'ref', 'created', 'updated'],
  );
  for (const f of main.fields) {
    assert.equal(typeof f.id, 'string');
    assert.ok(f.id.length > 0, `field ${f.name} has an id`);
    assert.equal(f.hidden, false);
  }
});

test('field options of every field type are echoed back', () => {
  const title = fieldByName(main, 'title');
  assert.equal(title.type, 'text');
  assert.equal(title.required, true);
  assert.equal(title.min, 3);
  assert.equal(title.max, 50);
  assert.equal(title.system, false);

  const views = fieldByName(main, 'views');
  assert.equal(views.type, 'number');
  assert.equal(views.min, 0);
  assert.equal(views.max, 100);
  assert.equal(views.onlyInt, true);

  assert.equal(fieldByName(main, 'active').type, 'bool');
  assert.equal(fieldByName(main, 'contact').type, 'email');
  assert.equal(fieldByName(main, 'site').type, 'url');
  assert.equal(fieldByName(main, 'when').type, 'date');

  const status = fieldByName(main, 'status');
  assert.equal(status.type, 'select');
  assert.deepEqual(status.values, ['draft', 'published']);
  assert.equal(status.maxSelect, 1);

  const tags = fieldByName(main, 'tags');
  assert.equal(tags.type, 'select');
  assert.deepEqual(tags.values, ['a', 'b', 'c']);
  assert.equal(tags.maxSelect, 3);

  assert.equal(fieldByName(main, 'meta').type, 'json');

  const ref = fieldByName(main, 'ref');
  assert.equal(ref.type, 'relation');
  assert.equal(ref.collectionId, target.id);
  assert.equal(ref.maxSelect, 1);
  assert.equal(ref.cascadeDelete, false);

  const created = fieldByName(main, 'created');
  assert.equal(created.type, 'autodate');
  assert.equal(created.onCreate, true);
  assert.equal(created.onUpdate, false);
  const updated = fieldByName(main, 'updated');
  assert.equal(updated.onCreate, true);
  assert.equal(updated.onUpdate, true);
});

test('a base collection created without autodate fields does not get created/updated added', () => {
  assert.deepEqual(target.fields.map((f) => f.name), ['id', 'label']);
});

test('getOne finds a collection by name and by id with identical content', async () => {
  const byName = await pb.collections.getOne(mainName);
  const byId = await pb.collections.getOne(main.id);
  assert.deepEqual(byName, byId);
  assert.equal(byName.id, main.id);
  assert.deepEqual(byName.fields, main.fields);
});

test('getOne of an unknown collection is 404', async () => {
  const err = await expectError(pb.collections.getOne(`nope_${randomSuffix()}`), 404);
  assert.deepEqual(err.response.data, {});
});

test('getList of collections filtered by name returns exactly that collection', async () => {
  const list = await pb.collections.getList(1, 10, { filter: `name = "${mainName}"` });
  assert.equal(list.page, 1);
  assert.equal(list.perPage, 10);
  assert.equal(list.totalItems, 1);
  assert.equal(list.totalPages, 1);
  assert.equal(list.items.length, 1);
  assert.equal(list.items[0].id, main.id);
  assert.equal(list.items[0].name, mainName);
});

test('getFullList of collections with a suffix filter returns both test collections', async () => {
  const all = await pb.collections.getFullList({ filter: `name ~ "${suffix}"`, sort: 'name' });
  assert.deepEqual(all.map((c) => c.name), [mainName, targetName]);
});

test('getFullList of collections can filter by type and system', async () => {
  const authSystem = await pb.collections.getFullList({ filter: 'type = "auth" && system = true' });
  const names = authSystem.map((c) => c.name);
  assert.ok(names.includes('_superusers'));
  assert.ok(!names.includes('users'), 'users is not a system collection');
});

test('the default users collection exists with id _pb_users_auth_', async () => {
  const users = await pb.collections.getOne('users');
  assert.equal(users.id, USERS_COLLECTION_ID);
  assert.equal(users.name, 'users');
  assert.equal(users.type, 'auth');
  assert.equal(users.system, false);
  const names = users.fields.map((f) => f.name);
  for (const n of ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified', 'created', 'updated']) {
    assert.ok(names.includes(n), `users has field ${n}`);
  }
  assert.deepEqual(users.passwordAuth, { enabled: true, identityFields: ['email'] });
  assert.equal(users.authToken.duration, 432000);
  assert.equal(users.listRule, 'id = @request.auth.id');
  assert.equal(users.viewRule, 'id = @request.auth.id');
  assert.equal(users.createRule, '');
  assert.equal(users.updateRule, 'id = @request.auth.id');
  assert.equal(users.deleteRule, 'id = @request.auth.id');
  assert.equal(users.authRule, '');
  assert.equal(users.manageRule, null);
  assert.ok(!('secret' in users.authToken), 'token secrets are never returned');
  const byId = await pb.collections.getOne(USERS_COLLECTION_ID);
  assert.equal(byId.name, 'users');
});

test('the _superusers collection exists with id pbc_3142635823 and locked rules', async () => {
  const su = await pb.collections.getOne('_superusers');
  assert.equal(su.id, SUPERUSERS_COLLECTION_ID);
  assert.equal(su.type, 'auth');
  assert.equal(su.system, true);
  for (const rule of ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule']) {
    assert.equal(su[rule], null, `${rule} is null`);
  }
  assert.equal(su.authToken.duration, 86400);
});

test('updating a collection can add a field, and existing records get its zero value', async () => {
  const rec = await pb.collection(mainName).create({ title: 'before-add' });
  const current = await pb.collections.getOne(mainName);
  const updated = await pb.collections.update(mainName, {
    fields: [...current.fields, { name: 'extra', type: 'number' }],
  });
  assert.equal(updated.id, main.id);
  const extra = fieldByName(updated, 'extra');
  assert.equal(extra.type, 'number');
  assert.ok(extra.id);
  const fetched = await pb.collection(mainName).getOne(rec.id);
  assert.equal(fetched.extra, 0);
  const fresh = await pb.collection(mainName).create({ title: 'after-add', extra: 7 });
  assert.equal(fresh.extra, 7);
});

test('renaming a field keeps its id and its stored data', async () => {
  const rec = await pb.collection(mainName).create({ title: 'rename-me', views: 42 });
  const current = await pb.collections.getOne(mainName);
  const views = fieldByName(current, 'views');
  const updated = await pb.collections.update(mainName, {
    fields: current.fields.map((f) => (f.name === 'views' ? { ...f, name: 'hits' } : f)),
  });
  const hits = fieldByName(updated, 'hits');
  assert.equal(hits.id, views.id);
  assert.ok(!updated.fields.some((f) => f.name === 'views'));
  const fetched = await pb.collection(mainName).getOne(rec.id);
  assert.equal(fetched.hits, 42);
  assert.ok(!('views' in fetched));
});

test('updating collection rules is reflected in the response and on reload', async () => {
  const updated = await pb.collections.update(mainName, {
    listRule: null,
    viewRule: 'title != ""',
    updateRule: '',
  });
  assert.equal(updated.listRule, null);
  assert.equal(updated.viewRule, 'title != ""');
  assert.equal(updated.updateRule, '');
  assert.equal(updated.createRule, '@request.auth.id != ""', 'rules not sent are unchanged');
  const reloaded = await pb.collections.getOne(mainName);
  assert.equal(reloaded.listRule, null);
  assert.equal(reloaded.viewRule, 'title != ""');
  assert.equal(reloaded.updateRule, '');
});

test('creating a collection with an invalid name fails with data.name.code', async () => {
  const err = await expectError(pb.collections.create({ name: 'bad name!', type: 'base' }), 400);
  assert.equal(err.response.message, 'Failed to create collection.');
  assertFieldError(err, 'name', 'validation_match_invalid');
});

test('creating a collection without a name fails with validation_required', async () => {
  const err = await expectError(pb.collections.create({ type: 'base' }), 400);
  assertFieldError(err, 'name', 'validation_required');
});

test('creating a collection with a duplicate name (any case) fails', async () => {
  const err = await expectError(pb.collections.create({ name: mainName, type: 'base' }), 400);
  assertFieldError(err, 'name', 'validation_collection_name_exists');
  const errUpper = await expectError(
    pb.collections.create({ name: mainName.toUpperCase(), type: 'base' }),
    400,
  );
  assertFieldError(errUpper, 'name', 'validation_collection_name_exists');
});

test('creating a collection with a rule on an unknown field fails with validation_invalid_rule', async () => {
  const err = await expectError(
    pb.collections.create({
      name: `badrule_${randomSuffix()}`,
      type: 'base',
      fields: [{ name: 'title', type: 'text' }],
      listRule: 'nosuchfield = 1',
      viewRule: 'title =',
    }),
    400,
  );
  assertFieldError(err, 'listRule', 'validation_invalid_rule');
  assertFieldError(err, 'viewRule', 'validation_invalid_rule');
});

test('creating a collection with an unknown type fails with data.type', async () => {
  const err = await expectError(
    pb.collections.create({ name: `badtype_${randomSuffix()}`, type: 'weird' }),
    400,
  );
  assertFieldError(err, 'type', 'validation_in_invalid');
});

test('a failed collection update reports "Failed to update collection."', async () => {
  const err = await expectError(pb.collections.update(mainName, { name: 'no spaces allowed' }), 400);
  assert.equal(err.response.message, 'Failed to update collection.');
  assertFieldError(err, 'name', 'validation_match_invalid');
});

test('deleting a collection that another collection relates to fails with 400', async () => {
  const err = await expectError(pb.collections.delete(targetName), 400);
  assert.deepEqual(err.response.data, {});
  assert.ok(err.response.message.includes(mainName), err.response.message);
});

test('deleting a collection resolves true and it is gone afterwards', async () => {
  const name = `coldel_${randomSuffix()}`;
  await tracker.create({ name, type: 'base', fields: [{ name: 'x', type: 'text' }] });
  assert.equal(await pb.collections.delete(name), true);
  tracker.forget(name);
  await expectError(pb.collections.getOne(name), 404);
  await expectError(pb.collection(name).getList(), 404);
});

test('getScaffolds returns blank base, auth and view templates', async () => {
  const s = await pb.collections.getScaffolds();
  assert.deepEqual(Object.keys(s).sort(), ['auth', 'base', 'view']);
  assert.equal(s.base.type, 'base');
  assert.equal(s.base.name, '');
  assert.equal(s.base.id, '');
  assert.deepEqual(s.base.fields.map((f) => f.name), ['id']);
  assert.equal(s.base.listRule, null);
  assert.equal(s.auth.type, 'auth');
  const authFields = s.auth.fields.map((f) => f.name);
  assert.deepEqual(authFields, ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified']);
  assert.equal(s.auth.authRule, '');
  assert.equal(s.auth.manageRule, null);
  assert.deepEqual(s.auth.passwordAuth, { enabled: true, identityFields: ['email'] });
  assert.equal(s.view.type, 'view');
  assert.equal(s.view.viewQuery, '');
  assert.deepEqual(s.view.fields, []);
});
